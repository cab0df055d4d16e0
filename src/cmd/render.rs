//! `runner render`: render one template, or every prompt with `--all`, with values
//! from the manifest, the lane registry, vars files, `--set` and named env vars.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::Value;

use crate::cli::RenderArgs;
use crate::cmd::Out;
use crate::diagnostics;
use crate::error::Error;
use crate::exit;
use crate::load::{Loaded, Loader, ReadError, display, normalize, sibling, yaml};
use crate::model::lanes::LaneRegistry;
use crate::model::{FileKind, PromptManifest};
use crate::render::{self, MANIFEST_NAME};

/// One file to render.
struct Job {
    template: PathBuf,
    context: Value,
    out_name: String,
    /// Where the output name comes from (file and pointer), for errors.
    origin: (PathBuf, String),
}

/// Run `runner render`.
pub(crate) fn run(args: &RenderArgs, out: &mut Out) -> Result<(), Error> {
    let mut loader = Loader::new();
    let result =
        if args.all { render_all(args, out, &mut loader) } else { render_one(args, out, &mut loader) };
    if loader.diagnostics.is_empty() {
        return result;
    }
    // The reason the command stopped (if it has one) comes before the problems found.
    let (mut text, code) = match &result {
        Ok(()) => (String::new(), exit::DATAERR),
        Err(error) => (error.report(), error.code()),
    };
    text.push_str(&super::render_problems(
        &mut loader,
        super::stderr_color(args.color),
        "nothing was rendered",
    ));
    Err(Error::Problems { text, code })
}

fn render_one(args: &RenderArgs, out: &mut Out, loader: &mut Loader) -> Result<(), Error> {
    let Some(template) = args.template.as_deref().map(normalize) else {
        return Err(Error::Usage("render needs a TEMPLATE or --all".into()));
    };
    let text = match loader.read(&template) {
        Ok(text) => text,
        Err(ReadError::Missing) => {
            return Err(Error::NoInput(format!("no such template: {}", display(&template))));
        }
        Err(ReadError::Reported) => return Err(Error::Exit(exit::DATAERR)),
    };
    if args.list {
        return match render::placeholders(&text) {
            Ok(names) => {
                let mut listing = String::new();
                for name in names {
                    listing.push_str(&name);
                    listing.push('\n');
                }
                out.out(&listing);
                Ok(())
            }
            Err(error) => {
                crate::load::check_prompts::push_problem(
                    loader,
                    &render::problem_from_error(&template, &text, &error),
                );
                Err(Error::Exit(exit::DATAERR))
            }
        };
    }
    let manifest_path = match &args.manifest {
        Some(path) => Some(normalize(path)),
        None => {
            let beside = template.parent().unwrap_or(Path::new("")).join(MANIFEST_NAME);
            beside.is_file().then(|| normalize(&beside))
        }
    };
    let manifest = match &manifest_path {
        Some(path) => Some(load_manifest(loader, path)?),
        None => None,
    };
    let mut vars: IndexMap<String, Value> = IndexMap::new();
    if let (Some(manifest), Some(manifest_path)) = (&manifest, &manifest_path) {
        vars.extend(manifest.vars.clone());
        if let Some(entry) = manifest.prompts.iter().find(|e| sibling(manifest_path, &e.template) == template)
        {
            vars.extend(entry.vars.clone());
        }
    }
    let registry = registry_for(args, loader, manifest.as_ref(), manifest_path.as_deref())?;
    extra_values(args, loader, &mut vars)?;
    let lane = match &args.lane {
        None => None,
        Some(id) => {
            let Some(registry) = &registry else {
                return Err(Error::Usage(
                    "--lane needs a lane registry: give --lanes FILE or a prompts.yaml that names one".into(),
                ));
            };
            match registry.lane(id) {
                Some(lane) => Some(lane.clone()),
                None => {
                    let hint = diagnostics::did_you_mean(id, registry.ids())
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default();
                    return Err(Error::Usage(format!(
                        "no lane `{id}` in the registry; lanes: {}{hint}",
                        render::lane_list(registry)
                    )));
                }
            }
        }
    };
    let context = render::prompt_context(&vars, registry.as_deref(), lane.as_ref());
    let root = template.parent().unwrap_or(Path::new(".")).to_path_buf();
    let rendered = match render::render_checked(&template, &text, &root, &context) {
        Ok(rendered) => rendered,
        Err(problems) => {
            for problem in problems {
                crate::load::check_prompts::push_problem(loader, &problem);
            }
            return Err(Error::Exit(exit::DATAERR));
        }
    };
    match (&args.out, args.check) {
        (Some(path), true) => check_drift(out, &[(display(path), path.clone(), rendered)]),
        (None, true) => {
            Err(Error::Usage("--check needs --out FILE (or --all --out-dir DIR) to compare with".into()))
        }
        (Some(path), false) => match crate::fsutil::write_atomic(path, rendered.as_bytes()) {
            Ok(()) => Ok(()),
            Err(e) => Err(Error::Internal(format!("cannot write {}: {e}", path.display()))),
        },
        (None, false) => {
            out.out(&rendered);
            Ok(())
        }
    }
}

