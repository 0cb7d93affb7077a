//! Fail-stop. The first run-log write that fails during a run blows its fuse: no delivery is
//! claimed after that, no new item starts, and the step and the run end `failed` with the
//! reason. Going on would mean side effects the run log cannot account for, which the next run
//! would repeat.

use std::sync::OnceLock;

#[derive(Debug, Default)]
pub(crate) struct Fuse(OnceLock<String>);

impl Fuse {
    /// Remember the first failure; later ones are consequences of it.
    pub(crate) fn blow(&self, why: String) {
        if self.0.set(why.clone()).is_ok() {
            tracing::error!("the run log could not be written ({why}); stopping before the next side effect");
        }
    }

    pub(crate) fn blown(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    /// `Err` once blown, so a caller about to claim a delivery stops instead.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        match self.blown() {
            Some(why) => anyhow::bail!("the run log could not be written earlier in this run ({why}); nothing more is sent"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_is_kept_and_stops_claims() {
        let f = Fuse::default();
        assert!(f.check().is_ok());
        f.blow("disk full".into());
        f.blow("database is locked".into());
        assert_eq!(f.blown(), Some("disk full"));
        assert_eq!(
            f.check().unwrap_err().to_string(),
            "the run log could not be written earlier in this run (disk full); nothing more is sent"
        );
    }
}
