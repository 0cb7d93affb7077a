//! The SMTP pool and message builder against a real SMTP server on 127.0.0.1.

#[path = "support/smtp.rs"]
mod smtp;

use std::sync::Arc;

use cxflow::steps::send_email::message::{build, Rendered};
use cxflow::steps::send_email::pool::{SendError, SmtpPool};
use cxflow::steps::send_email::rate::RateLimiter;
use cxflow::steps::send_email::smtp_url::SmtpSettings;
use cxflow::steps::send_email::transport::{Delivered, Transport, Ungated};
use smtp::SmtpSink;

fn msg(i: usize, to: &str) -> lettre::Message {
    build(&Rendered {
        from: "Support <support@example.com>".into(),
        to: vec![format!("Customer {i} <{to}>")],
        subject: format!("Ticket {i}"),
        html: Some(format!("<p>Hello {i} &amp; co</p>")),
        text: Some(format!("Hello {i} & co")),
        key: format!("t/{i}"),
        ..Default::default()
    })
    .unwrap()
}

fn pool(sink: &SmtpSink, size: usize) -> Transport {
    Transport::Smtp(SmtpPool::new(SmtpSettings::parse(&sink.url()).unwrap(), size))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_of_500_arrives_once_each() {
    let sink = SmtpSink::start();
    let t = Arc::new(pool(&sink, 4));
    t.check().await.unwrap();
    let rate = Arc::new(RateLimiter::new(None));
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let (t, rate) = (t.clone(), rate.clone());
            tokio::spawn(async move { t.send(&msg(i, &format!("c{i}@example.org")), &rate, &Ungated).await })
        })
        .collect();
    for task in tasks {
        assert!(matches!(task.await.unwrap().unwrap(), Some(Delivered::Smtp(r)) if r.starts_with("250")));
    }
    let elapsed = started.elapsed();
    t.close().await;
    let got = sink.messages();
    assert_eq!(got.len(), 500);
    let mut subjects: Vec<_> = got.iter().map(|m| m.header("Subject").unwrap()).collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 500);
    let m = got.iter().find(|m| m.to == ["c7@example.org"]).unwrap();
    let text = m.text();
    assert!(text.contains("multipart/alternative"), "{text}");
    assert!(text.contains("Hello 7 & co") && text.contains("<p>Hello 7 &amp; co</p>"), "{text}");
    assert_eq!(m.header("To").unwrap(), "\"Customer 7\" <c7@example.org>");
    // Nagle would make this take 500 × 40 ms / 4 = 5 s; with nodelay it is well under a second.
    assert!(elapsed.as_secs_f64() < 3.0, "500 messages took {elapsed:?}");
}

#[tokio::test]
async fn transient_then_success_and_permanent_keeps_servers_words() {
    let sink = SmtpSink::start();
    sink.fail_transient("later@example.org", 1);
    sink.fail_permanent("gone@example.org", "5.1.1 <gone@example.org>: Recipient address rejected");
    let t = pool(&sink, 1);
    let rate = RateLimiter::new(None);
    let e = t.send(&msg(1, "later@example.org"), &rate, &Ungated).await.unwrap_err();
    assert!(matches!(&e, SendError::Transient(m) if m.contains("451")), "{e:?}");
    t.send(&msg(1, "later@example.org"), &rate, &Ungated).await.unwrap();
    let e = t.send(&msg(2, "gone@example.org"), &rate, &Ungated).await.unwrap_err();
    assert!(matches!(&e, SendError::Permanent(m) if m.contains("550") && m.contains("Recipient address rejected")), "{e:?}");
    // The session survives a refusal (RSET), and the next message goes through.
    t.send(&msg(3, "ok@example.org"), &rate, &Ungated).await.unwrap();
    assert_eq!(sink.count(), 2);
}

#[tokio::test]
async fn connection_refused_is_transient_and_tls_required_without_starttls_is_permanent() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let t = Transport::Smtp(SmtpPool::new(SmtpSettings::parse(&format!("smtp://127.0.0.1:{port}")).unwrap(), 1));
    assert!(matches!(t.check().await, Err(SendError::Transient(_))));
    let sink = SmtpSink::start();
    let url = format!("smtp://{}?tls=required", sink.addr);
    let t = Transport::Smtp(SmtpPool::new(SmtpSettings::parse(&url).unwrap(), 1));
    assert!(matches!(t.check().await, Err(SendError::Permanent(m)) if m.contains("STARTTLS")));
}

