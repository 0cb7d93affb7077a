//! Readers for the source step kinds: CSV, JSON (array or JSON Lines), SQL.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{anyhow, Context};
use futures::StreamExt;
use serde_json::{Number, Value};
use sqlx::{Column, Row, TypeInfo};
use tokio::sync::mpsc;

use super::records::{open_file, Record, Records};

type Tx = mpsc::Sender<anyhow::Result<Record>>;

/// A CSV field as JSON: integers and booleans that print back exactly as written become numbers
/// and booleans (so `{{gt item.rating 3}}` compares numbers); everything else, including `007`
/// and `4.50`, stays a string so nothing is lost.
pub fn csv_value(s: &str) -> Value {
    if let Ok(i) = s.parse::<i64>() {
        if i.to_string() == s {
            return Value::Number(i.into());
        }
    }
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() && f.to_string() == s {
            if let Some(n) = Number::from_f64(f) {
                return Value::Number(n);
            }
        }
    }
    match s {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(s.to_string()),
    }
}

pub(super) fn read_csv(path: &Path, delimiter: u8, tx: Tx) -> anyhow::Result<()> {
    let file = open_file(path)?;
    let mut rdr = csv::ReaderBuilder::new().delimiter(delimiter).from_reader(file);
    let headers = rdr.headers().with_context(|| format!("cannot read the header row of `{}`", path.display()))?.clone();
    let mut rec = csv::StringRecord::new();
    loop {
        let msg = match rdr.read_record(&mut rec) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let m: Record = headers.iter().zip(rec.iter()).map(|(h, v)| (h.to_string(), csv_value(v))).collect();
                Ok(m)
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                let bad = anyhow!("`{}` line {line}: {}", path.display(), csv_message(&e));
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    return Err(bad);
                }
                Err(bad)
            }
        };
        if tx.blocking_send(msg).is_err() {
            return Ok(()); // the consumer stopped (on_error: stop, or shutdown)
        }
    }
}

fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("this row has {len} fields but the header has {expected_len}; fix the row or quote fields that contain the delimiter")
        }
        csv::ErrorKind::Utf8 { .. } => "this row is not valid UTF-8; save the file as UTF-8".into(),
        _ => e.to_string(),
    }
}

pub(super) fn read_json(path: &Path, tx: Tx) -> anyhow::Result<()> {
    let mut reader = BufReader::new(open_file(path)?);
    let first = loop {
        let buf = reader.fill_buf()?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => break Some(buf[i]),
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    match first {
        None => Ok(()),
        Some(b'[') => read_json_array(path, reader, tx),
        Some(_) => read_json_lines(path, reader, tx),
    }
}

fn read_json_lines(path: &Path, reader: impl BufRead, tx: Tx) -> anyhow::Result<()> {
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read `{}`", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec = serde_json::from_str::<Value>(&line)
            .map_err(|e| anyhow!("`{}` line {}: {e}", path.display(), i + 1))
            .and_then(|v| object(v, path, i + 1));
        if tx.blocking_send(rec).is_err() {
            break;
        }
    }
    Ok(())
}

fn object(v: Value, path: &Path, n: usize) -> anyhow::Result<Record> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(anyhow!("`{}` record {n} is not a JSON object; each record must be `{{...}}`", path.display())),
    }
}

/// Stream the elements of a top-level JSON array one by one.
fn read_json_array(path: &Path, reader: impl Read, tx: Tx) -> anyhow::Result<()> {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    struct Each<'a> {
        tx: &'a Tx,
        path: &'a Path,
    }
    impl<'de> Visitor<'de> for Each<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut n = 0;
            while let Some(v) = seq.next_element::<Value>()? {
                n += 1;
                if self.tx.blocking_send(object(v, self.path, n)).is_err() {
                    break;
                }
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_reader(reader);
    de.deserialize_seq(Each { tx: &tx, path })
        .map_err(|e| anyhow!("`{}` line {} column {}: {e}", path.display(), e.line(), e.column()))
}

