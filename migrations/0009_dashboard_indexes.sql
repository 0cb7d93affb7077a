-- Indexes for the dashboard and the JSON API (src/store/dashboard/): every page is one or a few
-- index ranges, whatever the size of the run log. `EXPLAIN QUERY PLAN` of each read is checked
-- by src/store/dashboard/tests.rs.

-- A run's items by step, status and input order: a page of items (one range per status,
-- merged), a status filter, a running step's counts, and the ok outputs a later step reads.
-- The only new index on `items`, the table every item result goes to: each one slows the writes.
CREATE INDEX items_step_status_seq ON items (run_id, step_id, status, seq);

-- The runs list filtered by workflow and status, newest first (the row id ends each index).
CREATE INDEX runs_workflow_status ON runs (workflow, status);
-- The overview's failures of the last days: a count over one range per workflow.
CREATE INDEX runs_workflow_status_started ON runs (workflow, status, started_at);
CREATE INDEX runs_trigger ON runs (trigger);

-- One item's artifacts, and a digest's files (route_digests joined on run, step and team).
CREATE INDEX artifacts_item ON artifacts (run_id, step_id, item_key);
