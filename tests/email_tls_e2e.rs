//! Email over TLS end to end: the real `cxflow` binary against a TLS SMTP server on 127.0.0.1
//! (tests/support/tls_smtp.rs) whose certificate comes from a CA each test makes. The server
//! records every line the client sent, in clear or over TLS: what a test says never crossed the
//! wire unencrypted is read from there.

mod support;
#[path = "support/tls_smtp.rs"]
mod tls_smtp;

use std::time::Duration;

use base64::Engine as _;
use support::{wait_until, Run, TestProject};
use tls_smtp::{Options, Pki, TlsSmtp};

const USER: &str = "bot@acme.example";
const PASSWORD: &str = "s3cret-Pa55word";

/// A project that emails two customers, with `settings` as its cxflow.yaml and the CA's PEM
/// file at `certs/ca.pem`.
fn project(settings: &str, ca_pem: &str) -> TestProject {
    let p = TestProject::new();
    p.write("certs/ca.pem", ca_pem);
    p.write("cxflow.yaml", settings);
    p.write("templates/hi.txt.hbs", "Hi {{item.name}}, your ticket {{item.id}} is closed.");
    p.write("data/closed.csv", "id,name,email\nT1,Ann,ann@example.org\nT2,Bob,bob@example.org\n");
    p.write(
        "workflows/x.yaml",
        r#"name: follow-up
steps:
  - id: closed
    read_csv: data/closed.csv
  - id: mail
    for_each: closed
    item_key: "{{item.id}}"
    send_email:
      to: "{{item.email}}"
      from: care@acme.example
      subject: "Ticket {{item.id}}"
      template: hi
"#,
    );
    p
}

/// `cxflow run` with the login in the environment, named by the settings' `*_secret` keys.
fn run(p: &TestProject) -> Run {
    let out = p.cxflow().env("SMTP_USER", USER).env("SMTP_PASSWORD", PASSWORD).args(["run", "workflows/x.yaml"]).output().unwrap();
    Run::from(out)
}

/// What the run printed, both streams: the step's error is in its summary.
fn output(r: &Run) -> String {
    format!("{}{}", r.stdout, r.stderr)
}

const LOGIN: &str = "smtp_user_secret: SMTP_USER\nsmtp_password_secret: SMTP_PASSWORD\n";

fn login() -> Option<(String, String)> {
    Some((USER.to_string(), PASSWORD.to_string()))
}

/// Nothing of the password crossed in clear: no AUTH command, and neither the password nor
/// the forms AUTH PLAIN and LOGIN encode it in.
#[track_caller]
fn no_secret_in_clear(server: &TlsSmtp) {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let forms = [PASSWORD.to_string(), b64(&format!("\0{USER}\0{PASSWORD}")), b64(PASSWORD), b64(USER)];
    for l in server.plain_lines() {
        assert!(!l.to_ascii_uppercase().starts_with("AUTH"), "AUTH sent in clear: {l}");
        assert!(!forms.iter().any(|f| l.contains(f.as_str())), "the login crossed in clear: {l}");
    }
}

/// The run failed before its first email, and nothing is recorded as sent or claimed.
#[track_caller]
fn nothing_sent(p: &TestProject, server: &TlsSmtp, r: &Run) {
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(server.messages().is_empty(), "{:?}", server.messages());
    assert_eq!(p.query("SELECT status FROM runs"), ["failed"]);
    assert_eq!(p.query("SELECT status FROM steps WHERE step_id = 'mail'"), ["failed"]);
    assert_eq!(p.query("SELECT count(*) FROM ledger"), ["0"]);
    assert_eq!(p.query("SELECT count(*) FROM items WHERE step_id = 'mail' AND status = 'ok'"), ["0"]);
}