pub(super) fn read_sql(url: String, query: String) -> Records {
    let (tx, mut rx) = mpsc::channel::<anyhow::Result<Record>>(256);
    tokio::spawn(async move {
        let res = if url.starts_with("sqlite:") { sql_sqlite(&url, &query, &tx).await } else { sql_pg(&url, &query, &tx).await };
        if let Err(e) = res {
            let _ = tx.send(Err(e)).await;
        }
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

async fn sql_sqlite(url: &str, query: &str, tx: &mpsc::Sender<anyhow::Result<Record>>) -> anyhow::Result<()> {
    use std::str::FromStr;
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?.read_only(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.map_err(|e| connect_error(url, e))?;
    forward(sqlx::query(query).fetch(&pool), sqlite_value, tx).await
}

async fn sql_pg(url: &str, query: &str, tx: &mpsc::Sender<anyhow::Result<Record>>) -> anyhow::Result<()> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|e| connect_error(url, e))?;
    forward(sqlx::query(query).fetch(&pool), pg_value, tx).await
}

/// Send each row on as a record; `value` reads column `i` knowing its database type name.
async fn forward<R: Row>(
    mut rows: futures::stream::BoxStream<'_, Result<R, sqlx::Error>>,
    value: fn(&R, usize, &str) -> Option<Value>,
    tx: &mpsc::Sender<anyhow::Result<Record>>,
) -> anyhow::Result<()> {
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| anyhow!("query failed: {e}"))?;
        let m: Record = row
            .columns()
            .iter()
            .enumerate()
            .map(|(i, col)| (col.name().to_string(), value(&row, i, col.type_info().name()).unwrap_or(Value::Null)))
            .collect();
        if tx.send(Ok(m)).await.is_err() {
            break;
        }
    }
    Ok(())
}

fn sqlite_value(row: &sqlx::sqlite::SqliteRow, i: usize, ty: &str) -> Option<Value> {
    match ty {
        "INTEGER" | "INT" | "BIGINT" => row.try_get::<Option<i64>, _>(i).ok().flatten().map(Value::from),
        "REAL" | "FLOAT" | "DOUBLE" => row.try_get::<Option<f64>, _>(i).ok().flatten().map(Value::from),
        "BOOLEAN" => row.try_get::<Option<bool>, _>(i).ok().flatten().map(Value::from),
        "NULL" => None,
        _ => row.try_get::<Option<String>, _>(i).ok().flatten().map(Value::from),
    }
}

fn pg_value(row: &sqlx::postgres::PgRow, i: usize, ty: &str) -> Option<Value> {
    match ty {
        "INT2" => row.try_get::<Option<i16>, _>(i).ok().flatten().map(Value::from),
        "INT4" => row.try_get::<Option<i32>, _>(i).ok().flatten().map(Value::from),
        "INT8" => row.try_get::<Option<i64>, _>(i).ok().flatten().map(Value::from),
        "FLOAT4" => row.try_get::<Option<f32>, _>(i).ok().flatten().map(|f| Value::from(f as f64)),
        "FLOAT8" => row.try_get::<Option<f64>, _>(i).ok().flatten().map(Value::from),
        "BOOL" => row.try_get::<Option<bool>, _>(i).ok().flatten().map(Value::from),
        "JSON" | "JSONB" => row.try_get::<Option<Value>, _>(i).ok().flatten(),
        "TIMESTAMPTZ" => row.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(i).ok().flatten().map(|t| Value::from(t.to_rfc3339())),
        "TIMESTAMP" => row.try_get::<Option<chrono::NaiveDateTime>, _>(i).ok().flatten().map(|t| Value::from(t.to_string())),
        "DATE" => row.try_get::<Option<chrono::NaiveDate>, _>(i).ok().flatten().map(|t| Value::from(t.to_string())),
        _ => row.try_get::<Option<String>, _>(i).ok().flatten().map(Value::from),
    }
}

/// Connection errors can echo the URL, which may hold a password: name the scheme and host only.
fn connect_error(url: &str, e: sqlx::Error) -> anyhow::Error {
    let shown = url::Url::parse(url).map(|u| format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""))).unwrap_or_else(|_| "the database".into());
    anyhow!("cannot connect to {shown}: {e}; check the `url` of the sql step")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_values_are_lossless() {
        assert_eq!(csv_value("42"), Value::from(42));
        assert_eq!(csv_value("007"), Value::from("007"));
        assert_eq!(csv_value("4.5"), Value::from(4.5));
        assert_eq!(csv_value("4.50"), Value::from("4.50"));
        assert_eq!(csv_value("+1"), Value::from("+1"));
        assert_eq!(csv_value("true"), Value::from(true));
        assert_eq!(csv_value(""), Value::from(""));
    }
}