#[tokio::test]
async fn outbox_writes_eml_files() {
    let d = tempfile::tempdir().unwrap();
    let t = Transport::outbox(&d.path().join("outbox")).unwrap();
    let r = t.send(&msg(1, "a@example.org"), &RateLimiter::new(None), &Ungated).await.unwrap();
    let Some(Delivered::File(p)) = r else { panic!() };
    let s = std::fs::read_to_string(&p).unwrap();
    assert!(p.extension().unwrap() == "eml" && s.contains("Subject: Ticket 1"));
}

#[tokio::test]
async fn rate_limit_paces_sends() {
    let sink = SmtpSink::start();
    let t = pool(&sink, 2);
    let rate = RateLimiter::new(Some(50.0));
    let s = std::time::Instant::now();
    for i in 0..11 {
        t.send(&msg(i, "r@example.org"), &rate, &Ungated).await.unwrap();
    }
    assert!(s.elapsed().as_millis() >= 190, "{:?}", s.elapsed());
}

/// A scripted SMTP server that hangs up at a chosen point, to see how a dropped connection is
/// classified: before the message was handed over it is retryable, after it is uncertain.
async fn hang_up_server(after_data: bool) -> std::net::SocketAddr {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            w.write_all(b"220 scripted\r\n").await.unwrap();
            let mut line = String::new();
            let mut in_data = false;
            loop {
                line.clear();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                let cmd = line.to_ascii_uppercase();
                if in_data {
                    if line == ".\r\n" {
                        break; // hang up instead of answering 250
                    }
                    continue;
                }
                let reply: &[u8] = if cmd.starts_with("EHLO") {
                    b"250 scripted\r\n"
                } else if cmd.starts_with("MAIL") && !after_data {
                    break; // hang up before anything was handed over
                } else if cmd.starts_with("DATA") {
                    in_data = true;
                    b"354 go\r\n"
                } else {
                    b"250 ok\r\n"
                };
                w.write_all(reply).await.unwrap();
            }
        }
    });
    addr
}

#[tokio::test]
async fn dropped_connection_before_data_is_transient_after_data_uncertain() {
    let rate = RateLimiter::new(None);
    for (after_data, uncertain) in [(false, false), (true, true)] {
        let addr = hang_up_server(after_data).await;
        let t = Transport::Smtp(SmtpPool::new(SmtpSettings::parse(&format!("smtp://{addr}?tls=none")).unwrap(), 1));
        let e = t.send(&msg(1, "a@example.org"), &rate, &Ungated).await.unwrap_err();
        match (uncertain, &e) {
            (false, SendError::Transient(_)) => {}
            (true, SendError::Uncertain(m)) if m.contains("may have accepted") => {}
            _ => panic!("after_data={after_data}: {e:?}"),
        }
    }
}

/// A gate that says no, or cannot write its claim, after a delay (the DATA command has been
/// answered by then): nothing reaches the server, and the pool goes on working.
struct SlowGate(Result<bool, String>);

#[async_trait::async_trait]
impl cxflow::steps::send_email::transport::Gate for SlowGate {
    async fn pass(&self) -> Result<bool, String> {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        self.0.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_refused_while_data_is_under_way_sends_nothing() {
    let sink = SmtpSink::start();
    let t = pool(&sink, 1);
    let rate = RateLimiter::new(None);
    // Kept in DATA mode, the connection's RSET would be read as message text and wait out the
    // 60 s SMTP timeout; given up at once, all three sends take well under a second.
    tokio::time::timeout(std::time::Duration::from_secs(30), sends(&t, &rate)).await.expect("a connection left in DATA mode was reused");
    t.close().await;
    let got = sink.messages();
    assert_eq!(got.iter().map(|m| m.to.clone()).collect::<Vec<_>>(), [vec!["c3@example.org".to_string()]]);
}

async fn sends(t: &Transport, rate: &RateLimiter) {
    let no = t.send(&msg(1, "c1@example.org"), rate, &SlowGate(Ok(false))).await.unwrap();
    assert!(no.is_none(), "withheld: {no:?}");
    let e = t.send(&msg(2, "c2@example.org"), rate, &SlowGate(Err("disk full".into()))).await.unwrap_err();
    assert!(matches!(e, SendError::NotClaimed(ref m) if m == "disk full"), "{e:?}");
    // The one connection was given up in DATA mode; the next email gets a fresh one.
    let ok = t.send(&msg(3, "c3@example.org"), rate, &SlowGate(Ok(true))).await.unwrap();
    assert!(matches!(ok, Some(Delivered::Smtp(ref r)) if r.starts_with("250")), "{ok:?}");
}
