//! `cxflow hash-password`: the `password_hash` of a `users:` entry in cxflow.yaml, from a
//! password read on stdin (typed twice, unseen, on a terminal; else the whole input, one
//! trailing newline dropped). The password is never printed or logged; only its hash is.

use std::io::{IsTerminal, Read};

use super::{exit, CliError, Result};

pub fn hash_password() -> Result<i32> {
    let password = if std::io::stdin().is_terminal() {
        let first =
            rpassword::prompt_password("password: ").map_err(|e| CliError::Other(anyhow::anyhow!("cannot read the password: {e}")))?;
        let again = rpassword::prompt_password("again: ").map_err(|e| CliError::Other(anyhow::anyhow!("cannot read the password: {e}")))?;
        if first != again {
            return Err(CliError::Invalid("the two passwords differ; run `cxflow hash-password` again".into()));
        }
        first
    } else {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| CliError::Invalid(format!("cannot read the password from stdin: {e}")))?;
        let s = s.strip_suffix('\n').unwrap_or(&s);
        s.strip_suffix('\r').unwrap_or(s).to_string()
    };
    if password.is_empty() {
        return Err(CliError::Invalid(
            "the password is empty; type it, or pipe it in: `printf '%s' \"$PASSWORD\" | cxflow hash-password`".into(),
        ));
    }
    let hash = crate::web::auth::hash_password(&password)?;
    crate::outln!("{hash}");
    Ok(exit::OK)
}
