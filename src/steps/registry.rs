//! The step registry: every step kind, one line each. Adding a kind is its spec type in
//! `spec/kinds/`, its module in `steps/` and a line here (docs/architecture.md walks through
//! it); nothing else in cxflow lists the kinds.

use crate::engine::registry::schema_of;
use crate::engine::{KindDef, Planner, Registry};
use crate::spec::kinds::{browser::BrowserSpec, records, route::RouteSpec, send_email::SendEmailSpec};

pub static KINDS: &[KindDef] = &[
    KindDef { name: "read_csv", planner: Planner::Batch(super::read_csv::plan), schema: schema_of::<records::FileSource> },
    KindDef { name: "read_json", planner: Planner::Batch(super::read_json::plan), schema: schema_of::<records::FileSource> },
    KindDef { name: "sql", planner: Planner::Batch(super::sql::plan), schema: schema_of::<records::SqlSpec> },
    KindDef { name: "write_csv", planner: Planner::Batch(super::write::plan_csv), schema: schema_of::<records::WriteSpec> },
    KindDef { name: "write_json", planner: Planner::Batch(super::write::plan_json), schema: schema_of::<records::WriteSpec> },
    KindDef { name: "command", planner: Planner::PerItem(super::command::plan), schema: schema_of::<records::CommandSpec> },
    KindDef { name: "send_email", planner: Planner::PerItem(super::send_email::plan), schema: schema_of::<SendEmailSpec> },
    KindDef { name: "browser", planner: Planner::PerItem(super::browser::plan), schema: schema_of::<BrowserSpec> },
    KindDef { name: "route", planner: Planner::Batch(super::route::plan), schema: schema_of::<RouteSpec> },
];

/// The registry the planner and the engine use.
pub static REGISTRY: Registry = Registry::new(KINDS);

#[cfg(test)]
mod tests {
    use super::*;

    /// Plan `src` as `w.yaml` in an empty project; the first error, rendered.
    fn first_error(src: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "id\n").unwrap();
        let file = std::sync::Arc::new(crate::spec::parse(std::path::Path::new("w.yaml"), src.to_string()).unwrap());
        let config = crate::config::Config::default();
        crate::plan::build(file, &config, dir.path(), &REGISTRY).unwrap_err().0[0].to_string()
    }

    // The spec layer keeps unknown step keys (it does not know the kinds); planning reports them
    // at the key, as serde did, with a suggestion from the settings and the registered kinds.
    #[test]
    fn unknown_step_key_points_at_it_and_suggests() {
        let e = first_error("name: x\nsteps:\n  - id: a\n    read_cvs: a.csv\n");
        assert!(e.starts_with("error: unknown field `read_cvs` in `steps[0]`\n  --> w.yaml:4:5"), "{e}");
        assert!(e.ends_with("= help: did you mean `read_csv`?"), "{e}");
        let e = first_error("name: x\nsteps:\n  - id: a\n    read_csv: a.csv\n    for_eahc: a\n");
        assert!(e.starts_with("error: unknown field `for_eahc` in `steps[0]`\n  --> w.yaml:5:5"), "{e}");
        assert!(e.ends_with("= help: did you mean `for_each`?"), "{e}");
    }

    #[test]
    fn errors_inside_a_kind_point_at_their_line_and_column() {
        let e = first_error("name: x\nsteps:\n  - id: a\n    send_email:\n      to: a@example.org\n      subjet: hi\n");
        assert!(e.starts_with("error: unknown field `subjet` in `steps[0].send_email`\n  --> w.yaml:6:7"), "{e}");
        assert!(e.contains("did you mean `subject`?"), "{e}");
        let e = first_error("name: x\nsteps:\n  - id: a\n    browser:\n      sessions: two\n      actions: []\n");
        assert!(
            e.starts_with("error: invalid type: string \"two\", expected a whole number in `steps[0].browser.sessions`\n  --> w.yaml:5:17"),
            "{e}"
        );
    }

    /// A whole group (`steps`, `vars`) where a template must name one value: the error says so
    /// and lists the names, rather than asking to define an empty name.
    #[test]
    fn a_whole_group_in_a_template_names_what_to_pick() {
        let e = first_error(
            "name: x\nsteps:\n  - id: a\n    read_csv: a.csv\n  - id: b\n    for_each: a\n    command: [echo, \"{{#each steps}}{{@key}}{{/each}}\"]\n",
        );
        assert_eq!(
            e,
            "error: `steps` is a group of values: a template names one of them, like `steps.<name>`\n  --> w.yaml:7:21\n  |\n\
             7 |     command: [echo, \"{{#each steps}}{{@key}}{{/each}}\"]\n  |                     ^\n  = help: one of `steps.a`"
        );
        let e = first_error(
            "name: x\nsteps:\n  - id: a\n    read_csv: a.csv\n  - id: b\n    for_each: a\n    command: [echo, \"{{json vars}}\"]\n",
        );
        assert!(e.ends_with("= help: there is nothing under `vars` here"), "{e}");
    }

    #[test]
    fn every_kind_is_listed_once() {
        let mut names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "a kind is listed twice");
        for k in KINDS {
            assert!(!crate::spec::model::STEP_SETTINGS.contains(&k.name), "`{}` is a step setting, not a kind", k.name);
        }
    }
}
