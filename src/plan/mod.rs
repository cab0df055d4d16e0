//! The stage between loading and running: what the engine needs from a loaded
//! workflow, decided once before it runs.

pub(crate) mod compiled;
pub(crate) mod inputs;
pub(crate) mod project;
pub(crate) mod rules;

pub(crate) use compiled::Plan;