#[test]
fn starttls_required_logs_in_after_tls_and_only_the_greeting_crosses_in_clear() {
    let pki = Pki::new("Acme private CA");
    let server = TlsSmtp::start(&pki.server(&["127.0.0.1"]), Options { starttls: true, login: login(), ..Options::default() });
    let url = format!("smtp_url: smtp://127.0.0.1:{}?tls=required\n", server.port);
    let p = project(&format!("{url}smtp_ca_file: certs/ca.pem\n{LOGIN}"), &pki.ca_pem);
    run(&p).expect_code(0);

    let got = server.messages();
    assert_eq!(got.iter().map(|m| m.to.join(",")).collect::<Vec<_>>(), ["ann@example.org", "bob@example.org"]);
    assert!(got.iter().all(|m| m.tls && m.user.as_deref() == Some(USER)), "{got:?}");
    assert!(got[0].data.contains("Hi Ann, your ticket T1 is closed."), "{}", got[0].data);
    assert_eq!(server.plain_lines(), ["EHLO cxflow.localhost", "STARTTLS"]);
    assert!(server.lines().iter().any(|l| l.tls && l.text.starts_with("AUTH PLAIN ")), "{:?}", server.lines());
    no_secret_in_clear(&server);
    assert_eq!(p.query("SELECT count(*) FROM ledger WHERE state = 'sent'"), ["2"]);
}

#[test]
fn opportunistic_starttls_encrypts_when_the_server_offers_it() {
    let pki = Pki::new("Acme private CA");
    let server = TlsSmtp::start(&pki.server(&["127.0.0.1"]), Options { starttls: true, ..Options::default() });
    let p = project(&format!("smtp_url: smtp://127.0.0.1:{}\nsmtp_ca_file: certs/ca.pem\n", server.port), &pki.ca_pem);
    run(&p).expect_code(0);
    let got = server.messages();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|m| m.tls), "{got:?}");
    assert_eq!(server.plain_lines(), ["EHLO cxflow.localhost", "STARTTLS"]);

    // A server that offers no STARTTLS gets the email in clear: there is no login to protect.
    let plain = TlsSmtp::start(&pki.server(&["127.0.0.1"]), Options::default());
    let p = project(&format!("smtp_url: smtp://127.0.0.1:{}\n", plain.port), &pki.ca_pem);
    run(&p).expect_code(0);
    let got = plain.messages();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|m| !m.tls), "{got:?}");
}

#[test]
fn smtps_is_tls_from_the_first_byte_and_logs_in() {
    let pki = Pki::new("Acme private CA");
    let server = TlsSmtp::start(&pki.server(&["127.0.0.1"]), Options { implicit: true, login: login(), ..Options::default() });
    let p = project(&format!("smtp_url: smtps://127.0.0.1:{}\nsmtp_ca_file: certs/ca.pem\n{LOGIN}", server.port), &pki.ca_pem);
    run(&p).expect_code(0);
    let got = server.messages();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|m| m.tls && m.user.as_deref() == Some(USER)), "{got:?}");
    assert!(server.plain_lines().is_empty(), "{:?}", server.plain_lines());
    assert!(server.lines().iter().any(|l| l.text.starts_with("AUTH PLAIN ")), "{:?}", server.lines());
    assert_eq!(server.logins_refused(), 0);
}

