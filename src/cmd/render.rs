//! `runner render`.
use crate::cli::RenderArgs;
use crate::cmd::Out;

/// Run `runner render`.
pub fn run(_args: &RenderArgs, _out: &mut Out) -> i32 {
    crate::exit::SOFTWARE
}
