-- What each attempt cost, as the tool that ran it reported (report.performance: cost_usd, turns,
-- input_tokens, output_tokens). Per attempt, not per step: a failed attempt spent money too, and
-- a task's cost is the sum over every attempt. NULL means the tool did not report the figure.

ALTER TABLE attempts ADD COLUMN cost_usd REAL;
ALTER TABLE attempts ADD COLUMN turns INTEGER;
ALTER TABLE attempts ADD COLUMN input_tokens INTEGER;
ALTER TABLE attempts ADD COLUMN output_tokens INTEGER;
