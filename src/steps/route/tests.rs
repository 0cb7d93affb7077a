//! Rule semantics over small CSV inputs.

use super::bucket::Limits;
use super::compile::{compile, CompileInput, RuleError, RuleSet};
use super::router::Router;
use super::rules::{FieldsSpec, Mode, RulesFile};
use super::seen::{IdBatcher, SeenIds};
use super::source::route_csv;
use super::values::parse_timestamp;

const AS_OF: &str = "2024-05-02T12:00:00Z";

fn rules(yaml: &str, unmatched: Option<&str>) -> Result<RuleSet, Vec<RuleError>> {
    let file: RulesFile = serde_saphyr::from_str(yaml).expect("yaml");
    let fields = FieldsSpec::default();
    compile(&CompileInput {
        teams: &file.teams,
        teams_path: "teams",
        fields: &fields,
        unmatched,
        unmatched_path: "unmatched",
        as_of: parse_timestamp(AS_OF.as_bytes()).unwrap(),
    })
}

const CSV: &str = "\
id,created_at,channel,product_area,rating,text
1,2024-05-02T10:00:00Z,email,billing,1,I was charged twice! Refund please
2,2024-04-20T10:00:00Z,chat,app,5,Love the new app
3,2024-05-02T09:00:00Z,phone,app,2,App crashes on login
4,2024-05-01T09:00:00Z,email,shipping,3,Parcel late
5,2024-05-02T11:00:00Z,chat,billing,4,Invoice was clear
";

/// Routes `csv` and returns, per team, the ids it received (in input order).
fn route<'a>(rs: &'a RuleSet, mode: Mode, csv: &str, seen: Option<&'a SeenIds>) -> (Vec<Vec<String>>, Router<'a>) {
    let lim = Limits { urgent: 100, sample: 100, keywords: 10, breakdown: 10 };
    let mut router = Router::new(rs, mode, lim, seen, IdBatcher::new(1000, None));
    route_csv(std::io::Cursor::new(csv.as_bytes()), &rs.fields, &mut router, &|| false).unwrap();
    let ids = router
        .buckets
        .iter()
        .map(|b| {
            let mut items: Vec<_> = b.urgent_items().into_iter().chain(b.sample_items()).collect();
            items.sort_by_key(|i| i.seq);
            items.iter().map(|i| i.json["id"].as_str().unwrap().to_string()).collect()
        })
        .collect();
    (ids, router)
}

fn ok(yaml: &str, unmatched: Option<&str>) -> RuleSet {
    rules(yaml, unmatched).unwrap_or_else(|e| panic!("{e:?}"))
}

const TEAMS: &str = r#"
teams:
  - name: billing
    email: billing@example.com
    when: {field: product_area, equals: Billing}
  - name: refunds
    email: refunds@example.com
    priority: 5
    when: {field: text, contains: [refund, "charged twice"]}
    urgent: {field: rating, lte: 2}
  - name: app
    email: app@example.com
    when:
      all:
        - {field: product_area, one_of: [app, mobile]}
        - not: {field: rating, gte: 4}
  - name: triage
    email: triage@example.com
"#;

#[test]
fn first_match_uses_priority_then_file_order() {
    let rs = ok(TEAMS, Some("triage"));
    let (ids, r) = route(&rs, Mode::FirstMatch, CSV, None);
    // refunds (priority 5) wins record 1 over billing.
    assert_eq!(ids, vec![vec!["5"], vec!["1"], vec!["3"], vec!["2", "4"]]);
    assert_eq!(r.counts.routed, 5);
}

#[test]
fn all_matches_gives_a_record_to_every_matching_team() {
    let rs = ok(TEAMS, Some("triage"));
    let (ids, _) = route(&rs, Mode::AllMatches, CSV, None);
    assert_eq!(ids, vec![vec!["1", "5"], vec!["1"], vec!["3"], vec!["2", "4"]]);
}

#[test]
fn without_unmatched_team_records_are_dropped_and_counted() {
    let yaml = TEAMS.replace("  - name: triage\n    email: triage@example.com\n", "");
    let rs = ok(&yaml, None);
    let (ids, r) = route(&rs, Mode::FirstMatch, CSV, None);
    assert_eq!(ids.len(), 3);
    assert_eq!(r.counts.dropped, 2);
    assert_eq!(r.counts.routed, 3);
}

