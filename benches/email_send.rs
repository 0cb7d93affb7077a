//! 10,000 personalised multipart emails to an SMTP sink on loopback.
//!
//!   cargo bench --bench email_send                # the real engine: `cxflow run` in-process, SQLite run log on
//!   cargo bench --bench email_send -- --pipeline  # render + build + send only, no engine or run log
//!   cargo bench --bench email_send -- --lettre-pool 1000   # lettre's own pooled transport, for comparison
//!
//!   cargo bench --bench email_send -- --server PORT [--raw]   # to a server on 127.0.0.1:PORT instead
//!
//! Prints messages/s and peak memory (VmHWM). Options: N (count), --pool K, --concurrency C.
//! The sink runs in the same process but keeps no message bodies. `--raw` sends messages rendered
//! and built beforehand (only the sending is timed): the most a server takes from our SMTP client,
//! the ceiling `benches/email_aiosmtpd.sh` compares the engine with.

#[path = "../tests/support/smtp.rs"]
mod smtp;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde_json::json;

use cxflow::steps::send_email::compiled::Compiled;
use cxflow::steps::send_email::message::build;
use cxflow::steps::send_email::pool::SmtpPool;
use cxflow::steps::send_email::rate::RateLimiter;
use cxflow::steps::send_email::smtp_url::SmtpSettings;
use cxflow::steps::send_email::spec::SendEmailSpec;
use cxflow::steps::send_email::transport::{Transport, Ungated};

fn vm_hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

fn arg(args: &[String], name: &str) -> Option<usize> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

fn setup_templates(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("partials")).unwrap();
    std::fs::write(dir.join("partials/header.html.hbs"), "<div class=\"hdr\"><img src=\"https://cdn.example.com/logo.png?v=2&s=1\"></div>")
        .unwrap();
    std::fs::write(dir.join("partials/footer.hbs"), "-- \nAcme Support · {{date \"now\" \"%Y\"}}").unwrap();
    std::fs::write(
        dir.join("follow_up.html.hbs"),
        "{{> header}}<p>Hi {{item.name}},</p><p>Your ticket <b>#{{item.ticket_id}}</b> ({{item.topic}}) was closed on {{date item.closed_at \"%d %B %Y\"}}.</p>\
         <p>You had {{item.replies}} {{pluralize item.replies \"reply\" \"replies\"}} from {{upper item.agent}}.</p>\
         <p><a href=\"https://survey.example.com/r?t={{item.ticket_id}}&s=5\">Rate us</a></p>{{> footer}}",
    )
    .unwrap();
    std::fs::write(
        dir.join("follow_up.txt.hbs"),
        "Hi {{item.name}},\n\nYour ticket #{{item.ticket_id}} ({{item.topic}}) was closed on {{date item.closed_at \"%d %B %Y\"}}.\n\
         Rate us: https://survey.example.com/r?t={{item.ticket_id}}&s=5\n\n{{> footer}}\n",
    )
    .unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and then a small smoke run
    // is enough to show the benchmark still works.
    let benching = std::env::args().any(|a| a == "--bench");
    let mut args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if !benching && !args.iter().any(|a| a.parse::<usize>().is_ok()) {
        args.insert(0, "200".into());
    }
    // Another server (`--server PORT`) counts what it got itself; the in-process sink is then not started.
    let sink = arg(&args, "--server").is_none().then(|| {
        let sink = smtp::SmtpSink::start_with_threads(64);
        sink.discard_data();
        sink
    });
    let url = match (&sink, arg(&args, "--server")) {
        (Some(sink), _) => sink.url(),
        (None, port) => format!("smtp://127.0.0.1:{}", port.unwrap()),
    };
    if let Some(n) = arg(&args, "--lettre-pool") {
        return lettre_pool(sink.as_ref().expect("--lettre-pool uses the in-process sink"), n).await;
    }
    let n = args
        .iter()
        .enumerate()
        .find(|(i, a)| a.parse::<usize>().is_ok() && (*i == 0 || !args[i - 1].starts_with("--")))
        .map(|(_, a)| a.parse().unwrap())
        .unwrap_or(10_000);
    let pool_size = arg(&args, "--pool").unwrap_or(8);
    let concurrency = arg(&args, "--concurrency").unwrap_or(16);
    let raw = args.iter().any(|a| a == "--raw");
    if !raw && !args.iter().any(|a| a == "--pipeline") {
        return engine(&url, sink.as_ref(), n, pool_size, concurrency).await;
    }

    let dir = tempfile::tempdir().unwrap();
    setup_templates(dir.path());
    let spec: SendEmailSpec = serde_saphyr::from_str(
        r#"
to: "{{item.name}} <{{item.email}}>"
subject: "How did we do on ticket {{item.ticket_id}}?"
template: follow_up
idempotency_key: "follow-up/{{item.ticket_id}}"
"#,
    )
    .unwrap();
    let compiled = Arc::new(Compiled::compile(&spec, dir.path(), |p, m| panic!("{p}: {m}")).unwrap());
    let transport = Arc::new(Transport::Smtp(SmtpPool::new(SmtpSettings::parse(&url).unwrap(), pool_size)));
    transport.check().await.unwrap();
    let rate = Arc::new(RateLimiter::new(None));
    let base = dir.path().to_path_buf();
    let message = move |c: &Compiled, i: usize| {
        let ctx = json!({"item": {
            "ticket_id": 100000 + i, "name": format!("Customer {i}"), "email": format!("c{i}@example.org"),
            "topic": "Billing & invoices", "closed_at": "2024-05-03T10:00:00Z", "replies": i % 4, "agent": "sam"
        }});
        build(&c.render(&ctx, Some("Acme <support@acme.example>"), "x", &base, "x").unwrap()).unwrap()
    };
    let prebuilt: Vec<_> = if raw { (0..n).map(|i| message(&compiled, i)).collect() } else { Vec::new() };

    let start = Instant::now();
    let sent = futures::stream::iter(0..n)
        .map(|i| {
            let (c, t, r, message, prebuilt) = (compiled.clone(), transport.clone(), rate.clone(), &message, &prebuilt);
            async move {
                match prebuilt.get(i) {
                    Some(msg) => t.send(msg, &r, &Ungated).await.unwrap(),
                    None => t.send(&message(&c, i), &r, &Ungated).await.unwrap(),
                };
            }
        })
        .buffer_unordered(concurrency)
        .count()
        .await;
    let el = start.elapsed();
    transport.close().await;
    if let Some(sink) = &sink {
        assert_eq!(sink.wait_for(n, std::time::Duration::from_secs(10)), n);
    }
    println!(
        "email_send{}: {sent} messages in {:.2}s = {:.0} msg/s (pool {pool_size}, concurrency {concurrency}); peak memory VmHWM {}",
        if raw { " (pre-rendered)" } else { "" },
        el.as_secs_f64(),
        sent as f64 / el.as_secs_f64(),
        vm_hwm()
    );
}

