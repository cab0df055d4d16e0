//! Exit codes. A workflow's own codes are 0–63; runner's own failures use the
//! sysexits range so callers can tell them apart.

/// Success.
pub const OK: i32 = 0;
/// A workflow failed, or `--check` found drift.
pub const FAILURE: i32 = 1;
/// Bad command-line usage.
pub const USAGE: i32 = 64;
/// Invalid workflow, lane registry, manifest or template.
pub const DATAERR: i32 = 65;
/// A named input file or directory does not exist.
pub const NOINPUT: i32 = 66;
/// runner itself failed (a bug, or an I/O error writing output).
pub const SOFTWARE: i32 = 70;
/// The environment lacks something the workflow declares (a required secret).
pub const CONFIG: i32 = 78;
/// The concurrency lock is held and the policy is `fail`.
pub const TEMPFAIL: i32 = 75;
/// The run was cancelled by SIGINT (128 + 2, as shells report it).
pub const INTERRUPTED: i32 = 130;
/// The run was cancelled by SIGTERM (128 + 15).
pub const TERMINATED: i32 = 143;
