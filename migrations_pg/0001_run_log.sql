-- The run log on PostgreSQL: the same tables, columns and meanings as the SQLite run log
-- (migrations/, whose comments explain each table), in one migration.
-- Integers are BIGINT and reals DOUBLE PRECISION, since the store reads them as i64 and f64.
-- Text is COLLATE "C": keys, ids and RFC 3339 times order and compare byte by byte, as in
-- SQLite, whatever locale the database was created with. Times stay RFC 3339 text (UTC,
-- milliseconds), so both run logs compare them the same way.
-- Every SQLite index ends with the row id, which orders the rows an index lists under one key
-- (the dashboard's pages read runs newest first from `runs_workflow_status`, artifacts in id
-- order from `artifacts_run`); here the id is written out where a read orders by it.

CREATE TABLE runs (
    id            BIGSERIAL PRIMARY KEY,
    workflow      TEXT COLLATE "C" NOT NULL,
    file          TEXT COLLATE "C" NOT NULL,
    trigger       TEXT COLLATE "C" NOT NULL CHECK (trigger IN ('manual', 'schedule', 'dry-run', 'resume')),
    params        TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    scheduled_for TEXT COLLATE "C",
    started_at    TEXT COLLATE "C" NOT NULL,
    finished_at   TEXT COLLATE "C",
    status        TEXT COLLATE "C" NOT NULL CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'interrupted', 'skipped')),
    error         TEXT COLLATE "C",
    resumes       BIGINT NOT NULL DEFAULT 0,
    pid           BIGINT,
    owner         TEXT COLLATE "C"
);
CREATE INDEX runs_workflow ON runs (workflow, id);
CREATE INDEX runs_status ON runs (status, id);
CREATE INDEX runs_workflow_status ON runs (workflow, status, id);
CREATE INDEX runs_workflow_status_started ON runs (workflow, status, started_at);
CREATE INDEX runs_trigger ON runs (trigger, id);

CREATE TABLE steps (
    run_id      BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id     TEXT COLLATE "C" NOT NULL,
    position    BIGINT NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,
    status      TEXT COLLATE "C" NOT NULL CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'interrupted', 'skipped')),
    ok          BIGINT NOT NULL DEFAULT 0,
    failed      BIGINT NOT NULL DEFAULT 0,
    skipped     BIGINT NOT NULL DEFAULT 0,
    started_at  TEXT COLLATE "C" NOT NULL,
    finished_at TEXT COLLATE "C",
    error       TEXT COLLATE "C",
    output      TEXT COLLATE "C",
    PRIMARY KEY (run_id, step_id)
);

-- `rowid`: SQLite's row id under its name, numbering items in the order they were first written
-- (an upsert keeps it); it orders items of equal `seq` and ends the dashboard's item cursor.
CREATE TABLE items (
    rowid       BIGSERIAL NOT NULL,
    run_id      BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id     TEXT COLLATE "C" NOT NULL,
    item_key    TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL,
    status      TEXT COLLATE "C" NOT NULL CHECK (status IN ('ok', 'failed', 'skipped')),
    attempts    BIGINT NOT NULL,
    error       TEXT COLLATE "C",
    output      TEXT COLLATE "C",
    finished_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (run_id, step_id, item_key)
);
CREATE INDEX items_step_status_seq ON items (run_id, step_id, status, seq, rowid);

