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
    args: Vec<TemplateRef>,
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
    // Splicing a rendered value into SQL lets a record (or a parameter) rewrite the query; a
    // template here would otherwise reach the database as written, with no warning.
    if q.query.contains("{{") {
        cx.error(
            &format!("{kpath}.query"),
            "the query is not a template: `{{...}}` would reach the database as written",
            Some(
                "bind the value instead: list the template under the step's `args:` (`args: [\"{{params.name}}\"]`) \
                 and write `$1` (PostgreSQL) or `?1` (SQLite) where it goes in the query"
                    .into(),
            ),
        );
    }
    let args: Vec<Option<TemplateRef>> = q.args.iter().enumerate().map(|(i, a)| cx.template(&format!("{kpath}.args[{i}]"), a)).collect();
    let url = cx.template(&format!("{kpath}.url"), &q.url)?;
    Some(Box::new(Sql { url, query: q.query.clone(), args: args.into_iter().collect::<Option<_>>()? }))
}

#[async_trait]
impl BatchStep for Sql {
    async fn run(&self, _input: RecordSource, cx: &BatchCx<'_>) -> anyhow::Result<BatchOutcome> {
        let url = cx.run.templates.render(&self.url, cx.ctx).context("cannot render the database URL")?;
        let mut args = Vec::with_capacity(self.args.len());
        for (i, a) in self.args.iter().enumerate() {
            args.push(cx.run.templates.render(a, cx.ctx).with_context(|| format!("cannot render `args[{i}]` of the sql step"))?);
        }
        Ok(BatchOutcome::source(RecordSource::Source(Arc::new(Query { url, query: self.query.clone(), args })), json!({})))
    }
}

#[derive(Debug)]
struct Query {
    url: String,
    query: String,
    /// Bound to the query's parameters; may hold secrets, so never shown.
    args: Vec<String>,
}

impl Source for Query {
    fn open(&self) -> Records {
        read_sql(self.url.clone(), self.query.clone(), self.args.clone())
    }

    fn describe(&self) -> String {
        format!("query `{}`", self.query)
    }
}

fn read_sql(url: String, query: String, args: Vec<String>) -> Records {
    let (tx, mut rx) = mpsc::channel::<anyhow::Result<Record>>(BUFFER);
    tokio::spawn(async move {
        let res =
            if url.starts_with("sqlite:") { sql_sqlite(&url, &query, &args, &tx).await } else { sql_pg(&url, &query, &args, &tx).await };
        if let Err(e) = res {
            let _ = tx.send(Err(e)).await;
        }
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

async fn sql_sqlite(url: &str, query: &str, args: &[String], tx: &mpsc::Sender<anyhow::Result<Record>>) -> anyhow::Result<()> {
    use std::str::FromStr;
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?.read_only(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.map_err(|e| connect_error(url, e))?;
    let q = args.iter().fold(sqlx::query(workflow_query(query)), |q, a| q.bind(a.as_str()));
    forward(q.fetch(&pool), sqlite_value, tx).await
}

async fn sql_pg(url: &str, query: &str, args: &[String], tx: &mpsc::Sender<anyhow::Result<Record>>) -> anyhow::Result<()> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|e| connect_error(url, e))?;
    let q = args.iter().fold(sqlx::query(workflow_query(query)), |q, a| q.bind(a.as_str()));
    forward(q.fetch(&pool), pg_value, tx).await
}

/// The query is the workflow author's own, as written in the workflow file: `{{` is refused
/// there at validation, and template values reach the database only as bound `args`.
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

#[cfg(test)]
mod tests {
    fn plan_error(step: &str) -> String {
        let src = format!("name: x\nparams:\n  name: ann\nsteps:\n  - id: q\n    sql:\n      url: sqlite://x.db\n{step}");
        let file = std::sync::Arc::new(crate::spec::parse(std::path::Path::new("w.yaml"), src).unwrap());
        let (dir, config) = (tempfile::tempdir().unwrap(), crate::config::Config::default());
        match crate::plan::build(file, &config, dir.path(), &crate::steps::REGISTRY) {
            Ok(_) => String::new(),
            Err(e) => e.0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"),
        }
    }

    #[test]
    fn a_template_in_the_query_is_refused_at_its_line_pointing_to_args() {
        let e = plan_error("      query: \"SELECT * FROM t WHERE name = '{{params.name}}'\"\n");
        assert!(
            e.starts_with("error: the query is not a template: `{{...}}` would reach the database as written\n  --> w.yaml:8:14"),
            "{e}"
        );
        assert!(e.contains("`args:`") && e.contains("`$1`"), "{e}");
    }

    #[test]
    fn args_are_templates_checked_like_any_other() {
        assert_eq!(plan_error("      query: \"SELECT * FROM t WHERE name = ?1\"\n      args: [\"{{params.name}}\"]\n"), "");
        let e = plan_error("      query: \"SELECT * FROM t WHERE name = ?1\"\n      args: [\"{{params.nme}}\"]\n");
        assert!(e.contains("w.yaml:9:"), "{e}");
    }
}
