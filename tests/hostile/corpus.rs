//! The hostile-records corpus and what the tests read back: shared by `tests/hostile_*.rs`.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::support::{self, TestProject};

pub(crate) type Rec = Map<String, Value>;

/// A field of 1 MB, with markup at its end where a cut would hide it.
pub(crate) const BIG_ID: &str = "H11";
/// A CSV row whose `text` is Latin-1, not UTF-8.
pub(crate) const BAD_UTF8_ID: &str = "H12";

pub(crate) fn corpus() -> Vec<Rec> {
    let raw = std::fs::read_to_string(support::repo().join("tests/hostile/records.json")).unwrap();
    serde_json::from_str::<Vec<Value>>(&raw).unwrap().into_iter().map(|v| v.as_object().unwrap().clone()).collect()
}

pub(crate) fn big() -> Rec {
    let mut r = Rec::new();
    for (k, v) in [("id", BIG_ID), ("name", "Big Field"), ("email", "h11@example.org"), ("file", "")] {
        r.insert(k.into(), v.into());
    }
    // 1 MB, inside the default record size limit (1 MiB, `max_record_bytes`) with the rest of
    // the record: a record over it fails alone, which `records_e2e` covers.
    r.insert("text".into(), format!("{}<script>x</script>", "x".repeat(1_000_000)).into());
    r
}

pub(crate) fn field<'a>(r: &'a Rec, k: &str) -> &'a str {
    r[k].as_str().unwrap()
}

/// The corpus and the 1 MB record as `data/hostile.csv`, then a row that is not UTF-8 (the
/// last: the CSV reader must fail that row alone), and as `data/hostile.json`.
pub(crate) fn write_sources(p: &TestProject) -> Vec<Rec> {
    let mut recs = corpus();
    recs.push(big());
    let cols = ["id", "name", "email", "text", "file"];
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(cols).unwrap();
    for r in &recs {
        w.write_record(cols.map(|c| field(r, c))).unwrap();
    }
    let mut bytes = w.into_inner().unwrap();
    bytes.extend_from_slice(format!("{BAD_UTF8_ID},Bad Bytes,h12@example.org,").as_bytes());
    bytes.extend_from_slice(b"caf\xe9 cr\xe8me,\n");
    std::fs::create_dir_all(p.path().join("data")).unwrap();
    std::fs::write(p.path().join("data/hostile.csv"), bytes).unwrap();
    p.write("data/hostile.json", &serde_json::to_string(&recs).unwrap());
    recs
}

/// `step_id` → item key → (status, error).
pub(crate) fn items(p: &TestProject, step: &str) -> BTreeMap<String, (String, String)> {
    items_at(&p.db(), step)
}

pub(crate) fn items_at(db: &std::path::Path, step: &str) -> BTreeMap<String, (String, String)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display())).await.unwrap();
        let rows: Vec<(String, String, Option<String>)> =
            sqlx::query_as("SELECT item_key, status, error FROM items WHERE step_id = ?1").bind(step).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows.into_iter().map(|(k, s, e)| (k, (s, e.unwrap_or_default()))).collect()
    })
}

#[track_caller]
pub(crate) fn ok_except(got: &BTreeMap<String, (String, String)>, recs: &[Rec], failing: &[&str]) {
    for r in recs {
        let id = field(r, "id");
        let (status, error) = got.get(id).unwrap_or_else(|| panic!("no item {id} in {got:?}"));
        let want = if failing.contains(&id) { "failed" } else { "ok" };
        assert_eq!(status, want, "{id}: {error}");
    }
}

pub(crate) fn written_json(p: &TestProject, rel: &str) -> Vec<Rec> {
    serde_json::from_str::<Vec<Value>>(&p.read(rel)).unwrap().into_iter().map(|v| v.as_object().unwrap().clone()).collect()
}

/// `step_id` → item key → output JSON.
pub(crate) fn outputs(p: &TestProject, step: &str) -> BTreeMap<String, Value> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", p.db().display())).await.unwrap();
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT item_key, output FROM items WHERE step_id = ?1").bind(step).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows.into_iter().map(|(k, o)| (k, o.map(|o| serde_json::from_str(&o).unwrap()).unwrap_or(Value::Null))).collect()
    })
}

#[track_caller]
pub(crate) fn error_of<'a>(got: &'a BTreeMap<String, (String, String)>, key: &str) -> &'a str {
    let (status, error) = got.get(key).unwrap_or_else(|| panic!("no item {key} in {got:?}"));
    assert_eq!(status, "failed", "{key}");
    error
}
