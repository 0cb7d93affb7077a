//! End to end: the real binary runs workflows on a real SQLite run log in a temp project.

mod support;

use support::{Run, TestProject};

const SCRIPT: &str = include_str!("support/script.py");

/// A project with `n` records and a per-item step running script.py with `mode_tpl` as its mode.
fn project(n: usize, step_extra: &str, mode_tpl: &str) -> TestProject {
    let p = support::script_project("id,mode,email", (1..=n).map(|i| format!("r{i},ok,user{i}@example.test")));
    p.write(
        "workflows/w.yaml",
        &format!(
            r#"name: w
steps:
  - id: records
    read_csv: data/records.csv
  - id: act
    for_each: records
    item_key: "{{{{item.id}}}}"
    command: [python3, script.py, "{{{{item.id}}}}", "{mode_tpl}"]
{step_extra}
  - id: report
    write_csv: {{ from: act, path: out/report.csv, columns: [key, attempt] }}
"#
        ),
    );
    p
}

fn marks(p: &TestProject) -> Vec<String> {
    let mut m: Vec<String> = std::fs::read_to_string(p.path().join("marks.txt")).unwrap_or_default().lines().map(String::from).collect();
    m.sort();
    m
}

#[test]
fn sample_workflow_runs_end_to_end_and_is_logged() {
    let p = TestProject::new();
    p.copy_from_repo(support::EXPORT_SAMPLE);
    let r = p.run(&["run", "closed-tickets-export", "--var", "batch=weekly"]);
    r.expect_code(0);
    assert!(r.stdout.starts_with("run 1 of closed-tickets-export: succeeded"), "{}", r.stdout);
    let csv = p.read("out/stamped-weekly.csv");
    assert_eq!(csv.lines().next(), Some("ticket_id,owner,batch"));
    assert!(csv.contains("T-1003,SAM,weekly"), "{csv}");
    assert_eq!(csv.lines().count(), 6);
    let json: serde_json::Value = serde_json::from_str(&p.read("out/closed-tickets.json")).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 5);
    assert_eq!(json[1]["name"], "Grace Hopper");
    assert_eq!(p.query("SELECT status, trigger, params FROM runs"), ["succeeded|manual|{\"batch\":\"weekly\"}"]);
    assert_eq!(p.query("SELECT count(*) FROM items WHERE step_id = 'stamped' AND status = 'ok'"), ["5"]);
    assert_eq!(p.query("SELECT step_id, status, ok FROM steps ORDER BY position")[1], "stamped|succeeded|5");
    assert_eq!(p.query("SELECT kind FROM artifacts ORDER BY id"), ["json", "csv"]);
    let show = p.run(&["show", "1", "--json"]);
    show.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(v["run"]["status"], "succeeded");
    assert_eq!(v["steps"].as_array().unwrap().len(), 4);
    let runs = p.run(&["runs", "--status", "succeeded"]);
    assert!(runs.stdout.contains("closed-tickets-export"), "{}", runs.stdout);
}

#[test]
fn dry_run_renders_everything_and_sends_nothing() {
    let p = project(3, "", "ok");
    let r = p.run(&["run", "w", "--dry-run"]);
    r.expect_code(0);
    assert!(r.stdout.starts_with("dry run 1 of w: succeeded"), "{}", r.stdout);
    assert!(marks(&p).is_empty());
    assert!(!p.path().join("out/report.csv").exists());
    assert_eq!(p.query("SELECT trigger FROM runs"), ["dry-run"]);
    let out = p.query("SELECT output FROM items WHERE item_key = 'r2'");
    assert!(out[0].contains("\"would_run\":[\"python3\",\"script.py\",\"r2\",\"ok\"]"), "{out:?}");
}