#[test]
fn urgent_condition_and_keywords() {
    let rs = ok(TEAMS, Some("triage"));
    let (_, r) = route(&rs, Mode::FirstMatch, CSV, None);
    let refunds = &r.buckets[1];
    assert_eq!(refunds.urgent_count, 1);
    let kw = refunds.keywords.sorted();
    assert_eq!(kw, vec![("charged twice".to_string(), 1), ("refund".to_string(), 1)]);
}

fn matches(cond: &str) -> Vec<String> {
    let yaml = format!("teams:\n  - name: t\n    when: {cond}\n");
    let rs = ok(&yaml, None);
    let (ids, r) = route(&rs, Mode::FirstMatch, CSV, None);
    assert_eq!(r.counts.errors, 0, "{:?}", r.errors);
    ids.into_iter().next().unwrap()
}

#[test]
fn every_operator() {
    let cases: &[(&str, &[&str])] = &[
        ("{field: channel, equals: EMAIL}", &["1", "4"]),
        ("{field: rating, equals: 5}", &["2"]),
        ("{field: channel, one_of: [chat, phone]}", &["2", "3", "5"]),
        ("{field: text, contains: REFUND}", &["1"]),
        ("{field: text, contains: [crash, late]}", &["3", "4"]),
        ("{field: text, regex: '^[A-Z][a-z]+ (was|the)'}", &["2", "5"]),
        ("{field: rating, lt: 2}", &["1"]),
        ("{field: rating, lte: 2}", &["1", "3"]),
        ("{field: rating, gt: 4}", &["2"]),
        ("{field: rating, gte: 4}", &["2", "5"]),
        ("{field: rating, gte: 2, lte: 3}", &["3", "4"]),
        ("{field: created_at, before: 2024-05-01}", &["2"]),
        ("{field: created_at, after: '2024-05-02'}", &["1", "3", "5"]),
        ("{field: created_at, within: 1d}", &["1", "3", "5"]),
        ("{field: created_at, within: 2h}", &["1", "5"]),
        ("{field: created_at, older_than: 1day}", &["2", "4"]),
        ("{all: [{field: channel, equals: chat}, {field: rating, gte: 5}]}", &["2"]),
        ("{any: [{field: channel, equals: phone}, {field: rating, equals: 1}]}", &["1", "3"]),
        ("{not: {field: channel, equals: email}}", &["2", "3", "5"]),
        ("{not: {any: [{field: rating, lte: 2}, {field: rating, gte: 5}]}}", &["4", "5"]),
    ];
    for (cond, want) in cases {
        assert_eq!(matches(cond), *want, "{cond}");
    }
}

#[test]
fn missing_field_and_unreadable_values_are_record_errors() {
    let csv = "id,rating,text\n1,2,ok\n2,abc,bad\n3,,empty\n";
    let rs = ok("teams:\n  - name: t\n    when: {any: [{field: rating, lte: 2}, {field: product_area, equals: x}]}\n", None);
    let (_, r) = route(&rs, Mode::FirstMatch, csv, None);
    assert_eq!(r.counts.errors, 3);
    assert_eq!(r.errors[0].record, "1");
    assert_eq!(r.errors[0].message, "field `product_area` is missing (a routing rule names it)");

    let rs = ok("teams:\n  - name: t\n    when: {field: rating, lte: 2}\n", None);
    let (ids, r) = route(&rs, Mode::FirstMatch, csv, None);
    assert_eq!(ids[0], vec!["1"]);
    assert_eq!(r.counts.errors, 1, "empty rating is no error, `abc` is");
    assert_eq!(r.errors[0].message, "field `rating` is `abc`, not a number");
    assert_eq!(r.counts.dropped, 1);
}

#[test]
fn already_routed_ids_are_skipped() {
    let rs = ok(TEAMS, Some("triage"));
    let seen = SeenIds::from_joined("1\n4".into());
    let (ids, r) = route(&rs, Mode::FirstMatch, CSV, Some(&seen));
    assert_eq!(ids, vec![vec!["5"], vec![], vec!["3"], vec!["2"]] as Vec<Vec<&str>>);
    assert_eq!(r.counts.already_routed, 2);
}

