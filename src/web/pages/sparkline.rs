//! A run-duration sparkline as inline SVG: one bar per run, height by duration, colour by
//! status, each with its figures as a tooltip. No script, no library.

use maud::{html, Markup};

use super::fmt;
use crate::store::{RunPoint, RunStatus};

const BAR: u32 = 5;
const GAP: u32 = 1;
const HEIGHT: u32 = 24;

fn colour(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Succeeded => "#1f7a3d",
        RunStatus::Failed => "#b3261e",
        RunStatus::Partial | RunStatus::Interrupted | RunStatus::Skipped => "#9a6400",
        RunStatus::Running => "#1a5fb4",
    }
}

/// Oldest run first, as `WorkflowSummary::recent` gives them.
pub(super) fn svg(points: &[RunPoint]) -> Markup {
    if points.is_empty() {
        return html! { span.muted { "—" } };
    }
    let max = points.iter().filter_map(|p| p.duration_ms).max().unwrap_or(0).max(1);
    let width = points.len() as u32 * (BAR + GAP);
    html! {
        svg.sparkline xmlns="http://www.w3.org/2000/svg" width=(width) height=(HEIGHT) viewBox={ "0 0 " (width) " " (HEIGHT) } role="img" aria-label="durations of the last runs" {
            @for (i, p) in points.iter().enumerate() {
                @let h = p.duration_ms.map_or(1, |d| ((d.max(0) as f64 / max as f64) * (HEIGHT - 1) as f64).round() as u32 + 1);
                rect x=(i as u32 * (BAR + GAP)) y=(HEIGHT - h) width=(BAR) height=(h) fill=(colour(p.status)) {
                    title { "#" (p.id) " " (p.status.as_str()) @if let Some(d) = p.duration_ms { " " (fmt::duration_ms(d)) } }
                }
            }
        }
    }
}