#[test]
fn failed_items_make_a_partial_run_and_resume_redoes_only_them() {
    let p = project(5, "", "{{#if (eq item.id 'r3')}}fail{{else}}ok{{/if}}");
    let r = p.run(&["run", "w"]);
    r.expect_code(1);
    assert!(r.stdout.contains("run 1 of w: partial"), "{}", r.stdout);
    assert_eq!(marks(&p), ["r1", "r2", "r4", "r5"]);
    let show = p.run(&["show", "1"]);
    assert!(
        show.stdout.contains("act r3 (attempts 1): `python3` exited with status 1: record r3 rejected: no such customer"),
        "{}",
        show.stdout
    );
    assert!(show.stdout.contains("resume with: cxflow resume 1"));
    // The data is fixed: the record no longer fails.
    p.write("workflows/w.yaml", &p.read("workflows/w.yaml").replace("(eq item.id 'r3')", "(eq item.id 'none')"));
    let r = p.run(&["resume", "1"]);
    r.expect_code(0);
    assert!(r.stdout.contains("ok 1 failed 0 skipped 0, 4 done earlier"), "{}", r.stdout);
    assert_eq!(marks(&p), ["r1", "r2", "r3", "r4", "r5"]);
    assert_eq!(p.query("SELECT status, resumes FROM runs"), ["succeeded|1"]);
    assert_eq!(p.query("SELECT count(*) FROM items WHERE status = 'ok'"), ["5"]);
    assert_eq!(p.read("out/report.csv").lines().count(), 6);
    // --from re-runs every item of that step.
    p.run(&["resume", "1", "--from", "act"]).expect_code(0);
    assert_eq!(marks(&p).len(), 10);
}

#[test]
fn retryable_exit_is_retried_with_backoff() {
    let p = project(2, "    retry: { attempts: 3, backoff: 10ms }", "retry-once");
    p.run(&["run", "w"]).expect_code(0);
    assert_eq!(p.query("SELECT item_key, attempts FROM items WHERE step_id = 'act' ORDER BY seq"), ["r1|2", "r2|2"]);
    assert_eq!(p.read("out/report.csv"), "key,attempt\nr1,2\nr2,2\n");
}

#[test]
fn timeout_fails_the_item_and_kills_the_program() {
    let p = project(1, "    timeout: 300ms", "hang");
    let t = std::time::Instant::now();
    p.run(&["run", "w"]).expect_code(1);
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(p.query("SELECT status, error FROM items WHERE step_id = 'act'"), ["failed|timed out after 300ms"]);
}

#[test]
fn on_error_stop_ends_the_run_failed() {
    let p = project(6, "    on_error: stop", "{{#if (eq item.id 'r2')}}fail{{else}}ok{{/if}}");
    let r = p.run(&["run", "w"]);
    r.expect_code(1);
    assert!(r.stdout.contains("run 1 of w: failed"), "{}", r.stdout);
    assert_eq!(marks(&p), ["r1"]);
    // The report step never ran.
    assert!(p.query("SELECT step_id FROM steps WHERE step_id = 'report'").is_empty());
}

#[test]
fn skip_if_and_when() {
    let p = project(4, "    skip_if: \"{{eq item.id 'r2'}}\"", "ok");
    p.write(
        "workflows/w.yaml",
        &p.read("workflows/w.yaml")
            .replace("  - id: report\n", "  - id: report\n    when: \"{{eq params.report 'yes'}}\"\n")
            .replace("name: w\n", "name: w\nparams:\n  report: \"no\"\n"),
    );
    let r = p.run(&["run", "w"]);
    r.expect_code(0);
    assert_eq!(marks(&p), ["r1", "r3", "r4"]);
    assert_eq!(p.query("SELECT status FROM items WHERE item_key = 'r2'"), ["skipped"]);
    assert_eq!(p.query("SELECT status FROM steps WHERE step_id = 'report'"), ["skipped"]);
    p.run(&["run", "w", "--var", "report=yes"]).expect_code(0);
    assert!(p.path().join("out/report.csv").exists());
}