CREATE TABLE artifacts (
    id         BIGSERIAL PRIMARY KEY,
    run_id     BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id    TEXT COLLATE "C" NOT NULL,
    item_key   TEXT COLLATE "C",
    kind       TEXT COLLATE "C" NOT NULL,
    path       TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX artifacts_run ON artifacts (run_id, id);
CREATE INDEX artifacts_item ON artifacts (run_id, step_id, item_key, id);

CREATE TABLE ledger (
    key        TEXT COLLATE "C" PRIMARY KEY,
    workflow   TEXT COLLATE "C" NOT NULL,
    run_id     BIGINT NOT NULL,
    step_id    TEXT COLLATE "C" NOT NULL,
    item_key   TEXT COLLATE "C" NOT NULL,
    state      TEXT COLLATE "C" NOT NULL CHECK (state IN ('sending', 'sent')),
    detail     TEXT COLLATE "C",
    updated_at TEXT COLLATE "C" NOT NULL,
    owner      TEXT COLLATE "C"
);
CREATE INDEX ledger_run ON ledger (run_id, state);

CREATE TABLE route_digests (
    run_id     BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    scope      TEXT COLLATE "C" NOT NULL,
    team       TEXT COLLATE "C" NOT NULL,
    count      BIGINT NOT NULL,
    urgent     BIGINT NOT NULL,
    rated      BIGINT NOT NULL,
    avg_rating DOUBLE PRECISION,
    csat       DOUBLE PRECISION,
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (run_id, scope, team)
);
CREATE INDEX route_digests_team ON route_digests (scope, team, run_id);

CREATE TABLE route_routed_ids (
    id     BIGSERIAL PRIMARY KEY,
    scope  TEXT COLLATE "C" NOT NULL,
    run_id BIGINT NOT NULL,
    ids    TEXT COLLATE "C" NOT NULL
);
CREATE INDEX route_routed_ids_scope ON route_routed_ids (scope, run_id);

CREATE VIEW route_routed (scope, record_id, run_id) AS
SELECT scope, record_id, run_id
FROM (SELECT b.scope, j.value COLLATE "C" AS record_id, b.run_id,
             row_number() OVER (PARTITION BY b.scope, j.value ORDER BY b.id DESC) AS latest
      FROM route_routed_ids b, json_array_elements_text(b.ids::json) j (value)) t
WHERE latest = 1;

CREATE TABLE owners (
    id           TEXT COLLATE "C" PRIMARY KEY,
    host         TEXT COLLATE "C" NOT NULL,
    boot         TEXT COLLATE "C" NOT NULL,
    pid          BIGINT NOT NULL,
    proc_start   BIGINT,
    started_at   TEXT COLLATE "C" NOT NULL,
    heartbeat_at TEXT COLLATE "C" NOT NULL,
    expires_at   TEXT COLLATE "C" NOT NULL
);

CREATE TABLE resolutions (
    id         BIGSERIAL PRIMARY KEY,
    key        TEXT COLLATE "C" NOT NULL,
    run_id     BIGINT NOT NULL,
    step_id    TEXT COLLATE "C" NOT NULL,
    item_key   TEXT COLLATE "C" NOT NULL,
    decision   TEXT COLLATE "C" NOT NULL CHECK (decision IN ('sent', 'not-sent')),
    decided_by TEXT COLLATE "C" NOT NULL,
    decided_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX resolutions_run ON resolutions (run_id);

CREATE TABLE actions (
    id       BIGSERIAL PRIMARY KEY,
    at       TEXT COLLATE "C" NOT NULL,
    actor    TEXT COLLATE "C" NOT NULL,
    role     TEXT COLLATE "C" NOT NULL,
    action   TEXT COLLATE "C" NOT NULL,
    workflow TEXT COLLATE "C",
    run_id   BIGINT,
    detail   TEXT COLLATE "C",
    outcome  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX actions_workflow ON actions (workflow, id);
CREATE INDEX actions_run ON actions (run_id);

CREATE TABLE schedule_pauses (
    workflow  TEXT COLLATE "C" PRIMARY KEY,
    paused_by TEXT COLLATE "C" NOT NULL,
    paused_at TEXT COLLATE "C" NOT NULL,
    reason    TEXT COLLATE "C"
);

CREATE TABLE run_cancels (
    run_id       BIGINT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    requested_by TEXT COLLATE "C" NOT NULL,
    requested_at TEXT COLLATE "C" NOT NULL
);

CREATE TABLE web_sessions (
    id_hash    TEXT COLLATE "C" PRIMARY KEY,
    user_name  TEXT COLLATE "C" NOT NULL,
    csrf_token TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    last_seen  TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
