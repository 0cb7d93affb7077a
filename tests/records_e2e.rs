//! End to end: the real binary reads hostile record files (a huge field, CRLF line ends, an
//! unclosed quote, broken UTF-8, short rows) with `read_csv`, `read_json` and `route`, and the
//! run log shows one failed item per bad record, named by file and line, with the rest done.

mod support;

use serde_json::Value;
use support::TestProject;

/// `read_csv: data/records.csv` (or `source`) feeding script.py once per record (key `id`).
fn per_item_project(source: &str, csv: &[u8]) -> TestProject {
    let p = support::script_project("id,mode,email", []);
    std::fs::write(p.path().join("data/records.csv"), csv).unwrap();
    p.write(
        "workflows/w.yaml",
        &format!(
            r#"name: w
steps:
  - id: records
    {source}
  - id: act
    for_each: records
    command: [python3, script.py, "{{{{item.id}}}}", ok]
{PEAK_STEP}"#
        ),
    );
    p
}

fn marks(p: &TestProject) -> Vec<String> {
    let mut m: Vec<String> = std::fs::read_to_string(p.path().join("marks.txt")).unwrap_or_default().lines().map(String::from).collect();
    m.sort();
    m
}

fn failed(p: &TestProject) -> Vec<String> {
    p.query("SELECT item_key, error FROM items WHERE step_id = 'act' AND status = 'failed' ORDER BY seq")
}