#[test]
fn secrets_are_required_and_never_logged() {
    let p = project(1, "", "echo-secret");
    let wf = p
        .read("workflows/w.yaml")
        .replace("name: w\n", "name: w\nsecrets: [API_TOKEN]\n")
        .replace("\"echo-secret\"]", "\"echo-secret\", \"{{secrets.API_TOKEN}}\"]");
    p.write("workflows/w.yaml", &wf);
    let r = p.run(&["run", "w"]);
    r.expect_code(2);
    assert!(r.stderr.contains("secret `API_TOKEN` is not set in the environment"), "{}", r.stderr);
    let r = Into::<support::Run>::into(p.cxflow().args(["run", "w"]).env("API_TOKEN", "tok-s3cr3t-value").output().unwrap());
    r.expect_code(0);
    assert!(!r.stdout.contains("tok-s3cr3t-value") && !r.stderr.contains("tok-s3cr3t-value"));
    let out = p.query("SELECT output FROM items WHERE step_id = 'act'");
    assert!(out[0].contains("\"token\":\"***\""), "{out:?}");
    let all = std::fs::read(p.db()).unwrap();
    assert!(!String::from_utf8_lossy(&all).contains("tok-s3cr3t-value"));
}

#[test]
fn unknown_and_missing_params_are_exit_2() {
    let p = project(1, "", "{{params.mode}}");
    p.write("workflows/w.yaml", &p.read("workflows/w.yaml").replace("name: w\n", "name: w\nparams:\n  mode: null\n"));
    let r = p.run(&["run", "w"]);
    r.expect_code(2);
    assert_eq!(r.stderr.trim(), "parameter `mode` has no default; pass `--var mode=...`");
    let r = p.run(&["run", "w", "--var", "mood=ok"]);
    r.expect_code(2);
    assert!(r.stderr.contains("`--var mood=...` is not a parameter of workflow `w`; declared: mode"), "{}", r.stderr);
    p.run(&["run", "w", "--var", "mode=ok"]).expect_code(0);
}

#[test]
fn bad_csv_rows_fail_their_item_with_the_line() {
    let p = project(0, "", "ok");
    p.write("data/records.csv", "id,mode,email\nr1,ok,a@x.test\nr2,ok\nr3,ok,c@x.test\n");
    p.run(&["run", "w"]).expect_code(1);
    assert_eq!(marks(&p), ["r1", "r3"]);
    let err = p.query("SELECT item_key, error FROM items WHERE status = 'failed'");
    assert_eq!(err.len(), 1);
    assert!(err[0].starts_with("#2|bad record: "), "{err:?}");
    assert!(err[0].contains("records.csv` line 3: this row has 2 fields but the header has 3"), "{err:?}");
}

#[test]
fn json_array_json_lines_and_sqlite_sources() {
    let p = TestProject::new();
    p.write("data/a.json", r#"[{"id": 1, "n": "x"}, {"id": 2, "n": "y"}]"#);
    p.write("data/b.jsonl", "{\"id\": 3}\n\n{\"id\": 4}\n");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", p.path().join("crm.db").display())).await.unwrap();
        sqlx::query("CREATE TABLE customers (id INTEGER, name TEXT, score REAL)").execute(&pool).await.unwrap();
        sqlx::query("INSERT INTO customers VALUES (5, 'Ann', 4.5), (6, 'Bo', NULL)").execute(&pool).await.unwrap();
    });
    p.write(
        "workflows/w.yaml",
        r#"name: sources
steps:
  - id: a
    read_json: data/a.json
  - id: b
    read_json: data/b.jsonl
  - id: c
    sql: { url: "sqlite://crm.db", query: "SELECT id, name, score FROM customers ORDER BY id" }
  - id: out_a
    write_json: { from: a, path: out/a.jsonl, lines: true }
  - id: out_b
    write_csv: { from: b, path: out/b.csv }
  - id: out_c
    write_json: { from: c, path: out/c.json }
"#,
    );
    p.run(&["run", "w"]).expect_code(0);
    assert_eq!(p.read("out/a.jsonl"), "{\"id\":1,\"n\":\"x\"}\n{\"id\":2,\"n\":\"y\"}\n");
    assert_eq!(p.read("out/b.csv"), "id\n3\n4\n");
    let c: serde_json::Value = serde_json::from_str(&p.read("out/c.json")).unwrap();
    assert_eq!(c, serde_json::json!([{"id": 5, "name": "Ann", "score": 4.5}, {"id": 6, "name": "Bo", "score": null}]));
}

