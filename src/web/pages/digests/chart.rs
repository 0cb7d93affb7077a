//! A team's trends over its digests as inline SVG, one small chart per figure (items, urgent,
//! average rating, CSAT): no script, no library, readable without hovering (values are printed
//! next to the points while they fit) and with each point's run and value as a tooltip. A
//! digest without rated feedback has no rating and no CSAT: the line breaks there.

use maud::{html, Markup};

use crate::store::DigestPoint;

const W: f64 = 360.0;
const H: f64 = 170.0;
const LEFT: f64 = 46.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 18.0;
const BOTTOM: f64 = 40.0;
/// Between the axis and the first and last points, so their labels clear the tick labels.
const PAD: f64 = 16.0;
/// Values are printed above the points up to this many points; beyond, tooltips only.
const LABELLED: usize = 12;
/// Run ids under the x axis, at most.
const X_LABELS: usize = 8;

/// One figure over the digests, oldest first.
struct Series {
    /// `data-metric` of the chart, and what tests find it by.
    metric: &'static str,
    title: &'static str,
    /// The y axis's label.
    axis: &'static str,
    colour: &'static str,
    values: Vec<Option<f64>>,
    /// The y range: fixed for a scale with known ends, from 0 to a round number above the
    /// largest value otherwise.
    range: Option<(f64, f64)>,
    show: fn(f64) -> String,
}

fn count(v: f64) -> String {
    format!("{v:.0}")
}

/// Ticks of a count axis may fall between integers (0, 0.5, 1).
fn tick(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub(super) fn rating(v: f64) -> String {
    format!("{v:.2}")
}

pub(super) fn percent(v: f64) -> String {
    format!("{v:.1}%")
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `max` (and at least 1).
fn round_up(max: f64) -> f64 {
    let max = max.max(1.0);
    let mut p = 10f64.powf(max.log10().floor());
    loop {
        for m in [1.0, 2.0, 5.0] {
            if m * p >= max {
                return m * p;
            }
        }
        p *= 10.0;
    }
}

type Figure =
    (&'static str, &'static str, &'static str, &'static str, Option<(f64, f64)>, fn(f64) -> String, fn(&DigestPoint) -> Option<f64>);

/// metric, title, y axis, colour, range, how a value is written, the value.
const FIGURES: [Figure; 4] = [
    ("items", "Items", "items", "#1a5fb4", None, count, |p| Some(p.count as f64)),
    ("urgent", "Urgent", "urgent items", "#b3261e", None, count, |p| Some(p.urgent as f64)),
    ("rating", "Average rating", "rating (1-5)", "#9a6400", Some((1.0, 5.0)), rating, |p| p.avg_rating),
    ("csat", "CSAT (ratings 4-5)", "CSAT %", "#1f7a3d", Some((0.0, 100.0)), percent, |p| p.csat),
];

/// The four charts of a team's digests, given oldest first.
pub(super) fn trends(points: &[&DigestPoint]) -> Markup {
    let runs: Vec<i64> = points.iter().map(|p| p.run_id).collect();
    let series = FIGURES.map(|(metric, title, axis, colour, range, show, value)| Series {
        metric,
        title,
        axis,
        colour,
        values: points.iter().map(|p| value(p)).collect(),
        range,
        show,
    });
    html! {
        div.trends style="display:flex;flex-wrap:wrap;gap:1em" {
            @for s in &series { (chart(s, &runs)) }
        }
    }
}

fn chart(s: &Series, runs: &[i64]) -> Markup {
    let (lo, hi) = s.range.unwrap_or_else(|| (0.0, round_up(s.values.iter().flatten().copied().fold(0.0, f64::max))));
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let n = runs.len();
    let x = |i: usize| if n <= 1 { LEFT + pw / 2.0 } else { LEFT + PAD + i as f64 * (pw - 2.0 * PAD) / (n - 1) as f64 };
    let y = |v: f64| TOP + ph - (v.clamp(lo, hi) - lo) / (hi - lo) * ph;
    let ticks = [lo, (lo + hi) / 2.0, hi];
    let every = n.div_ceil(X_LABELS).max(1);
    let gaps = s.values.iter().any(Option::is_none);
    html! {
        figure.trend style={ "margin:0;background:#fff;border:1px solid #dde1e8;padding:.3em .5em;width:" (W + 20.0) "px" } {
            figcaption { strong { (s.title) } @if gaps { br; small.muted { "gaps: digests with no rated feedback" } } }
            svg data-metric=(s.metric) xmlns="http://www.w3.org/2000/svg" width=(W) height=(H) viewBox={ "0 0 " (W) " " (H) }
                role="img" aria-label={ (s.title) " per run, oldest first" } font-size="10" font-family="system-ui, sans-serif" {
                @for t in ticks {
                    line x1=(LEFT) x2=(W - RIGHT) y1=(y(t)) y2=(y(t)) stroke="#e6e9ef" {}
                    text x=(LEFT - 4.0) y=(y(t) + 3.0) text-anchor="end" fill="#5b6475" { (tick(t)) }
                }
                line x1=(LEFT) x2=(LEFT) y1=(TOP) y2=(TOP + ph) stroke="#5b6475" {}
                line x1=(LEFT) x2=(W - RIGHT) y1=(TOP + ph) y2=(TOP + ph) stroke="#5b6475" {}
                text transform={ "translate(11 " (TOP + ph / 2.0) ") rotate(-90)" } text-anchor="middle" fill="#5b6475" { (s.axis) }
                text x=(LEFT + pw / 2.0) y=(H - 4.0) text-anchor="middle" fill="#5b6475" { "run" }
                @for (i, r) in runs.iter().enumerate() {
                    @if i % every == 0 || i + 1 == n {
                        text x=(x(i)) y=(TOP + ph + 13.0) text-anchor="middle" fill="#5b6475" { "#" (r) }
                    }
                }
                path d=(line_path(&s.values, x, y)) fill="none" stroke=(s.colour) stroke-width="1.5" {}
                @for (i, v) in s.values.iter().enumerate() {
                    @if let Some(v) = v {
                        circle.pt cx=(x(i)) cy=(y(*v)) r="3" fill=(s.colour) { title { "run #" (runs[i]) ": " ((s.show)(*v)) } }
                        @if n <= LABELLED {
                            text x=(x(i)) y=(y(*v) - 6.0) text-anchor="middle" fill="#1d2330" { ((s.show)(*v)) }
                        }
                    }
                }
            }
        }
    }
}

/// `M … L …`, started again after each missing value so the line shows the gap.
fn line_path(values: &[Option<f64>], x: impl Fn(usize) -> f64, y: impl Fn(f64) -> f64) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => {
                d.push_str(&format!("{}{:.1} {:.1} ", if pen_down { "L" } else { "M" }, x(i), y(*v)));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers_and_missing_values_break_the_line() {
        assert_eq!([0.0, 1.0, 3.0, 7.0, 10.0, 11.0, 240.0].map(round_up), [1.0, 1.0, 5.0, 10.0, 10.0, 20.0, 500.0]);
        let d = line_path(&[Some(1.0), Some(2.0), None, Some(3.0)], |i| i as f64 * 10.0, |v| v);
        assert_eq!(d, "M0.0 1.0 L10.0 2.0 M30.0 3.0");
        assert_eq!(line_path(&[None, None], |i| i as f64, |v| v), "");
        assert_eq!((tick(0.5), tick(2.0), rating(4.256), percent(66.666)), ("0.5".into(), "2".into(), "4.26".into(), "66.7%".into()));
    }
}
