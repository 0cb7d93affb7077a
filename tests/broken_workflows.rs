//! The corpus of broken workflows in tests/broken/: each file ends with `# expect LINE:COL MESSAGE`
//! lines, and `cxflow validate` must print exactly those errors at those places, exit 2, and never panic.

mod support;

use support::TestProject;

fn expectations(src: &str) -> Vec<(String, String)> {
    src.lines()
        .filter_map(|l| l.strip_prefix("# expect "))
        .map(|l| {
            let (at, msg) = l.split_once(' ').expect("`# expect LINE:COL MESSAGE`");
            (at.to_string(), msg.to_string())
        })
        .collect()
}

#[test]
fn every_broken_workflow_gets_its_exact_positioned_error() {
    let p = TestProject::new();
    p.write("data/tickets.csv", "id\n");
    p.write("data/tickets.json", "[]");
    let dir = support::repo().join("tests/broken");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 30, "the corpus has {} files", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        let src = std::fs::read_to_string(f).unwrap();
        let expected = expectations(&src);
        assert!(!expected.is_empty(), "{name} has no `# expect` line");
        let rel = format!("workflows/{name}");
        p.write(&rel, &src);
        let r = p.run(&["validate", &rel]);
        // Alone in the folder: the files share `name: broken`, which is an error of its own.
        std::fs::remove_file(p.path().join(&rel)).unwrap();
        if r.code != 2 || r.stderr.contains("panicked") {
            failures.push(format!("{name}: exit {} (want 2)\n{}", r.code, r.stderr));
            continue;
        }
        let got: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        if got.len() != expected.len() {
            failures.push(format!("{name}: {} errors, want {}\n{}", got.len(), expected.len(), r.stderr));
        }
        for (at, msg) in &expected {
            let want = format!("error: {msg}\n  --> {rel}:{at}\n");
            if !r.stderr.contains(&want) {
                failures.push(format!("{name}: missing\n{want}in\n{}", r.stderr));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

#[test]
fn validating_a_folder_reports_every_bad_file_and_the_good_ones() {
    let p = TestProject::new();
    p.write("data/tickets.csv", "id\n");
    p.write("workflows/good.yaml", "name: good\nsteps:\n  - id: t\n    read_csv: data/tickets.csv\n");
    p.write("workflows/bad1.yaml", "name: bad1\nsteps: []\n");
    p.write("workflows/bad2.yml", "name: bad2\nsteps:\n  - id: t\n");
    let r = p.run(&["validate"]);
    r.expect_code(2);
    assert!(r.stdout.contains("ok: ./workflows/good.yaml (good, 1 steps)"), "{}", r.stdout);
    assert!(r.stderr.contains("error: the workflow has no steps\n  --> ./workflows/bad1.yaml:2:8"), "{}", r.stderr);
    assert!(r.stderr.contains("error: step `t` does not say what to do\n  --> ./workflows/bad2.yml:3:5"), "{}", r.stderr);
    assert!(r.stderr.contains("2 of 3 workflow file(s) have errors"));
}

#[test]
fn shipped_workflows_are_valid() {
    let r = support::TestProject::new();
    let out = r.cxflow().args(["-C", support::repo().to_str().unwrap(), "validate"]).output().unwrap();
    let run = support::Run::from(out);
    run.expect_code(0);
}

#[test]
fn schema_describes_the_format() {
    let p = TestProject::new();
    let r = p.run(&["schema"]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["title"], "WorkflowSpec");
    let step = &v["definitions"]["StepSpec"]["properties"];
    for k in ["for_each", "item_key", "read_csv", "command", "send_email", "retry"] {
        assert!(step.get(k).is_some(), "schema lacks steps[].{k}");
    }
    assert_eq!(v["definitions"]["StepSpec"]["additionalProperties"], false);
}