/// The peak resident memory of the cxflow process in KiB (`VmHWM`), as the workflow's last step
/// (a child of cxflow) read it from `/proc/<its parent>/status` after the records were handled.
fn peak_kib(p: &TestProject) -> u64 {
    let status = p.read("status.txt");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or_else(|| panic!("no VmHWM in {status}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const PEAK_STEP: &str = r#"  - id: peak
    command: [python3, -c, "import os, shutil; shutil.copy(f'/proc/{os.getppid()}/status', 'status.txt')"]
"#;

const BIG: usize = 64 << 20;

#[test]
fn a_huge_csv_field_fails_its_item_and_is_never_held_in_memory() {
    let mut csv = b"id,mode,email\nr1,ok,a@x.test\nr2,ok,\"".to_vec();
    csv.extend(std::iter::repeat_n(b'x', BIG));
    csv.extend(b"\"\nr3,ok,c@x.test\n");
    let p = per_item_project("read_csv: data/records.csv", &csv);
    p.run(&["run", "w"]).expect_code(1);
    assert_eq!(marks(&p), ["r1", "r3"], "the records after the huge one still arrive");
    let err = failed(&p);
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].starts_with("#2|bad record: ")
            && err[0].contains("records.csv` line 3: this row is larger than the record size limit (1048576 bytes)"),
        "{err:?}"
    );
    // The old reader held the field (and copies of it): well over its 64 MiB. A run holds ~27 MiB.
    let peak = peak_kib(&p);
    assert!(peak < (BIG as u64 / 1024) * 3 / 4, "peak memory {peak} KiB for a {} MiB field", BIG >> 20);
}

#[test]
fn the_record_size_limit_is_a_setting() {
    let p = per_item_project("read_csv: data/records.csv", b"");
    p.write("cxflow.yaml", "max_record_bytes: 1024\n");
    let mut csv = b"id,mode,email\nr1,ok,a@x.test\nr2,ok,".to_vec();
    csv.extend(std::iter::repeat_n(b'y', 2000));
    csv.extend(b"\nr3,ok,c@x.test\n");
    std::fs::write(p.path().join("data/records.csv"), &csv).unwrap();
    p.run(&["run", "w"]).expect_code(1);
    assert_eq!(marks(&p), ["r1", "r3"]);
    assert!(failed(&p)[0].contains("line 3: this row is larger than the record size limit (1024 bytes)"), "{:?}", failed(&p));
}

#[test]
fn csv_line_numbers_are_right_with_crlf_line_ends() {
    let p = per_item_project("read_csv: data/records.csv", b"id,mode,email\r\nr1,ok,a@x.test\r\nr2,ok\r\nr3,ok,c@x.test\r\n");
    p.run(&["run", "w"]).expect_code(1);
    assert_eq!(marks(&p), ["r1", "r3"]);
    let err = failed(&p);
    assert!(err[0].contains("records.csv` line 3: this row has 2 fields but the header has 3"), "{err:?}");
}

#[test]
fn an_unclosed_quote_is_named_at_its_line_and_the_rows_after_it_are_read() {
    let csv = b"id,mode,email\nr1,ok,a@x.test\nr2,ok,\"b@x.test\nr3,ok,c@x.test\nr4,ok,\"d@x.test\"\nr5,ok,e@x.test\n";
    let p = per_item_project("read_csv: data/records.csv", csv);
    p.run(&["run", "w"]).expect_code(1);
    assert_eq!(marks(&p), ["r1", "r3", "r4", "r5"]);
    let err = failed(&p);
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(err[0].contains("records.csv` line 3: a quoted field that starts on this line is not closed before the row ends"), "{err:?}");
}

#[test]
fn the_progress_total_counts_records_not_line_breaks() {
    let csv = b"id,mode,email\nr1,ok,\"two\nlines\"\nr2,ok,\"three\nmore\nlines\"\n";
    let p = per_item_project("read_csv: data/records.csv", csv);
    let r = p.run(&["run", "w"]);
    r.expect_code(0);
    assert!(r.stderr.contains("act: 2/2 items"), "{}", r.stderr);
}

/// A route over `data/fb.csv` (or `source`), every record to one team; its summary output.
fn route_project(source: &str) -> TestProject {
    let p = TestProject::new();
    p.write(
        "workflows/r.yaml",
        &format!(
            r#"name: r
steps:
  - id: fb
    {source}
  - id: routed
    route:
      input: fb
      unmatched: all
      teams:
        - name: all
      digest: {{ out_dir: out/digests }}
  - id: export
    write_json: {{ from: routed, path: out/routed.json }}
"#
        ),
    );
    p
}

fn route_summary(p: &TestProject) -> Value {
    serde_json::from_str(&p.query("SELECT output FROM steps WHERE step_id = 'routed'")[0]).unwrap()
}

#[test]
fn route_fails_short_rows_broken_utf8_and_huge_records_one_by_one() {
    let p = route_project("read_csv: data/fb.csv");
    p.write("data/fb.csv", "");
    let mut csv = b"id,text,channel\n1,fine,email\n2,short\n3,\xFFbroken,chat\n4,\"".to_vec();
    csv.extend(std::iter::repeat_n(b'z', 3 << 20));
    csv.extend(b"\",email\n5,after,email\n");
    std::fs::write(p.path().join("data/fb.csv"), &csv).unwrap();
    let r = p.run(&["run", "r"]);
    r.expect_code(1);
    assert!(r.stdout.contains("routed               partial       ok 2 failed 3"), "{}", r.stdout);
    let s = route_summary(&p);
    assert_eq!((s["records"].as_u64(), s["routed"].as_u64(), s["errors"].as_u64()), (Some(5), Some(2), Some(3)), "{s}");
    let samples: Vec<(String, String)> = s["error_samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["record"].as_str().unwrap().to_string(), e["error"].as_str().unwrap().to_string()))
        .collect();
    let want = [
        ("line 3", "fb.csv` line 3: this row has 2 fields but the header has 3"),
        ("line 4", "fb.csv` line 4: this row is not valid UTF-8"),
        ("line 5", "fb.csv` line 5: this row is larger than the record size limit (1048576 bytes)"),
    ];
    assert_eq!(samples.len(), 3, "{samples:?}");
    for ((rec, msg), (want_rec, want_msg)) in samples.iter().zip(want) {
        assert!(rec == want_rec && msg.contains(want_msg), "{rec}: {msg}");
    }
    assert_eq!(s["teams"][0]["count"], 2, "{s}");
}

/// A JSON source (array or lines) feeding script.py, with the peak memory step.
fn json_project(file: &str, content: &[u8]) -> TestProject {
    let p = per_item_project(&format!("read_json: data/{file}"), b"");
    std::fs::write(p.path().join("data").join(file), content).unwrap();
    p
}

#[test]
fn a_huge_json_record_fails_its_item_and_is_never_held_in_memory() {
    for (file, open, sep, close, line) in [("r.json", &b"[\n"[..], &b",\n"[..], &b"\n]\n"[..], 3), ("r.jsonl", b"", b"\n", b"\n", 2)] {
        let mut json = open.to_vec();
        json.extend(b"{\"id\": \"r1\"}");
        json.extend(sep);
        json.extend(b"{\"id\": \"r2\", \"text\": \"");
        json.extend(std::iter::repeat_n(b'x', BIG));
        json.extend(b"\"}");
        json.extend(sep);
        json.extend(b"{\"id\": \"r3\"}");
        json.extend(close);
        let p = json_project(file, &json);
        p.run(&["run", "w"]).expect_code(1);
        assert_eq!(marks(&p), ["r1", "r3"], "{file}: the records after the huge one still arrive");
        let err = failed(&p);
        assert_eq!(err.len(), 1, "{file}: {err:?}");
        assert!(
            err[0].contains(&format!("{file}` line {line}: this record is larger than the record size limit (1048576 bytes)")),
            "{err:?}"
        );
        let peak = peak_kib(&p);
        assert!(peak < (BIG as u64 / 1024) * 3 / 4, "{file}: peak memory {peak} KiB for a {} MiB record", BIG >> 20);
    }
}

#[test]
fn a_json_array_element_that_does_not_parse_fails_alone() {
    let p = json_project("r.json", b"[{\"id\": \"r1\"},\n {\"id\": oops},\n {\"id\": \"r3\"}]\n");
    p.run(&["run", "w"]).expect_code(1);
    assert_eq!(marks(&p), ["r1", "r3"]);
    assert!(failed(&p)[0].contains("r.json` line 2: expected value"), "{:?}", failed(&p));
}

#[test]
fn route_over_json_fails_a_bad_record_not_the_step() {
    let p = route_project("read_json: data/fb.jsonl");
    p.write("data/fb.jsonl", "{\"id\": \"1\", \"text\": \"ok\"}\n{\"id\": 2 oops\n{\"id\": \"3\", \"text\": \"ok\"}\n");
    let r = p.run(&["run", "r"]);
    r.expect_code(1);
    assert!(r.stdout.contains("routed               partial       ok 2 failed 1"), "{}", r.stdout);
    let s = route_summary(&p);
    assert_eq!(s["teams"][0]["count"], 2, "{s}");
    assert!(s["error_samples"][0]["error"].as_str().unwrap().contains("fb.jsonl` line 2: "), "{s}");
}

#[test]
fn a_team_breakdown_over_many_distinct_values_is_the_top_ten_and_other() {
    let p = route_project("read_csv: data/fb.csv");
    let mut csv = String::from("id,text,channel,product_area\n");
    for i in 0..30_000 {
        // Three real channels, and a distinct junk value in every other record.
        let channel = if i % 2 == 0 { ["email", "chat", "phone"][i % 3].to_string() } else { format!("junk-{i}") };
        csv.push_str(&format!("{i},hello,{channel},area-{i}\n"));
    }
    p.write("data/fb.csv", &csv);
    p.run(&["run", "r"]).expect_code(0);
    let out: Value = serde_json::from_str(&p.read("out/routed.json")).unwrap();
    let team = &out[0];
    for key in ["by_channel", "by_area"] {
        let rows = team[key].as_array().unwrap();
        assert_eq!(rows.len(), 11, "{key}: the top 10 and `other`");
        let last = &rows[10];
        assert_eq!((last["name"].as_str(), last["other"].as_bool()), (Some("other"), Some(true)), "{key}");
        assert_eq!(rows.iter().map(|r| r["count"].as_u64().unwrap()).sum::<u64>(), 30_000, "{key}: nothing is lost");
    }
    assert_eq!(team["by_channel"][0]["count"], 5_000);
    let digest = std::fs::metadata(p.path().join("out/digests/all.html")).unwrap().len();
    assert!(digest < 40_000, "the digest is {digest} bytes");
}

#[test]
fn the_breakdown_length_is_a_digest_option() {
    let p = route_project("read_csv: data/fb.csv");
    let w = p.read("workflows/r.yaml").replace("digest: { out_dir: out/digests }", "digest: { out_dir: out/digests, breakdown: 2 }");
    p.write("workflows/r.yaml", &w);
    p.write("data/fb.csv", "id,text,channel\n1,a,email\n2,b,email\n3,c,chat\n4,d,phone\n5,e,web\n");
    p.run(&["run", "r"]).expect_code(0);
    let out: Value = serde_json::from_str(&p.read("out/routed.json")).unwrap();
    let names: Vec<&str> = out[0]["by_channel"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["email", "chat", "other"]);
    assert_eq!(out[0]["by_channel"][2]["count"], 2);
}

#[test]
fn control_characters_in_feedback_never_reach_the_digests() {
    let p = route_project("read_csv: data/fb.csv");
    p.write("data/fb.csv", "id,text,channel\n1,\"nul\u{0}here \u{1b}[2Jcleared\u{7f}\",e\u{0}mail\n");
    p.run(&["run", "r"]).expect_code(0);
    for f in ["out/digests/all.html", "out/digests/all.md"] {
        let d = p.read(f);
        // (Markdown escapes the `[`.)
        assert!(d.contains("nulhere ") && d.contains("2Jcleared"), "{f}: the text is there, without its controls: {d}");
        let bad: Vec<char> = d.chars().filter(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')).collect();
        assert!(bad.is_empty(), "{f} holds {bad:?}");
    }
    let out: Value = serde_json::from_str(&p.read("out/routed.json")).unwrap();
    assert_eq!(out[0]["by_channel"][0]["name"], "email");
}
