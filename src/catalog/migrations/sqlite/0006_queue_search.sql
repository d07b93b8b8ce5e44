-- Caller search by queue (the web console, issue 15): served like the agent filter, by an index
-- whose last columns are (started_at, id).
CREATE INDEX recordings_by_queue ON recordings (queue, started_at, id) WHERE queue IS NOT NULL;
