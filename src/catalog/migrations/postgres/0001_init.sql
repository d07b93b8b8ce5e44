-- callvault catalog, PostgreSQL schema version 1 (the meaning of SQLite's 0001_init.sql).
--
-- Conventions: recording ids are `uuid` (whose order is the order of their lowercase text, as in
-- SQLite); times are `timestamptz`, which keeps microseconds; hashes and sealed bytes are `bytea`;
-- unsigned numbers are `bigint` with a check; status columns hold the frozen texts of
-- `RecordingStatus` / `SegmentStatus`. Text columns that order a listing use the "C" collation, so
-- their order is byte order whatever the database's locale. The tables live in the first schema of
-- the connection's search_path.

CREATE TABLE recordings (
    id            uuid        NOT NULL PRIMARY KEY,
    call_id       text        NOT NULL,
    status        text        NOT NULL,
    line          text,
    queue         text,
    agent         text,
    caller_tag    bytea       CHECK (caller_tag IS NULL OR length(caller_tag) = 32),
    caller_sealed bytea,
    policy        text        NOT NULL,
    codec         smallint    NOT NULL, -- the frozen CVA1 codec code
    sample_rate   bigint      NOT NULL CHECK (sample_rate >= 0),
    channels      smallint    NOT NULL CHECK (channels >= 0),
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    expires_at    timestamptz,
    restricted    boolean     NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- one call, at most one recording
CREATE UNIQUE INDEX recordings_by_call ON recordings (call_id);
-- subject access: a caller's recordings in a date range
CREATE INDEX recordings_by_caller ON recordings (caller_tag, started_at) WHERE caller_tag IS NOT NULL;
-- retention sweep: what expired, by status
CREATE INDEX recordings_by_expiry ON recordings (expires_at, status) WHERE expires_at IS NOT NULL;

CREATE TABLE segments (
    recording_id   uuid   NOT NULL REFERENCES recordings (id),
    segment        bigint NOT NULL CHECK (segment >= 0),
    object_key     text   NOT NULL,
    kek_id         text,
    wrapped_key    bytea,
    media_start_ms bigint NOT NULL CHECK (media_start_ms >= 0),
    media_end_ms   bigint NOT NULL CHECK (media_end_ms >= 0),
    size           bigint NOT NULL CHECK (size >= 0),
    sha256         bytea  CHECK (sha256 IS NULL OR length(sha256) = 32),
    status         text   NOT NULL,
    PRIMARY KEY (recording_id, segment),
    -- a key id without a key (or the reverse) would make a segment neither readable nor shredded
    CHECK ((kek_id IS NULL) = (wrapped_key IS NULL))
);

-- key rotation: which key-encryption keys are still in use
CREATE INDEX segments_by_kek ON segments (kek_id) WHERE kek_id IS NOT NULL;

CREATE TABLE ledger (
    recording_id uuid        NOT NULL REFERENCES recordings (id),
    seq          bigint      NOT NULL CHECK (seq >= 1),
    at           timestamptz NOT NULL,
    kind         text        NOT NULL,
    actor        text        NOT NULL,
    reason       text,
    details      text        NOT NULL,
    PRIMARY KEY (recording_id, seq)
);

CREATE TABLE holds (
    -- a surrogate key: a reference may be used again once its hold is released
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reference      text        NOT NULL,
    reason         text        NOT NULL,
    actor          text        NOT NULL,
    created_at     timestamptz NOT NULL,
    caller_tag     bytea       CHECK (caller_tag IS NULL OR length(caller_tag) = 32),
    covers_from    timestamptz,
    covers_to      timestamptz,
    released_at    timestamptz,
    released_by    text,
    release_reason text
);

-- at most one active hold per reference
CREATE UNIQUE INDEX holds_active_by_reference ON holds (reference) WHERE released_at IS NULL;
CREATE INDEX holds_by_reference ON holds (reference, id);
CREATE INDEX holds_active_by_caller ON holds (caller_tag) WHERE caller_tag IS NOT NULL AND released_at IS NULL;

-- holds and recordings are many-to-many; indexed both ways
CREATE TABLE hold_links (
    hold_id      bigint NOT NULL REFERENCES holds (id),
    recording_id uuid   NOT NULL REFERENCES recordings (id),
    PRIMARY KEY (hold_id, recording_id)
);

CREATE INDEX hold_links_by_recording ON hold_links (recording_id, hold_id);

CREATE TABLE audit (
    seq       bigint      NOT NULL PRIMARY KEY CHECK (seq >= 1),
    at        timestamptz NOT NULL,
    actor     text        NOT NULL,
    action    text        NOT NULL,
    subject   text        NOT NULL,
    reason    text,
    details   text        NOT NULL,
    prev_hash bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash      bytea       NOT NULL CHECK (length(hash) = 32)
);

-- the chain is append-only; these stop mistakes, the hash chain catches the rest
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only';
END
$$;
CREATE TRIGGER audit_no_update_or_delete BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- webhook replay protection
CREATE TABLE seen_events (
    event_id text        NOT NULL PRIMARY KEY,
    seen_at  timestamptz NOT NULL
);

CREATE INDEX seen_events_by_time ON seen_events (seen_at);

CREATE TABLE tokens (
    id         text COLLATE "C" NOT NULL PRIMARY KEY,
    name       text        NOT NULL,
    role       text        NOT NULL,
    hash       bytea       NOT NULL UNIQUE CHECK (length(hash) = 32),
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
