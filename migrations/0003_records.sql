-- What the records feature keeps in D1: each step's reported change figures (so per-agent
-- metrics are computed in D1 without reading reports) and where each written summary is in R2.

ALTER TABLE steps ADD COLUMN files_created INTEGER NOT NULL DEFAULT 0;   -- entries of the report's files_created
ALTER TABLE steps ADD COLUMN files_modified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN lines_added INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN lines_removed INTEGER NOT NULL DEFAULT 0;

-- GET /v1/metrics/agents?since= reads agent steps finished since a time.
CREATE INDEX steps_by_finish ON steps (finished_at, agent) WHERE agent IS NOT NULL AND finished_at IS NOT NULL;

-- Never written: per-task figures are computed from the steps above.
DROP TABLE metrics;

CREATE TABLE summaries (
  task_id       TEXT NOT NULL REFERENCES tasks (id),
  step_id       TEXT NOT NULL,                            -- the built-in step that wrote it
  kind          TEXT NOT NULL CHECK (kind IN ('task_summary', 'post_flight')),
  written_at    INTEGER NOT NULL,
  markdown_key  TEXT NOT NULL,                            -- R2 keys of the three renderings
  json_key      TEXT NOT NULL,
  metrics_key   TEXT NOT NULL,
  PRIMARY KEY (task_id, step_id, written_at)
);

-- A lease response carries the newest messages to the agent about the step's task.
CREATE INDEX messages_by_recipient_task ON messages (to_agent, task_id, seq) WHERE task_id IS NOT NULL;
