pub mod demo_portal;
pub mod steps;