/// The whole product path: CSV → engine → send_email step → SMTP, with the SQLite run log and
/// the exactly-once ledger (two writes per message: claim before, sent after).
async fn engine(url: &str, sink: Option<&smtp::SmtpSink>, n: usize, pool_size: usize, concurrency: usize) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    setup_templates(&p.join("templates"));
    let mut csv = String::from("ticket_id,name,email,topic,closed_at,replies,agent\n");
    for i in 0..n {
        csv.push_str(&format!("{},Customer {i},c{i}@example.org,Billing & invoices,2024-05-03T10:00:00Z,{},sam\n", 100000 + i, i % 4));
    }
    std::fs::create_dir_all(p.join("data")).unwrap();
    std::fs::write(p.join("data/closed.csv"), csv).unwrap();
    std::fs::write(
        p.join("cxflow.yaml"),
        format!("smtp_url: \"{url}\"\nsmtp_pool_size: {pool_size}\nsmtp_from: \"Acme <support@acme.example>\"\n"),
    )
    .unwrap();
    std::fs::create_dir_all(p.join("workflows")).unwrap();
    std::fs::write(
        p.join("workflows/bench.yaml"),
        format!(
            r#"name: bench
steps:
  - id: closed
    read_csv: data/closed.csv
  - id: follow_up
    for_each: closed
    item_key: "{{{{item.ticket_id}}}}"
    concurrency: {concurrency}
    send_email:
      to: "{{{{item.name}}}} <{{{{item.email}}}}>"
      subject: "How did we do on ticket {{{{item.ticket_id}}}}?"
      template: follow_up
      idempotency_key: "follow-up/{{{{item.ticket_id}}}}"
"#
        ),
    )
    .unwrap();
    let project = cxflow::cli::Project::open(p).unwrap();
    let start = Instant::now();
    let args = cxflow::cli::RunArgs { workflow: p.join("workflows/bench.yaml").display().to_string(), vars: vec![], dry_run: false };
    // On a runtime worker, like the `cxflow` binary (`main.rs` spawns the command): polled from
    // `block_on`, every socket event would need a wake-up of the main thread.
    let code = tokio::spawn(async move { cxflow::cli::run(&project, args).await.map_err(|e| e.to_string()) }).await.unwrap().unwrap();
    let el = start.elapsed();
    assert_eq!(code, 0);
    if let Some(sink) = sink {
        assert_eq!(sink.wait_for(n, std::time::Duration::from_secs(10)), n);
    }
    println!(
        "email_send (engine + run log): {n} messages in {:.2}s = {:.0} msg/s (pool {pool_size}, concurrency {concurrency}); peak memory VmHWM {}",
        el.as_secs_f64(),
        n as f64 / el.as_secs_f64(),
        vm_hwm()
    );
}

/// Baseline: lettre's pooled AsyncSmtpTransport, same sink and messages.
async fn lettre_pool(sink: &smtp::SmtpSink, n: usize) {
    use lettre::transport::smtp::PoolConfig;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let pool = arg(&std::env::args().collect::<Vec<_>>(), "--pool").unwrap_or(4) as u32;
    let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(sink.addr.ip().to_string())
        .port(sink.addr.port())
        .pool_config(PoolConfig::new().max_size(pool))
        .build();
    let start = Instant::now();
    let count = futures::stream::iter(0..n)
        .map(|i| {
            let t = t.clone();
            async move {
                let m = Message::builder()
                    .from("support@acme.example".parse().unwrap())
                    .to(format!("c{i}@example.org").parse().unwrap())
                    .subject(format!("Ticket {i}"))
                    .body(format!("Hello {i}"))
                    .unwrap();
                t.send(m).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .count()
        .await;
    let el = start.elapsed();
    println!(
        "lettre pooled transport: {count} messages in {:.2}s = {:.0} msg/s (pool {pool}, concurrency 16)",
        el.as_secs_f64(),
        count as f64 / el.as_secs_f64()
    );
}
