-- Several `cxflow serve` nodes can share one run log (PostgreSQL); each scheduled fire runs on
-- one of them. The claim is the run row itself: one row per (workflow, scheduled instant), run,
-- skipped or failed, inserted with ON CONFLICT DO NOTHING, so a node that loses the race learns
-- it from the insert and a node cannot claim a fire and die before recording it.
-- `spec_hash` is a hash of the workflow file the claiming node planned the fire from, so a node
-- whose copy of the file differs can say so. Rows written before this migration have none and
-- are outside the index, so the migration cannot fail on an old run log that holds two rows for
-- one instant (it is not checked for them); new fires all come after the last recorded one.
ALTER TABLE runs ADD COLUMN spec_hash TEXT;
CREATE UNIQUE INDEX runs_fire ON runs (workflow, scheduled_for) WHERE trigger = 'schedule' AND spec_hash IS NOT NULL;
