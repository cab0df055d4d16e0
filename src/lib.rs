//! runner: a declarative task runner for AI-agent fleets driven by the Dispatch
//! work-queue API. The binary is a thin wrapper around [`main_with_args`].

pub(crate) mod cli;
pub(crate) mod cmd;
pub(crate) mod diagnostics;
pub(crate) mod engine;
pub(crate) mod error;
pub(crate) mod exit;
pub(crate) mod export;
pub(crate) mod expr;
pub(crate) mod fsutil;
pub(crate) mod graph;
pub(crate) mod history;
pub(crate) mod import;
pub(crate) mod lifecycle;
pub(crate) mod load;
pub(crate) mod mermaid;
pub(crate) mod model;
pub(crate) mod output;
pub(crate) mod plan;
pub(crate) mod readlog;
pub(crate) mod render;
pub(crate) mod report;
pub(crate) mod schedule;
pub(crate) mod steps;
pub(crate) mod template;
pub(crate) mod testing;

use std::ffi::OsString;

/// The whole `runner` program: the internal entry points (`runner __supervise`, the
/// parent of one program, and `runner __template`, one template evaluation within
/// limits) first, then the command line. Returns the process exit code.
pub fn main_with_args(args: Vec<OsString>) -> i32 {
    // `runner __supervise ...`: the small parent of one program (see `steps::supervise`).
    if args.get(1).is_some_and(|arg| arg == steps::supervise::SUPERVISE_ARG) {
        return steps::supervise::main(args.get(2..).unwrap_or_default());
    }
    // `runner __template`: one template evaluation within limits (see `template::bounds`).
    if args.get(1).is_some_and(|arg| arg == template::bounds::TEMPLATE_ARG) {
        return template::bounds::main(|root| match root {
            Some(root) => render::environment_for(root),
            None => template::environment(),
        });
    }
    if let Ok(me) = std::env::current_exe() {
        template::bounds::enable(me.clone());
        steps::supervise::enable(me);
    }
    let code = cmd::main_with_args(args);
    template::bounds::shutdown();
    code
}

/// What the benchmarks and the integration tests reach directly. Not a stable
/// interface: the program is the command line.
#[doc(hidden)]
pub mod support {
    pub use crate::history::{
        Retention, dir as history_dir, list as history_list, new_run_id, store as store_run,
    };
    pub use crate::load::schema_check::compile as compile_schema;
    pub use crate::load::yaml::parse as parse_yaml;
    pub use crate::report::run_report::RunReport;
    pub use crate::report::timestamp;
    pub use crate::schedule::service::state_file;
    pub use crate::steps::events::RunStatus;
    pub use crate::template::bounds::{
        enable as enable_template_children, render_in_child, spawned as template_children_spawned,
    };
}
