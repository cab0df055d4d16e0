//! `runner import devclaw`: read a DevClaw `workflow.yaml`, convert it
//! ([`crate::import::devclaw`]), write the runner files and print the import report.

use std::path::PathBuf;

use serde_json::Value;

use crate::cli::ImportDevclawArgs;
use crate::cmd::Out;
use crate::diagnostics::Diagnostic;
use crate::error::Error;
use crate::import::devclaw::{Note, convert};
use crate::load::{Loader, ReadError, display};

fn yaml(value: &Value, source: &str) -> Result<String, String> {
    let body = serde_saphyr::to_string(value).map_err(|e| e.to_string())?;
    Ok(format!("# Imported from {source} by `runner import devclaw`; see the import report.\n{body}"))
}

/// Run `runner import devclaw`.
pub(crate) fn devclaw(args: &ImportDevclawArgs, out: &mut Out) -> Result<(), Error> {
    let mut loader = Loader::new();
    let name = display(&args.workflow);
    let text = match loader.read(&args.workflow) {
        Ok(text) => text,
        Err(ReadError::Missing) => {
            return Err(Error::NoInput(format!("no such file: {name}")));
        }
        Err(ReadError::Reported) => {
            return Err(Error::problems(super::render_problems(
                &mut loader,
                super::stderr_color(crate::cli::ColorChoice::Auto),
                "nothing was imported",
            )));
        }
    };
    let document = match crate::load::yaml::parse(&text) {
        Ok(document) => document,
        Err(e) => {
            loader.diagnostics.push(Diagnostic::new(&name, e.range, "yaml", e.message).with_hint(e.hint));
            return Err(Error::problems(super::render_problems(
                &mut loader,
                super::stderr_color(crate::cli::ColorChoice::Auto),
                "nothing was imported",
            )));
        }
    };
    let conversion = match convert(&document, &name) {
        Ok(c) => c,
        Err(e) => {
            return Err(Error::Invalid(format!("{name}:{e}; nothing was imported")));
        }
    };
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    let lifecycle = yaml(&conversion.lifecycle, &name);
    let roles = yaml(&conversion.roles, &name);
    match (lifecycle, roles) {
        (Ok(lifecycle), Ok(roles)) => {
            files.push((args.out.join("lifecycle.yaml"), lifecycle));
            files.push((args.out.join("roles.yaml"), roles));
        }
        (Err(e), _) | (_, Err(e)) => {
            return Err(Error::Internal(format!("cannot write YAML: {e}")));
        }
    }
    for (relative, text) in &conversion.checks {
        files.push((args.out.join(relative), text.clone()));
    }
    if !args.force {
        let existing: Vec<String> =
            files.iter().filter(|(p, _)| p.exists()).map(|(p, _)| display(p)).collect();
        if !existing.is_empty() {
            return Err(Error::Usage(format!(
                "would overwrite {}; give --force or another --out; nothing was imported",
                existing.join(", ")
            )));
        }
    }
    for (path, text) in &files {
        if let Some(dir) = path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            return Err(Error::Failed(format!("cannot create {}: {e}", display(dir))));
        }
        if let Err(e) = crate::fsutil::write_atomic(path, text.as_bytes()) {
            return Err(Error::Failed(format!("cannot write {}: {e}", display(path))));
        }
    }
    out.out(&report(&name, &files.iter().map(|(p, _)| display(p)).collect::<Vec<_>>(), &conversion.notes));
    Ok(())
}

/// The import report: files written, then every note with its position.
pub(crate) fn report(source: &str, files: &[String], notes: &[Note]) -> String {
    let mut text = String::new();
    for file in files {
        text.push_str(&format!("wrote {file}\n"));
    }
    for note in notes {
        let at = if note.line == 0 {
            format!("{source}: (built-in)")
        } else {
            format!("{source}:{}:{}", note.line, note.col)
        };
        text.push_str(&format!(
            "{at}: {}: {}: {}\n",
            note.kind,
            if note.key.is_empty() { "-" } else { &note.key },
            note.text
        ));
    }
    let not_carried = notes.iter().filter(|n| n.kind != "adapted").count();
    text.push_str(&format!(
        "imported; {} not carried, {} adapted. Next: runner validate {}\n",
        not_carried,
        notes.len() - not_carried,
        files.first().map(|f| f.as_str()).unwrap_or_default()
    ));
    text
}