fn render_all(args: &RenderArgs, out: &mut Out, loader: &mut Loader) -> Result<(), Error> {
    let Some(out_dir) = &args.out_dir else {
        return Err(Error::Usage("--all needs --out-dir DIR".into()));
    };
    let manifest_path = normalize(
        &args.manifest.clone().unwrap_or_else(|| PathBuf::from("cron-prompts").join(MANIFEST_NAME)),
    );
    if !manifest_path.is_file() {
        return Err(Error::NoInput(format!(
            "no prompt manifest at {}; give --manifest FILE",
            display(&manifest_path)
        )));
    }
    let manifest = load_manifest(loader, &manifest_path)?;
    let registry = registry_for(args, loader, Some(&manifest), Some(&manifest_path))?;
    let mut extra = IndexMap::new();
    extra_values(args, loader, &mut extra)?;
    let mut jobs: Vec<Job> = Vec::new();
    if let Some(registry) = &registry {
        let registry_path = match &args.lanes {
            Some(path) => normalize(path),
            None => manifest.lanes.as_ref().map(|l| sibling(&manifest_path, l)).unwrap_or_default(),
        };
        for lane in &registry.lanes {
            let template = sibling(&registry_path, &lane.prompt);
            let mut vars = manifest.vars.clone();
            vars.extend(extra.clone());
            let index = registry.lanes.iter().position(|l| l.id == lane.id).unwrap_or_default();
            jobs.push(Job {
                out_name: render::lane_output_name(lane, &template),
                context: render::prompt_context(&vars, Some(registry), Some(lane)),
                template,
                origin: (registry_path.clone(), format!("/lanes/{index}/id")),
            });
        }
    }
    for (index, entry) in manifest.prompts.iter().enumerate() {
        let template = sibling(&manifest_path, &entry.template);
        let mut vars = manifest.vars.clone();
        vars.extend(entry.vars.clone());
        vars.extend(extra.clone());
        let context = render::prompt_context(&vars, registry.as_deref(), None);
        let out_name = match &entry.out {
            Some(pattern) => {
                let env = crate::template::environment();
                match env.render_str(pattern, minijinja::Value::from(minijinja::value::Serde(&context))) {
                    Ok(name) => name,
                    Err(error) => {
                        return Err(Error::Invalid(format!(
                            "cannot render the output name of {}: {}",
                            entry.template,
                            crate::template::describe_error(&error)
                        )));
                    }
                }
            }
            None => template.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        };
        let pointer = format!("/prompts/{index}/{}", if entry.out.is_some() { "out" } else { "template" });
        jobs.push(Job { template, context, out_name, origin: (manifest_path.clone(), pointer) });
    }
    let mut rendered: Vec<(String, PathBuf, String)> = Vec::new();
    for job in jobs {
        let text = match loader.read(&job.template) {
            Ok(text) => text,
            Err(ReadError::Missing) => {
                return Err(Error::NoInput(format!("no such template: {}", display(&job.template))));
            }
            Err(ReadError::Reported) => continue,
        };
        let root = job.template.parent().unwrap_or(Path::new(".")).to_path_buf();
        match render::render_checked(&job.template, &text, &root, &job.context) {
            Ok(output) => match render::inside_out_dir(out_dir, &job.out_name) {
                Ok(path) => rendered.push((display(&path), path, output)),
                Err(reason) => {
                    let (file, pointer) = &job.origin;
                    let name = display(file);
                    let range = loader.document(&name).map(|d| d.locate(pointer).value).unwrap_or_default();
                    loader.report_range(
                        &name,
                        range,
                        "out-path",
                        format!("output name `{}` {reason}", job.out_name),
                        Some("name a file relative to --out-dir, without `..`".into()),
                    );
                }
            },
            Err(problems) => {
                for problem in problems {
                    crate::load::check_prompts::push_problem(loader, &problem);
                }
            }
        }
    }
    if !loader.diagnostics.is_empty() {
        return Err(Error::Exit(exit::DATAERR));
    }
    if args.check {
        return check_drift(out, &rendered);
    }
    for (name, path, text) in &rendered {
        if let Err(e) = crate::fsutil::write_atomic(path, text.as_bytes()) {
            return Err(Error::Internal(format!("cannot write {name}: {e}")));
        }
    }
    let noun = if rendered.len() == 1 { "file" } else { "files" };
    out.out(&format!("rendered {} {noun} into {}\n", rendered.len(), display(out_dir)));
    Ok(())
}

