-- callvault catalog, PostgreSQL schema version 5: one destruction path. Refusals and excisions go
-- through the retention journal as erasure and expiry do, so a crash at any step is finished by
-- the next run; an excision names its one segment.

ALTER TABLE retention_pending DROP CONSTRAINT retention_pending_cause_check;
ALTER TABLE retention_pending ADD CONSTRAINT retention_pending_cause_check
    CHECK (cause IN ('expired', 'erased', 'refused', 'excised'));
ALTER TABLE retention_pending ADD COLUMN segment bigint CHECK (segment >= 0);
ALTER TABLE retention_pending ADD CONSTRAINT retention_pending_excision_names_a_segment
    CHECK ((cause = 'excised') = (segment IS NOT NULL));

-- refusals kept under a hold: the sweep destroys them once their last hold is released
CREATE INDEX recordings_refusal_held ON recordings (expires_at, id) WHERE status = 'refusal_held';
