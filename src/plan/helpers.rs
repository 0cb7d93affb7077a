//! The one helper set of every template (see `templates`): the ones people expect in customer
//! emails (`date`, `default`, `pluralize`, `upper`, `lower`, `trim`, `json`) and the digests' own
//! (`change`, `inc`). They return values (call_inner) instead of writing to the output, so the
//! output's escaping still applies: `{{upper item.name}}` in an HTML part is escaped like
//! `{{item.name}}`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, JsonRender, PathAndJson, RenderContext, RenderError, RenderErrorReason, ScopedJson,
};
use serde_json::Value;

/// Helper names, for the planner's variable check (they are not variables). Every template,
/// inline or in a file, email body or digest, gets the same helpers.
pub const NAMES: &[&str] =
    &["date", "default", "pluralize", "pluralise", "upper", "uppercase", "lower", "lowercase", "trim", "json", "change", "inc"];

pub fn register(reg: &mut Handlebars<'static>) {
    handlebars::handlebars_helper!(trim: |s: str| s.trim().to_string());
    handlebars::handlebars_helper!(json: |v: Json| v.to_string());
    // `{{change item.change.csat " pts"}}` and `{{inc @index}}` (a 1-based list number).
    handlebars::handlebars_helper!(change: |x: Json, unit: str| change_phrase(x.as_f64(), unit));
    handlebars::handlebars_helper!(inc: |x: u64| x + 1);
    reg.register_helper("trim", Box::new(trim));
    reg.register_helper("json", Box::new(json));
    reg.register_helper("change", Box::new(change));
    reg.register_helper("inc", Box::new(inc));
    reg.register_helper("date", Box::new(DateHelper));
    reg.register_helper("default", Box::new(DefaultHelper));
    reg.register_helper("pluralize", Box::new(PluralizeHelper));
    reg.register_helper("pluralise", Box::new(PluralizeHelper));
    reg.register_helper("upper", Box::new(CaseHelper(true)));
    reg.register_helper("uppercase", Box::new(CaseHelper(true)));
    reg.register_helper("lower", Box::new(CaseHelper(false)));
    reg.register_helper("lowercase", Box::new(CaseHelper(false)));
}

/// Helpers see a missing field as a "missing" param, not an error, even in strict mode; we turn
/// it back into the strict-mode error so the item fails naming the field.
fn present<'a, 'rc>(h: &'a Helper<'rc>, idx: usize) -> Result<&'a PathAndJson<'rc>, RenderError> {
    let p = h.param(idx).ok_or(RenderErrorReason::ParamNotFoundForIndex("helper", idx))?;
    if p.is_value_missing() {
        return Err(RenderErrorReason::MissingVariable(p.relative_path().cloned()).into());
    }
    Ok(p)
}

fn derived<'rc>(v: impl Into<Value>) -> Result<ScopedJson<'rc>, RenderError> {
    Ok(ScopedJson::Derived(v.into()))
}

/// `{{date item.closed_at "%d %B %Y"}}`: accepts RFC 3339, `YYYY-MM-DD[ HH:MM[:SS]]`, unix
/// seconds, or the word `now`; default format `%Y-%m-%d`.
struct DateHelper;
impl HelperDef for DateHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let v = present(h, 0)?;
        let fmt = h.param(1).map(|p| p.value().render()).unwrap_or_else(|| "%Y-%m-%d".into());
        let dt = parse_date(v.value()).ok_or_else(|| {
            RenderErrorReason::Other(format!("date: cannot read `{}` as a date (use RFC 3339 or YYYY-MM-DD)", v.value().render()))
        })?;
        // chrono panics on a bad format string when displayed; check it first.
        let items: Vec<_> = chrono::format::StrftimeItems::new(&fmt).collect();
        if items.iter().any(|i| matches!(i, chrono::format::Item::Error)) {
            return Err(RenderErrorReason::Other(format!("date: bad format `{fmt}`")).into());
        }
        derived(dt.format_with_items(items.into_iter()).to_string())
    }
}

fn parse_date(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Number(n) => Utc.timestamp_opt(n.as_i64()?, 0).single(),
        Value::String(s) => {
            let s = s.trim();
            if s == "now" {
                return Some(Utc::now());
            }
            if let Ok(d) = DateTime::parse_from_rfc3339(s) {
                return Some(d.with_timezone(&Utc));
            }
            for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
                if let Ok(d) = NaiveDateTime::parse_from_str(s, f) {
                    return Some(d.and_utc());
                }
            }
            NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc())
        }
        _ => None,
    }
}

/// `{{default item.nickname item.name}}` or `{{default item.nickname "there"}}`: the first param
/// unless it is missing, null or empty. This is the one sanctioned way to allow a missing field.
struct DefaultHelper;
impl HelperDef for DefaultHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let first = h.param(0);
        let empty = match first {
            None => true,
            Some(p) if p.is_value_missing() => true,
            Some(p) => matches!(p.value(), Value::Null) || p.value().as_str() == Some(""),
        };
        if empty {
            derived(present(h, 1)?.value().clone())
        } else {
            derived(first.unwrap().value().clone())
        }
    }
}

/// `{{pluralize item.count "ticket"}}` → `ticket`/`tickets`; irregular: `{{pluralize n "person" "people"}}`.
struct PluralizeHelper;
impl HelperDef for PluralizeHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let n = present(h, 0)?.value();
        let n =
            n.as_f64().or_else(|| n.as_str().and_then(|s| s.trim().parse().ok())).ok_or(RenderErrorReason::InvalidParamType("number"))?;
        let one = present(h, 1)?.value().render();
        let many = match h.param(2) {
            Some(p) if !p.is_value_missing() => p.value().render(),
            _ => format!("{one}s"),
        };
        derived(if n == 1.0 { one } else { many })
    }
}

/// ` (+0.3 since the previous digest)`; empty when there is nothing to compare with.
fn change_phrase(x: Option<f64>, unit: &str) -> String {
    match x {
        None => String::new(),
        Some(0.0) => " (no change since the previous digest)".into(),
        Some(x) => {
            let sign = if x > 0.0 { "+" } else { "" };
            format!(" ({sign}{}{unit} since the previous digest)", trim_float(x))
        }
    }
}

fn trim_float(x: f64) -> String {
    let s = format!("{:.2}", x);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

struct CaseHelper(bool);
impl HelperDef for CaseHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let s = present(h, 0)?.value().render();
        derived(if self.0 { s.to_uppercase() } else { s.to_lowercase() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_phrases() {
        assert_eq!(change_phrase(Some(0.25), ""), " (+0.25 since the previous digest)");
        assert_eq!(change_phrase(Some(-5.0), " pts"), " (-5 pts since the previous digest)");
        assert_eq!(change_phrase(Some(0.0), ""), " (no change since the previous digest)");
        assert_eq!(change_phrase(None, ""), "");
    }

    #[test]
    fn signed_numbers() {
        assert_eq!(trim_float(0.5), "0.5");
        assert_eq!(trim_float(-1.25), "-1.25");
        assert_eq!(trim_float(3.0), "3");
    }
}
