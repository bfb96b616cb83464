-- Indexes found missing by the query-plan check (tests/checks/query-plans.mjs), which fails
-- on any statement that scans a table that grows with use.

-- Posting a workflow version makes SQLite check the foreign key tasks.workflow_id for the new
-- row: without this it reads every task ever run.
CREATE INDEX tasks_by_workflow ON tasks (workflow_id);

-- The cron forgets idempotency keys a day old, oldest first (IDEMPOTENCY_KEY_RETENTION_MS).
CREATE INDEX idempotency_keys_by_time ON idempotency_keys (created_at);
