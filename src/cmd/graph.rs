//! `runner graph`: a Mermaid diagram of a lifecycle or a workflow.

use crate::cli::GraphArgs;
use crate::cmd::Out;
use crate::exit;
use crate::load::{Loaded, Loader, ReadError, display};

/// Run `runner graph`.
pub fn run(args: &GraphArgs, out: &mut Out) -> i32 {
    let mut loader = Loader::new();
    match loader.load(&args.file) {
        Ok(Some(Loaded::Lifecycle(lifecycle))) => {
            out.out(&crate::graph::mermaid_lifecycle(&lifecycle));
            exit::OK
        }
        Ok(Some(Loaded::Workflow(workflow))) => {
            out.out(&crate::graph::mermaid_workflow(&workflow));
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
            out.err(&super::render_problems(
                &mut loader,
                super::stderr_color(crate::cli::ColorChoice::Auto),
                "nothing was done",
            ));
            exit::DATAERR
        }
        Err(ReadError::Missing) => {
            out.err(&format!("runner: no such file: {}\n", display(&args.file)));
            exit::NOINPUT
        }
    }
}
