//! `cxflow validate` on browser steps: mistakes show before anything runs, at the right line.

mod support;

const HEAD: &str = "name: bad\nsteps:\n  - id: a\n    read_csv: data/a.csv\n  - id: b\n    for_each: a\n    browser:\n      actions:\n";

fn validate(actions: &str) -> String {
    let p = support::TestProject::new();
    p.write("data/a.csv", "id\n1\n");
    p.write("workflows/bad.yaml", &format!("{HEAD}{actions}"));
    let r = p.run(&["validate", "workflows/bad.yaml"]);
    r.expect_code(2);
    r.stderr
}

#[test]
fn two_action_keys_in_one_entry() {
    let e = validate("        - goto: \"http://x\"\n          click: \"#a\"\n");
    assert!(e.starts_with("error: this action has 2 action keys: `goto`, `click`\n  --> workflows/bad.yaml:9:11\n"), "{e}");
}

#[test]
fn unknown_key_name_lists_the_known_ones() {
    let e = validate("        - press: Return\n");
    assert!(e.contains("error: unknown key `Return`\n  --> workflows/bad.yaml:9:18"), "{e}");
    assert!(e.contains("= help: use one of: Enter, Tab, Escape"), "{e}");
}

#[test]
fn second_submit_is_pointed_at() {
    let e = validate("        - submit: \"#s\"\n        - submit: \"#t\"\n");
    assert!(e.starts_with("error: more than one `submit` action\n  --> workflows/bad.yaml:10:19\n"), "{e}");
}

#[test]
fn if_present_needs_then_and_then_needs_if_present() {
    let e = validate("        - if_present: \"#c\"\n        - click: \"#a\"\n          then: []\n");
    assert!(e.contains("error: `if_present` needs `then`\n  --> workflows/bad.yaml:9:11"), "{e}");
    assert!(e.contains("error: `then` only applies to `if_present`\n  --> workflows/bad.yaml:11:17"), "{e}");
}

#[test]
fn misspelled_action_suggests_the_right_one() {
    let e = validate("        - clik: \"#x\"\n");
    assert!(e.contains("unknown field `clik`"), "{e}");
    assert!(e.contains("did you mean `click`?"), "{e}");
}

#[test]
fn bad_wait_timeout() {
    let e = validate("        - wait_for: { selector: \"#a\", timeout: soon }\n");
    assert!(e.contains("error: `soon` is not a duration\n  --> workflows/bad.yaml:9:48"), "{e}");
}

#[test]
fn a_wait_beyond_a_year_is_refused_before_it_can_overflow_the_clock() {
    let e = validate("        - wait_for: { selector: \"#a\", timeout: 1000000000y }\n");
    assert!(
        e.contains("error: `1000000000y` is longer than a year, the longest duration cxflow takes\n  --> workflows/bad.yaml:9:48"),
        "{e}"
    );
}

#[test]
fn shipped_sample_validates() {
    let r = support::TestProject::new();
    let wf = support::repo().join("workflows/portal-returns.yaml");
    let out = r.cxflow().args(["-C", support::repo().to_str().unwrap(), "validate", wf.to_str().unwrap()]).output().unwrap();
    let run = support::Run::from(out);
    run.expect_code(0);
}

/// `validate` with step keys `extra` (indented 6) before a one-`submit` action list.
fn validate_step(extra: &str) -> String {
    let p = support::TestProject::new();
    p.write("data/a.csv", "id\n1\n");
    let head = "name: bad\nparams:\n  month: x\nsecrets: [S]\nsteps:\n  - id: a\n    read_csv: data/a.csv\n  - id: b\n    for_each: a\n    browser:\n";
    p.write("workflows/bad.yaml", &format!("{head}{extra}      actions:\n        - submit: \"#s\"\n"));
    let r = p.run(&["validate", "workflows/bad.yaml"]);
    r.expect_code(2);
    r.stderr
}

#[test]
fn rejected_if_is_strict_and_points_at_the_key() {
    let e = validate_step("      rejected_if: { selector: \".error\", txt: required }\n");
    assert!(e.contains("unknown field `txt`"), "{e}");
    assert!(e.contains("--> workflows/bad.yaml:11:"), "{e}");
    let e = validate_step("      rejected_if: { text: required }\n");
    assert!(e.contains("missing field `selector`"), "{e}");
    let e = validate_step("      rejected_if: { selector: \"\", text: \"\" }\n");
    assert!(e.contains("error: `selector` is empty\n  --> workflows/bad.yaml:11:"), "{e}");
    assert!(e.contains("error: `text` is empty\n  --> workflows/bad.yaml:11:"), "{e}");
}

#[test]
fn rejected_if_needs_a_submit() {
    let e = validate("        - click: \"#a\"\n      rejected_if: { selector: \".error\" }\n");
    assert!(e.contains("error: `rejected_if` needs a `submit` action\n  --> workflows/bad.yaml:10:"), "{e}");
}

#[test]
fn idempotency_key_is_checked_like_every_template() {
    let e = validate_step("      idempotency_key: \"returns/{{params.mnth}}/{{item.id}}\"\n");
    assert!(e.contains("error: `params.mnth` is never defined\n  --> workflows/bad.yaml:11:24"), "{e}");
    assert!(e.contains("did you mean `params.month`?"), "{e}");
    let e = validate_step("      idempotency_key: \"returns/{{params.month}}\"\n");
    assert!(e.contains("error: `returns/{{params.month}}` is the same for every item, so only the first would be submitted"), "{e}");
    let e = validate_step("      idempotency_key: \"{{secrets.S}}/{{item.id}}\"\n");
    assert!(e.contains("error: `{{secrets.S}}` cannot be used in an idempotency key"), "{e}");
    let e = validate_step("      idempotency_key: \"{{item.idd}}\"\n");
    assert!(e.contains("`item.idd` is not a column of `data/a.csv`"), "{e}");
}

#[test]
fn bad_command_timeout() {
    let e = validate_step("      command_timeout: forever\n");
    assert!(e.contains("error: `forever` is not a duration\n  --> workflows/bad.yaml:11:24"), "{e}");
}
