//! Durations as workflows and `cxflow.yaml` write them (`30s`, `2 seconds`, `1h 30m`); the
//! accepted forms are listed in docs/workflows.md ("Durations"), checked by the test below.

use std::time::Duration;

/// `s` as a duration, or None; a bare number has no unit and is refused.
pub(crate) fn parse(s: &str) -> Option<Duration> {
    humantime::parse_duration(s.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::parse;

    /// The section of docs/workflows.md that lists the forms: every spelling and example in it
    /// must parse, so the reference never promises a form the parser refuses.
    #[test]
    fn the_documented_forms_parse() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/workflows.md")).unwrap();
        let section = doc.split("### Durations\n").nth(1).expect("docs/workflows.md has a `### Durations` section");
        let section = section.split("\n#").next().unwrap();
        let mut checked = 0;
        for row in section.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| unit")) {
            for unit in row.split('`').skip(1).step_by(2) {
                assert!(parse(&format!("2{unit}")).is_some() && parse(&format!("2 {unit}")).is_some(), "`2{unit}` is documented");
                checked += 1;
            }
        }
        let examples = section.split("For example:").nth(1).and_then(|e| e.split(". A bare").next()).expect("an example list");
        for f in examples.split('`').skip(1).step_by(2) {
            assert!(parse(f).is_some(), "`{f}` is documented as accepted");
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} forms found in the section");
        assert_eq!(parse("1.5s"), Some(std::time::Duration::from_millis(1500)));
        assert_eq!(parse("30"), None, "the section says a bare number is refused");
    }
}
