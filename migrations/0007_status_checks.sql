-- Statuses are closed sets, spelled as the engine's enums spell them (engine/log.rs).
--
-- `items`, `steps` and `ledger` are rebuilt with CHECK constraints: SQLite cannot add one to an
-- existing table, and on `items`, the table every item result goes to, a trigger per row cost
-- a third of the write rate. `runs` is referenced by the other tables' foreign keys, so
-- rebuilding it inside a migration's transaction would cascade; triggers guard it instead (a
-- few rows per run, so their cost does not show).

CREATE TABLE items_checked (
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id     TEXT NOT NULL,
    item_key    TEXT NOT NULL,
    seq         INTEGER NOT NULL,           -- position in the input, for stable output order
    status      TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'skipped')),
    attempts    INTEGER NOT NULL,
    error       TEXT,
    output      TEXT,                       -- JSON
    finished_at TEXT NOT NULL,
    PRIMARY KEY (run_id, step_id, item_key)
);
INSERT INTO items_checked (run_id, step_id, item_key, seq, status, attempts, error, output, finished_at)
    SELECT run_id, step_id, item_key, seq, status, attempts, error, output, finished_at FROM items;
DROP TABLE items;
ALTER TABLE items_checked RENAME TO items;

CREATE TABLE steps_checked (
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id     TEXT NOT NULL,
    position    INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'interrupted', 'skipped')),
    ok          INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    error       TEXT,
    output      TEXT,                       -- JSON summary for batch steps
    PRIMARY KEY (run_id, step_id)
);
INSERT INTO steps_checked (run_id, step_id, position, kind, status, ok, failed, skipped, started_at, finished_at, error, output)
    SELECT run_id, step_id, position, kind, status, ok, failed, skipped, started_at, finished_at, error, output FROM steps;
DROP TABLE steps;
ALTER TABLE steps_checked RENAME TO steps;

CREATE TABLE ledger_checked (
    key        TEXT PRIMARY KEY,
    workflow   TEXT NOT NULL,
    run_id     INTEGER NOT NULL,
    step_id    TEXT NOT NULL,
    item_key   TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('sending', 'sent')),
    detail     TEXT,
    updated_at TEXT NOT NULL
);
INSERT INTO ledger_checked (key, workflow, run_id, step_id, item_key, state, detail, updated_at)
    SELECT key, workflow, run_id, step_id, item_key, state, detail, updated_at FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_checked RENAME TO ledger;
CREATE INDEX ledger_run ON ledger (run_id, state);

CREATE TRIGGER runs_status_check BEFORE INSERT ON runs
WHEN NEW.status NOT IN ('running', 'succeeded', 'partial', 'failed', 'interrupted', 'skipped')
  OR NEW.trigger NOT IN ('manual', 'schedule', 'dry-run', 'resume')
BEGIN SELECT RAISE(ABORT, 'runs: unknown status or trigger'); END;

CREATE TRIGGER runs_status_update_check BEFORE UPDATE OF status, trigger ON runs
WHEN NEW.status NOT IN ('running', 'succeeded', 'partial', 'failed', 'interrupted', 'skipped')
  OR NEW.trigger NOT IN ('manual', 'schedule', 'dry-run', 'resume')
BEGIN SELECT RAISE(ABORT, 'runs: unknown status or trigger'); END;
