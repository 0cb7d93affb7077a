//! The table of step kinds, as the engine and the planner use it. The table itself, one line
//! per kind, is `steps::registry::KINDS`; nothing else lists the kinds.

use schemars::gen::SchemaGenerator;
use schemars::schema::Schema;

use super::contract::{BatchStep, ItemStep, Step};
use crate::plan::{KindPlan, PlanCx, StepPlanner};

/// A kind's plan function: its raw YAML value (at the given YAML path) to its planned form;
/// `None` when it has errors, which it reports into the `PlanCx`.
pub type PlanFn<T> = fn(&crate::spec::Node, &str, &mut PlanCx) -> Option<T>;

/// Per-item or batch, with the plan function of that shape.
#[derive(Clone, Copy)]
pub enum Planner {
    PerItem(PlanFn<Box<dyn ItemStep>>),
    Batch(PlanFn<Box<dyn BatchStep>>),
}

/// One line of the table.
#[derive(Clone, Copy)]
pub struct KindDef {
    /// The YAML key (`send_email`).
    pub name: &'static str,
    pub planner: Planner,
    /// The JSON schema of its value, for `cxflow schema`.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
}

/// The schema of spec type `T`, for `KindDef::schema`.
pub fn schema_of<T: schemars::JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

#[derive(Clone, Copy)]
pub struct Registry {
    kinds: &'static [KindDef],
}

impl Registry {
    pub const fn new(kinds: &'static [KindDef]) -> Registry {
        Registry { kinds }
    }

    /// The JSON schema of the workflow format with these kinds.
    pub fn workflow_schema(&self) -> serde_json::Value {
        let kinds: Vec<(&str, crate::spec::schema::KindSchema)> = self.kinds.iter().map(|k| (k.name, k.schema)).collect();
        crate::spec::schema::workflow_schema(&kinds)
    }
}

impl StepPlanner for Registry {
    type Kind = Step;

    fn kind_names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name).collect()
    }

    fn plan_kind(&self, name: &str, raw: &crate::spec::Node, path: &str, cx: &mut PlanCx) -> Option<KindPlan<Step>> {
        let def = self.kinds.iter().find(|k| k.name == name)?;
        Some(match def.planner {
            Planner::PerItem(plan) => {
                let s = plan(raw, path, cx)?;
                KindPlan { default_concurrency: s.default_concurrency(), per_item: true, records: true, kind: Step::Item(s) }
            }
            Planner::Batch(plan) => {
                let s = plan(raw, path, cx)?;
                KindPlan { default_concurrency: 1, per_item: false, records: s.produces_records(), kind: Step::Batch(s) }
            }
        })
    }
}