/// Compare rendered text with the files on disk; print a diff per drifted file.
fn check_drift(out: &mut Out, rendered: &[(String, PathBuf, String)]) -> Result<(), Error> {
    let mut drifted = 0;
    let mut report = String::new();
    for (name, path, expected) in rendered {
        match crate::fsutil::read_text(path, crate::fsutil::MAX_READ_BYTES) {
            Ok(actual) if &actual == expected => {}
            Ok(actual) => {
                drifted += 1;
                report.push_str(&format!("drift: {name} differs from what its template renders\n"));
                let diff = similar::TextDiff::from_lines(actual.as_str(), expected.as_str());
                report.push_str(
                    &diff
                        .unified_diff()
                        .context_radius(2)
                        .header(&format!("{name} (on disk)"), &format!("{name} (rendered)"))
                        .to_string(),
                );
            }
            Err(_) => {
                drifted += 1;
                report.push_str(&format!("drift: {name} is missing\n"));
            }
        }
    }
    if drifted == 0 {
        let noun = if rendered.len() == 1 { "file" } else { "files" };
        out.out(&format!("ok: {} rendered {noun} up to date\n", rendered.len()));
        Ok(())
    } else {
        let noun = if drifted == 1 { "file" } else { "files" };
        report.push_str(&format!(
            "error: {drifted} {noun} out of date; run the same command without --check to update\n"
        ));
        out.out(&report);
        Err(Error::Exit(exit::FAILURE))
    }
}

fn load_manifest(loader: &mut Loader, path: &Path) -> Result<PromptManifest, Error> {
    match loader.load_shallow::<PromptManifest>(path, FileKind::Prompts) {
        Ok(Some(manifest)) => Ok(manifest),
        Ok(None) | Err(ReadError::Reported) => Err(Error::Exit(exit::DATAERR)),
        Err(ReadError::Missing) => Err(Error::NoInput(format!("no such manifest: {}", display(path)))),
    }
}

fn registry_for(
    args: &RenderArgs,
    loader: &mut Loader,
    manifest: Option<&PromptManifest>,
    manifest_path: Option<&Path>,
) -> Result<Option<Arc<LaneRegistry>>, Error> {
    let path = match (&args.lanes, manifest.and_then(|m| m.lanes.as_ref()), manifest_path) {
        (Some(path), _, _) => normalize(path),
        (None, Some(relative), Some(manifest_path)) => sibling(manifest_path, relative),
        _ => return Ok(None),
    };
    match loader.load(&path) {
        Ok(Some(Loaded::Lanes(registry))) => Ok(Some(registry)),
        Ok(Some(other)) => Err(Error::Invalid(format!(
            "{} is a {} file, not a lane registry",
            display(&path),
            other.kind().name()
        ))),
        Ok(None) | Err(ReadError::Reported) => Err(Error::Exit(exit::DATAERR)),
        Err(ReadError::Missing) => Err(Error::NoInput(format!("no such lane registry: {}", display(&path)))),
    }
}

/// Values from `--vars` files, then `--set`, then `--env`, each winning over the last.
fn extra_values(
    args: &RenderArgs,
    loader: &mut Loader,
    vars: &mut IndexMap<String, Value>,
) -> Result<(), Error> {
    for file in &args.vars {
        let text = match loader.read(file) {
            Ok(text) => text,
            Err(ReadError::Missing) => {
                return Err(Error::NoInput(format!("no such vars file: {}", display(file))));
            }
            Err(ReadError::Reported) => return Err(Error::Exit(exit::DATAERR)),
        };
        let name = display(file);
        match yaml::parse(&text) {
            Ok(document) => match document.value.clone() {
                Value::Object(map) => vars.extend(map),
                Value::Null => {}
                other => {
                    loader.report_range(
                        &name,
                        document.locate("").value,
                        "type",
                        format!(
                            "a vars file must be a map of names to values, found {}",
                            crate::load::schema_check::describe(&other)
                        ),
                        None,
                    );
                    return Err(Error::Exit(exit::DATAERR));
                }
            },
            Err(e) => {
                loader.report_range(&name, e.range, "yaml", e.message, e.hint);
                return Err(Error::Exit(exit::DATAERR));
            }
        }
    }
    for assignment in &args.set {
        match render::parse_assignment(assignment) {
            Ok((key, value)) => {
                vars.insert(key, Value::String(value));
            }
            Err(message) => {
                return Err(Error::Usage(format!("--set {message}")));
            }
        }
    }
    for name in &args.env {
        match std::env::var(name) {
            Ok(value) => {
                vars.insert(name.clone(), Value::String(value));
            }
            Err(_) => {
                return Err(Error::Usage(format!("--env {name}: the environment variable is not set")));
            }
        }
    }
    Ok(())
}
