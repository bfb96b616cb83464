-- Routing decided when a step is ready rather than at submission.

-- For an optional step of an agent routing may assign: JSON {"planned_skip": reason|null}, what
-- the analysis at submission decided; NULL for every other step.
ALTER TABLE steps ADD COLUMN routing TEXT;

-- The agents the task's analysis step reported it needs (report.selection), as JSON, once it has.
ALTER TABLE tasks ADD COLUMN selection TEXT;
