-- callvault catalog, PostgreSQL: signed checkpoints of the audit chain, and who closed a subject
-- access request and why.

-- the chain head as a daemon signed it, at an interval and at shutdown; copies kept outside the
-- database (the journal, export bundles) are what catch a cut-off chain, these only a careless one
CREATE TABLE audit_checkpoints (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq        bigint      NOT NULL CHECK (seq >= 0),
    hash       bytea       NOT NULL CHECK (length(hash) = 32),
    at         timestamptz NOT NULL,
    public_key bytea       NOT NULL CHECK (length(public_key) = 32),
    signature  bytea       NOT NULL CHECK (length(signature) = 64)
);

CREATE INDEX audit_checkpoints_by_seq ON audit_checkpoints (seq, id);

CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit checkpoints are append-only';
END
$$;
CREATE TRIGGER audit_checkpoints_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_append_only();

ALTER TABLE sars ADD COLUMN closed_by text;
ALTER TABLE sars ADD COLUMN close_reason text;
