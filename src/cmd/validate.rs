//! `runner validate`: check files and report every problem in one pass.

use std::path::{Path, PathBuf};

use crate::cli::{OutputFormat, ValidateArgs};
use crate::cmd::{Out, stderr_color};
use crate::diagnostics::{self, Diagnostic};
use crate::exit;
use crate::load::{Loader, ReadError, display, normalize};

/// Directories checked when no path is given.
pub const DEFAULT_DIRS: [&str; 3] = ["workflows", "cron-prompts", "examples"];

/// Run `runner validate`.
pub fn run(args: &ValidateArgs, out: &mut Out) -> i32 {
    let mut paths: Vec<PathBuf> = args.paths.iter().map(|p| normalize(p)).collect();
    if paths.is_empty() {
        paths = DEFAULT_DIRS.iter().map(PathBuf::from).filter(|p| p.is_dir()).collect();
        if paths.is_empty() {
            out.err("runner: nothing to validate: no workflows/, cron-prompts/ or examples/ here; name files or directories\n");
            return exit::NOINPUT;
        }
    }
    let mut loader = Loader::new();
    let mut missing = Vec::new();
    let mut files = 0usize;
    for path in &paths {
        if !path.exists() {
            missing.push(path.clone());
            continue;
        }
        if path.is_dir() {
            for file in yaml_files(path) {
                files += 1;
                let _ = loader.load(&file);
            }
        } else {
            files += 1;
            check_file(&mut loader, path);
        }
    }
    let mut found = std::mem::take(&mut loader.diagnostics);
    diagnostics::sort(&mut found);
    match args.output {
        OutputFormat::Json => {
            let mut text = diagnostics::to_json(&found);
            text.push('\n');
            out.out(&text);
        }
        // Problems go to stderr; stdout carries only the `ok: N files valid` line.
        OutputFormat::Human if found.is_empty() => out.out(&summary(&found, files)),
        OutputFormat::Human => {
            let color = stderr_color(args.color);
            let mut text = String::new();
            for diagnostic in &found {
                text.push_str(&diagnostics::render(diagnostic, &loader.sources, color));
                text.push('\n');
            }
            text.push_str(&summary(&found, files));
            out.err(&text);
        }
    }
    for path in &missing {
        out.err(&format!("runner: no such file or directory: {}\n", display(path)));
    }
    if !missing.is_empty() {
        exit::NOINPUT
    } else if found.is_empty() {
        exit::OK
    } else {
        exit::DATAERR
    }
}

/// Check one named file: YAML by kind, anything else as a template.
fn check_file(loader: &mut Loader, path: &Path) {
    let is_yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
    if is_yaml {
        let _ = loader.load(path);
        return;
    }
    match loader.read(path) {
        Ok(text) => crate::load::check_prompts::check_template_text(
            loader,
            &display(path),
            &text,
            &std::collections::BTreeSet::new(),
        ),
        Err(ReadError::Missing | ReadError::Reported) => {}
    }
}

/// Every *.yaml / *.yml under `dir`, sorted, skipping hidden directories and `target`.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                if name != "target" {
                    pending.push(path);
                }
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                found.push(normalize(&path));
            }
        }
    }
    found.sort();
    found
}

fn summary(found: &[Diagnostic], files: usize) -> String {
    let noun =
        |n: usize, one: &str, many: &str| if n == 1 { format!("1 {one}") } else { format!("{n} {many}") };
    if found.is_empty() {
        format!("ok: {} valid\n", noun(files, "file", "files"))
    } else {
        let mut names: Vec<&str> = found.iter().map(|d| d.file.as_str()).collect();
        names.dedup();
        format!(
            "error: {} in {} ({} checked)\n",
            noun(found.len(), "problem", "problems"),
            noun(names.len(), "file", "files"),
            noun(files, "file", "files")
        )
    }
}
