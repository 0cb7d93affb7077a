-- Items spread over nodes (`spread_items: true`, src/store/work.rs). The node running a run
-- (its origin) shares each per-item step here: the step's template context without secrets, and
-- one row per item with its record. Any node claims items in batches under a lease of the
-- database's clock; a result or a delivery confirmation is recorded only under the claim's
-- token while its lease holds. Rows are deleted when the step ends; nothing here is history.
CREATE TABLE work_steps (
    run_id     BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id    TEXT COLLATE "C" NOT NULL,
    workflow   TEXT COLLATE "C" NOT NULL,
    origin     TEXT COLLATE "C" NOT NULL,
    spec_hash  TEXT COLLATE "C" NOT NULL,
    ctx        TEXT COLLATE "C" NOT NULL,
    cap        BIGINT,
    state      TEXT COLLATE "C" NOT NULL CHECK (state IN ('open', 'stopped')),
    PRIMARY KEY (run_id, step_id)
);

CREATE TABLE work_items (
    run_id      BIGINT NOT NULL,
    step_id     TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL,
    item_key    TEXT COLLATE "C" NOT NULL,
    record      TEXT COLLATE "C" NOT NULL,
    state       TEXT COLLATE "C" NOT NULL CHECK (state IN ('queued', 'claimed', 'done')),
    owner       TEXT COLLATE "C",
    token       BIGINT,
    lease_until TIMESTAMPTZ,
    -- Done and succeeded (or skipped): a resume queues again only the items done otherwise.
    succeeded   BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, step_id, seq),
    FOREIGN KEY (run_id, step_id) REFERENCES work_steps (run_id, step_id) ON DELETE CASCADE
);
-- What a claim looks for: items not done, in order.
CREATE INDEX work_items_open ON work_items (run_id, step_id, seq) WHERE state <> 'done';
CREATE INDEX work_items_owner ON work_items (owner) WHERE state = 'claimed';
