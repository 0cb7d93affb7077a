//! `cxflow migrate-log`, end to end: a SQLite run log written by real runs of the sample
//! workflows is copied into a throwaway PostgreSQL database, and every table is compared row by
//! row; the commands then read the same runs from PostgreSQL.

mod support;

use std::time::Duration;

use support::pg_log::PgLog;
use support::serve::Serve;
use support::{wait_until, TestProject};

/// Every table of the run log with the columns that order its rows.
const TABLES: &[(&str, &str)] = &[
    ("runs", "id"),
    ("steps", "run_id, step_id"),
    ("items", "run_id, step_id, item_key"),
    ("artifacts", "id"),
    ("ledger", "key"),
    ("route_routed_ids", "id"),
    ("route_digests", "run_id, scope, team"),
    ("owners", "id"),
    ("resolutions", "id"),
    ("actions", "id"),
    ("schedule_pauses", "workflow"),
    ("run_cancels", "run_id"),
    ("web_sessions", "id_hash"),
];

const SLOW: &str = r#"name: slow
steps:
  - id: wait
    command: [sh, -c, "while [ ! -e go ]; do sleep 0.05; done"]
"#;

/// The sample workflows and a few more, run for real against the project's SQLite run log.
fn project_with_history() -> TestProject {
    let p = support::script_project("id", (1..=4).map(|i| format!("r{i}")));
    for sample in [support::EXPORT_SAMPLE, support::FOLLOW_UP_SAMPLE, support::ROUTING_SAMPLE] {
        p.copy_from_repo(sample);
    }
    p.write(
        "workflows/w.yaml",
        "name: w\nschedule:\n  cron: \"0 3 * * *\"\nsteps:\n  - id: records\n    read_csv: data/records.csv\n  - id: act\n    for_each: records\n    item_key: \"{{item.id}}\"\n    command: [python3, script.py, \"{{item.id}}\", \"{{#if (eq item.id 'r3')}}fail{{else}}ok{{/if}}\"]\n",
    );
    p.run(&["run", "closed-tickets-export", "--var", "batch=weekly"]).expect_code(0);
    p.run(&["run", "ticket-follow-up"]).expect_code(0);
    p.run(&["run", "feedback-routing"]).expect_code(0);
    p.run(&["run", "w"]).expect_code(1);
    p.run(&["run", "w", "--dry-run"]).expect_code(0);
    p.run(&["resume", "4"]).expect_code(1);
    p.run(&["pause", "w", "--reason", "moving to PostgreSQL", "--by", "ana"]).expect_code(0);
    p.run(&["cancel", "1", "--by", "ana"]);
    // What no command here writes without a person or a browser: a decision, a cancel request,
    // a dashboard session.
    p.execute(
        "INSERT INTO resolutions (key, run_id, step_id, item_key, decision, decided_by, decided_at)
         VALUES ('follow-up/T-1001', 2, 'follow_up', 'T-1001', 'sent', 'ana', '2026-01-02T03:04:05.000Z')",
    );
    p.execute("INSERT INTO run_cancels (run_id, requested_by, requested_at) VALUES (4, 'bo', '2026-01-02T03:04:06.000Z')");
    p.execute(
        "INSERT INTO web_sessions (id_hash, user_name, csrf_token, created_at, last_seen, expires_at)
         VALUES ('ab12', 'ana', 'tok', '2026-01-02T03:04:05.000Z', '2026-01-02T03:05:05.000Z', '2026-01-03T03:04:05.000Z')",
    );
    for (table, _) in TABLES {
        assert!(p.count(&format!("SELECT count(*) FROM {table}")) > 0, "no rows in {table}: the test copies every table");
    }
    p
}

