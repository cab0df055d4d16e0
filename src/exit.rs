//! Exit codes. A workflow's own codes are 0–63; runner's own failures use the
//! sysexits range so callers can tell them apart.

/// Success.
pub(crate) const OK: i32 = 0;
/// A workflow failed, or `--check` found drift.
pub(crate) const FAILURE: i32 = 1;
/// Bad command-line usage.
pub(crate) const USAGE: i32 = 64;
/// Invalid workflow, lane registry, manifest or template.
pub(crate) const DATAERR: i32 = 65;
/// A named input file or directory does not exist.
pub(crate) const NOINPUT: i32 = 66;
/// runner itself failed (a bug, or an I/O error writing output).
pub(crate) const SOFTWARE: i32 = 70;
/// The environment lacks something the workflow declares (a required secret).
pub(crate) const CONFIG: i32 = 78;
/// The concurrency lock is held and the policy is `fail`.
pub(crate) const TEMPFAIL: i32 = 75;
/// The run was cancelled by SIGINT (128 + 2, as shells report it).
pub(crate) const INTERRUPTED: i32 = 130;
/// The run was cancelled by SIGTERM (128 + 15).
pub(crate) const TERMINATED: i32 = 143;
