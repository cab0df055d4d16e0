//! `runner schedule`: cron parsing, the pure scheduling core and the process runner.

pub mod core;
pub mod cron;
pub mod service;
