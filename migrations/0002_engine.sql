-- The execution engine: what a step run needs beyond the initial schema.

-- When the step's current queue message was sent and when it is due (a retry's backoff delays
-- it). The cron sweep re-sends a message that is long overdue, because queues can lose nothing
-- but a local runtime that is stopped loses what it had in memory.
ALTER TABLE steps ADD COLUMN queued_at INTEGER;
ALTER TABLE steps ADD COLUMN due_at INTEGER;
-- Attempts a drive of the step may use; a manual retry of a dead step grants this many more.
ALTER TABLE steps ADD COLUMN attempts_budget INTEGER NOT NULL DEFAULT 3;
-- 'agent' or 'builtin'; skipped steps keep what they would have been.
ALTER TABLE steps ADD COLUMN runner TEXT NOT NULL DEFAULT 'agent';
-- The step's structured blocks and text, fixed when the task was submitted (JSON).
ALTER TABLE steps ADD COLUMN instructions TEXT NOT NULL DEFAULT '{}';
-- Why the step failed last, or why it is dead.
ALTER TABLE steps ADD COLUMN error TEXT;
CREATE INDEX steps_leasable ON steps (agent, ready_at) WHERE status = 'queued' AND ready_at IS NOT NULL;
CREATE INDEX steps_by_status ON steps (status, due_at);

-- A completion is answered again, unchanged, when it is sent twice with the same body.
ALTER TABLE attempts ADD COLUMN completion_hash TEXT;
ALTER TABLE attempts ADD COLUMN response TEXT;

-- The workflow reference and idempotency key a task was submitted with.
ALTER TABLE tasks ADD COLUMN workflow_name TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN workflow_version INTEGER NOT NULL DEFAULT 1;

-- Agents authenticate by the hash of their token.
CREATE UNIQUE INDEX agents_by_token ON agents (token_hash) WHERE token_hash IS NOT NULL;

-- One row that every state transition writes first, with ok = 1 only if the state it was
-- decided on is still current. ok = 0 fails the CHECK, and D1 rolls the whole batch back: a
-- transition is applied entirely against the state it saw, or not at all.
CREATE TABLE transition_guard (
  id  INTEGER PRIMARY KEY CHECK (id = 1),
  ok  INTEGER NOT NULL CONSTRAINT stale_state CHECK (ok = 1)
);
