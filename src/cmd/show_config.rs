//! `runner show-config`: a lifecycle or roles file merged over its bases.

use crate::cli::{ConfigFormat, ShowConfigArgs};
use crate::cmd::Out;
use crate::error::Error;
use crate::load::{Loaded, Loader, ReadError, display};

/// Run `runner show-config`.
pub(crate) fn run(args: &ShowConfigArgs, out: &mut Out) -> Result<(), Error> {
    let mut loader = Loader::new();
    let value = match loader.load(&args.file) {
        Ok(Some(Loaded::Lifecycle(lifecycle))) => serde_json::to_value(&*lifecycle),
        Ok(Some(Loaded::Roles(roles))) => serde_json::to_value(&*roles),
        Ok(Some(other)) => {
            return Err(Error::Usage(format!(
                "show-config prints lifecycles and roles files; {} is a {} file",
                display(&args.file),
                other.kind().name()
            )));
        }
        Ok(None) | Err(ReadError::Reported) => {
            return Err(Error::problems(super::render_problems(
                &mut loader,
                super::stderr_color(crate::cli::ColorChoice::Auto),
                "nothing was printed",
            )));
        }
        Err(ReadError::Missing) => {
            return Err(Error::NoInput(format!("no such file: {}", display(&args.file))));
        }
    };
    let value = match value {
        Ok(value) => value,
        Err(e) => {
            return Err(Error::Internal(format!("cannot print the merged result: {e}")));
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
            Ok(())
        }
        Err(e) => Err(Error::Internal(format!("cannot print the merged result: {e}"))),
    }
}