#[test]
fn a_record_missing_a_field_fails_its_item_naming_the_field() {
    let p = TestProject::new();
    p.write("script.py", SCRIPT);
    p.write("data/r.jsonl", "{\"id\": \"a\", \"email\": \"a@x.test\"}\n{\"id\": \"b\"}\n");
    p.write(
        "workflows/w.yaml",
        "name: w\nsteps:\n  - id: r\n    read_json: data/r.jsonl\n  - id: act\n    for_each: r\n    item_key: \"{{item.id}}\"\n    command: [python3, script.py, \"{{item.email}}\"]\n",
    );
    p.run(&["run", "w"]).expect_code(1);
    assert_eq!(p.query("SELECT item_key, status FROM items ORDER BY seq"), ["a|ok", "b|failed"]);
    let e = p.query("SELECT error FROM items WHERE status = 'failed'");
    assert!(e[0].contains("`item.email` is missing"), "{e:?}");
}

#[test]
fn csv_columns_are_checked_before_the_run() {
    let p = project(2, "", "{{item.mail}}");
    let r = p.run(&["run", "w"]);
    r.expect_code(2);
    assert!(r.stderr.contains("error: `item.mail` is not a column of `data/records.csv`"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean `item.email`?"), "{}", r.stderr);
    assert!(!p.db().exists(), "a workflow that fails validation never starts");
}

#[test]
fn runs_and_show_handle_unknown_input() {
    let p = project(1, "", "ok");
    p.run(&["show", "42"]).expect_code(2);
    let r = p.run(&["runs", "--status", "wierd"]);
    r.expect_code(2);
    assert!(r.stderr.contains("unknown status `wierd`"));
    let r = p.run(&["run", "nope"]);
    r.expect_code(2);
    assert!(r.stderr.contains("no workflow `nope`"));
    let r = p.run(&["runs", "--json"]);
    r.expect_code(0);
    assert_eq!(r.stdout.trim(), "[]");
}

#[test]
fn writing_no_records_gives_an_empty_report_in_a_new_folder() {
    let p = TestProject::new();
    p.write("data/header_only.csv", "id,name\n");
    p.write("data/empty.json", "[]");
    p.write(
        "workflows/w.yaml",
        r#"name: w
steps:
  - id: none
    read_csv: data/header_only.csv
  - id: csv
    write_csv: { from: none, path: out/new/none.csv }
  - id: csv_cols
    write_csv: { from: none, path: out/new/cols.csv, columns: [id, name] }
  - id: nothing
    read_json: data/empty.json
  - id: json
    write_json: { from: nothing, path: out/other/none.json }
"#,
    );
    p.run(&["run", "w"]).expect_code(0);
    assert_eq!(p.read("out/new/none.csv"), "");
    assert_eq!(p.read("out/new/cols.csv"), "id,name\n");
    let v: serde_json::Value = serde_json::from_str(&p.read("out/other/none.json")).unwrap();
    assert_eq!(v, serde_json::json!([]));
}

#[test]
fn a_run_log_that_is_not_sqlite_gets_one_clear_error() {
    let p = TestProject::new();
    std::fs::write(p.db(), "x".repeat(5000)).unwrap();
    let r = p.run(&["runs"]);
    r.expect_code(1);
    assert_eq!(r.stderr.matches("file is not a database").count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("check `database_url`"), "{}", r.stderr);
    // PostgreSQL is the other run log (tests/postgres_run_log.rs); anything else is refused.
    let r = Run::from(p.cxflow().env("CXFLOW_DATABASE_URL", "mysql://cx@127.0.0.1/runs").args(["runs"]).output().unwrap());
    r.expect_code(2);
    assert!(r.stderr.contains("is not a SQLite or PostgreSQL URL"), "{}", r.stderr);
}

#[test]
fn a_repeated_item_key_fails_the_repeat_and_keeps_the_first_result() {
    let p = project(3, "", "ok");
    p.write("data/records.csv", "id,mode,email\nr1,ok,a@example.test\nr1,ok,b@example.test\nr2,ok,c@example.test\n");
    let r = p.run(&["run", "w"]);
    r.expect_code(1);
    // Each record ran at most once under its key; the repeat did not run and is logged on its own row.
    assert_eq!(marks(&p), ["r1", "r2"]);
    assert_eq!(p.query("SELECT item_key, status FROM items WHERE step_id = 'act' ORDER BY seq"), ["r1|ok", "#2|failed", "r2|ok"]);
    let show = p.run(&["show", "1"]);
    assert!(show.stdout.contains("item_key `r1` repeats the key of an earlier record"), "{}", show.stdout);
}

#[test]
fn resume_after_the_workflow_gained_a_parameter() {
    let p = project(2, "", "fail");
    p.run(&["run", "w"]).expect_code(1);
    let fixed = p.read("workflows/w.yaml").replace("\"fail\"]", "\"{{params.mode}}\"]").replace("steps:", "params:\n  mode: ok\nsteps:");
    p.write("workflows/w.yaml", &fixed);
    // A new parameter with a default takes it.
    p.run(&["resume", "1"]).expect_code(0);
    assert_eq!(marks(&p), ["r1", "r2"]);

    p.run(&["run", "w"]).expect_code(0);
    p.write("workflows/w.yaml", &fixed.replace("mode: ok\n", "mode: ok\n  who: null\n"));
    p.write("marks.txt", "");
    let r = p.run(&["resume", "2", "--from", "act"]);
    r.expect_code(2);
    assert!(r.stderr.contains("now requires parameter `who`"), "{}", r.stderr);
    assert!(marks(&p).is_empty(), "nothing ran");
}

/// Every `*.cxflow-tmp` file under `dir`: a write that failed must not leave one behind.
fn temp_files(dir: &std::path::Path) -> Vec<String> {
    support::files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "cxflow-tmp"))
        .map(|p| p.display().to_string())
        .collect()
}

