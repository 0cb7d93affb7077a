//! The `sql` source step against a real PostgreSQL server on loopback.

mod support;

use support::postgres;

#[test]
fn sql_step_streams_rows_from_postgres() {
    let pg = postgres::Postgres::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
        sqlx::query("CREATE TABLE tickets (id INT, customer TEXT, rating INT2, score FLOAT8, closed DATE, vip BOOL)").execute(&pool).await.unwrap();
        sqlx::query("INSERT INTO tickets SELECT g, 'customer ' || g, (g % 5 + 1)::int2, g / 4.0, DATE '2026-11-22', g % 2 = 0 FROM generate_series(1, 250) g")
            .execute(&pool)
            .await
            .unwrap();
    });
    let p = support::TestProject::new();
    p.write(
        "workflows/w.yaml",
        r#"name: pg
params:
  db: ""
steps:
  - id: tickets
    sql:
      url: "{{params.db}}"
      query: "SELECT id, customer, rating, score, closed, vip FROM tickets WHERE rating <= 2 ORDER BY id"
  - id: out
    write_json: { from: tickets, path: out/low.jsonl, lines: true }
"#,
    );
    let db = format!("db={}", pg.url());
    p.run(&["run", "w", "--var", &db]).expect_code(0);
    let out = p.read("out/low.jsonl");
    assert_eq!(out.lines().count(), 100);
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(
        first,
        serde_json::json!({"id": 1, "customer": "customer 1", "rating": 2, "score": 0.25, "closed": "2026-11-22", "vip": false})
    );
    assert_eq!(p.query("SELECT ok FROM steps WHERE step_id = 'out'"), ["100"]);
}

#[test]
fn unreachable_database_fails_the_step_without_leaking_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let p = support::TestProject::new();
    p.write(
        "workflows/w.yaml",
        &format!(
            r#"name: pg
secrets: [DB_PASSWORD]
steps:
  - id: tickets
    sql: {{ url: "postgres://cx:{{{{secrets.DB_PASSWORD}}}}@127.0.0.1:{port}/crm", query: "SELECT 1" }}
  - id: out
    write_csv: {{ from: tickets, path: out/x.csv }}
"#
        ),
    );
    let r: support::Run = p.cxflow().args(["run", "w"]).env("DB_PASSWORD", "pg-pass-9876").output().unwrap().into();
    r.expect_code(1);
    let err = p.query("SELECT error FROM steps WHERE step_id = 'out'");
    assert!(err[0].contains("cannot connect to postgres://127.0.0.1"), "{err:?}");
    assert!(!r.stdout.contains("pg-pass-9876") && !r.stderr.contains("pg-pass-9876"));
    assert!(!err[0].contains("pg-pass-9876"));
}

#[test]
fn template_values_are_bound_as_parameters_never_spliced_into_the_sql() {
    let pg = postgres::Postgres::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
        sqlx::query("CREATE TABLE customers (id INT, name TEXT)").execute(&pool).await.unwrap();
        sqlx::query("INSERT INTO customers VALUES (1, 'Ann'), (2, 'O''Brien'), (3, 'Bo')").execute(&pool).await.unwrap();
    });
    let p = support::TestProject::new();
    p.write(
        "workflows/w.yaml",
        r#"name: pg
params:
  db: ""
  name: ""
  max_id: "9"
steps:
  - id: found
    sql:
      url: "{{params.db}}"
      query: "SELECT id FROM customers WHERE name = $1 AND id <= $2::int ORDER BY id"
      args: ["{{params.name}}", "{{params.max_id}}"]
  - id: out
    write_csv: { from: found, path: out/found.csv }
"#,
    );
    let db = format!("db={}", pg.url());
    // A quote is data, not SQL: it finds the row named with it.
    p.run(&["run", "w", "--var", &db, "--var", "name=O'Brien"]).expect_code(0);
    assert_eq!(p.read("out/found.csv"), "id\n2\n");
    // A value that would rewrite a spliced query matches nothing, and the table is intact.
    p.run(&["run", "w", "--var", &db, "--var", "name=x' OR '1'='1"]).expect_code(0);
    assert_eq!(p.read("out/found.csv"), "");
    let n: i64 = rt.block_on(async {
        let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
        sqlx::query_scalar("SELECT count(*) FROM customers").fetch_one(&pool).await.unwrap()
    });
    assert_eq!(n, 3);
}
