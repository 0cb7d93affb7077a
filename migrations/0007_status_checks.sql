-- Statuses are closed sets, spelled as the engine's enums spell them (engine/log.rs). SQLite
-- cannot add a CHECK constraint to an existing table without rebuilding it (and its foreign
-- keys), so triggers enforce the same rule for every insert and update.

CREATE TRIGGER runs_status_check BEFORE INSERT ON runs
WHEN NEW.status NOT IN ('running', 'succeeded', 'partial', 'failed', 'interrupted', 'skipped')
  OR NEW.trigger NOT IN ('manual', 'schedule', 'dry-run', 'resume')
BEGIN SELECT RAISE(ABORT, 'runs: unknown status or trigger'); END;

CREATE TRIGGER runs_status_update_check BEFORE UPDATE OF status, trigger ON runs
WHEN NEW.status NOT IN ('running', 'succeeded', 'partial', 'failed', 'interrupted', 'skipped')
  OR NEW.trigger NOT IN ('manual', 'schedule', 'dry-run', 'resume')
BEGIN SELECT RAISE(ABORT, 'runs: unknown status or trigger'); END;

CREATE TRIGGER steps_status_check BEFORE INSERT ON steps
WHEN NEW.status NOT IN ('running', 'succeeded', 'partial', 'failed', 'interrupted', 'skipped')
BEGIN SELECT RAISE(ABORT, 'steps: unknown status'); END;

CREATE TRIGGER steps_status_update_check BEFORE UPDATE OF status ON steps
WHEN NEW.status NOT IN ('running', 'succeeded', 'partial', 'failed', 'interrupted', 'skipped')
BEGIN SELECT RAISE(ABORT, 'steps: unknown status'); END;

CREATE TRIGGER items_status_check BEFORE INSERT ON items
WHEN NEW.status NOT IN ('ok', 'failed', 'skipped')
BEGIN SELECT RAISE(ABORT, 'items: unknown status'); END;

CREATE TRIGGER items_status_update_check BEFORE UPDATE OF status ON items
WHEN NEW.status NOT IN ('ok', 'failed', 'skipped')
BEGIN SELECT RAISE(ABORT, 'items: unknown status'); END;

CREATE TRIGGER ledger_state_check BEFORE INSERT ON ledger
WHEN NEW.state NOT IN ('sending', 'sent')
BEGIN SELECT RAISE(ABORT, 'ledger: unknown state'); END;

CREATE TRIGGER ledger_state_update_check BEFORE UPDATE OF state ON ledger
WHEN NEW.state NOT IN ('sending', 'sent')
BEGIN SELECT RAISE(ABORT, 'ledger: unknown state'); END;
