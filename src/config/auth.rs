//! Who may use the dashboard and the API: `users:` (people, with argon2 password hashes) and
//! `api_tokens:` (scripts, webhooks, Prometheus; each token's value read from the environment
//! once, only its SHA-256 kept). Checked in the one validation pass, every problem at its line.
//! No value, hash or token ever appears in an error or a `Debug` print.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::spec::config_file::{ConfigSource, TokenEntry, UserEntry};
use crate::spec::{mask, Diagnostic};

/// The shortest token accepted: guessing one must be hopeless even without the rate limit.
pub const MIN_TOKEN_CHARS: usize = 24;

/// What a caller may do. Ordered: each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs and digests, read-only (product teams).
    Viewer,
    /// Also run, resume, resolve, cancel, pause.
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Operator, Role::Admin].into_iter().find(|r| r.as_str() == s)
    }

    /// May start, resume, cancel, pause, unpause and resolve.
    pub fn may_act(self) -> bool {
        self >= Role::Operator
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Role, String> {
        Role::parse(s).ok_or_else(|| format!("role `{s}` is not one of viewer, operator, admin"))
    }
}

/// A person who logs in to the dashboard.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// An argon2 PHC string (`$argon2id$v=19$...`), checked to parse.
    pub password_hash: String,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User").field("name", &self.name).field("role", &self.role).field("password_hash", &"***").finish()
    }
}

/// A token for scripts: its name (who the audit log says acted), role, and the SHA-256 of its value.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub name: String,
    pub role: Role,
    /// The environment variable the value was read from (named in messages; never the value).
    pub env: String,
    pub sha256: [u8; 32],
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken").field("name", &self.name).field("role", &self.role).field("env", &self.env).finish_non_exhaustive()
    }
}

/// SHA-256 of a token's value: what is kept and compared.
pub fn token_digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// Checks `users:` and `api_tokens:`, reading each token from `env`; problems go to `errors`.
pub(super) fn check(
    users: &[UserEntry],
    tokens: &[TokenEntry],
    file: &ConfigSource,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<Diagnostic>,
) -> (Vec<User>, Vec<ApiToken>) {
    let mut c = Check { file, errors, names: HashMap::new() };
    let users = users.iter().enumerate().filter_map(|(i, u)| c.user(i, u)).collect();
    let mut tokens: Vec<ApiToken> = tokens.iter().enumerate().filter_map(|(i, t)| c.token(i, t, env)).collect();
    // Two names for one secret would make the audit log name either of them.
    let mut seen: HashMap<[u8; 32], String> = HashMap::new();
    let mut same = Vec::new();
    for t in &tokens {
        if let Some(first) = seen.get(&t.sha256) {
            same.push((first.clone(), t.name.clone(), t.env.clone()));
        } else {
            seen.insert(t.sha256, t.name.clone());
        }
    }
    for (first, name, var) in same {
        let i = tokens.iter().rposition(|t| t.name == name).unwrap_or(0);
        c.error(
            &format!("api_tokens[{i}].env"),
            format!("API token `{name}` has the same value as `{first}` (in `{var}`)"),
            "give each token its own value, so the audit log says who acted",
            false,
        );
        tokens.retain(|t| t.name != name);
    }
    (users, tokens)
}

struct Check<'a> {
    file: &'a ConfigSource,
    errors: &'a mut Vec<Diagnostic>,
    /// Names seen so far (users and tokens share them: the audit log records the name), with their line.
    names: HashMap<String, usize>,
}

