-- callvault catalog, SQLite: signed checkpoints of the audit chain, and who closed a subject access
-- request and why.

-- the chain head as the daemon signed it, at an interval and at shutdown; copies kept outside the
-- database (the journal, export bundles) are what catch a cut-off chain, these only a careless one
CREATE TABLE audit_checkpoints (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    seq        INTEGER NOT NULL CHECK (seq >= 0),
    hash       BLOB    NOT NULL CHECK (length(hash) = 32),
    at         TEXT    NOT NULL,
    public_key BLOB    NOT NULL CHECK (length(public_key) = 32),
    signature  BLOB    NOT NULL CHECK (length(signature) = 64)
) STRICT;

CREATE INDEX audit_checkpoints_by_seq ON audit_checkpoints (seq, id);

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;

ALTER TABLE sars ADD COLUMN closed_by TEXT;
ALTER TABLE sars ADD COLUMN close_reason TEXT;
