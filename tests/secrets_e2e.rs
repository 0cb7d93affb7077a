//! End to end: a secret reaches no output in any form (encoded, escaped, case-changed), through
//! the real binary, its run log and `cxflow show`.

mod support;

use support::{Run, TestProject};

/// Special characters, so that every encoding changes it.
const PW: &str = "p@ss w&rd\"7/Ok";

/// What each output may turn the secret into; none of these may appear anywhere.
fn forms() -> Vec<String> {
    use base64::Engine;
    vec![
        PW.to_string(),
        PW.to_uppercase(),
        PW.to_lowercase(),
        "p%40ss+w%26rd%227%2FOk".into(),
        "p%40ss%20w%26rd%227%2fOk".into(),
        "p@ss w&amp;rd&quot;7/Ok".into(),
        r#"p@ss w&rd\"7\/Ok"#.into(),
        r#"p@ss w&rd\"7/Ok"#.into(),
        base64::engine::general_purpose::STANDARD.encode(PW),
    ]
}

/// Every place the secret could end up: stdout and stderr of each command, the run log file,
/// `cxflow show --json`, and every file the run wrote.
#[track_caller]
fn assert_nowhere(p: &TestProject, runs: &[&Run]) {
    let show = p.run(&["show", "1", "--json"]);
    let mut outputs: Vec<(String, String)> = vec![("show --json".into(), show.stdout.clone())];
    for (i, r) in runs.iter().enumerate() {
        outputs.push((format!("stdout of command {i}"), r.stdout.clone()));
        outputs.push((format!("stderr of command {i}"), r.stderr.clone()));
    }
    for f in support::files_under(p.path()) {
        outputs.push((f.display().to_string(), String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned()));
    }
    for (where_, text) in &outputs {
        for form in forms() {
            assert!(!text.contains(&form), "`{form}` in {where_}:\n{text}");
        }
        // Its start, in a form not listed above (a Debug print, an escape we did not think of).
        for start in ["p@ss w", "p%40ss"] {
            assert!(!text.to_lowercase().contains(start), "`{start}` in {where_}:\n{text}");
        }
    }
}

/// A command that prints its arguments to stderr in several encodings and fails.
const PRINTER: &str = r#"import base64, html, json, sys, urllib.parse
for a in sys.argv[1:]:
    # Base64 of the value alone (the JSON form is the value inside quotes: not masked, see forms.rs).
    b64 = base64.b64encode(a.encode()).decode() if not a.startswith('"') else ""
    print(a, urllib.parse.quote_plus(a), urllib.parse.quote(a, safe='@').lower(), html.escape(a), json.dumps(a), b64, file=sys.stderr)
sys.exit(1)
"#;

fn project() -> TestProject {
    let p = TestProject::new();
    p.write("data/records.csv", "id\nr1\n");
    p.write("printer.py", PRINTER);
    p.write(
        "workflows/w.yaml",
        r#"name: w
secrets: [PW]
steps:
  - id: records
    read_csv: data/records.csv
  - id: act
    for_each: records
    item_key: "{{item.id}}"
    command: [python3, printer.py, "{{secrets.PW}}", "{{upper secrets.PW}}", "{{lower secrets.PW}}", "{{json secrets.PW}}"]
"#,
    );
    p
}

#[test]
fn encoded_escaped_and_case_changed_forms_in_a_commands_stderr_are_masked() {
    let p = project();
    let r = Run::from(p.cxflow().args(["run", "w"]).env("PW", PW).output().unwrap());
    r.expect_code(1);
    let error = p.query("SELECT error FROM items WHERE step_id = 'act'");
    // The program did print them: the mask is what hid them.
    let every_form = "*** *** *** *** \"***\" ***";
    let want = format!(
        "`python3` exited with status 1: {every_form}\n{every_form}\n{every_form}\n\"***\" %22***%22 %22***%22 &quot;***&quot; \"\\\"***\\\"\""
    );
    assert_eq!(error, [want]);
    assert_nowhere(&p, &[&r]);
}

#[test]
fn a_dry_run_needs_the_secrets_and_masks_what_it_would_run() {
    let p = project();
    let r = p.run(&["run", "w", "--dry-run"]);
    r.expect_code(2);
    assert_eq!(r.stderr.trim(), "secret `PW` is not set in the environment; export PW=... before running (the value is never logged)");
    assert_eq!(p.count("SELECT count(*) FROM runs"), 0, "no run was started");
    let r = Run::from(p.cxflow().args(["run", "w", "--dry-run"]).env("PW", PW).output().unwrap());
    r.expect_code(0);
    let out = p.query("SELECT output FROM items WHERE step_id = 'act'");
    let v: serde_json::Value = serde_json::from_str(&out[0]).unwrap();
    assert_eq!(v, serde_json::json!({"would_run": ["python3", "printer.py", "***", "***", "***", "\"***\""]}));
    assert_nowhere(&p, &[&r]);
}

#[test]
fn with_the_most_verbose_log_a_secret_given_to_helpers_is_nowhere() {
    // Handlebars' debug trace prints helper parameters with their values, and any dependency
    // may log what it handles: at `trace`, all of it reaches stderr.
    let p = project();
    let r = Run::from(p.cxflow().args(["run", "w"]).env("PW", PW).env("CXFLOW_LOG", "trace").output().unwrap());
    r.expect_code(1);
    assert!(r.stderr.contains("TRACE") && r.stderr.contains("DEBUG"), "the log is verbose: {}", r.stderr);
    assert_nowhere(&p, &[&r]);
}

#[test]
fn a_secret_in_a_sources_path_is_masked_in_the_steps_output() {
    let p = TestProject::new();
    p.write("data/tok-9f3kq.csv", "id\nr1\n");
    p.write("workflows/w.yaml", "name: w\nsecrets: [FEED]\nsteps:\n  - id: records\n    read_csv: \"data/{{secrets.FEED}}.csv\"\n");
    let r = Run::from(p.cxflow().args(["run", "w"]).env("FEED", "tok-9f3kq").output().unwrap());
    r.expect_code(0);
    let out = p.query("SELECT output FROM steps WHERE step_id = 'records'");
    assert!(out[0].ends_with("data/***.csv\"}"), "{out:?}");
    let show = p.run(&["show", "1", "--json"]);
    for (what, text) in [("stdout", &r.stdout), ("stderr", &r.stderr), ("show --json", &show.stdout)] {
        assert!(!text.contains("tok-9f3kq"), "in {what}: {text}");
    }
}
