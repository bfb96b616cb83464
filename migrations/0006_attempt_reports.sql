-- Each attempt keeps its own report: a failed attempt's report stays with that attempt, and a
-- step's report (steps.report, steps.report_key and the change counts) is only ever its
-- successful attempt's. Before this, a failed attempt's report stayed on the step through a
-- later success that sent none, and flowed into inputs, summaries and metrics.

ALTER TABLE attempts ADD COLUMN report TEXT;        -- JSON report, when small enough
ALTER TABLE attempts ADD COLUMN report_key TEXT;    -- R2 key of a large report
