// TEMPORARY until the core lands on main: only the send_email modules.
pub mod steps {
    pub mod send_email;
}