/// A bad record partway through fails alone (an item naming the file and line); the report holds
/// the good ones and no temporary file is left.
#[test]
fn a_write_whose_records_fail_partway_leaves_no_temp_file() {
    let p = TestProject::new();
    // Enough good lines that the file is being written when the bad one is read.
    let mut jsonl: String = (1..=600).map(|i| format!("{{\"id\": {i}}}\n")).collect();
    jsonl.push_str("{\"id\": oops\n");
    p.write("data/r.jsonl", &jsonl);
    p.write(
        "workflows/w.yaml",
        "name: w\nsteps:\n  - id: r\n    read_json: data/r.jsonl\n  - id: out\n    write_json: { from: r, path: out/r.json }\n  - id: out_csv\n    write_csv: { from: r, path: out/r.csv }\n",
    );
    let r = p.run(&["run", "w"]);
    r.expect_code(1);
    let show = p.run(&["show", "1"]);
    for step in ["out", "out_csv"] {
        let line =
            format!("  {step} #601 (attempts 0): bad record: `{}` line 601: expected value", p.path().join("data/r.jsonl").display());
        assert!(show.stdout.contains(&line), "{line}\n{}", show.stdout);
    }
    assert_eq!(temp_files(p.path()), Vec::<String>::new());
    let written: Vec<serde_json::Value> = serde_json::from_str(&p.read("out/r.json")).unwrap();
    assert_eq!(written, (1..=600).map(|i| serde_json::json!({"id": i})).collect::<Vec<_>>());
    assert_eq!(p.read("out/r.csv").lines().count(), 601, "the header and 600 rows");
}

