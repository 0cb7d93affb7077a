-- Routed ids are stored one batch (a JSON array of ids) per row instead of one row per id: a
-- million ids were a million B-tree inserts in the step's transaction, a third of the CPU of a
-- route step; a batch is one insert. An id's owner is the run of its latest batch (`id` grows
-- with every insert), as the upsert of the row-per-id table moved a rerouted id to its new run.
CREATE TABLE route_routed_ids (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: later batch, later routing
    scope  TEXT NOT NULL,                       -- `<workflow>/<step id>`
    run_id INTEGER NOT NULL,                    -- no foreign key: ids outlive pruned runs
    ids    TEXT NOT NULL                        -- JSON array of record ids
);
CREATE INDEX route_routed_ids_scope ON route_routed_ids (scope, run_id);

-- What was routed before the upgrade stays routed, with the same owners, in batches of 5,000.
INSERT INTO route_routed_ids (scope, run_id, ids)
SELECT scope, run_id, json_group_array(record_id)
FROM (SELECT scope, run_id, record_id,
             (row_number() OVER (PARTITION BY scope, run_id ORDER BY record_id) - 1) / 5000 AS part
      FROM route_routed)
GROUP BY scope, run_id, part
ORDER BY scope, run_id, part;

DROP TABLE route_routed;

-- The old table's rows, for reading by hand: one row per scope and id, owned by its latest run.
CREATE VIEW route_routed (scope, record_id, run_id) AS
SELECT scope, record_id, run_id
FROM (SELECT b.scope, j.value AS record_id, b.run_id,
             row_number() OVER (PARTITION BY b.scope, j.value ORDER BY b.id DESC) AS latest
      FROM route_routed_ids b, json_each(b.ids) j)
WHERE latest = 1;
