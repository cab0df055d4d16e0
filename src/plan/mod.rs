//! The stage between loading and running: what the engine needs from a loaded
//! workflow, decided once before it runs.

pub mod compiled;
pub mod inputs;
pub mod project;
pub mod rules;

pub use compiled::Plan;
