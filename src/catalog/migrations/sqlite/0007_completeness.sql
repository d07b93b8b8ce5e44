-- callvault catalog, SQLite schema version 6: every call accounted for.
--
-- One row per call the platform reported (call events, Twilio status callbacks, AudioHook sessions,
-- AudioSocket connections, an imported call-detail file), whether or not it has a recording. The
-- reconciler keeps its latest completeness state here until the call settles; then it writes the
-- final state once, in one transaction with a ledger entry on the recording (if any) and an audit
-- entry, and the row's state can no longer change.

CREATE TABLE calls (
    call_id      TEXT    NOT NULL PRIMARY KEY,
    -- where callvault heard of it: a bit set (1 recording, 2 native events, 4 Twilio, 8 AudioHook,
    -- 16 AudioSocket, 32 call-detail import)
    sources      INTEGER NOT NULL CHECK (sources > 0),
    first_seen   TEXT    NOT NULL,
    -- when the call started, as best known (the platform's start, else its recording's, else
    -- first_seen): the time a report selects by
    at           TEXT    NOT NULL,
    -- the platform's own word, when it gave it
    started_at   TEXT,
    ended_at     TEXT,
    duration_ms  INTEGER CHECK (duration_ms IS NULL OR duration_ms >= 0),
    line         TEXT,
    recording_id TEXT    REFERENCES recordings (id),
    -- the latest assessment: final once settled_at is set
    state        TEXT    CHECK (state IS NULL OR state IN
                             ('recorded', 'partial', 'not_recorded', 'withheld', 'failed')),
    reason       TEXT,
    missing_ms   INTEGER CHECK (missing_ms IS NULL OR missing_ms >= 0),
    detail       TEXT,
    checked_at   TEXT,
    settled_at   TEXT,
    CHECK (settled_at IS NULL OR state IS NOT NULL)
) STRICT;

-- the reconciler's work list
CREATE INDEX calls_unsettled ON calls (call_id) WHERE settled_at IS NULL;
-- the report: totals by state over a period, and the calls of one state in time order
CREATE INDEX calls_by_time ON calls (at, state);
CREATE INDEX calls_by_state ON calls (state, at, call_id);

-- a settled state is evidence: it is written once
CREATE TRIGGER calls_settled_is_final BEFORE UPDATE OF state, reason, missing_ms, detail, settled_at
    ON calls WHEN OLD.settled_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a settled completeness state is final');
END;
CREATE TRIGGER calls_no_delete BEFORE DELETE ON calls
BEGIN
    SELECT RAISE(ABORT, 'call records are kept');
END;

-- every recording is a call: its row is noted in the same transaction that stores the recording,
-- whichever code stores it
CREATE TRIGGER recordings_note_call AFTER INSERT ON recordings
BEGIN
    INSERT INTO calls (call_id, sources, first_seen, at, recording_id)
        VALUES (NEW.call_id, 1, NEW.updated_at, NEW.started_at, NEW.id)
        ON CONFLICT (call_id) DO UPDATE
            SET sources = sources | 1, recording_id = NEW.id;
END;

-- the recordings stored before this version
INSERT INTO calls (call_id, sources, first_seen, at, started_at, ended_at, recording_id)
    SELECT call_id, 1, updated_at, started_at, NULL, NULL, id FROM recordings;
