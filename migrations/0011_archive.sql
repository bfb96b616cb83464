-- Retention: the cron moves finished tasks older than TASK_RETENTION_DAYS to R2, one JSON
-- document each (src/core/records/archive.rs), and removes their rows from D1.

-- What is left of an archived task in D1: where its document is. A read can then tell an
-- archived task from one that never existed, and a missing document is a fault, not a 404.
CREATE TABLE archived_tasks (
  id           TEXT PRIMARY KEY,
  object_key   TEXT NOT NULL,                             -- R2 key of the task's document
  finished_at  INTEGER NOT NULL,
  archived_at  INTEGER NOT NULL
);

-- What the steps of archived tasks add to GET /v1/metrics/agents, per UTC day (the start of the
-- day, in ms) and agent: written in the batch that removes the steps, so nothing is counted
-- twice or lost. Durations are not kept, so percentiles cover the steps still in D1.
CREATE TABLE agent_days (
  day             INTEGER NOT NULL,
  agent           TEXT NOT NULL,
  steps           INTEGER NOT NULL,
  succeeded       INTEGER NOT NULL,
  files_created   INTEGER NOT NULL,
  files_modified  INTEGER NOT NULL,
  lines_added     INTEGER NOT NULL,
  lines_removed   INTEGER NOT NULL,
  cost_usd        REAL,                                   -- NULL: no attempt reported it
  turns           INTEGER,
  input_tokens    INTEGER,
  output_tokens   INTEGER,
  PRIMARY KEY (day, agent)
);

-- The cron picks the tasks that finished longest ago.
CREATE INDEX tasks_by_finish ON tasks (finished_at) WHERE finished_at IS NOT NULL;

-- An archived task's messages are read into its document and removed with it.
CREATE INDEX messages_by_task ON messages (task_id, seq) WHERE task_id IS NOT NULL;
