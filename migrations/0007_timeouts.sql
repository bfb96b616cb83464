-- Server-side timeouts, enforced by the cron sweep.

-- How long an agent's steps may wait to be leased before they fail (or are skipped, if
-- optional): a day by default. `step_timeout_ms` (0001) is how long one attempt may run.
ALTER TABLE agents ADD COLUMN schedule_timeout_ms INTEGER NOT NULL DEFAULT 86400000;

-- A step's own timeouts from its instruction file (`schedule_timeout=`, `timeout=`,
-- `heartbeat=`); NULL means the agent's. And whether the workflow marks it optional.
ALTER TABLE steps ADD COLUMN schedule_timeout_ms INTEGER;
ALTER TABLE steps ADD COLUMN attempt_timeout_ms INTEGER;
ALTER TABLE steps ADD COLUMN heartbeat_ms INTEGER;
ALTER TABLE steps ADD COLUMN optional INTEGER NOT NULL DEFAULT 0;

-- The deadlines the sweep enforces: a dispatched step not leased by `schedule_deadline_at`, a
-- running attempt not finished by `attempt_deadline_at`.
ALTER TABLE steps ADD COLUMN schedule_deadline_at INTEGER;
ALTER TABLE steps ADD COLUMN attempt_deadline_at INTEGER;
CREATE INDEX steps_by_deadline ON steps (status, schedule_deadline_at, attempt_deadline_at);
