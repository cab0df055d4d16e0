//! `runner list`: the workflows of a project with their descriptions and inputs, and
//! the workflow help `runner run FILE --help` prints.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cli::{ListArgs, OutputFormat};
use crate::cmd::Out;
use crate::error::Error;
use crate::exit;
use crate::load::{Loaded, Loader, display, normalize};
use crate::model::Workflow;
use crate::model::workflow::InputDef;

/// Run `runner list`.
pub(crate) fn run(args: &ListArgs, out: &mut Out) -> Result<(), Error> {
    let mut paths: Vec<PathBuf> = args.paths.iter().map(|p| normalize(p)).collect();
    if paths.is_empty() {
        paths = ["workflows", "examples"].iter().map(PathBuf::from).filter(|p| p.is_dir()).collect();
        if paths.is_empty() {
            return Err(Error::NoInput(
                "nothing to list: no workflows/ or examples/ here; name a directory".into(),
            ));
        }
    }
    let mut files = Vec::new();
    for path in &paths {
        if !path.exists() {
            return Err(Error::NoInput(format!("no such file or directory: {}", display(path))));
        }
        if path.is_dir() {
            files.extend(crate::load::yaml_files(path));
        } else {
            files.push(path.clone());
        }
    }
    let mut rows: Vec<Row> = Vec::new();
    for file in files.iter().filter(|f| !f.to_string_lossy().ends_with(".test.yaml")) {
        // A loader per file, so one broken file's problems are not charged to the next.
        let mut loader = Loader::new();
        match loader.load(file) {
            Ok(Some(Loaded::Workflow(workflow))) if loader.diagnostics.is_empty() => {
                rows.push(Row { file: display(file), workflow: Some(workflow), problems: 0 });
            }
            Ok(Some(Loaded::Workflow(_)) | None) | Err(_) => {
                let problems = loader.diagnostics.len().max(1);
                rows.push(Row { file: display(file), workflow: None, problems });
            }
            Ok(Some(_)) => {} // lanes, prompts, lifecycles, roles: not runnable
        }
    }
    match args.output {
        OutputFormat::Json => {
            let items: Vec<Value> = rows.iter().map(Row::json).collect();
            out.out(&format!("{}\n", serde_json::to_string_pretty(&items).unwrap_or_default()));
        }
        OutputFormat::Human => out.out(&human(&rows)),
    }
    Error::status(if rows.iter().any(|r| r.problems > 0) { exit::DATAERR } else { exit::OK })
}

struct Row {
    file: String,
    workflow: Option<std::sync::Arc<Workflow>>,
    problems: usize,
}

impl Row {
    fn json(&self) -> Value {
        match &self.workflow {
            Some(workflow) => json!({
                "file": self.file,
                "name": workflow.name,
                "description": workflow.description,
                "inputs": workflow.inputs.iter().map(|(name, input)| json!({
                    "name": name,
                    "type": input.ty.name(),
                    "required": input.default.is_none(),
                    "default": input.default,
                    "description": input.description,
                })).collect::<Vec<_>>(),
            }),
            None => json!({"file": self.file, "problems": self.problems}),
        }
    }
}

fn human(rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.file.chars().count()).max().unwrap_or(0);
    let mut text = String::new();
    for row in rows {
        match &row.workflow {
            Some(workflow) => {
                let about = workflow.description.as_deref().map(first_sentence).unwrap_or_default();
                let about = if about.is_empty() { workflow.name.clone() } else { about };
                text.push_str(&format!("{:<width$}  {about}\n", row.file));
                if !workflow.inputs.is_empty() {
                    let inputs: Vec<String> =
                        workflow.inputs.iter().map(|(name, input)| short_input(name, input)).collect();
                    text.push_str(&format!("{:<width$}  inputs: {}\n", "", inputs.join(", ")));
                }
            }
            None => {
                let noun = if row.problems == 1 { "problem" } else { "problems" };
                text.push_str(&format!(
                    "{:<width$}  (invalid: {} {noun}; see `runner validate {}`)\n",
                    row.file, row.problems, row.file
                ));
            }
        }
    }
    let count = rows.iter().filter(|r| r.workflow.is_some()).count();
    text.push_str(&format!("{count} workflow{}\n", if count == 1 { "" } else { "s" }));
    text
}

/// `lane: lane` for a required input, `claim: boolean = false` for one with a default.
fn short_input(name: &str, input: &InputDef) -> String {
    match &input.default {
        Some(default) => format!("{name}: {} = {}", input.ty.name(), plain(default)),
        None => format!("{name}: {} (required)", input.ty.name()),
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(text) if text.is_empty() => "\"\"".to_string(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The first sentence (or line) of a description, for one-line listings.
fn first_sentence(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.find(". ") {
        Some(end) => flat[..=end].to_string(),
        None => flat,
    }
}

/// What `runner run FILE --help` adds after the options: the workflow's description,
/// inputs (type, default, allowed values), secrets and environment.
pub(crate) fn workflow_help(file: &Path, workflow: &Workflow) -> String {
    let mut text = format!("Workflow {} ({}):\n", display(file), workflow.name);
    if let Some(description) = &workflow.description {
        for line in description.trim_end().lines() {
            text.push_str(&format!("  {line}\n").replace("  \n", "\n"));
        }
    }
    let section = |text: &mut String, title: &str, rows: Vec<(String, String, String)>| {
        if rows.is_empty() {
            return;
        }
        text.push_str(&format!("\n{title}:\n"));
        let first = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        let second = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
        for (a, b, c) in rows {
            let line = format!("  {a:<first$}  {b:<second$}  {c}");
            text.push_str(line.trim_end());
            text.push('\n');
        }
    };
    let inputs = workflow
        .inputs
        .iter()
        .map(|(name, input)| {
            let mut kind = input.ty.name().to_string();
            if let Some(allowed) = &input.allowed {
                kind = allowed.iter().map(plain).collect::<Vec<_>>().join("|");
            }
            let default = match &input.default {
                Some(default) => format!("default {}", plain(default)),
                None => "required".to_string(),
            };
            let about = input.description.as_deref().map(first_sentence).unwrap_or_default();
            (format!("--input {name}=<{kind}>"), default, about)
        })
        .collect();
    section(&mut text, "Inputs", inputs);
    let secrets = workflow
        .secrets
        .iter()
        .map(|(name, secret)| {
            let need = if secret.optional { "optional" } else { "required" };
            let about = secret.description.as_deref().map(first_sentence).unwrap_or_default();
            (format!("{name} from ${}", secret.env), need.to_string(), about)
        })
        .collect();
    section(&mut text, "Secrets (read from the environment, never printed)", secrets);
    let env = workflow
        .env
        .iter()
        .map(|(name, def)| {
            let default = match &def.default {
                Some(default) => format!("default {default}"),
                None => "no default".to_string(),
            };
            let about = def.description.as_deref().map(first_sentence).unwrap_or_default();
            (format!("${name}"), default, about)
        })
        .collect();
    section(&mut text, "Environment", env);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sentences_are_one_line() {
        assert_eq!(first_sentence("Probe a lane.\nNever claims. More."), "Probe a lane.");
        assert_eq!(first_sentence("no full stop\nat all"), "no full stop at all");
    }
}
