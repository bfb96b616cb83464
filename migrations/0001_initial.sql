-- switchyard's schema. Migrations are append-only once landed: change the schema with a new
-- numbered file, never by editing this one.
--
-- Conventions: times are INTEGER milliseconds since the Unix epoch (UTC); JSON documents are
-- TEXT; ids are prefixed ULID-like strings that sort by creation time; every row that a state
-- transition changes has a `version` that the transition's guard checks and increments.

-- Specialist agents: who can do which steps, and how work reaches them.
CREATE TABLE agents (
  name             TEXT PRIMARY KEY,
  description      TEXT NOT NULL DEFAULT '',
  capabilities     TEXT NOT NULL DEFAULT '[]',            -- JSON array of keywords
  mode             TEXT NOT NULL CHECK (mode IN ('pull', 'webhook')),
  webhook_url      TEXT,
  webhook_secret   TEXT,                                  -- needed in clear to sign deliveries
  token_hash       TEXT,                                  -- SHA-256 of the agent's bearer token
  max_concurrency  INTEGER NOT NULL DEFAULT 1 CHECK (max_concurrency >= 1),
  lease_ms         INTEGER NOT NULL DEFAULT 300000,
  step_timeout_ms  INTEGER NOT NULL DEFAULT 3600000,
  source           TEXT,                                  -- the imported subagent file, if any
  metadata         TEXT NOT NULL DEFAULT '{}',            -- JSON: tools, color, prompt of an import
  version          INTEGER NOT NULL DEFAULT 1,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL
);

-- Facts about the installation itself, e.g. when the default agents and workflow were loaded
-- (so that a default an operator deleted is not loaded again).
CREATE TABLE settings (
  key         TEXT PRIMARY KEY,
  value       TEXT NOT NULL,
  updated_at  INTEGER NOT NULL
);

-- Workflow definitions; each (name, version) is immutable once written.
CREATE TABLE workflows (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  version     INTEGER NOT NULL CHECK (version >= 1),
  definition  TEXT NOT NULL,                              -- JSON workflow model
  source      TEXT,                                       -- the instruction file, if posted as one
  created_at  INTEGER NOT NULL,
  UNIQUE (name, version)
);

-- One row per submitted task and its run through one workflow version.
CREATE TABLE tasks (
  id           TEXT PRIMARY KEY,
  workflow_id  TEXT NOT NULL REFERENCES workflows (id),
  title        TEXT NOT NULL,
  description  TEXT NOT NULL DEFAULT '',
  input        TEXT NOT NULL DEFAULT '{}',               -- JSON: requirements, paths
  analysis     TEXT NOT NULL DEFAULT '{}',               -- JSON: task type, agents, evidence
  status       TEXT NOT NULL,
  version      INTEGER NOT NULL DEFAULT 1,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  finished_at  INTEGER
);
CREATE INDEX tasks_by_status ON tasks (status, id);

-- The steps of a task's run.
CREATE TABLE steps (
  id                TEXT PRIMARY KEY,
  task_id           TEXT NOT NULL REFERENCES tasks (id),
  key               TEXT NOT NULL,                        -- the step number in the workflow: 1, 2a, ...
  name              TEXT NOT NULL,
  agent             TEXT,                                 -- NULL for built-in and skipped steps
  status            TEXT NOT NULL,
  depends_on        TEXT NOT NULL DEFAULT '[]',          -- JSON array of step keys
  attempt           INTEGER NOT NULL DEFAULT 0,
  attempts_max      INTEGER NOT NULL DEFAULT 3,
  lease_id          TEXT,
  lease_expires_at  INTEGER,
  ready_at          INTEGER,
  started_at        INTEGER,
  finished_at       INTEGER,
  skip_reason       TEXT,
  report            TEXT,                                 -- JSON report, when small enough
  report_key        TEXT,                                 -- R2 key of a large report
  version           INTEGER NOT NULL DEFAULT 1,
  UNIQUE (task_id, key)
);
CREATE INDEX steps_by_agent_status ON steps (agent, status, ready_at);

-- Each try of a step.
CREATE TABLE attempts (
  step_id      TEXT NOT NULL REFERENCES steps (id),
  attempt      INTEGER NOT NULL,
  agent        TEXT,
  lease_id     TEXT,
  status       TEXT NOT NULL,
  started_at   INTEGER NOT NULL,
  finished_at  INTEGER,
  error        TEXT,
  log_key      TEXT,                                      -- R2 key of the attempt's log
  PRIMARY KEY (step_id, attempt)
);

-- History: a task's events, and system events (task_id NULL) from the queue consumers and cron.
CREATE TABLE events (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id     TEXT,
  step_id     TEXT,
  kind        TEXT NOT NULL,
  data        TEXT NOT NULL DEFAULT '{}',                -- JSON
  dedupe_key  TEXT UNIQUE,                                -- a redelivered cause records nothing twice
  created_at  INTEGER NOT NULL
);
CREATE INDEX events_by_task ON events (task_id, seq);
CREATE INDEX events_by_time ON events (created_at) WHERE task_id IS NULL;

-- Agent-to-agent messages (the seed's JSON envelope).
CREATE TABLE messages (
  seq             INTEGER PRIMARY KEY AUTOINCREMENT,
  id              TEXT NOT NULL UNIQUE,
  from_agent      TEXT NOT NULL,
  to_agent        TEXT NOT NULL,
  type            TEXT NOT NULL,
  payload         TEXT NOT NULL DEFAULT '{}',            -- JSON
  correlation_id  TEXT NOT NULL,
  task_id         TEXT,
  sent_at         INTEGER NOT NULL,
  created_at      INTEGER NOT NULL
);
CREATE INDEX messages_by_recipient ON messages (to_agent, seq);
CREATE INDEX messages_by_correlation ON messages (correlation_id, seq);

-- Per task and agent performance (the seed's agent-performance.yml).
CREATE TABLE metrics (
  task_id         TEXT NOT NULL REFERENCES tasks (id),
  agent           TEXT NOT NULL,
  start_time      INTEGER,
  end_time        INTEGER,
  duration_ms     INTEGER,
  files_created   INTEGER NOT NULL DEFAULT 0,
  files_modified  INTEGER NOT NULL DEFAULT 0,
  lines_added     INTEGER NOT NULL DEFAULT 0,
  lines_removed   INTEGER NOT NULL DEFAULT 0,
  attempts        INTEGER NOT NULL DEFAULT 0,
  outcome         TEXT,
  PRIMARY KEY (task_id, agent)
);

-- Idempotency-Key replay: the first response to a key is kept and answered again.
CREATE TABLE idempotency_keys (
  key           TEXT NOT NULL,
  route         TEXT NOT NULL,
  request_hash  TEXT NOT NULL,
  status        INTEGER NOT NULL,
  response      TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  PRIMARY KEY (key, route)
);
