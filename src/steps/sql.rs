//! `sql`: the rows of a query against a SQLite or PostgreSQL database (the user's, not the run
//! log), each row a record.

use std::sync::Arc;

use anyhow::{anyhow, Context};
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{json, Value};
use sqlx::{Column, Row, TypeInfo};
use tokio::sync::mpsc;

use crate::engine::records::{Record, Records, Source, BUFFER};
use crate::engine::{BatchCx, BatchOutcome, BatchStep, RecordSource};
use crate::plan::{PlanCx, TemplateRef};
use crate::spec::kinds::records::SqlSpec;

#[derive(Debug)]
pub(crate) struct Sql {
    url: TemplateRef,
    query: String,
}

pub(crate) fn plan(raw: &crate::spec::Node, kpath: &str, cx: &mut PlanCx) -> Option<Box<dyn BatchStep>> {
    let q: SqlSpec = cx.spec(raw, kpath)?;
    let url_ok = q.url.starts_with("{{") || ["sqlite:", "postgres:", "postgresql:"].iter().any(|p| q.url.starts_with(p));
    if !url_ok {
        cx.error(
            &format!("{kpath}.url"),
            format!("`{}` is not a database URL cxflow can read", q.url),
            Some("use `sqlite://path/to.db` or `postgres://user@host/db`".into()),
        );
    }
    if q.query.trim().is_empty() {
        cx.error(&format!("{kpath}.query"), "the query is empty", None);
    }
    Some(Box::new(Sql { url: cx.template(&format!("{kpath}.url"), &q.url)?, query: q.query.clone() }))
}

#[async_trait]
impl BatchStep for Sql {
    async fn run(&self, _input: RecordSource, cx: &BatchCx<'_>) -> anyhow::Result<BatchOutcome> {
        let url = cx.run.templates.render(&self.url, cx.ctx).context("cannot render the database URL")?;
        Ok(BatchOutcome::source(RecordSource::Source(Arc::new(Query { url, query: self.query.clone() })), json!({})))
    }
}

#[derive(Debug)]
struct Query {
    url: String,
    query: String,
}

impl Source for Query {
    fn open(&self) -> Records {
        read_sql(self.url.clone(), self.query.clone())
    }

    fn describe(&self) -> String {
        format!("query `{}`", self.query)
    }
}

fn read_sql(url: String, query: String) -> Records {
    let (tx, mut rx) = mpsc::channel::<anyhow::Result<Record>>(BUFFER);
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
    forward(sqlx::query(workflow_query(query)).fetch(&pool), sqlite_value, tx).await
}

async fn sql_pg(url: &str, query: &str, tx: &mpsc::Sender<anyhow::Result<Record>>) -> anyhow::Result<()> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|e| connect_error(url, e))?;
    forward(sqlx::query(workflow_query(query)).fetch(&pool), pg_value, tx).await
}

/// The query is the workflow author's own, as written in the workflow file (templates cannot
/// reach it, so no record's data is in it), sent as written against a database they named.
fn workflow_query(query: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(query.to_string())
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
    let shown =
        url::Url::parse(url).map(|u| format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""))).unwrap_or_else(|_| "the database".into());
    anyhow!("cannot connect to {shown}: {e}; check the `url` of the sql step")
}
