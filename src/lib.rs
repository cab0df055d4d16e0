//! runner: a declarative task runner for AI-agent fleets driven by the Dispatch
//! work-queue API. The binary is a thin wrapper around [`cli::main`].

pub mod cli;
pub mod cmd;
pub mod diagnostics;
pub mod engine;
pub mod error;
pub mod exit;
pub mod export;
pub mod expr;
pub mod fsutil;
pub mod graph;
pub mod history;
pub mod import;
pub mod lifecycle;
pub mod load;
pub mod mermaid;
pub mod model;
pub mod output;
pub mod plan;
pub mod render;
pub mod report;
pub mod schedule;
pub mod steps;
pub mod template;
pub mod testing;
