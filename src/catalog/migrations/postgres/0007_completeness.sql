-- callvault catalog, PostgreSQL schema version 6 (the meaning of SQLite's 0006_completeness.sql):
-- every call accounted for. One row per call the platform reported, with or without a recording;
-- its completeness state is final once settled_at is set.

CREATE TABLE calls (
    call_id      text        COLLATE "C" NOT NULL PRIMARY KEY,
    -- 1 recording, 2 native events, 4 Twilio, 8 AudioHook, 16 AudioSocket, 32 call-detail import
    sources      integer     NOT NULL CHECK (sources > 0),
    first_seen   timestamptz NOT NULL,
    at           timestamptz NOT NULL,
    started_at   timestamptz,
    ended_at     timestamptz,
    duration_ms  bigint      CHECK (duration_ms IS NULL OR duration_ms >= 0),
    line         text,
    recording_id uuid        REFERENCES recordings (id),
    state        text        CHECK (state IS NULL OR state IN
                                 ('recorded', 'partial', 'not_recorded', 'withheld', 'failed')),
    reason       text,
    missing_ms   bigint      CHECK (missing_ms IS NULL OR missing_ms >= 0),
    detail       text,
    checked_at   timestamptz,
    settled_at   timestamptz,
    CHECK (settled_at IS NULL OR state IS NOT NULL)
);

CREATE INDEX calls_unsettled ON calls (call_id) WHERE settled_at IS NULL;
CREATE INDEX calls_by_time ON calls (at, state);
CREATE INDEX calls_by_state ON calls (state, at, call_id);

CREATE FUNCTION calls_settled_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.settled_at IS NOT NULL AND (
        NEW.state IS DISTINCT FROM OLD.state OR NEW.reason IS DISTINCT FROM OLD.reason
        OR NEW.missing_ms IS DISTINCT FROM OLD.missing_ms OR NEW.detail IS DISTINCT FROM OLD.detail
        OR NEW.settled_at IS DISTINCT FROM OLD.settled_at) THEN
        RAISE EXCEPTION 'a settled completeness state is final';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER calls_settled_is_final BEFORE UPDATE ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_settled_is_final();

CREATE FUNCTION calls_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'call records are kept';
END $$;
CREATE TRIGGER calls_no_delete BEFORE DELETE ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_no_delete();

-- every recording is a call, noted in the transaction that stores it
CREATE FUNCTION recordings_note_call() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO calls (call_id, sources, first_seen, at, recording_id)
        VALUES (NEW.call_id, 1, NEW.updated_at, NEW.started_at, NEW.id)
        ON CONFLICT (call_id) DO UPDATE
            SET sources = calls.sources | 1, recording_id = EXCLUDED.recording_id;
    RETURN NEW;
END $$;
CREATE TRIGGER recordings_note_call AFTER INSERT ON recordings
    FOR EACH ROW EXECUTE FUNCTION recordings_note_call();

INSERT INTO calls (call_id, sources, first_seen, at, recording_id)
    SELECT call_id, 1, updated_at, started_at, id FROM recordings;
