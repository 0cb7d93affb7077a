-- Ownership: every process that runs workflows registers here and renews a lease by heartbeat.
-- A run and each ledger claim name their owner, so a key a live run is sending is never taken
-- over, and a run whose owner is gone is found without trusting a bare PID. Times are RFC 3339
-- UTC with milliseconds, so they compare as text.
CREATE TABLE owners (
    id           TEXT PRIMARY KEY,          -- a UUID per process
    host         TEXT NOT NULL,
    boot         TEXT NOT NULL,             -- the machine's boot id: a PID means nothing across reboots
    pid          INTEGER NOT NULL,
    proc_start   INTEGER,                   -- the process's start time (clock ticks since boot)
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);

ALTER TABLE runs ADD COLUMN owner TEXT;
ALTER TABLE ledger ADD COLUMN owner TEXT;

-- A person's decision about an uncertain delivery (`cxflow resolve`), kept after the ledger row
-- it changed.
CREATE TABLE resolutions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    key        TEXT NOT NULL,
    run_id     INTEGER NOT NULL,
    step_id    TEXT NOT NULL,
    item_key   TEXT NOT NULL,
    decision   TEXT NOT NULL CHECK (decision IN ('sent', 'not-sent')),
    decided_by TEXT NOT NULL,
    decided_at TEXT NOT NULL
);
CREATE INDEX resolutions_run ON resolutions (run_id);
