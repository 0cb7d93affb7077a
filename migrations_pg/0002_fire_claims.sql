-- Fire claims (migrations/0013_fire_claims.sql explains them): one run row per workflow and
-- scheduled instant, whichever `cxflow serve` node inserts it first.
ALTER TABLE runs ADD COLUMN spec_hash TEXT COLLATE "C";
CREATE UNIQUE INDEX runs_fire ON runs (workflow, scheduled_for) WHERE trigger = 'schedule' AND spec_hash IS NOT NULL;
