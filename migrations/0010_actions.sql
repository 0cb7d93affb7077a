-- What people (and API tokens) did through the dashboard, the API and the CLI's control
-- commands: start, resume, cancel, pause, unpause, resolve. Refusals are kept too, with the
-- reason, so "who tried what" has an answer. Times are RFC 3339 UTC with milliseconds.
CREATE TABLE actions (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    role     TEXT NOT NULL,
    action   TEXT NOT NULL,
    workflow TEXT,
    run_id   INTEGER,                   -- no foreign key: the record outlives a pruned run
    detail   TEXT,                      -- JSON: parameters, items, reason
    outcome  TEXT NOT NULL              -- `ok`, or `refused: <why>`
);
CREATE INDEX actions_workflow ON actions (workflow, id);
CREATE INDEX actions_run ON actions (run_id);

-- A paused workflow's scheduled fires are recorded as skipped instead of run. Read by the
-- scheduler at each fire, so a pause made by another process takes effect at the next fire.
CREATE TABLE schedule_pauses (
    workflow  TEXT PRIMARY KEY,
    paused_by TEXT NOT NULL,
    paused_at TEXT NOT NULL,
    reason    TEXT
);

-- A request to stop a running run, from any process; the process running it polls for it.
-- Cleared when the run is reopened by a resume, so the resume is not stopped by the old request.
CREATE TABLE run_cancels (
    run_id       INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL
);