/// The columns of `table` as SQLite lists them, in its order.
fn columns(p: &TestProject, table: &str) -> String {
    p.query(&format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid")).join(", ")
}

#[test]
fn a_sqlite_run_log_is_copied_to_postgres_table_by_table() {
    let p = project_with_history();
    let pg = PgLog::fresh();

    // Refused while a run is still going (its process alive).
    p.write("workflows/slow.yaml", SLOW);
    let mut slow =
        p.cxflow().args(["run", "slow"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    wait_until(Duration::from_secs(30), "the slow run to be running", || p.count("SELECT count(*) FROM runs WHERE workflow = 'slow'") == 1);
    let slow_id = p.query("SELECT id FROM runs WHERE workflow = 'slow'")[0].clone();
    let r = p.run(&["migrate-log", "--to", &pg.url]);
    r.expect_code(2);
    assert!(r.stderr.contains(&format!("run {slow_id} of `slow` (process {} on ", slow.id())), "{}", r.stderr);
    assert!(r.stderr.contains("is still running; wait until it ends or stop it"), "{}", r.stderr);
    assert_eq!(pg.query("SELECT count(*) FROM runs"), ["0"], "nothing copied");
    p.write("go", "");
    assert!(slow.wait().unwrap().success());

    // Refused while a scheduler writes the file.
    let (serve, _logs) = Serve::in_project(&p);
    // (The lock file is there already: migrate-log above held it too.)
    let holder = format!("pid {}", serve.0.id());
    wait_until(Duration::from_secs(30), "serve to hold its lock", || {
        std::fs::read_to_string(p.path().join("cxflow.sqlite.serve.lock")).is_ok_and(|s| s.trim() == holder)
    });
    let r = p.run(&["migrate-log", "--to", &pg.url]);
    r.expect_code(2);
    assert!(r.stderr.contains("another `cxflow serve` is already running"), "{}", r.stderr);
    assert!(r.stderr.contains("migrate-log copies a run log no scheduler writes"), "{}", r.stderr);
    drop(serve);

    // Copied, a few rows per statement so that every table takes several batches.
    let r = p.run(&["migrate-log", "--to", &pg.url, "--batch-size", "2"]);
    r.expect_code(0);
    assert!(r.stdout.starts_with(&format!("copied the run log `{}` into `{}`:\n", p.db().display(), pg.url)), "{}", r.stdout);
    for (table, order) in TABLES {
        let n = p.query(&format!("SELECT count(*) FROM {table}"))[0].clone();
        assert!(r.stdout.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == [*table, n.as_str()]), "{table} {n}:\n{}", r.stdout);
        let mut cols = columns(&p, table);
        if *table == "route_routed_ids" {
            // SQLite keeps the ids compressed, PostgreSQL as text: `cxflow routed` compares them
            // (the_commands_read_the_same_runs_from_the_copy).
            cols = cols.replace(", ids", "");
            let listed = p.run(&["routed", "feedback-routing", "routed"]).stdout.lines().count();
            assert!(listed > 0);
            assert_eq!(pg.query("SELECT count(*) FROM route_routed"), [listed.to_string()]);
        }
        let sql = format!("SELECT {cols} FROM {table} ORDER BY {order}");
        assert_eq!(pg.query(&sql), p.query(&sql), "{table}");
    }
    assert!(r.stdout.contains(&format!("`database_url: {}`", pg.url)), "{}", r.stdout);
    // Each sequence starts past the copied ids.
    for table in ["runs", "artifacts", "route_routed_ids", "resolutions", "actions"] {
        let max = p.query(&format!("SELECT max(id) FROM {table}"))[0].parse::<i64>().unwrap();
        let next = pg.query(&format!("SELECT nextval(pg_get_serial_sequence('{table}', 'id'))"))[0].parse::<i64>().unwrap();
        assert_eq!(next, max + 1, "{table}");
    }
    // The SQLite file is left as it was.
    assert_eq!(p.query("SELECT count(*) FROM runs"), pg.query("SELECT count(*) FROM runs"));

    // Into a database that now has rows: refused, and nothing changes.
    let before = pg.query("SELECT count(*) FROM items");
    let r = p.run(&["migrate-log", "--to", &pg.url]);
    r.expect_code(2);
    assert!(r.stderr.contains("the PostgreSQL run log is not empty (it has rows in runs, steps, items"), "{}", r.stderr);
    assert_eq!(pg.query("SELECT count(*) FROM items"), before);
}

#[test]
fn the_commands_read_the_same_runs_from_the_copy() {
    let p = project_with_history();
    let pg = PgLog::fresh();
    p.run(&["migrate-log", "--to", &pg.url]).expect_code(0);
    for args in [
        &["runs", "--json", "--limit", "0"][..],
        &["show", "2", "--json"],
        &["show", "4"],
        &["runs"],
        &["next"],
        &["routed", "feedback-routing", "routed"],
    ] {
        let sqlite = p.run(args);
        let postgres = pg.run(&p, args);
        assert_eq!((postgres.code, &postgres.stdout), (sqlite.code, &sqlite.stdout), "{args:?}\n{}", postgres.stderr);
    }
    // The next run continues the numbering, and the ledger still knows every email.
    let outbox = || std::fs::read_dir(p.path().join("outbox")).unwrap().count();
    let sent = outbox();
    let r = pg.run(&p, &["run", "ticket-follow-up"]);
    r.expect_code(0);
    let last: i64 = p.query("SELECT max(id) FROM runs")[0].parse().unwrap();
    assert!(r.stdout.starts_with(&format!("run {} of ticket-follow-up: succeeded", last + 1)), "{}", r.stdout);
    assert!(sent >= 5, "the follow-ups (and the digests) went out on SQLite: {sent}");
    assert_eq!(outbox(), sent, "no email sent twice: {}", r.stdout);
    assert!(r.stdout.contains("ok 0 failed 0 skipped 5"), "{}", r.stdout);
    assert_eq!(pg.query(&format!("SELECT count(*) FROM ledger WHERE run_id = {}", last + 1)), ["0"]);
}

#[test]
fn only_from_sqlite_into_postgres() {
    let p = TestProject::new();
    let r = p.run(&["migrate-log", "--to", "sqlite://other.sqlite"]);
    r.expect_code(2);
    assert!(r.stderr.contains("`--to sqlite://other.sqlite` is not a PostgreSQL URL"), "{}", r.stderr);
    let r = p.run(&["migrate-log", "--to", "postgres://cx:pw-8812@127.0.0.1:1/x"]);
    r.expect_code(2);
    assert!(r.stderr.contains(&format!("there is no SQLite run log at `{}`", p.db().display())), "{}", r.stderr);
    let r = p.run(&["migrate-log", "--to", "postgres://cx@127.0.0.1:1/x", "--from", "postgres://cx:pw-8812@127.0.0.1:1/y"]);
    r.expect_code(2);
    assert!(r.stderr.contains("`--from postgres://cx:***@127.0.0.1:1/y` is not a SQLite file"), "{}", r.stderr);
    assert!(!r.stderr.contains("pw-8812"), "{}", r.stderr);
    let r = support::Run::from(
        p.cxflow()
            .env("CXFLOW_DATABASE_URL", "postgres://cx@127.0.0.1:1/z")
            .args(["migrate-log", "--to", "postgres://cx@127.0.0.1:1/x"])
            .output()
            .unwrap(),
    );
    r.expect_code(2);
    assert!(r.stderr.contains("the project's run log is already on PostgreSQL"), "{}", r.stderr);
}
