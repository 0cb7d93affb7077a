//! End to end: a workflow's `name:` is unique in its project, and `cxflow run NAME` finds it.

mod support;

use std::time::Duration;

use support::serve::Serve;
use support::TestProject;

fn workflow(name: &str, schedule: &str) -> String {
    format!("name: {name}\n{schedule}steps:\n  - id: records\n    read_csv: data/r.csv\n  - id: out\n    write_csv: {{ from: records, path: out/{name}.csv }}\n")
}

fn project_with_two_named(name: &str, schedule: &str) -> TestProject {
    let p = TestProject::new();
    p.write("data/r.csv", "id\n1\n");
    p.write("workflows/first.yaml", &workflow(name, schedule));
    p.write("workflows/second.yaml", &workflow(name, schedule));
    p
}

#[test]
fn two_files_with_one_name_fail_validation_naming_each_other() {
    let p = project_with_two_named("follow-up", "");
    let r = p.run(&["validate"]);
    r.expect_code(2);
    let (first, second) = ("./workflows/first.yaml", "./workflows/second.yaml");
    for (me, other) in [(first, second), (second, first)] {
        let want = format!("error: workflow name `follow-up` is also used by `{other}:1:7`\n  --> {me}:1:7\n");
        assert!(r.stderr.contains(&want), "missing\n{want}in\n{}", r.stderr);
    }
    assert!(r.stderr.contains("2 of 2 workflow file(s) have errors"), "{}", r.stderr);
    // One file validated alone is checked against the folder too.
    p.run(&["validate", "workflows/second.yaml"]).expect_code(2);
}

#[test]
fn a_workflow_sharing_its_name_does_not_run() {
    let p = project_with_two_named("follow-up", "");
    let r = p.run(&["run", "workflows/second.yaml"]);
    r.expect_code(2);
    assert!(r.stderr.contains("workflow name `follow-up` is also used by"), "{}", r.stderr);
    let r = p.run(&["run", "follow-up"]);
    r.expect_code(2);
    assert!(!p.path().join("out/follow-up.csv").exists());
}

#[test]
fn run_finds_a_workflow_by_its_name_then_by_its_file_name() {
    let p = TestProject::new();
    p.write("data/r.csv", "id\n1\n");
    p.write("workflows/weekly.yaml", &workflow("follow-up", ""));
    p.run(&["run", "follow-up"]).expect_code(0);
    p.run(&["run", "weekly"]).expect_code(0);
    assert_eq!(p.query("SELECT workflow FROM runs ORDER BY id"), ["follow-up", "follow-up"]);
    let r = p.run(&["run", "nope"]);
    r.expect_code(2);
    assert!(r.stderr.contains("no workflow `nope`: give a workflow's `name:`"), "{}", r.stderr);
}

#[test]
fn serve_schedules_neither_of_two_workflows_sharing_a_name() {
    let every_second = "schedule:\n  cron: \"* * * * * *\"\n";
    let p = project_with_two_named("twin", every_second);
    p.write("workflows/other.yaml", &workflow("other", every_second));
    let (serve, logs) = Serve::in_project(&p);
    // `other` firing shows the scheduler runs; by then both twins were refused at start.
    p.wait_for_rows(Duration::from_secs(60), "a run of `other`", "SELECT id FROM runs WHERE workflow = 'other' AND status = 'succeeded'");
    serve.sigterm();
    let skipped = p.query("SELECT file FROM runs WHERE workflow IN ('first', 'second', 'twin') AND status = 'skipped' ORDER BY file");
    assert_eq!(skipped.len(), 2, "{skipped:?}\n{}", logs.text());
    assert_eq!(p.query("SELECT count(*) FROM runs WHERE workflow = 'twin' AND status != 'skipped'"), ["0"], "{}", logs.text());
    assert!(!p.path().join("out/twin.csv").exists());
}
