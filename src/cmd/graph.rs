//! `runner graph`: a Mermaid diagram of a lifecycle or a workflow.

use crate::cli::GraphArgs;
use crate::cmd::Out;
use crate::error::Error;
use crate::load::{Loaded, Loader, ReadError, display};

/// Run `runner graph`.
pub(crate) fn run(args: &GraphArgs, out: &mut Out) -> Result<(), Error> {
    let mut loader = Loader::new();
    match loader.load(&args.file) {
        Ok(Some(Loaded::Lifecycle(lifecycle))) => {
            out.out(&crate::graph::mermaid_lifecycle(&lifecycle));
            Ok(())
        }
        Ok(Some(Loaded::Workflow(workflow))) => {
            out.out(&crate::graph::mermaid_workflow(&workflow));
            Ok(())
        }
        Ok(Some(other)) => Err(Error::Usage(format!(
            "graph draws lifecycles and workflows; {} is a {} file",
            display(&args.file),
            other.kind().name()
        ))),
        Ok(None) | Err(ReadError::Reported) => Err(Error::problems(super::render_problems(
            &mut loader,
            super::stderr_color(crate::cli::ColorChoice::Auto),
            "nothing was done",
        ))),
        Err(ReadError::Missing) => Err(Error::NoInput(format!("no such file: {}", display(&args.file)))),
    }
}
