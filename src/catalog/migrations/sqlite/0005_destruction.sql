-- callvault catalog, SQLite schema version 5: one destruction path. Refusals and excisions go
-- through the retention journal as erasure and expiry do, so a crash at any step is finished by
-- the next run; an excision names its one segment.

CREATE TABLE retention_pending_v4 (
    recording_id TEXT NOT NULL PRIMARY KEY REFERENCES recordings (id),
    cause        TEXT NOT NULL CHECK (cause IN ('expired', 'erased', 'refused', 'excised')),
    actor        TEXT NOT NULL,
    reason       TEXT,
    requested_at TEXT NOT NULL,
    segment      INTEGER CHECK (segment >= 0),
    CHECK ((cause = 'excised') = (segment IS NOT NULL))
) STRICT, WITHOUT ROWID;
INSERT INTO retention_pending_v4 (recording_id, cause, actor, reason, requested_at)
    SELECT recording_id, cause, actor, reason, requested_at FROM retention_pending;
DROP TABLE retention_pending;
ALTER TABLE retention_pending_v4 RENAME TO retention_pending;

-- refusals kept under a hold: the sweep destroys them once their last hold is released
CREATE INDEX recordings_refusal_held ON recordings (expires_at, id) WHERE status = 'refusal_held';
