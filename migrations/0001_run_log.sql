-- The run log: what ran, when, and what happened to every item.

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow      TEXT NOT NULL,
    file          TEXT NOT NULL,
    trigger       TEXT NOT NULL,            -- manual, schedule, resume, dry-run
    params        TEXT NOT NULL DEFAULT '{}', -- JSON, never secrets
    scheduled_for TEXT,                      -- RFC 3339, for scheduled runs
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    status        TEXT NOT NULL,            -- running, succeeded, failed, partial, interrupted, skipped
    error         TEXT,
    resumes       INTEGER NOT NULL DEFAULT 0,
    pid           INTEGER
);
CREATE INDEX runs_workflow ON runs (workflow, id);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE steps (
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id     TEXT NOT NULL,
    position    INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,              -- running, succeeded, failed, partial, skipped, interrupted
    ok          INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    error       TEXT,
    output      TEXT,                       -- JSON summary for batch steps
    PRIMARY KEY (run_id, step_id)
);

CREATE TABLE items (
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id     TEXT NOT NULL,
    item_key    TEXT NOT NULL,
    seq         INTEGER NOT NULL,           -- position in the input, for stable output order
    status      TEXT NOT NULL,              -- ok, failed, skipped
    attempts    INTEGER NOT NULL,
    error       TEXT,
    output      TEXT,                       -- JSON
    finished_at TEXT NOT NULL,
    PRIMARY KEY (run_id, step_id, item_key)
);

CREATE TABLE artifacts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id    TEXT NOT NULL,
    item_key   TEXT,
    kind       TEXT NOT NULL,
    path       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX artifacts_run ON artifacts (run_id);

-- Exactly-once side effects: a key is claimed ('sending') before the effect and marked 'sent'
-- after it; a key still 'sending' after a crash is uncertain.
CREATE TABLE ledger (
    key        TEXT PRIMARY KEY,
    workflow   TEXT NOT NULL,
    run_id     INTEGER NOT NULL,
    step_id    TEXT NOT NULL,
    item_key   TEXT NOT NULL,
    state      TEXT NOT NULL,               -- sending, sent
    detail     TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX ledger_run ON ledger (run_id, state);
