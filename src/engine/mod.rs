//! Executes a validated workflow and emits events; never prints.

pub mod events;
pub mod invoke;
pub mod lock;
pub mod mask;
pub mod project;
pub mod retry;
pub mod run;
pub mod scope;
pub mod values;
