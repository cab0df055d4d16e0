//! Executes a validated workflow and emits events; never prints.

pub(crate) mod error;
pub(crate) mod invoke;
pub(crate) mod lock;
pub(crate) mod run;

// Moved below the steps; kept under their old paths for the layers above.
pub(crate) use crate::expr::{mask, values};
pub(crate) use crate::plan::project;
pub(crate) use crate::steps::events;
