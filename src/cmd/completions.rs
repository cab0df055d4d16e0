//! `runner completions SHELL`: a completion script generated from the command line's
//! own definition (clap_complete), so it never drifts from the options.

use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionsArgs};
use crate::cmd::Out;
use crate::error::Error;

/// Run `runner completions`.
pub(crate) fn run(args: &CompletionsArgs, out: &mut Out) -> Result<(), Error> {
    out.out(&script(args.shell));
    Ok(())
}

/// The completion script for `shell`.
pub(crate) fn script(shell: clap_complete::Shell) -> String {
    let mut command = Cli::command();
    let mut buffer: Vec<u8> = Vec::new();
    clap_complete::generate(shell, &mut command, "runner", &mut buffer);
    String::from_utf8_lossy(&buffer).into_owned()
}
