//! Placeholder crate root on the `route` branch until the core lands on main.
pub mod steps;
