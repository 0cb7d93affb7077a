//! Which `steps.<id>` a compiled template can read, so that a render copies only those.
//!
//! Handlebars owns its context: a render of a `&Value` copies it whole (`Context::wraps`). A
//! workflow's context holds every earlier step's output, so rendering a step's templates cost the
//! size of all the steps before it, and a workflow of n steps n². Most templates name the steps
//! they read (`steps.fetch.output.path`); for those a render copies the context without the
//! other steps, and renders the same text, since nothing else in the template can reach them.
//!
//! Anything that could reach `steps` another way reads them all, as before: the whole context or
//! a parent (`this`, `.`, `..`, `@root`), `steps` as a value (`json steps`, `#each steps`,
//! `lookup steps name`), a partial or an inline decorator (their text is not looked at here).

use std::collections::BTreeSet;

use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::{Path, PathSeg};
use serde_json::{Map, Value};

/// The `steps` a template reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reads {
    /// Only these ids, each as `steps.<id>...`.
    Steps(BTreeSet<String>),
    All,
}

impl Reads {
    /// Reads no step: what a set of no templates reads.
    pub fn none() -> Reads {
        Reads::Steps(BTreeSet::new())
    }

    /// What this and `other` read together.
    pub fn add(&mut self, other: &Reads) {
        match (&mut *self, other) {
            (Reads::All, _) => {}
            (_, Reads::All) => *self = Reads::All,
            (Reads::Steps(a), Reads::Steps(b)) => a.extend(b.iter().cloned()),
        }
    }

    /// `ctx` as something reading only these steps sees it (`narrow`); `None` when it reads
    /// them all, or `ctx` is not the usual object with a `steps` object.
    pub fn narrow(&self, ctx: &Value) -> Option<Value> {
        match self {
            Reads::Steps(ids) => narrow(ctx, ids),
            Reads::All => None,
        }
    }
}

pub(crate) fn reads(t: &Template) -> Reads {
    let mut ids = BTreeSet::new();
    match template(t, &mut ids) {
        Some(()) => Reads::Steps(ids),
        None => Reads::All,
    }
}

/// `None`: the template may read any step.
fn template(t: &Template, ids: &mut BTreeSet<String>) -> Option<()> {
    t.elements.iter().try_for_each(|e| element(e, ids))
}

fn element(e: &TemplateElement, ids: &mut BTreeSet<String>) -> Option<()> {
    match e {
        TemplateElement::RawString(_) | TemplateElement::Comment(_) => Some(()),
        TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) | TemplateElement::HelperBlock(h) => helper(h, ids),
        TemplateElement::DecoratorExpression(_)
        | TemplateElement::DecoratorBlock(_)
        | TemplateElement::PartialExpression(_)
        | TemplateElement::PartialBlock(_) => None,
        // A kind of element a later handlebars adds: unknown, so it may read anything.
        _ => None,
    }
}

fn helper(h: &HelperTemplate, ids: &mut BTreeSet<String>) -> Option<()> {
    param(&h.name, ids)?;
    h.params.iter().try_for_each(|p| param(p, ids))?;
    h.hash.values().try_for_each(|p| param(p, ids))?;
    // Paths inside a block are read at any depth: over-counting costs a copy, never a wrong render.
    h.template.iter().chain(&h.inverse).try_for_each(|t| template(t, ids))
}

fn param(p: &Parameter, ids: &mut BTreeSet<String>) -> Option<()> {
    match p {
        Parameter::Literal(_) | Parameter::Path(Path::Local(_)) => Some(()),
        Parameter::Subexpression(s) => element(&s.element, ids),
        Parameter::Path(Path::Relative((segs, _))) => path(segs, ids),
        // A helper's name, or a plain name handlebars looks up when no helper has it.
        Parameter::Name(n) => {
            let first = n.split(['.', '/', '[']).next().unwrap_or("");
            let context = matches!(first, "" | "this" | "steps") || n.starts_with('@');
            (!context).then_some(())
        }
        _ => None,
    }
}

fn path(segs: &[PathSeg], ids: &mut BTreeSet<String>) -> Option<()> {
    let named: Option<Vec<&str>> = segs
        .iter()
        .map(|s| match s {
            PathSeg::Named(n) => Some(n.as_str()),
            // `this`, `..`, `@root` (`Ruled`): where the path goes depends on the scope.
            _ => None,
        })
        .collect();
    match named?.as_slice() {
        ["steps", id, ..] => {
            ids.insert((*id).to_string());
            Some(())
        }
        // The current context itself (`.`, `this`), or `steps` as a whole.
        [] | ["steps"] | ["this" | "@root" | "." | "..", ..] => None,
        _ => Some(()),
    }
}

/// The context a template that reads `ids` sees: `ctx` without the other steps. `None` when
/// `ctx` is not the usual object with a `steps` object (it is then copied whole).
pub(crate) fn narrow(ctx: &Value, ids: &BTreeSet<String>) -> Option<Value> {
    let (Value::Object(roots), Some(Value::Object(steps))) = (ctx, ctx.get("steps")) else {
        return None;
    };
    let mut out = Map::with_capacity(roots.len());
    for (k, v) in roots {
        let v = match k.as_str() {
            "steps" => Value::Object(ids.iter().filter_map(|id| Some((id.clone(), steps.get(id)?.clone()))).collect()),
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Some(Value::Object(out))
}
