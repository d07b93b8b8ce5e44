-- callvault catalog, SQLite schema version 1.
--
-- Conventions: ids are text (recording ids are lowercase hyphenated UUIDs, so text order is UUID
-- order); times are RFC 3339 UTC text with exactly six fractional digits and a `Z`, fixed width, so
-- text order is time order; hashes and sealed bytes are BLOBs; status columns hold the frozen texts
-- of `RecordingStatus` / `SegmentStatus`. Tables are STRICT so a wrong type is refused on write.

CREATE TABLE recordings (
    id            TEXT    NOT NULL PRIMARY KEY,
    call_id       TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    line          TEXT,
    queue         TEXT,
    agent         TEXT,
    caller_tag    BLOB    CHECK (caller_tag IS NULL OR length(caller_tag) = 32),
    caller_sealed BLOB,
    policy        TEXT    NOT NULL,
    codec         INTEGER NOT NULL, -- the frozen CVA1 codec code
    sample_rate   INTEGER NOT NULL,
    channels      INTEGER NOT NULL,
    started_at    TEXT    NOT NULL,
    ended_at      TEXT,
    expires_at    TEXT,
    restricted    INTEGER NOT NULL CHECK (restricted IN (0, 1)),
    updated_at    TEXT    NOT NULL
) STRICT;

-- one call, at most one recording
CREATE UNIQUE INDEX recordings_by_call ON recordings (call_id);
-- subject access: a caller's recordings in a date range
CREATE INDEX recordings_by_caller ON recordings (caller_tag, started_at) WHERE caller_tag IS NOT NULL;
-- retention sweep: what expired, by status
CREATE INDEX recordings_by_expiry ON recordings (expires_at, status) WHERE expires_at IS NOT NULL;

CREATE TABLE segments (
    recording_id   TEXT    NOT NULL REFERENCES recordings (id),
    segment        INTEGER NOT NULL CHECK (segment >= 0),
    object_key     TEXT    NOT NULL,
    kek_id         TEXT,
    wrapped_key    BLOB,
    media_start_ms INTEGER NOT NULL CHECK (media_start_ms >= 0),
    media_end_ms   INTEGER NOT NULL CHECK (media_end_ms >= 0),
    size           INTEGER NOT NULL CHECK (size >= 0),
    sha256         BLOB    CHECK (sha256 IS NULL OR length(sha256) = 32),
    status         TEXT    NOT NULL,
    PRIMARY KEY (recording_id, segment),
    -- a key id without a key (or the reverse) would make a segment neither readable nor shredded
    CHECK ((kek_id IS NULL) = (wrapped_key IS NULL))
) STRICT;

-- key rotation: which key-encryption keys are still in use
CREATE INDEX segments_by_kek ON segments (kek_id) WHERE kek_id IS NOT NULL;

CREATE TABLE ledger (
    recording_id TEXT    NOT NULL REFERENCES recordings (id),
    seq          INTEGER NOT NULL CHECK (seq >= 1),
    at           TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    actor        TEXT    NOT NULL,
    reason       TEXT,
    details      TEXT    NOT NULL,
    PRIMARY KEY (recording_id, seq)
) STRICT;

CREATE TABLE holds (
    -- a surrogate key: a reference may be used again once its hold is released
    id             INTEGER NOT NULL PRIMARY KEY,
    reference      TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    actor          TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    caller_tag     BLOB    CHECK (caller_tag IS NULL OR length(caller_tag) = 32),
    covers_from    TEXT,
    covers_to      TEXT,
    released_at    TEXT,
    released_by    TEXT,
    release_reason TEXT
) STRICT;

-- at most one active hold per reference
CREATE UNIQUE INDEX holds_active_by_reference ON holds (reference) WHERE released_at IS NULL;
CREATE INDEX holds_by_reference ON holds (reference, id);
CREATE INDEX holds_active_by_caller ON holds (caller_tag) WHERE caller_tag IS NOT NULL AND released_at IS NULL;

-- holds and recordings are many-to-many; indexed both ways
CREATE TABLE hold_links (
    hold_id      INTEGER NOT NULL REFERENCES holds (id),
    recording_id TEXT    NOT NULL REFERENCES recordings (id),
    PRIMARY KEY (hold_id, recording_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX hold_links_by_recording ON hold_links (recording_id, hold_id);

CREATE TABLE audit (
    seq       INTEGER NOT NULL PRIMARY KEY CHECK (seq >= 1),
    at        TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    reason    TEXT,
    details   TEXT    NOT NULL,
    prev_hash BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash      BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;

-- the chain is append-only; these stop mistakes, the hash chain catches the rest
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;

-- webhook replay protection
CREATE TABLE seen_events (
    event_id TEXT NOT NULL PRIMARY KEY,
    seen_at  TEXT NOT NULL
) STRICT;

CREATE INDEX seen_events_by_time ON seen_events (seen_at);

CREATE TABLE tokens (
    id         TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    hash       BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
    created_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;
