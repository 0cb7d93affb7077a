//! End to end: what a `command` step's program may see of cxflow's environment.

mod support;

use support::TestProject;

/// Writes the names of the variables it sees, and the value of `API_TOKEN`, to `env.txt`.
const PRINT_ENV: &str = "import os\nwith open('env.txt', 'w') as f:\n    f.write('\\n'.join(sorted(os.environ)) + '\\nAPI_TOKEN=' + os.environ.get('API_TOKEN', '-') + '\\n')\n";

#[test]
fn a_program_sees_the_base_environment_and_its_workflows_secrets_only() {
    let p = TestProject::new();
    p.write("env.py", PRINT_ENV);
    p.write("data/r.csv", "id\n1\n");
    p.write(
        "workflows/w.yaml",
        "name: w\nsecrets: [API_TOKEN]\nsteps:\n  - id: r\n    read_csv: data/r.csv\n  - id: act\n    for_each: r\n    item_key: \"{{item.id}}\"\n    command: [python3, env.py]\n",
    );
    let out = p
        .cxflow()
        .args(["run", "w"])
        .env("SMTP_PASSWORD", "smtp-pass-1")
        .env("PORTAL_PASSWORD", "portal-pass-2")
        .env("API_TOKEN", "token-3")
        .env("LC_TIME", "C")
        .output()
        .unwrap();
    support::Run::from(out).expect_code(0);
    let env = p.read("env.txt");
    let names: Vec<&str> = env.lines().collect();
    for absent in ["SMTP_PASSWORD", "PORTAL_PASSWORD", "CARGO_MANIFEST_DIR"] {
        assert!(!names.contains(&absent), "{absent} reached the program:\n{env}");
    }
    for present in ["PATH", "LC_TIME", "API_TOKEN", "CXFLOW_RUN_ID", "CXFLOW_ITEM_KEY", "CXFLOW_ATTEMPT"] {
        assert!(names.contains(&present), "{present} did not reach the program:\n{env}");
    }
    assert!(names.contains(&"API_TOKEN=token-3"), "{env}");
}

/// Each item's context holds only the earlier steps its templates read (so a long workflow's
/// items do not each copy every step before them): a step named in a path, `item_key` or
/// `skip_if` is there, and a template that reads them as a whole (`@root.steps`) still sees every one.
#[test]
fn items_see_every_step_their_templates_read() {
    let p = TestProject::new();
    p.write("data/r.csv", "id\n1\n2\n");
    p.write(
        "workflows/w.yaml",
        "name: w\nsteps:\n  - id: r\n    read_csv: data/r.csv\n  - id: c\n    write_csv: {from: r, path: out/c.csv}\n  \
         - id: d\n    write_csv: {from: r, path: out/d.csv}\n  - id: named\n    for_each: r\n    \
         item_key: \"{{item.id}}-{{steps.d.output.count}}\"\n    skip_if: \"{{eq steps.d.output.count 0}}\"\n    \
         command: [python3, -c, \"import sys; open('out/named-' + sys.argv[1], 'w').write(sys.argv[2])\", \"{{item.id}}\", \"{{steps.c.output.path}}\"]\n  \
         - id: whole\n    for_each: r\n    \
         command: [python3, -c, \"import sys; open('out/whole-' + sys.argv[1], 'w').write(sys.argv[2])\", \"{{item.id}}\", \"{{#each @root.steps}}{{@key}} {{/each}}\"]\n",
    );
    let out = p.cxflow().args(["run", "w"]).output().unwrap();
    support::Run::from(out).expect_code(0);
    for id in ["1", "2"] {
        assert!(p.read(&format!("out/named-{id}")).ends_with("out/c.csv"), "{}", p.read(&format!("out/named-{id}")));
        assert_eq!(p.read(&format!("out/whole-{id}")), "r c d named ");
    }
    assert_eq!(p.query("SELECT item_key FROM items WHERE step_id = 'named' ORDER BY item_key"), ["1-2", "2-2"]);
}