#[test]
fn a_certificate_from_an_unknown_ca_is_refused_never_downgraded() {
    let pki = Pki::new("Acme private CA");
    let server = TlsSmtp::start(&pki.server(&["127.0.0.1"]), Options { starttls: true, login: login(), ..Options::default() });
    // Opportunistic: a failed handshake must not fall back to sending in clear.
    let p = project(&format!("smtp_url: smtp://127.0.0.1:{}\n{LOGIN}", server.port), &pki.ca_pem);
    let r = run(&p);
    nothing_sent(&p, &server, &r);
    let at = format!("127.0.0.1:{}", server.port);
    assert!(
        output(&r).contains(&format!(
            "TLS with {at} refused: its certificate is not signed by a CA cxflow trusts; if the server uses a private CA, set \
             `smtp_ca_file` in cxflow.yaml to that CA's PEM file"
        )),
        "{}",
        output(&r)
    );
    assert_eq!(server.plain_lines(), ["EHLO cxflow.localhost", "STARTTLS"], "nothing after the failed handshake");
    no_secret_in_clear(&server);
    wait_until(Duration::from_secs(10), "the server to see the handshake fail", || !server.handshake_errors().is_empty());

    // smtps://, with `smtp_ca_file` naming another CA: the message says which file did not sign it.
    let other = Pki::new("Someone else's CA");
    let server = TlsSmtp::start(&pki.server(&["127.0.0.1"]), Options { implicit: true, login: login(), ..Options::default() });
    let p = project(&format!("smtp_url: smtps://127.0.0.1:{}\nsmtp_ca_file: certs/ca.pem\n{LOGIN}", server.port), &other.ca_pem);
    let r = run(&p);
    nothing_sent(&p, &server, &r);
    let expected = format!(
        "TLS with 127.0.0.1:{} refused: its certificate is signed neither by a public CA nor by the CA in `certs/ca.pem` \
         (`smtp_ca_file`); set `smtp_ca_file` to the PEM file of the CA that signed it",
        server.port
    );
    assert!(output(&r).contains(&expected), "{}", output(&r));
    assert!(server.lines().is_empty(), "{:?}", server.lines());
}

#[test]
fn a_certificate_for_another_host_name_is_refused() {
    let pki = Pki::new("Acme private CA");
    let server = TlsSmtp::start(&pki.server(&["mail.acme.example"]), Options { implicit: true, ..Options::default() });
    let p = project(&format!("smtp_url: smtps://127.0.0.1:{}\nsmtp_ca_file: certs/ca.pem\n", server.port), &pki.ca_pem);
    let r = run(&p);
    nothing_sent(&p, &server, &r);
    let expected = format!("TLS with 127.0.0.1:{} refused: its certificate is not valid for `127.0.0.1`", server.port);
    assert!(output(&r).contains(&expected), "{}", output(&r));
    assert!(output(&r).contains("write the host name the certificate names in `smtp_url`"), "{}", output(&r));
}

#[test]
fn no_password_is_sent_to_a_server_that_offers_no_starttls() {
    let pki = Pki::new("Acme private CA");
    // The server offers AUTH in clear and no STARTTLS: a careless client would log in.
    let server = TlsSmtp::start(&pki.server(&["127.0.0.1"]), Options { login: login(), ..Options::default() });
    let p = project(&format!("smtp_url: smtp://127.0.0.1:{}\nsmtp_ca_file: certs/ca.pem\n{LOGIN}", server.port), &pki.ca_pem);
    let r = run(&p);
    nothing_sent(&p, &server, &r);
    let expected = format!(
        "127.0.0.1:{} offers no STARTTLS, and cxflow never sends the SMTP password unencrypted: use `smtps://` if the server \
         listens for TLS from the start (usually port 465), or ask its admin to enable STARTTLS",
        server.port
    );
    assert!(output(&r).contains(&expected), "{}", output(&r));
    assert_eq!(server.plain_lines(), ["EHLO cxflow.localhost"]);
    no_secret_in_clear(&server);

    // `tls=required` says so in its own words, and sends nothing either.
    let p = project(&format!("smtp_url: smtp://127.0.0.1:{}?tls=required\n{LOGIN}", server.port), &pki.ca_pem);
    let r = run(&p);
    nothing_sent(&p, &server, &r);
    assert!(output(&r).contains("does not offer STARTTLS but `tls=required`"), "{}", output(&r));
    no_secret_in_clear(&server);
    assert_eq!(server.logins_refused(), 0);
}

