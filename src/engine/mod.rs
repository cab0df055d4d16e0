//! Executes a validated workflow and emits events; never prints.

pub mod error;
pub mod invoke;
pub mod lock;
pub mod run;

// Moved below the steps; kept under their old paths for the layers above.
pub use crate::expr::{mask, scope, values};
pub use crate::plan::project;
pub use crate::steps::events;
