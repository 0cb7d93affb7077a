//! Narrowed renders against whole-context renders: the same text, or the same error.

use serde_json::{json, Value};

use super::*;

/// Pieces of templates, combined below; `steps` is read in every way handlebars allows.
const PIECES: &[&str] = &[
    "{{steps.a.output.path}}",
    "{{steps.b.skipped}}",
    "{{steps.zz.output}}",
    "{{default steps.zz.x 'none'}}",
    "{{#if steps.b.skipped}}b{{else}}{{steps.c.count}}{{/if}}",
    "{{#with steps.a}}{{output.path}}{{/with}}",
    "{{#each steps.a.output.rows}}{{this.n}}{{@index}}{{/each}}",
    "{{#each steps}}{{@key}}={{json this}};{{/each}}",
    "{{json steps}}",
    "{{len steps}}",
    "{{lookup steps 'a'}}",
    "{{lookup (lookup steps 'c') 'count'}}",
    "{{json @root.steps.c}}",
    "{{json this}}",
    "{{#with this}}{{steps.c.count}}{{/with}}",
    "{{json ./steps}}",
    "{{#each item.lines}}{{../steps.c.count}}{{@root.steps.a.output.path}}{{/each}}",
    "{{steps.[a].output.path}}",
    "{{upper (default steps.a.output.path 'x')}}",
    "{{#unless steps.d}}no d{{/unless}}",
    "{{vars.x}} {{item.name}} {{run.id}}",
    "{{eq steps.c.count 3}}",
    "{{steps}}",
    "Zoë {{steps.é.v}}",
];

fn ctx() -> Value {
    json!({
        "vars": {"x": "X"},
        "run": {"id": 7},
        "item": {"name": "Zoë", "lines": [1, 2]},
        "steps": {
            "a": {"output": {"path": "/p/a.json", "rows": [{"n": "ü"}, {"n": 2}]}},
            "b": {"skipped": true},
            "c": {"count": 3, "ok": 3},
            "é": {"v": "accent"},
        },
    })
}

fn whole(t: &Templates, r: &TemplateRef, ctx: &Value) -> Result<String, String> {
    let c = Context::wraps(ctx).unwrap();
    t.render_in(r, &c).map_err(|e| e.0)
}

#[test]
fn narrowed_renders_match_whole_ones() {
    let ctx = ctx();
    let mut t = Templates::new();
    let mut refs = Vec::new();
    // Every piece alone and every pair, in each output.
    for (i, a) in PIECES.iter().enumerate() {
        for (j, b) in PIECES.iter().enumerate().filter(|(j, _)| *j >= i) {
            let src = if i == j { a.to_string() } else { format!("{a}|{b}") };
            for o in [Output::Text, Output::Html, Output::Markdown] {
                refs.push(t.add_as(&format!("t{i}-{j}-{o:?}"), &src, o).unwrap_or_else(|e| panic!("{src}: {e}")));
            }
        }
    }
    for r in &refs {
        assert_eq!(t.render(r, &ctx).map_err(|e| e.0), whole(&t, r, &ctx), "{}", r.0);
    }
}

#[test]
fn what_a_template_reads() {
    let mut t = Templates::new();
    let mut reads = |src: &str| {
        let r = t.add(src, src).unwrap_or_else(|e| panic!("{src}: {e}"));
        t.reads[&(Output::Text, r.0)].clone()
    };
    let ids = |v: &[&str]| Reads::Steps(v.iter().map(|s| s.to_string()).collect());
    assert_eq!(reads("{{steps.a.output}} {{#if steps.b.skipped}}{{steps.c}}{{/if}}"), ids(&["a", "b", "c"]));
    assert_eq!(reads("{{vars.x}}{{item.y}}"), ids(&[]));
    assert_eq!(reads("{{upper (lookup steps.a 'x')}}"), ids(&["a"]));
    for all in
        ["{{json steps}}", "{{#each steps}}{{/each}}", "{{json this}}", "{{@root.steps.a}}", "{{json ./steps}}", "{{> p}}", "{{steps}}"]
    {
        assert_eq!(reads(all), Reads::All, "{all}");
    }
}

#[test]
fn a_context_without_steps_is_copied_whole() {
    let mut t = Templates::new();
    let r = t.add("x", "{{item.a}}{{steps.a}}").unwrap();
    assert_eq!(t.render(&r, &json!({"item": {"a": 1}, "steps": {"a": 2}})).unwrap(), "12");
    assert!(t.render(&r, &json!({"item": {"a": 1}})).is_err());
    assert!(reads::narrow(&json!([1]), &Default::default()).is_none());
}
