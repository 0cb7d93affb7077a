-- Feedback routing (the `route` step): which records were routed, and each team's digest
-- figures, so a record reaches a team once and a digest can say what changed since the last.

-- One row per routed record id. `scope` is `<workflow>/<step id>`: the same feedback routed by
-- another workflow is routed there too. No foreign key on run_id: a million inserts a run
-- should not each pay a lookup, and ids must outlive pruned runs (else feedback comes back).
CREATE TABLE route_routed (
    scope     TEXT NOT NULL,
    record_id TEXT NOT NULL,
    run_id    INTEGER NOT NULL,
    PRIMARY KEY (scope, record_id)
) WITHOUT ROWID;

CREATE TABLE route_digests (
    run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    team       TEXT NOT NULL,
    count      INTEGER NOT NULL,
    urgent     INTEGER NOT NULL,
    rated      INTEGER NOT NULL,
    avg_rating REAL,                        -- NULL when nothing was rated
    csat       REAL,                        -- percent of ratings 4-5, NULL when nothing was rated
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, scope, team)
);
CREATE INDEX route_digests_team ON route_digests (scope, team, run_id);