fn errors(yaml: &str, unmatched: Option<&str>) -> Vec<(String, String)> {
    match rules(yaml, unmatched) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.into_iter().map(|e| (e.path, e.message)).collect(),
    }
}

#[test]
fn semantic_errors_carry_yaml_paths() {
    let e = errors(
        r#"
teams:
  - name: a
    email: not-an-address
    when: {any: [{field: text, regex: "(unclosed"}, {field: created_at, within: soon}]}
  - name: a
    webhook: ftp://x
    when: {field: rating}
  - name: lonely
    webhook_follow_redirects: true
"#,
        Some("trage"),
    );
    let paths: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "teams[0].email",
            "teams[0].when.any[0].regex",
            "teams[0].when.any[1].within",
            "teams[1].name",
            "teams[1].webhook",
            "teams[1].when.field",
            "teams[2].webhook_follow_redirects",
            "teams[2]",
            "unmatched"
        ]
    );
    assert!(e[1].1.starts_with("invalid regex `(unclosed`"), "{}", e[1].1);
    assert_eq!(e[3].1, "duplicate team name `a`");
}

#[test]
fn combinator_misuse_is_reported() {
    let e = errors("teams:\n  - name: a\n    when: {all: [], any: [{field: x, equals: 1}]}\n", None);
    assert_eq!(e[0].0, "teams[0].when");
    let e = errors("teams:\n  - name: a\n    when: {all: [{field: x, equals: 1}], field: y}\n", None);
    assert!(e[0].1.contains("not both"));
    let e = errors("teams:\n  - name: a\n    when: {any: []}\n", None);
    assert_eq!(e[0], ("teams[0].when.any".into(), "empty `any:` list".into()));
    let e = errors("teams:\n  - name: a\n    when: {equals: 1}\n", None);
    assert_eq!(e[0].1, "an operator needs `field:`");
}

#[test]
fn unknown_operator_is_a_parse_error_with_position() {
    let err = serde_saphyr::from_str::<RulesFile>("teams:\n  - name: a\n    when:\n      field: text\n      startswith: x\n").unwrap_err();
    let loc = err.location().unwrap();
    assert_eq!((loc.line(), loc.column()), (5, 7));
    assert!(err.to_string().contains("unknown field `startswith`"), "{err}");
}

#[path = "../../../benches/support/feedback_gen.rs"]
#[allow(dead_code)]
mod feedback_gen;

#[test]
fn parallel_routing_equals_sequential() {
    use super::parallel::route_csv_parallel;
    let mut generated = Vec::new();
    feedback_gen::write_feedback(&mut generated, 20_000, 7).unwrap();
    // Rows that cannot be read, here and there: three not UTF-8, and a quote left open (its row
    // is bad, and reading goes on at the next line, itself a short row): five record errors.
    let mut csv = Vec::new();
    for (i, line) in generated.split_inclusive(|&b| b == b'\n').enumerate() {
        match i {
            100 | 7_000 | 19_999 => {
                csv.extend_from_slice(&line[..line.len() - 1]);
                csv.extend_from_slice(b"\xff\xfe\n");
            }
            12_345 => csv.extend_from_slice(b"FB-x,2024-05-02T11:59:59Z,c@example.com,chat,billing,3,en,\"open\nnot closed\n"),
            _ => csv.extend_from_slice(line),
        }
    }
    let file: RulesFile = serde_saphyr::from_str(feedback_gen::TEAMS_YAML).unwrap();
    let fields = FieldsSpec::default();
    let rs = compile(&CompileInput {
        teams: &file.teams,
        teams_path: "teams",
        fields: &fields,
        unmatched: None,
        unmatched_path: "unmatched",
        as_of: 1_714_651_200,
    })
    .unwrap();
    let lim = Limits { urgent: 5, sample: 4, keywords: 6, breakdown: 10 };
    let mut seq = Router::new(&rs, Mode::AllMatches, lim, None, IdBatcher::new(10, None));
    route_csv(std::io::Cursor::new(&csv[..]), &rs.fields, &mut seq, &|| false).unwrap();
    assert_eq!(seq.counts.errors, 5, "the rows above are bad: {:?}", seq.errors);
    for workers in [1, 2, 3] {
        let ids = std::sync::Arc::new(std::sync::Mutex::new(0usize));
        let sink_ids = ids.clone();
        let sink = move || -> Option<super::seen::IdSink> {
            let c = sink_ids.clone();
            Some(Box::new(move |b: super::seen::IdBatch| *c.lock().unwrap() += b.count))
        };
        let (par, _) = route_csv_parallel(std::io::Cursor::new(&csv[..]), u64::MAX, &setup(&rs, lim, &sink, workers, &|| false)).unwrap();
        assert_eq!(par.counts, seq.counts, "{workers} workers");
        assert_eq!(*ids.lock().unwrap() as u64, par.counts.routed);
        for (a, b) in par.buckets.iter().zip(&seq.buckets) {
            assert_eq!(a.stats_json(&lim), b.stats_json(&lim), "{workers} workers");
        }
        let errors = |r: &Router<'_>| r.errors.iter().map(|e| (e.seq, e.record.clone())).collect::<Vec<_>>();
        assert_eq!(errors(&par), errors(&seq), "{workers} workers");
        assert!(par.buckets.iter().all(|b| b.count > 0), "every team gets something from the generator");
    }
}

