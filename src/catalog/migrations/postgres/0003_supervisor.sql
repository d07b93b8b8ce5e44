-- callvault catalog, PostgreSQL: supervisor access (caller search, subject access requests, audit
-- search).

-- search pages in (started_at, id) order, by caller tag, line, agent, or none of them
CREATE INDEX recordings_by_caller_page ON recordings (caller_tag, started_at, id) WHERE caller_tag IS NOT NULL;
CREATE INDEX recordings_by_line ON recordings (line, started_at, id) WHERE line IS NOT NULL;
CREATE INDEX recordings_by_agent ON recordings (agent, started_at, id) WHERE agent IS NOT NULL;
CREATE INDEX recordings_by_start ON recordings (started_at, id);

-- subject access requests: received, due one calendar month later, closed when answered
CREATE TABLE sars (
    reference   text COLLATE "C" NOT NULL PRIMARY KEY,
    received_at timestamptz NOT NULL,
    due_at      timestamptz NOT NULL,
    caller_tag  bytea       CHECK (caller_tag IS NULL OR length(caller_tag) = 32),
    actor       text        NOT NULL,
    reason      text        NOT NULL,
    closed_at   timestamptz
);

CREATE INDEX sars_open_by_due ON sars (due_at, reference) WHERE closed_at IS NULL;

-- audit search by who, what, which subject, and when
CREATE INDEX audit_by_actor ON audit (actor, seq);
CREATE INDEX audit_by_action ON audit (action, seq);
CREATE INDEX audit_by_subject ON audit (subject, seq);
CREATE INDEX audit_by_time ON audit (at);
