//! Executes a validated workflow and emits events; never prints.

pub mod error;
pub mod events;
pub mod invoke;
pub mod lock;
pub mod project;
pub mod retry;
pub mod run;

// Moved below the steps; kept under their old paths for the layers above.
pub use crate::expr::{mask, scope, values};
