//! A small horizontal bar chart as inline SVG, embedded unescaped in HTML digests (`{{{...}}}`),
//! so every label taken from feedback data is XML-escaped here.

use std::fmt::Write;

const BAR_H: usize = 18;
const GAP: usize = 6;
const LABEL_W: usize = 110;
const BAR_W: usize = 240;
const MAX_BARS: usize = 8;

/// `title` and `bars` (label, count) → `<svg>` text. More than `MAX_BARS` bars are folded into
/// "other" so the chart stays small.
pub fn bar_chart(title: &str, bars: &[(String, u64)]) -> String {
    let mut bars: Vec<(String, u64)> = bars.to_vec();
    if bars.len() > MAX_BARS {
        let other: u64 = bars[MAX_BARS - 1..].iter().map(|b| b.1).sum();
        bars.truncate(MAX_BARS - 1);
        bars.push(("other".into(), other));
    }
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let width = LABEL_W + BAR_W + 60;
    let height = 24 + bars.len().max(1) * (BAR_H + GAP);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{t}" font-family="sans-serif" font-size="12">"#,
        t = escape(title)
    );
    let _ = write!(s, r##"<text x="0" y="14" font-weight="bold" fill="#333">{}</text>"##, escape(title));
    if bars.is_empty() {
        let _ = write!(s, r##"<text x="0" y="38" fill="#777">no feedback</text>"##);
    }
    for (i, (label, n)) in bars.iter().enumerate() {
        let y = 24 + i * (BAR_H + GAP);
        let w = ((*n as f64 / max as f64) * BAR_W as f64).round().max(if *n > 0 { 1.0 } else { 0.0 }) as usize;
        let short: String = label.chars().take(16).collect();
        let _ = write!(
            s,
            r##"<text x="{lx}" y="{ty}" text-anchor="end" fill="#333">{l}</text><rect x="{LABEL_W}" y="{y}" width="{w}" height="{BAR_H}" fill="#4a7bd0"/><text x="{nx}" y="{ty}" fill="#333">{n}</text>"##,
            lx = LABEL_W - 6,
            ty = y + 13,
            l = escape(&short),
            nx = LABEL_W + w + 4,
        );
    }
    s.push_str("</svg>");
    s
}

pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_scaled_and_labels_escaped() {
        let svg = bar_chart("By channel", &[("email".into(), 10), ("<script>".into(), 5)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"width="240""#), "largest bar spans the full width");
        assert!(svg.contains(r#"width="120""#), "half as many, half as wide");
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script>"));
    }

    #[test]
    fn many_bars_fold_into_other_and_empty_says_so() {
        let bars: Vec<(String, u64)> = (0..12).map(|i| (format!("c{i}"), 1)).collect();
        let svg = bar_chart("x", &bars);
        assert!(svg.contains(">other<") && svg.contains(">5<"));
        assert!(bar_chart("x", &[]).contains("no feedback"));
    }
}
