//! `runner graph`: a Mermaid diagram of a lifecycle or a workflow.

use std::io::IsTerminal as _;

use crate::cli::GraphArgs;
use crate::cmd::{Out, use_color};
use crate::diagnostics;
use crate::exit;
use crate::load::{Loaded, Loader, ReadError, display};

/// Run `runner graph`.
pub fn run(args: &GraphArgs, out: &mut Out) -> i32 {
    let mut loader = Loader::new();
    match loader.load(&args.file) {
        Ok(Some(Loaded::Lifecycle(lifecycle))) => {
            out.out(&crate::lifecycle::mermaid_lifecycle(&lifecycle));
            exit::OK
        }
        Ok(Some(Loaded::Workflow(workflow))) => {
            out.out(&crate::lifecycle::mermaid_workflow(&workflow));
            exit::OK
        }
        Ok(Some(other)) => {
            out.err(&format!(
                "runner: graph draws lifecycles and workflows; {} is a {} file\n",
                display(&args.file),
                other.kind().name()
            ));
            exit::USAGE
        }
        Ok(None) | Err(ReadError::Reported) => {
            let mut found = std::mem::take(&mut loader.diagnostics);
            diagnostics::sort(&mut found);
            let color = use_color(crate::cli::ColorChoice::Auto, std::io::stderr().is_terminal());
            let text: String =
                found.iter().map(|d| diagnostics::render(d, &loader.sources, color) + "\n").collect();
            out.err(&text);
            exit::DATAERR
        }
        Err(ReadError::Missing) => {
            out.err(&format!("runner: no such file: {}\n", display(&args.file)));
            exit::NOINPUT
        }
    }
}