#[test]
fn a_write_that_cannot_be_moved_into_place_leaves_no_temp_file() {
    let p = TestProject::new();
    p.write("data/r.csv", "id\n1\n2\n");
    // The report's path is taken by a folder: writing works, the final rename does not.
    std::fs::create_dir_all(p.path().join("out/r.csv/taken")).unwrap();
    p.write(
        "workflows/w.yaml",
        "name: w\nsteps:\n  - id: r\n    read_csv: data/r.csv\n  - id: out\n    write_csv: { from: r, path: out/r.csv }\n",
    );
    let r = p.run(&["run", "w"]);
    r.expect_code(1);
    let show = p.run(&["show", "1"]);
    assert!(show.stdout.contains("cannot move the finished file to"), "{}", show.stdout);
    assert_eq!(temp_files(p.path()), Vec::<String>::new());
    assert!(p.path().join("out/r.csv/taken").is_dir());
}

/// Two first-ever runs at once share one new run log: both migrate it (once) and both succeed.
#[test]
fn two_first_runs_at_once_both_work() {
    for trial in 0..3 {
        let p = TestProject::new();
        p.write("data/t.csv", "id\n1\n2\n");
        p.write(
            "workflows/w.yaml",
            // Each run writes its own file: two runs writing one path at once is another matter.
            "name: w\nsteps:\n  - id: t\n    read_csv: data/t.csv\n  - id: out\n    write_json: { from: t, path: \"out/t-{{run.id}}.json\" }\n",
        );
        let children: Vec<_> = (0..2)
            .map(|_| {
                let mut c = p.cxflow();
                c.args(["run", "w"]);
                output_async(c)
            })
            .collect();
        for c in children {
            let r = Run::from(c.join().unwrap());
            assert_eq!(r.code, 0, "trial {trial}: {}", r.stderr);
        }
        assert_eq!(p.query("SELECT status FROM runs ORDER BY id"), ["succeeded", "succeeded"], "trial {trial}");
    }
}

/// Start `cmd` now; its output when joined.
fn output_async(mut cmd: std::process::Command) -> std::thread::JoinHandle<std::process::Output> {
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::spawn(move || child.wait_with_output().unwrap())
}

/// Steps' templates read `steps.<id>` from a context the run keeps from step to step (and renders
/// copy only the steps a template names): a late step still sees an early step's output, a
/// skipped step's `{"skipped": true}`, and `steps` as a whole where a template asks for it.
#[test]
fn a_late_step_sees_early_and_skipped_steps() {
    let p = TestProject::new();
    p.write("data/a.json", r#"[{"id": 1, "n": "Zoë"}, {"id": 2, "n": "y"}]"#);
    let mut y = String::from(
        "name: late\nsteps:\n  - id: a\n    read_json: data/a.json\n  - id: skip\n    when: \"{{eq 1 2}}\"\n    write_csv: {from: a, path: out/never.csv}\n  - id: w\n    write_csv: {from: a, path: out/w.csv}\n",
    );
    for i in 0..40 {
        y.push_str(&format!("  - id: f{i}\n    read_json: data/a.json\n"));
    }
    y.push_str(concat!(
        "  - id: late\n",
        "    when: \"{{#if steps.skip.skipped}}{{steps.w.output.count}}{{/if}}\"\n",
        "    write_csv: {from: f39, path: \"out/{{steps.w.output.count}}-{{steps.skip.skipped}}-{{lookup (lookup @root.steps 'skip') 'skipped'}}.csv\"}\n",
        "  - id: whole\n",
        "    write_json: {from: a, path: \"out/{{#each @root.steps}}{{#if this.skipped}}{{@key}}{{/if}}{{/each}}.json\"}\n",
    ));
    p.write("workflows/late.yaml", &y);
    p.run(&["run", "late"]).expect_code(0);
    assert!(p.path().join("out/2-true-true.csv").exists(), "{:?}", std::fs::read_dir(p.path().join("out")).unwrap().collect::<Vec<_>>());
    assert_eq!(p.read("out/2-true-true.csv"), "id,n\n1,Zoë\n2,y\n");
    assert!(p.path().join("out/skip.json").exists());
    assert!(!p.path().join("out/never.csv").exists());
    assert_eq!(p.query("SELECT status FROM steps WHERE step_id IN ('skip', 'late') ORDER BY position"), ["skipped", "succeeded"]);
}