/// A cancelled run stops reading, whichever thread holds the reader.
#[test]
fn parallel_routing_stops_when_cancelled() {
    use super::parallel::route_csv_parallel;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut csv = Vec::new();
    feedback_gen::write_feedback(&mut csv, 20_000, 7).unwrap();
    let rs = compile_yaml(feedback_gen::TEAMS_YAML, None);
    let asked = AtomicUsize::new(0);
    let cancelled = || asked.fetch_add(1, Ordering::SeqCst) >= 3;
    let lim = Limits { urgent: 5, sample: 4, keywords: 6, breakdown: 10 };
    let e =
        route_csv_parallel(std::io::Cursor::new(&csv[..]), u64::MAX, &setup(&rs, lim, &|| None, 2, &cancelled)).err().expect("cancelled");
    assert!(matches!(e, super::source::SourceError::Cancelled), "{e}");
}

/// Parallel routing of `feedback.csv` with all matches and no ids seen before.
fn setup<'a>(
    rules: &'a RuleSet,
    limits: Limits,
    sink: &'a (dyn Fn() -> Option<super::seen::IdSink> + Sync),
    workers: usize,
    cancelled: &'a (dyn Fn() -> bool + Sync),
) -> super::parallel::Setup<'a> {
    super::parallel::Setup {
        rules,
        mode: Mode::AllMatches,
        limits,
        seen: None,
        sink,
        workers,
        delimiter: b',',
        max_record: 1 << 20,
        source: "feedback.csv",
        cancelled,
    }
}

fn compile_yaml(yaml: &str, unmatched: Option<&str>) -> RuleSet {
    let file: RulesFile = serde_saphyr::from_str(yaml).unwrap();
    let fields = FieldsSpec::default();
    compile(&CompileInput {
        teams: &file.teams,
        teams_path: "teams",
        fields: &fields,
        unmatched,
        unmatched_path: "unmatched",
        as_of: 1_714_651_200,
    })
    .unwrap_or_else(|e| panic!("{e:?}"))
}

