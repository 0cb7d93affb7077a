//! Templates end to end: the real binary, its run log.

mod support;

use support::TestProject;

#[test]
fn a_template_that_renders_past_the_steps_timeout_fails_its_item_only() {
    let p = TestProject::new();
    // `big` makes the argument below 27 million writes: minutes of rendering.
    let rows = |n: usize| serde_json::to_string(&(0..n).collect::<Vec<_>>()).unwrap();
    p.write("data/r.json", &format!(r#"[{{"id": "big", "rows": {}}}, {{"id": "small", "rows": {}}}]"#, rows(300), rows(2)));
    p.write(
        "workflows/w.yaml",
        r#"name: w
steps:
  - id: r
    read_json: data/r.json
  - id: act
    for_each: r
    item_key: "{{item.id}}"
    timeout: 1s
    command: [echo, "{{#each item.rows}}{{#each @root.item.rows}}{{#each @root.item.rows}}.{{/each}}{{/each}}{{/each}}"]
"#,
    );
    p.run(&["run", "w"]).expect_code(1);
    assert_eq!(
        p.query("SELECT item_key, status, error FROM items WHERE step_id = 'act' ORDER BY item_key"),
        [
            "big|failed|rendering `steps[1].command[1]` took longer than the step's timeout (1s): the template does too much for this record (an `#each` inside an `#each` over a long list?); make it do less, or raise the step's `timeout:`",
            "small|ok|NULL",
        ]
    );
}
