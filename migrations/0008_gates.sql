-- What is decided about a step when it becomes ready rather than at submission.

-- JSON: for an optional step of an agent routing may assign, what the analysis at submission
-- decided ({"routing": {"planned_skip": ...}}), and the step's conditions switchyard evaluates
-- ({"conditions": [...]}); NULL when nothing is to be decided.
ALTER TABLE steps ADD COLUMN gate TEXT;

-- JSON array: the fields of the step's successful report that say something, which later
-- steps' conditions read; NULL until it succeeds.
ALTER TABLE steps ADD COLUMN report_fields TEXT;

-- The agents the task's analysis step reported it needs (report.selection), as JSON, once it has.
ALTER TABLE tasks ADD COLUMN selection TEXT;
