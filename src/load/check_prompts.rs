//! Meaning checks for a prompt manifest: every template it lists and every lane's
//! worker prompt renders with the values it would get, with no undefined placeholder.

use std::collections::BTreeSet;
use std::path::Path;

use indexmap::IndexMap;
use serde_json::Value;

use super::yaml::{Document, LineIndex, Range, escape_pointer};
use super::{Loaded, Loader, ReadError, display, sibling};
use crate::diagnostics::Diagnostic;
use crate::model::{FileKind, PromptManifest};
use crate::render::{self, TemplateProblem};

/// Names the renderer provides; vars may not take them.
const PROVIDED: &[&str] = &["lane", "lanes", "final_forms"];

/// Check a prompt manifest; problems go to the loader.
pub(crate) fn check(
    loader: &mut Loader,
    path: &Path,
    name: &str,
    document: &Document,
    manifest: &PromptManifest,
) {
    for key in manifest.vars.keys() {
        check_var_name(loader, name, document, &format!("/vars/{}", escape_pointer(key)), key);
    }
    let registry = manifest.lanes.as_ref().and_then(|relative| {
        match loader.load_reference(
            path,
            name,
            document,
            "/lanes",
            relative,
            FileKind::Lanes,
            "lane registry",
            false,
        ) {
            Some(Loaded::Lanes(registry)) => Some((registry, sibling(path, relative))),
            _ => None,
        }
    });
    for (index, entry) in manifest.prompts.iter().enumerate() {
        let pointer = format!("/prompts/{index}");
        for key in entry.vars.keys() {
            check_var_name(loader, name, document, &format!("{pointer}/vars/{}", escape_pointer(key)), key);
        }
        let template = sibling(path, &entry.template);
        let at = document.locate(&format!("{pointer}/template")).value;
        let text = match loader.read_from(&template, Some((name, at))) {
            Ok(text) => text,
            Err(ReadError::Missing) => {
                loader.report(
                    name,
                    document,
                    &format!("{pointer}/template"),
                    "missing-file",
                    format!("template `{}` does not exist", display(&template)),
                    Some("the path is relative to this manifest".into()),
                );
                continue;
            }
            Err(ReadError::Reported) => continue,
        };
        let mut vars = manifest.vars.clone();
        vars.extend(entry.vars.clone());
        let context = render::prompt_context(&vars, registry.as_ref().map(|(r, _)| r.as_ref()), None);
        render_and_report(loader, &template, &text, &context);
        if let Some(out) = &entry.out {
            let env = crate::template::environment();
            match env.render_str(out, minijinja::Value::from(minijinja::value::Serde(&context))) {
                Err(error) => loader.report(
                    name,
                    document,
                    &format!("{pointer}/out"),
                    "template",
                    crate::template::describe_error(&error),
                    None,
                ),
                // The same rule `render --all` applies: the name stays inside --out-dir.
                Ok(rendered) => {
                    if let Err(reason) = render::inside_out_dir(Path::new(""), &rendered) {
                        loader.report(
                            name,
                            document,
                            &format!("{pointer}/out"),
                            "out-path",
                            format!("output name `{rendered}` {reason}"),
                            Some("name a file relative to --out-dir, without `..`".into()),
                        );
                    }
                }
            }
        }
    }
    if let Some((registry, registry_path)) = &registry {
        for lane in &registry.lanes {
            let template = sibling(registry_path, &lane.prompt);
            // A lane prompt that cannot be read was reported at the registry's line.
            let Some(text) = loader.read_quiet(&template) else { continue };
            let context = render::prompt_context(&manifest.vars, Some(registry), Some(lane));
            let before = loader.diagnostics.len();
            render_and_report(loader, &template, &text, &context);
            for diagnostic in &mut loader.diagnostics[before..] {
                diagnostic.message = format!("{} (rendering for lane `{}`)", diagnostic.message, lane.id);
            }
        }
    }
}

fn check_var_name(loader: &mut Loader, name: &str, document: &Document, pointer: &str, key: &str) {
    if PROVIDED.contains(&key) {
        loader.report_key(
            name,
            document,
            pointer,
            "reserved",
            format!("`{key}` is provided by the renderer and cannot be a var"),
            None,
        );
    } else if !key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        loader.report_key(
            name,
            document,
            pointer,
            "identifier",
            format!("`{key}` is not a valid placeholder name"),
            Some("use letters, digits and `_`, starting with a letter".into()),
        );
    }
}

/// Render a template with its context and report every problem at its line.
pub(crate) fn render_and_report(loader: &mut Loader, template: &Path, text: &str, context: &Value) {
    let root = template.parent().unwrap_or(Path::new("."));
    if let Err(problems) = render::render_checked(template, text, root, context) {
        for problem in problems {
            push_problem(loader, &problem);
        }
    }
}

/// Compile a template file and check that it uses only `known` names (when not empty).
pub(crate) fn check_template_text(loader: &mut Loader, name: &str, text: &str, known: &BTreeSet<String>) {
    let path = Path::new(name);
    let env = render::environment_for(path.parent().unwrap_or(Path::new(".")));
    match env.template_from_named_str(name, text) {
        Ok(template) => {
            let index = LineIndex::new(text);
            for unknown in crate::template::unknown_names_of(&env, &template, text) {
                let start = index.pos_of_offset(unknown.span.start);
                loader.report_range(
                    name,
                    Range { start, end: unknown.span.end },
                    "template",
                    format!("unknown {} `{}`", unknown.kind, unknown.name),
                    crate::template::suggest_name(&env, unknown.kind, &unknown.name),
                );
            }
            if known.is_empty() {
                return;
            }
            let context: IndexMap<String, Value> =
                known.iter().map(|k| (k.clone(), Value::Bool(true))).collect();
            let context = render::prompt_context(&context, None, None);
            if let Err(problems) =
                render::render_checked(path, text, path.parent().unwrap_or(Path::new(".")), &context)
            {
                // Only undefined names matter here: the values are placeholders.
                for problem in problems.into_iter().filter(|p| p.message.starts_with("undefined placeholder"))
                {
                    push_problem(loader, &problem);
                }
            }
        }
        Err(error) => push_problem(loader, &render::problem_from_error(path, text, &error)),
    }
}

/// Turn a template problem into a diagnostic with an exact range.
pub(crate) fn push_problem(loader: &mut Loader, problem: &TemplateProblem) {
    let name = display(&problem.file);
    let text = match loader.sources.get(&name) {
        Some(t) => t.to_string(),
        None => loader.read(&problem.file).unwrap_or_default(),
    };
    let range = if problem.line == 0 {
        Range::default()
    } else {
        let start = LineIndex::new(&text).pos(problem.line, problem.column.saturating_sub(1));
        Range { start, end: start.offset + problem.len.max(1) }
    };
    loader.diagnostics.push(
        Diagnostic::new(&name, range, "template", problem.message.clone()).with_hint(problem.hint.clone()),
    );
}
