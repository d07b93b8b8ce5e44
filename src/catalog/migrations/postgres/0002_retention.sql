-- callvault catalog, PostgreSQL schema version 2: the retention worker.

-- deletions committed to but not finished: a sweep that stops half-way is finished by the next
CREATE TABLE retention_pending (
    recording_id uuid        NOT NULL PRIMARY KEY REFERENCES recordings (id),
    cause        text        NOT NULL CHECK (cause IN ('expired', 'erased')),
    actor        text        NOT NULL,
    reason       text,
    requested_at timestamptz NOT NULL
);

-- the worker's counters, one row
CREATE TABLE retention_progress (
    id               integer     NOT NULL PRIMARY KEY CHECK (id = 1),
    sweeps           bigint      NOT NULL CHECK (sweeps >= 0),
    expired          bigint      NOT NULL CHECK (expired >= 0),
    erased           bigint      NOT NULL CHECK (erased >= 0),
    last_started_at  timestamptz,
    last_finished_at timestamptz,
    last_deleted     bigint      NOT NULL CHECK (last_deleted >= 0),
    last_error       text
);

-- the sweep's candidates, in the order it takes them: a recording leaves the index once deleted,
-- so each batch reads only what is still due (the index of 0001 keeps deleted rows in range)
CREATE INDEX recordings_due ON recordings (expires_at, id)
    WHERE expires_at IS NOT NULL AND status IN ('sealed', 'pci_review', 'quarantined');
-- a recording's segments still spooled
CREATE INDEX segments_spooled ON segments (recording_id) WHERE status = 'spooled';
