//! Cutting JSON into records over arbitrary and hostile bytes: it never panics, always ends,
//! never hands out a record over the limit, and cuts well-formed files exactly (each array
//! element or line parses back to the value written). Short by default; `PROPTEST_CASES=20000
//! cargo test --release --lib steps::read_json::split::proptests` runs it longer.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
}

fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b",".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\0".to_vec()),
        Just(vec![0xff]),
        "[a-z0-9: ]{0,10}".prop_map(String::into_bytes),
    ];
    prop::collection::vec(piece, 0..80).prop_map(|v| v.concat())
}

/// Values whose strings hold what the splitter must not cut at: commas, brackets, quotes,
/// backslashes and line breaks.
fn value() -> impl Strategy<Value = Value> {
    let text = "[a-z,\\[\\]{}\"\\\\\n é]{0,10}";
    let leaf = prop_oneof![text.prop_map(Value::from), any::<i32>().prop_map(Value::from), Just(Value::Null)];
    leaf.prop_recursive(3, 16, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(text, inner, 0..4).prop_map(|m| json!(m)),
        ]
    })
}

/// Every cut of `next`, with the bytes of the records; panics if it does not end.
fn cuts(len: usize, mut next: impl FnMut(&mut Vec<u8>) -> std::io::Result<Cut>) -> Vec<(Cut, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for _ in 0..=len + 1 {
        let c = next(&mut buf).expect("reading from memory does not fail");
        if c == Cut::End {
            return out;
        }
        let stop = matches!(c, Cut::Unclosed { .. });
        out.push((c, buf.clone()));
        if stop {
            return out;
        }
    }
    panic!("the splitter did not end");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hostile_bytes_never_panic_and_records_stay_within_the_limit(text in hostile_bytes(), max in 1usize..64) {
        let mut lines = Lines::new(&text[..], max);
        for (c, buf) in cuts(text.len(), |b| lines.next(b)) {
            prop_assert!(buf.len() <= max);
            let cut_ok = matches!(c, Cut::Record { .. } | Cut::TooLarge { .. });
            prop_assert!(cut_ok, "a line cut as {:?}", c);
        }
        let mut elements = Elements::new(&text[..], max, 0);
        for (_, buf) in cuts(text.len(), |b| elements.next(b)) {
            prop_assert!(buf.len() <= max);
        }
    }

    #[test]
    fn well_formed_arrays_and_lines_are_cut_exactly(values in prop::collection::vec(value(), 0..8), pretty in any::<bool>()) {
        let array = if pretty { serde_json::to_vec_pretty(&values) } else { serde_json::to_vec(&values) }.unwrap();
        let mut elements = Elements::new(&array[1..], 1 << 20, 0);
        let got: Vec<Value> = cuts(array.len(), |b| elements.next(b))
            .into_iter()
            .map(|(c, buf)| {
                assert!(matches!(c, Cut::Record { .. }), "{c:?}");
                serde_json::from_slice(&buf).unwrap()
            })
            .collect();
        prop_assert_eq!(&got, &values);

        let jsonl: Vec<u8> = values.iter().flat_map(|v| [serde_json::to_vec(v).unwrap(), b"\n".to_vec()].concat()).collect();
        let mut lines = Lines::new(&jsonl[..], 1 << 20);
        let got: Vec<(Cut, Value)> =
            cuts(jsonl.len(), |b| lines.next(b)).into_iter().map(|(c, buf)| (c, serde_json::from_slice(&buf).unwrap())).collect();
        let want: Vec<(Cut, Value)> = values.iter().enumerate().map(|(i, v)| (Cut::Record { line: i as u64 + 1 }, v.clone())).collect();
        prop_assert_eq!(got, want);
    }
}
