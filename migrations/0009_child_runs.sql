-- Child runs: a step that EXECUTEs another instruction file runs that file's steps under it.

-- For a step of a child run: the key of the step that runs it (its key is that key, a dot and
-- its own). NULL for a step of the task's own workflow.
ALTER TABLE steps ADD COLUMN parent TEXT;

-- For a step that runs a child run: the file and the version pinned at submission, as JSON
-- ({"workflow": ..., "version": ..., "each": ...}). NULL for every other step.
ALTER TABLE steps ADD COLUMN child_run TEXT;
