//! `runner roles select`: which level and model a piece of work gets, and why.

use crate::cli::{OutputFormat, SelectArgs};
use crate::cmd::Out;
use crate::diagnostics::{did_you_mean, one_of};
use crate::error::Error;
use crate::load::{Loaded, Loader, ReadError, display};

/// Run `runner roles select`.
pub(crate) fn select(args: &SelectArgs, out: &mut Out) -> Result<(), Error> {
    let mut loader = Loader::new();
    let roles = match loader.load(&args.roles) {
        Ok(Some(Loaded::Roles(roles))) => roles,
        Ok(Some(other)) => {
            return Err(Error::Invalid(format!(
                "{} is a {} file, not a roles file",
                display(&args.roles),
                other.kind().name()
            )));
        }
        Ok(None) | Err(ReadError::Reported) => {
            return Err(Error::problems(super::render_problems(
                &mut loader,
                super::stderr_color(crate::cli::ColorChoice::Auto),
                "nothing was done",
            )));
        }
        Err(ReadError::Missing) => {
            return Err(Error::NoInput(format!(
                "no such roles file: {} (give --roles FILE)",
                display(&args.roles)
            )));
        }
    };
    let Some((role_id, _)) = crate::lifecycle::find_role(&roles, &args.role) else {
        let ids: Vec<&str> = roles.roles.keys().map(String::as_str).collect();
        let hint =
            did_you_mean(&args.role, ids.iter().copied()).map(|h| format!(" ({h})")).unwrap_or_default();
        return Err(Error::Usage(format!("no role `{}`; roles: {}{hint}", args.role, one_of(&ids))));
    };
    let body = match (&args.body, &args.body_file) {
        (Some(body), _) => body.clone(),
        (None, Some(path)) if path.as_os_str() == "-" => {
            match crate::fsutil::read_capped(std::io::stdin(), crate::fsutil::MAX_READ_BYTES)
                .and_then(crate::fsutil::utf8)
            {
                Ok(text) => text,
                Err(e) => {
                    return Err(Error::NoInput(format!("cannot read the body from stdin: {e}")));
                }
            }
        }
        (None, Some(path)) => match crate::fsutil::read_text(path, crate::fsutil::MAX_READ_BYTES) {
            Ok(text) => text,
            Err(e) => {
                return Err(Error::NoInput(format!("cannot read {}: {e}", display(path))));
            }
        },
        (None, None) => String::new(),
    };
    let labels: Vec<String> =
        args.labels.iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    let Some(chosen) = crate::lifecycle::select_level_in(&roles, role_id, &args.title, &body, &labels) else {
        return Err(Error::Usage(format!("no role `{}`", args.role)));
    };
    match args.output {
        OutputFormat::Json => {
            out.out(&(serde_json::to_string_pretty(&chosen).unwrap_or_default() + "\n"));
        }
        OutputFormat::Human => {
            out.out(&format!(
                "level: {}\nmodel: {}\nrule:  {} ({})\n",
                chosen.level, chosen.model, chosen.rule, chosen.reason
            ));
        }
    }
    Ok(())
}
