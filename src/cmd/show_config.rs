//! `runner show-config`: a lifecycle or roles file merged over its bases.

use crate::cli::{ConfigFormat, ShowConfigArgs};
use crate::cmd::Out;
use crate::exit;
use crate::load::{Loaded, Loader, ReadError, display};

/// Run `runner show-config`.
pub fn run(args: &ShowConfigArgs, out: &mut Out) -> i32 {
    let mut loader = Loader::new();
    let value = match loader.load(&args.file) {
        Ok(Some(Loaded::Lifecycle(lifecycle))) => serde_json::to_value(&*lifecycle),
        Ok(Some(Loaded::Roles(roles))) => serde_json::to_value(&*roles),
        Ok(Some(other)) => {
            out.err(&format!(
                "runner: show-config prints lifecycles and roles files; {} is a {} file\n",
                display(&args.file),
                other.kind().name()
            ));
            return exit::USAGE;
        }
        Ok(None) | Err(ReadError::Reported) => {
            out.err(&super::render_problems(
                &mut loader,
                super::stderr_color(crate::cli::ColorChoice::Auto),
                "nothing was printed",
            ));
            return exit::DATAERR;
        }
        Err(ReadError::Missing) => {
            out.err(&format!("runner: no such file: {}\n", display(&args.file)));
            return exit::NOINPUT;
        }
    };
    let value = match value {
        Ok(value) => value,
        Err(e) => {
            out.err(&format!("runner: cannot print the merged result: {e}\n"));
            return exit::SOFTWARE;
        }
    };
    let text = match args.output {
        ConfigFormat::Json => {
            serde_json::to_string_pretty(&value).map(|t| t + "\n").map_err(|e| e.to_string())
        }
        ConfigFormat::Yaml => serde_saphyr::to_string(&value)
            .map(|t| format!("# {} (merged)\n{t}", display(&args.file)))
            .map_err(|e| e.to_string()),
    };
    match text {
        Ok(text) => {
            out.out(&text);
            exit::OK
        }
        Err(e) => {
            out.err(&format!("runner: cannot print the merged result: {e}\n"));
            exit::SOFTWARE
        }
    }
}
