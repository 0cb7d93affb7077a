//! The items table of a run page: filtered by status, step and key prefix (`q`), in pages
//! linked by `after=<cursor>`.

use maud::{html, Markup};

use super::fmt;
use super::run::RunFilters;
use crate::store::{ItemCursor, ItemRowWithSeq, ItemStatus, Page, StepRow};
use crate::web::layout;

/// Characters of an error or output shown before it is folded.
const CUT: usize = 100;

fn pairs(f: &RunFilters) -> Vec<(&'static str, Option<String>)> {
    vec![("status", f.status.clone()), ("step", f.step.clone()), ("q", f.q.clone())]
}

pub(super) fn section(run_id: i64, steps: &[StepRow], page: &Page<ItemRowWithSeq, ItemCursor>, f: &RunFilters) -> Markup {
    let here = format!("/runs/{run_id}");
    let step = fmt::given(&f.step);
    let status = fmt::given(&f.status);
    html! {
        h2 #items { "Items" }
        form.filters method="get" action=(here) {
            label { "Status" select name="status" {
                option value="" selected[status.is_none()] { "any" }
                @for s in ItemStatus::ALL { option value=(s.as_str()) selected[status == Some(s.as_str())] { (s.as_str()) } }
            } }
            label { "Step" select name="step" {
                option value="" selected[step.is_none()] { "any" }
                @for s in steps { option value=(s.step_id) selected[step == Some(s.step_id.as_str())] { (s.step_id) } }
            } }
            label { "Key starts with" input name="q" value=(f.q.as_deref().unwrap_or("")); }
            button.primary type="submit" { "Filter" }
            a href={ (here) "#items" } { "Clear" }
        }
        @if page.rows.is_empty() {
            p.muted { "No items match." }
        } @else {
            table #items-table {
                thead { tr { th { "Key" } th { "Step" } th { "Status" } th.num { "Attempts" } th { "Error" } th { "Output" } } }
                tbody {
                    @for i in &page.rows {
                        tr {
                            td { code { (i.item_key) } }
                            td { (i.step_id) }
                            td { (layout::status(i.status.as_str())) }
                            td.num { (i.attempts) }
                            td.error { @if let Some(e) = &i.error { (fmt::expandable(e, CUT)) } }
                            td { @if let Some(o) = &i.output { (fmt::expandable(o, CUT)) } }
                        }
                    }
                }
            }
        }
        nav.pager {
            @if fmt::given(&f.after).is_some() { a href={ (fmt::url(&here, &pairs(f))) "#items" } { "« first" } }
            @if let Some(next) = page.next {
                a rel="next" href={ (next_url(&here, f, next)) "#items" } { "next »" }
            }
        }
    }
}

fn next_url(here: &str, f: &RunFilters, next: ItemCursor) -> String {
    let mut p = pairs(f);
    p.push(("after", Some(next.to_string())));
    fmt::url(here, &p)
}
