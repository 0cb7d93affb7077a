//! `smtp_url` → connection settings. Formats:
//!   smtp://host[:port][?tls=opportunistic|required|none]   (default port 25, STARTTLS if offered)
//!   smtps://host[:port]                                    (implicit TLS, default port 465)
//!   smtp://user:password@host:587?tls=required
//! The password may instead come from a secret (filled in when a step opens), so it never sits
//! in YAML. Parsed once, when the project's settings are built, so `cxflow validate` sees a bad URL.

use std::time::Duration;

use super::SmtpCa;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Implicit TLS from the first byte (smtps://).
    Implicit,
    /// STARTTLS; the connection fails if the server does not offer it.
    Required,
    /// STARTTLS when offered, plain otherwise.
    Opportunistic,
    /// Never encrypt (loopback sinks, test servers).
    None,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub user: Option<String>,
    pub password: Option<String>,
    pub timeout: Duration,
    /// `smtp_ca_file`, laid in by the settings pass (a URL cannot say it).
    pub ca: Option<SmtpCa>,
}

// Hand-written so a password never ends up in a log line through `{:?}`.
impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca", &self.ca)
            .finish()
    }
}

impl SmtpSettings {
    /// The settings of one `smtp_url`. The error says what is wrong without quoting the URL (it
    /// may hold a password); the caller names the key.
    pub fn parse(s: &str) -> Result<SmtpSettings, String> {
        let url = url::Url::parse(s.trim()).map_err(|e| format!("not a URL ({e})"))?;
        let implicit = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => return Err(format!("scheme `{other}` is not supported; use smtp:// or smtps://")),
        };
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("the URL has no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let mut tls = if implicit { Tls::Implicit } else { Tls::Opportunistic };
        let mut timeout = Duration::from_secs(60);
        for (k, v) in url.query_pairs() {
            match (&*k, &*v) {
                ("tls", "required" | "starttls") if !implicit => tls = Tls::Required,
                ("tls", "opportunistic") if !implicit => tls = Tls::Opportunistic,
                ("tls", "none") if !implicit => tls = Tls::None,
                ("tls", _) if implicit => return Err("`tls=` is for smtp:// only; smtps:// is always encrypted".to_string()),
                ("tls", _) => return Err(format!("`tls={v}` is not a TLS mode; use required, opportunistic or none")),
                ("timeout", t) => {
                    timeout =
                        humantime::parse_duration(t).map_err(|e| format!("`timeout={t}` is not a duration ({e}); write it like `30s`"))?
                }
                _ => return Err(format!("unknown option `{k}`; known: tls, timeout")),
            }
        }
        let decode = |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
        let user = (!url.username().is_empty()).then(|| decode(url.username())).flatten();
        let password = url.password().and_then(decode);
        let port = url.port().unwrap_or(if implicit { 465 } else { 25 });
        Ok(SmtpSettings { host, port, tls, user, password, timeout, ca: None })
    }

    /// The host is this machine: nothing between cxflow and the server can read the wire.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost") || self.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        let s = SmtpSettings::parse("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!((s.host.as_str(), s.port, s.tls), ("127.0.0.1", 2525, Tls::None));
        let s = SmtpSettings::parse("smtps://mail.example.com").unwrap();
        assert_eq!((s.port, s.tls), (465, Tls::Implicit));
        let s = SmtpSettings::parse("smtp://bot%40x.com:p%40ss@mail.x.com:587?tls=required").unwrap();
        assert_eq!(s.user.as_deref(), Some("bot@x.com"));
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        assert_eq!(s.tls, Tls::Required);
        assert!(!format!("{s:?}").contains("p@ss"));
    }

    #[test]
    fn errors_say_what_is_wrong_without_quoting_the_url() {
        let err = |s: &str| SmtpSettings::parse(s).unwrap_err();
        assert_eq!(err("mail.x.com"), "not a URL (relative URL without a base)");
        assert_eq!(err("http://u:pa55@x"), "scheme `http` is not supported; use smtp:// or smtps://");
        assert_eq!(err("smtp:x"), "the URL has no host");
        assert_eq!(err("smtp://x?tls=maybe"), "`tls=maybe` is not a TLS mode; use required, opportunistic or none");
        assert_eq!(err("smtps://x?tls=none"), "`tls=` is for smtp:// only; smtps:// is always encrypted");
        assert_eq!(err("smtp://x?timeout=soon"), "`timeout=soon` is not a duration (expected number at 0); write it like `30s`");
        assert_eq!(err("smtp://x?pool=3"), "unknown option `pool`; known: tls, timeout");
    }
}
