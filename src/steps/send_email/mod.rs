//! `send_email` step: Handlebars templates → lettre message → SMTP (own pool) or outbox files,
//! delivered exactly once through the store's idempotency ledger.

pub mod helpers;
pub mod message;
pub mod spec;
pub mod templates;
pub mod pool;
pub mod rate;
pub mod smtp_url;
pub mod transport;
pub mod compiled;
pub mod deliver;