impl Check<'_> {
    fn error(&mut self, path: &str, message: String, help: &str, hide_value: bool) {
        let mut d = self.file.diagnostic(path, message).with_help(Some(help.to_string()));
        if hide_value {
            d.source_line = d.source_line.map(|l| l.chars().take(d.col.saturating_sub(1)).chain("***".chars()).collect());
        }
        self.errors.push(mask::diagnostic(d));
    }

    /// The entry's name, unique over users and tokens; None (reported) when it is not.
    fn name(&mut self, path: &str, what: &str, name: &str) -> Option<()> {
        let ok = !name.is_empty()
            && name.chars().count() <= 64
            && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
            && name != "local";
        if !ok {
            let help = "use 1 to 64 letters, digits, `.`, `_`, `-` or `@` (`local` is the caller when no login is configured)";
            self.error(&format!("{path}.name"), format!("`{name}` is not a usable {what} name"), help, false);
            return None;
        }
        let line = self.file.positions.value(&format!("{path}.name")).0;
        if let Some(first) = self.names.get(name) {
            let msg = format!("the name `{name}` is used twice (first on line {first})");
            self.error(
                &format!("{path}.name"),
                msg,
                "give each user and API token its own name: the audit log records who acted by it",
                false,
            );
            return None;
        }
        self.names.insert(name.to_string(), line);
        Some(())
    }

    fn role(&mut self, path: &str, who: &str, role: &str) -> Option<Role> {
        let r = Role::parse(role.trim());
        if r.is_none() {
            let help = "use `viewer` (read-only), `operator` (also run, resume, resolve, cancel, pause) or `admin`";
            self.error(&format!("{path}.role"), format!("{who}: `{role}` is not a role"), help, false);
        }
        r
    }

    fn user(&mut self, i: usize, u: &UserEntry) -> Option<User> {
        let path = format!("users[{i}]");
        let name = self.name(&path, "user", &u.name);
        let who = format!("user `{}`", u.name);
        let role = self.role(&path, &who, &u.role);
        let hash = u.password_hash.trim();
        let parsed = argon2::PasswordHash::new(hash).ok().filter(|h| h.algorithm.as_str().starts_with("argon2") && h.hash.is_some());
        if parsed.is_none() {
            let help = "run `cxflow hash-password`, type the password, and paste the line it prints (it starts with `$argon2id$`)";
            self.error(&format!("{path}.password_hash"), format!("{who}: `password_hash` is not an argon2 hash"), help, true);
        }
        let (_, role, _) = (name?, role?, parsed?);
        Some(User { name: u.name.clone(), role, password_hash: hash.to_string() })
    }

    fn token(&mut self, i: usize, t: &TokenEntry, env: &dyn Fn(&str) -> Option<String>) -> Option<ApiToken> {
        let path = format!("api_tokens[{i}]");
        let name = self.name(&path, "API token", &t.name);
        let who = format!("API token `{}`", t.name);
        let role = self.role(&path, &who, &t.role);
        let var = t.env.trim();
        let at = format!("{path}.env");
        const SET: &str = "set it to the token (at least 24 characters, e.g. from `openssl rand -hex 32`) where `cxflow serve` runs";
        let valid_name = var.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let digest = if !valid_name {
            let help = "give the name of the variable that holds the token (like `CXFLOW_TOKEN_HELPDESK`), not the token itself";
            self.error(&at, format!("{who}: `env` is not the name of an environment variable"), help, true);
            None
        } else {
            match env(var) {
                None => {
                    self.error(&at, format!("{who}: the environment variable `{var}` is not set"), SET, false);
                    None
                }
                Some(v) if v.trim().is_empty() => {
                    self.error(&at, format!("{who}: the environment variable `{var}` is empty"), SET, false);
                    None
                }
                Some(v) if v.chars().count() < MIN_TOKEN_CHARS => {
                    self.error(&at, format!("{who}: the token in `{var}` is shorter than {MIN_TOKEN_CHARS} characters"), SET, false);
                    None
                }
                Some(v) => Some(token_digest(&v)),
            }
        };
        let (_, role, sha256) = (name?, role?, digest?);
        Some(ApiToken { name: t.name.clone(), role, env: var.to_string(), sha256 })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;
    use crate::spec::config_file;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$C/QhLddIg8ic7yeibESxUQ$fynIY8Ww/mxudGqIXVH4V0OOfZRJKDX8FZ98FaZr++E";
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn build(yaml: &str, vars: &[(&str, &str)]) -> Result<Config, String> {
        let src = config_file::parse(Path::new("cxflow.yaml"), yaml.to_string()).map_err(|d| d.to_string())?;
        Config::build(&src, |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).map_err(|d| d.to_string())
    }

    #[test]
    fn users_and_tokens_become_typed_logins_and_debug_shows_no_secret() {
        let yaml = format!("users:\n  - name: alice\n    role: operator\n    password_hash: \"{HASH}\"\napi_tokens:\n  - name: prom\n    role: viewer\n    env: TOK_PROM\n");
        let c = build(&yaml, &[("TOK_PROM", TOKEN)]).unwrap();
        assert_eq!((c.users[0].name.as_str(), c.users[0].role, c.users[0].password_hash.as_str()), ("alice", super::Role::Operator, HASH));
        assert_eq!((c.api_tokens[0].name.as_str(), c.api_tokens[0].role), ("prom", super::Role::Viewer));
        assert_eq!(c.api_tokens[0].sha256, super::token_digest(TOKEN));
        assert!(c.auth_configured() && !build("", &[]).unwrap().auth_configured());
        let debug = format!("{c:?}");
        assert!(!debug.contains("fynIY8Ww") && !debug.contains(TOKEN) && !debug.contains("sha256"), "{debug}");
    }

    #[test]
    fn an_unknown_role_is_reported_whole_at_its_line() {
        let yaml = format!("users:\n  - name: alice\n    role: superuser\n    password_hash: \"{HASH}\"\n");
        assert_eq!(
            build(&yaml, &[]).unwrap_err(),
            "error: user `alice`: `superuser` is not a role\n  --> cxflow.yaml:3:11\n  |\n3 |     role: superuser\n  |           ^\n  = help: use `viewer` (read-only), `operator` (also run, resume, resolve, cancel, pause) or `admin`\n"
        );
    }

    #[test]
    fn a_token_variable_that_is_not_set_is_named_and_no_value_is_ever_shown() {
        let yaml = "api_tokens:\n  - name: helpdesk\n    role: operator\n    env: CXFLOW_TOKEN_HELPDESK\n";
        assert_eq!(
            build(yaml, &[]).unwrap_err(),
            "error: API token `helpdesk`: the environment variable `CXFLOW_TOKEN_HELPDESK` is not set\n  --> cxflow.yaml:4:10\n  |\n4 |     env: CXFLOW_TOKEN_HELPDESK\n  |          ^\n  = help: set it to the token (at least 24 characters, e.g. from `openssl rand -hex 32`) where `cxflow serve` runs\n"
        );
        let e = build(yaml, &[("CXFLOW_TOKEN_HELPDESK", "short-secret-1")]).unwrap_err();
        assert!(e.starts_with("error: API token `helpdesk`: the token in `CXFLOW_TOKEN_HELPDESK` is shorter than 24 characters\n"), "{e}");
        assert!(!e.contains("short-secret-1"), "{e}");
        let e = build(yaml, &[("CXFLOW_TOKEN_HELPDESK", " ")]).unwrap_err();
        assert!(e.starts_with("error: API token `helpdesk`: the environment variable `CXFLOW_TOKEN_HELPDESK` is empty\n"), "{e}");
        // The token pasted where its variable's name belongs is not quoted back.
        let e = build("api_tokens:\n  - name: h\n    role: viewer\n    env: s3cr3t-t0ken-value-0123456789!\n", &[]).unwrap_err();
        assert!(e.starts_with("error: API token `h`: `env` is not the name of an environment variable\n"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn every_problem_of_the_logins_is_reported_at_once() {
        let yaml = "users:\n  - name: alice\n    role: admin\n    password_hash: hunter2-not-a-hash\n  - name: alice\n    role: viewer\n    password_hash: \"$argon2id$v=19$m=19456,t=2,p=1$C/QhLddIg8ic7yeibESxUQ$fynIY8Ww/mxudGqIXVH4V0OOfZRJKDX8FZ98FaZr++E\"\napi_tokens:\n  - name: a\n    role: viewer\n    env: TA\n  - name: b\n    role: viewer\n    env: TB\n";
        let e = build(yaml, &[("TA", TOKEN), ("TB", TOKEN)]).unwrap_err();
        assert!(
            e.contains(
                "error: user `alice`: `password_hash` is not an argon2 hash\n  --> cxflow.yaml:4:20\n  |\n4 |     password_hash: ***\n"
            ),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("error: the name `alice` is used twice (first on line 2)\n  --> cxflow.yaml:5:11\n"), "{e}");
        assert!(e.contains("error: API token `b` has the same value as `a` (in `TB`)\n  --> cxflow.yaml:14:10\n"), "{e}");
        assert!(!e.contains(TOKEN), "{e}");
    }
}
