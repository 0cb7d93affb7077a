pub mod action;
pub mod driver;
pub mod exec;
pub mod selector;
pub mod session;
pub mod spec;