/// The ops rules routed with their keyword regexes recognised (one automaton) and with the
/// same regexes in a form that is not recognised (`(?:\b)` for `\b`): identical digests,
/// keywords included, over the multilingual generated data.
#[test]
fn keyword_regexes_route_like_the_regex_engine() {
    let mut csv = Vec::new();
    feedback_gen::write_feedback_ops(&mut csv, 20_000, 11).unwrap();
    // Adversarial rows: keywords inside words, next to non-ASCII word characters, folded
    // letters, broken UTF-8 (a record error now, in both: only UTF-8 reaches the matchers).
    csv.extend_from_slice("A1,2024-05-02T10:00:00Z,c,email,website,1,fr,appé refundé happy éapp\n".as_bytes());
    csv.extend_from_slice("A2,2024-05-02T10:00:00Z,c,email,website,1,fr,l’app ĸ \u{212A}rash rude\u{301} déçu!\n".as_bytes());
    csv.extend_from_slice(b"A3,2024-05-02T10:00:00Z,c,email,website,2,fr,\xFFapp\xC3 refund\xE2\x84 agent\n");
    csv.extend_from_slice("A4,2024-05-02T10:00:00Z,c,chat,website,2,de,\"DIE APP STÜRZT AB, Rückerstattung, ſlow page\"\n".as_bytes());
    let fast = compile_yaml(feedback_gen::OPS_TEAMS_YAML, Some("Triage"));
    let slow_yaml = feedback_gen::OPS_TEAMS_YAML.replace(r"(?i)\b(", r"(?i)(?:\b)(");
    let slow = compile_yaml(&slow_yaml, Some("Triage"));
    assert_eq!(fast.words.len(), 1, "all keyword regexes are on `text`: one automaton");
    assert_eq!(fast.pattern_words.iter().filter(|w| w.is_some()).count(), 8);
    assert!(slow.words.is_empty());
    let lim = Limits { urgent: 50, sample: 5, keywords: 20, breakdown: 10 };
    fn run<'a>(rs: &'a RuleSet, csv: &[u8], lim: Limits) -> Router<'a> {
        let mut r = Router::new(rs, Mode::AllMatches, lim, None, IdBatcher::new(1000, None));
        route_csv(std::io::Cursor::new(csv), &rs.fields, &mut r, &|| false).unwrap();
        r
    }
    let (a, b) = (run(&fast, &csv, lim), run(&slow, &csv, lim));
    assert_eq!(a.counts, b.counts);
    for (x, y) in a.buckets.iter().zip(&b.buckets) {
        assert_eq!(x.stats_json(&lim), y.stats_json(&lim));
    }
    assert!(a.buckets.iter().all(|b| b.count > 0));
}

#[test]
fn keywords_operator_is_whole_word_and_case_insensitive() {
    let csv = "id,text\n1,App crashes\n2,happy days\n3,my APP\n4,appé\n5,l’app!\n6,apps\n7,Charged twice\n";
    let yaml = "teams:\n  - name: t\n    when: {field: text, keywords: [app, charged]}\n";
    let rs = ok(yaml, None);
    assert_eq!(rs.words.len(), 1);
    let (ids, r) = route(&rs, Mode::FirstMatch, csv, None);
    assert_eq!(ids[0], vec!["1", "3", "5", "7"]);
    let kw = r.buckets[0].keywords.sorted();
    assert_eq!(kw, vec![("app".to_string(), 3), ("charged".to_string(), 1)]);
    // The same as the regex it stands for.
    let re = ok("teams:\n  - name: t\n    when: {field: text, regex: '(?i)\\b(?:app|charged)\\b'}\n", None);
    let (ids_re, r_re) = route(&re, Mode::FirstMatch, csv, None);
    assert_eq!(ids_re, ids);
    assert_eq!(r_re.buckets[0].keywords.sorted(), kw);
    // One keyword may be given as a string.
    assert_eq!(matches("{field: text, keywords: Refund}"), vec!["1"]);
}

#[test]
fn keywords_errors_carry_yaml_paths() {
    let e = errors("teams:\n  - name: a\n    when: {field: text, keywords: []}\n", None);
    assert_eq!(e, vec![("teams[0].when.keywords".into(), "empty `keywords:` list".into())]);
    let e = errors("teams:\n  - name: a\n    when: {field: text, keywords: [refund, ' invoice']}\n", None);
    assert_eq!(e, vec![("teams[0].when.keywords".into(), "keyword ` invoice` is empty or has spaces at its ends".into())]);
    let err = serde_saphyr::from_str::<RulesFile>("teams:\n  - name: a\n    when: {field: text, keyword: [x]}\n").unwrap_err();
    assert!(err.to_string().contains("unknown field `keyword`"), "{err}");
}

#[test]
fn the_unmatched_team_reports_no_keywords_of_its_own_rule() {
    // Triage has a `when:` that does not hold for record 2; it gets it through `unmatched:`,
    // and its own rule's keywords must not be counted for it.
    let yaml = "teams:\n  - name: a\n    when: {field: text, keywords: refund}\n  - name: triage\n    when: {all: [{field: text, keywords: love}, {field: rating, lte: 1}]}\n";
    let rs = ok(yaml, Some("triage"));
    let (ids, r) = route(&rs, Mode::AllMatches, CSV, None);
    assert_eq!(ids[1], vec!["2", "3", "4", "5"]);
    assert!(r.buckets[1].keywords.sorted().is_empty(), "{:?}", r.buckets[1].keywords.sorted());
}
