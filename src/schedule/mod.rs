//! `runner schedule`: cron parsing, the pure scheduling core and the process runner.

pub(crate) mod core;
pub(crate) mod cron;
pub(crate) mod service;