#[test]
fn a_refused_login_fails_the_run_naming_the_server_and_the_settings_not_the_login() {
    let pki = Pki::new("Acme private CA");
    let server = TlsSmtp::start(&pki.server(&["127.0.0.1"]), Options { starttls: true, login: login(), ..Options::default() });
    let url = format!("smtp_url: smtp://127.0.0.1:{}?tls=required\n", server.port);
    let p = project(&format!("{url}smtp_ca_file: certs/ca.pem\n{LOGIN}"), &pki.ca_pem);
    let out = p.cxflow().env("SMTP_USER", USER).env("SMTP_PASSWORD", "wrong-Pa55").args(["run", "workflows/x.yaml"]).output().unwrap();
    let r = Run::from(out);
    nothing_sent(&p, &server, &r);
    assert_eq!(server.logins_refused(), 1, "the server checked the login, over TLS");
    assert!(server.lines().iter().any(|l| l.tls && l.text.starts_with("AUTH ")), "{:?}", server.lines());
    let expected = format!("SMTP login to 127.0.0.1:{} failed: permanent error (535): ", server.port);
    assert!(output(&r).contains(&expected), "{}", output(&r));
    assert!(output(&r).contains("check the values of the secrets named by `smtp_user_secret` and `smtp_password_secret`"));
    assert!(!output(&r).contains(USER) && !output(&r).contains("wrong-Pa55"), "{}", output(&r));
    no_secret_in_clear(&server);
}

#[test]
fn a_certificate_that_fails_mid_run_fails_its_item_unclaimed_and_the_others_stay_sent() {
    let pki = Pki::new("Acme private CA");
    let stranger = Pki::new("Someone else's CA");
    // The first session (opened before any item) is trusted and takes one email; every later
    // session shows a certificate from an unknown CA.
    let options = Options { starttls: true, then: Some(stranger.server(&["127.0.0.1"])), ..Options::default() };
    let server = TlsSmtp::start(&pki.server(&["127.0.0.1"]), options);
    let p = project(&format!("smtp_url: smtp://127.0.0.1:{}\nsmtp_ca_file: certs/ca.pem\n", server.port), &pki.ca_pem);
    p.write("workflows/x.yaml", &p.read("workflows/x.yaml").replace("    send_email:", "    concurrency: 1\n    send_email:"));
    let r = run(&p);
    r.expect_code(1);
    assert_eq!(server.messages().iter().map(|m| m.to.join(",")).collect::<Vec<_>>(), ["ann@example.org"]);
    let items = p.query("SELECT item_key, status, attempts FROM items WHERE step_id = 'mail' ORDER BY item_key");
    assert_eq!(items, ["T1|ok|1", "T2|failed|1"]);
    let error = p.query("SELECT error FROM items WHERE item_key = 'T2'").remove(0);
    let expected = format!("TLS with 127.0.0.1:{} refused: its certificate is signed neither by a public CA", server.port);
    assert!(error.contains(&expected), "{error}");
    assert_eq!(p.query("SELECT key, state FROM ledger"), ["follow-up/T1|sent"]);
    assert_eq!(p.query("SELECT status FROM runs"), ["partial"]);
}

#[test]
fn a_server_that_offers_no_login_is_told_apart_from_a_wrong_password() {
    let pki = Pki::new("Acme private CA");
    let server = TlsSmtp::start(&pki.server(&["127.0.0.1"]), Options { starttls: true, ..Options::default() });
    let url = format!("smtp_url: smtp://127.0.0.1:{}?tls=required\n", server.port);
    let p = project(&format!("{url}smtp_ca_file: certs/ca.pem\n{LOGIN}"), &pki.ca_pem);
    let r = run(&p);
    nothing_sent(&p, &server, &r);
    let expected = format!(
        "127.0.0.1:{} offers no login (AUTH PLAIN or LOGIN), but `smtp_user_secret` and `smtp_password_secret` are set: \
         remove them if the server needs no login, or check that `smtp_url` names the submission port",
        server.port
    );
    assert!(output(&r).contains(&expected), "{}", output(&r));
    assert!(!server.lines().iter().any(|l| l.text.starts_with("AUTH")), "{:?}", server.lines());
}
