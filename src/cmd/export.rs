//! `runner export kubernetes [SCHEDULE]`: the schedule's manifests on stdout.

use crate::cli::ExportKubernetesArgs;
use crate::cmd::Out;
use crate::exit;
use crate::k8s::export::{self, Options};
use crate::load::{Loaded, Loader, ReadError};

/// Run `runner export kubernetes`.
pub fn kubernetes(args: &ExportKubernetesArgs, out: &mut Out) -> i32 {
    let mut labels = Vec::new();
    for label in &args.labels {
        let Some((key, value)) = label.split_once('=') else {
            out.err(&format!("runner: --label `{label}`: expected KEY=VALUE\n"));
            return exit::USAGE;
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
            out.err(&format!(
                "runner: {} is a {} file; expected a schedule (`kind: schedule`)\n",
                args.file.display(),
                other.kind().name()
            ));
            return exit::DATAERR;
        }
        Ok(None) | Err(ReadError::Reported) => {
            out.err(&super::render_problems(
                &mut loader,
                super::stderr_color(args.color),
                "nothing was exported",
            ));
            return exit::DATAERR;
        }
        Err(ReadError::Missing) => {
            out.err(&format!("runner: no such schedule: {}\n", args.file.display()));
            return exit::NOINPUT;
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
            out.err(&text);
            return exit::DATAERR;
        }
    };
    match export::to_yaml(&objects) {
        Ok(yaml) => {
            out.out(&yaml);
            exit::OK
        }
        Err(e) => {
            out.err(&format!("runner: {e}\n"));
            exit::SOFTWARE
        }
    }
}
