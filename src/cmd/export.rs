//! `runner export kubernetes [SCHEDULE]`: the schedule's manifests on stdout.

use crate::cli::ExportKubernetesArgs;
use crate::cmd::Out;
use crate::error::Error;
use crate::export::kubernetes::{self as export, Options};
use crate::load::{Loaded, Loader, ReadError};

/// Run `runner export kubernetes`.
pub(crate) fn kubernetes(args: &ExportKubernetesArgs, out: &mut Out) -> Result<(), Error> {
    let mut labels = Vec::new();
    for label in &args.labels {
        let Some((key, value)) = label.split_once('=') else {
            return Err(Error::Usage(format!("--label `{label}`: expected KEY=VALUE")));
        };
        labels.push((key.to_string(), value.to_string()));
    }
    let options = Options {
        image: args.image.clone(),
        namespace: args.namespace.clone(),
        prefix: args.name_prefix.clone(),
        labels,
        secret: args.secret_name.clone(),
    };
    let mut loader = Loader::new();
    let schedule = match loader.load(&args.file) {
        Ok(Some(Loaded::Schedule(schedule))) => schedule,
        Ok(Some(other)) => {
            return Err(Error::Invalid(format!(
                "{} is a {} file; expected a schedule (`kind: schedule`)",
                args.file.display(),
                other.kind().name()
            )));
        }
        Ok(None) | Err(ReadError::Reported) => {
            return Err(Error::problems(super::render_problems(
                &mut loader,
                super::stderr_color(args.color),
                "nothing was exported",
            )));
        }
        Err(ReadError::Missing) => {
            return Err(Error::NoInput(format!("no such schedule: {}", args.file.display())));
        }
    };
    let objects = match export::export(&args.file, &schedule, &options) {
        Ok(objects) => objects,
        Err(problems) => {
            let mut text = String::new();
            for problem in &problems {
                text.push_str(&format!("runner: export: {problem}\n"));
            }
            text.push_str("runner: nothing was exported\n");
            return Err(Error::problems(text));
        }
    };
    match export::to_yaml(&objects) {
        Ok(yaml) => {
            out.out(&yaml);
            Ok(())
        }
        Err(e) => Err(Error::Internal(e)),
    }
}
