//! `runner man`: man pages generated from the command line's own definition
//! (clap_mangen); the committed pages in man/ are checked for drift by a test.

use std::path::Path;

use clap::CommandFactory as _;

use crate::cli::{Cli, ManArgs};
use crate::cmd::Out;
use crate::error::Error;

/// Run `runner man`.
pub(crate) fn run(args: &ManArgs, out: &mut Out) -> Result<(), Error> {
    match &args.write {
        None => {
            out.out(&page(&Cli::command()));
            Ok(())
        }
        Some(dir) => match write_all(dir, out) {
            Ok(()) => Ok(()),
            Err(e) => Err(Error::Internal(format!("cannot write man pages to {}: {e}", dir.display()))),
        },
    }
}

/// Every page: `runner.1` and `runner-COMMAND.1` (nested: `runner-roles-select.1`).
pub(crate) fn pages() -> Vec<(String, String)> {
    let mut command = Cli::command();
    command.build();
    let mut found = Vec::new();
    collect(&command, &mut found);
    found
}

/// `command`'s page and its subcommands'; after `build()` clap names a subcommand's
/// page `runner-run` (its display name).
fn collect(command: &clap::Command, found: &mut Vec<(String, String)>) {
    let name = command.get_display_name().unwrap_or_else(|| command.get_name());
    found.push((format!("{name}.1"), page(command)));
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        collect(sub, found);
    }
}

/// One command's page as roff text.
fn page(command: &clap::Command) -> String {
    let mut buffer: Vec<u8> = Vec::new();
    let _ = clap_mangen::Man::new(command.clone()).render(&mut buffer);
    String::from_utf8_lossy(&buffer).into_owned()
}

fn write_all(dir: &Path, out: &mut Out) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in pages() {
        let path = dir.join(&name);
        crate::fsutil::write_atomic(&path, text.as_bytes())?;
        out.out(&format!("wrote {}\n", path.display()));
    }
    Ok(())
}
