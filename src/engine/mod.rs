//! Executes a validated workflow and emits events; never prints.

pub mod events;
pub mod mask;
pub mod scope;
pub mod values;
