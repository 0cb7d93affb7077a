//! Dashboard sessions (`web::auth`): kept in the run log so a restart keeps people logged in.
//! Keyed by the hash of the session id; the caller hashes, so the id itself never reaches SQL.

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use super::db::on_db;
use super::{Result, Store};

/// A live session as the dashboard needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub user: String,
    pub csrf_token: String,
}

/// How long a session lives: since it was last used, and at most since it was created.
#[derive(Debug, Clone, Copy)]
pub struct SessionLife {
    pub idle: Duration,
    pub absolute: Duration,
}

impl Default for SessionLife {
    fn default() -> Self {
        SessionLife { idle: Duration::hours(12), absolute: Duration::days(7) }
    }
}

/// A used session's `last_seen` is written at most this often: a page that refreshes itself
/// every second must not write the run log every second.
const TOUCH_EVERY: Duration = Duration::seconds(60);

fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Store {
    /// Records a new session; expired ones are deleted on the way (logins are rare, sessions few).
    pub async fn create_web_session(&self, id_hash: &str, s: &WebSession, life: SessionLife, now: DateTime<Utc>) -> Result<()> {
        let t = text(now);
        on_db!(&self.db, pool => sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1 OR last_seen <= $2")
            .bind(&t)
            .bind(text(now - life.idle))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        on_db!(&self.db, pool => sqlx::query(
            "INSERT INTO web_sessions (id_hash, user_name, csrf_token, created_at, last_seen, expires_at) VALUES ($1, $2, $3, $4, $4, $5)",
        )
        .bind(id_hash)
        .bind(&s.user)
        .bind(&s.csrf_token)
        .bind(&t)
        .bind(text(now + life.absolute))
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The session if it is still live at `now` (marking it used); None when it is unknown or
    /// has expired (an expired one is deleted).
    pub async fn use_web_session(&self, id_hash: &str, life: SessionLife, now: DateTime<Utc>) -> Result<Option<WebSession>> {
        let row: Option<(String, String, String, String)> = on_db!(&self.db, pool =>
            sqlx::query_as("SELECT user_name, csrf_token, last_seen, expires_at FROM web_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .fetch_optional(pool)
                .await)?;
        let Some((user, csrf_token, last_seen, expires_at)) = row else { return Ok(None) };
        let t = text(now);
        if expires_at <= t || last_seen <= text(now - life.idle) {
            self.delete_web_session(id_hash).await?;
            return Ok(None);
        }
        if last_seen <= text(now - TOUCH_EVERY) {
            on_db!(&self.db, pool => sqlx::query("UPDATE web_sessions SET last_seen = $1 WHERE id_hash = $2")
                .bind(&t)
                .bind(id_hash)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()))?;
        }
        Ok(Some(WebSession { user, csrf_token }))
    }

    /// Logs a session out (nothing happens for an unknown one).
    pub async fn delete_web_session(&self, id_hash: &str) -> Result<()> {
        on_db!(&self.db, pool => sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> WebSession {
        WebSession { user: "alice".into(), csrf_token: "c".into() }
    }

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn a_session_lives_until_idle_or_absolute_expiry(fresh) {
        let s = fresh.open().await;
        let life = SessionLife::default();
        let t0 = Utc::now();
        s.create_web_session("h1", &session(), life, t0).await.unwrap();
        // Used every 11 hours: alive past the idle limit, until the absolute one.
        let mut t = t0;
        for _ in 0..16 {
            t += Duration::hours(11);
            let live = s.use_web_session("h1", life, t).await.unwrap();
            assert_eq!(live.is_some(), t < t0 + Duration::days(7), "at {t}");
        }
        // Gone for good once expired.
        assert_eq!(s.use_web_session("h1", life, t0).await.unwrap(), None);

        s.create_web_session("h2", &session(), life, t0).await.unwrap();
        assert_eq!(s.use_web_session("h2", life, t0 + Duration::hours(11)).await.unwrap(), Some(session()));
        assert_eq!(s.use_web_session("h2", life, t0 + Duration::hours(23) + Duration::minutes(1)).await.unwrap(), None);
    }
    }

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn logout_deletes_and_only_the_hash_is_stored(fresh) {
        let s = fresh.open().await;
        let life = SessionLife::default();
        s.create_web_session("h1", &session(), life, Utc::now()).await.unwrap();
        let ids: Vec<String> =
            on_db!(&s.db, pool => sqlx::query_scalar("SELECT id_hash FROM web_sessions").fetch_all(pool).await).unwrap();
        assert_eq!(ids, ["h1"]);
        s.delete_web_session("h1").await.unwrap();
        assert_eq!(s.use_web_session("h1", life, Utc::now()).await.unwrap(), None);
    }
    }
}
