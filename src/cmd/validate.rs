//! `runner validate`: check files and report every problem in one pass.

use std::path::{Path, PathBuf};

use crate::cli::{ValidateArgs, ValidateOutput};
use crate::cmd::{Out, stderr_color};
use crate::diagnostics::{self, Diagnostic, Sources};
use crate::error::Error;
use crate::exit;
use crate::load::{Loader, ReadError, SharedLoads, display, normalize};

/// Directories checked when no path is given.
pub(crate) const DEFAULT_DIRS: [&str; 3] = ["workflows", "cron-prompts", "examples"];

/// Run `runner validate`.
pub(crate) fn run(args: &ValidateArgs, out: &mut Out) -> Result<(), Error> {
    let mut paths: Vec<PathBuf> = args.paths.iter().map(|p| normalize(p)).collect();
    if paths.is_empty() {
        paths = DEFAULT_DIRS.iter().map(PathBuf::from).filter(|p| p.is_dir()).collect();
        if paths.is_empty() {
            return Err(Error::NoInput("nothing to validate: no workflows/, cron-prompts/ or examples/ here; name files or directories".into()));
        }
    }
    let mut missing = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    for path in &paths {
        if !path.exists() {
            missing.push(path.clone());
        } else if path.is_dir() {
            jobs.extend(yaml_files(path).into_iter().map(|file| Job { path: file, named: false }));
        } else {
            jobs.push(Job { path: path.clone(), named: true });
        }
    }
    let files = jobs.len();
    let mut cache = if args.no_cache { None } else { crate::cmd::validate_cache::Cache::open() };
    if let Some(cache) = &mut cache {
        jobs.retain(|job| !cache.unchanged(&job.key()));
    }
    let Checked { mut found, sources, mut warnings, reads } = check_all(&jobs, cache.is_some());
    // Only a run with nothing to say is remembered: no problem, no warning, no
    // missing path (bad input writes nothing).
    if let Some(mut cache) = cache
        && found.is_empty()
        && warnings.is_empty()
        && missing.is_empty()
    {
        for (index, reads) in reads {
            if let Some(job) = jobs.get(index) {
                cache.keep(job.key(), reads);
            }
        }
        cache.save();
    }
    let mut seen_warnings = std::collections::HashSet::new();
    warnings.retain(|d| {
        seen_warnings.insert((d.file.clone(), d.range.start.line, d.range.start.col, d.message.clone()))
    });
    diagnostics::sort(&mut warnings);
    // A file checked by two loaders (a broken callee, or one both threads needed at
    // once) is reported by both.
    let mut seen = std::collections::HashSet::new();
    found.retain(|d| {
        seen.insert((d.file.clone(), d.range.start.line, d.range.start.col, d.code, d.message.clone()))
    });
    diagnostics::sort(&mut found);
    match args.output {
        ValidateOutput::Github => {
            let mut text = String::new();
            for diagnostic in &found {
                text.push_str(&github_annotation(diagnostic));
            }
            text.push_str(&summary(&found, files));
            out.out(&text);
        }
        // Warnings follow the errors in the same array (`severity` tells them apart)
        // instead of going to stderr.
        ValidateOutput::Json => {
            let mut text = diagnostics::to_json_with_warnings(&found, &std::mem::take(&mut warnings));
            text.push('\n');
            out.out(&text);
        }
        // Problems go to stderr; stdout carries only the `ok: N files valid` line.
        ValidateOutput::Human if found.is_empty() => out.out(&summary(&found, files)),
        ValidateOutput::Human => {
            let color = stderr_color(args.color);
            let mut text = String::new();
            for diagnostic in &found {
                text.push_str(&diagnostics::render(diagnostic, &sources, color));
                text.push('\n');
            }
            text.push_str(&summary(&found, files));
            out.err(&text);
        }
    }
    for path in &missing {
        out.err(&format!("runner: no such file or directory: {}\n", display(path)));
    }
    out.err(&render_warnings(&warnings));
    // Each problem and missing path is printed above; only the code is left.
    if !missing.is_empty() {
        Err(Error::Exit(exit::NOINPUT))
    } else if found.is_empty() {
        Ok(())
    } else {
        Err(Error::Exit(exit::DATAERR))
    }
}

/// One file to check: found in a directory (YAML, by kind) or named on the command
/// line (YAML by kind, anything else as a template).
#[derive(Debug)]
struct Job {
    path: PathBuf,
    named: bool,
}

impl Job {
    fn key(&self) -> String {
        crate::cmd::validate_cache::key(&self.path, self.named)
    }
}

/// What [`check_all`] found.
#[derive(Debug, Default)]
struct Checked {
    found: Vec<Diagnostic>,
    sources: Sources,
    warnings: Vec<Diagnostic>,
    /// With `log`: what each job's check read, by job index.
    reads: Vec<(usize, crate::readlog::Reads)>,
}

/// Files per loader at most: a loader keeps every file's text, parsed document and
/// model until it is dropped, so at scale each thread starts a fresh loader after this
/// many files, freeing the intermediate forms of the ones done.
const BATCH: usize = 32;

/// Check every job on all cores (at most 8 threads). Each thread takes the next file
/// from a shared counter (so the work, not the file count, is spread) and checks it
/// with its own loader; referenced files that several files name (the lane registry
/// with every prompt rendered, the worker preflight, a test file's workflow) are
/// checked once per process and shared between the threads' loaders. Each schema is
/// compiled once per process, by the first file that needs it. Returns the problems,
/// the texts they point into and the warnings, and with `log` what each job read (for
/// the result cache).
fn check_all(jobs: &[Job], log: bool) -> Checked {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let threads = threads.min(jobs.len()).max(1);
    let shared = std::sync::Arc::new(SharedLoads::default());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Checked> = std::sync::Mutex::default();
    let keep = |loader: &mut Loader, reads: &mut Vec<(usize, crate::readlog::Reads)>| {
        let (found, sources, warnings) = take_results(loader);
        if let Ok(mut all) = results.lock() {
            all.found.extend(found);
            all.warnings.extend(warnings);
            for (file, text) in sources {
                all.sources.insert(&file, text);
            }
            all.reads.append(reads);
        }
    };
    let work = || {
        let mut loader = Loader::with_shared(shared.clone());
        let mut checked = 0;
        let mut reads = Vec::new();
        loop {
            let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(job) = jobs.get(index) else { break };
            if checked == BATCH {
                keep(&mut loader, &mut reads);
                loader = Loader::with_shared(shared.clone());
                checked = 0;
            }
            let frame = log.then(crate::readlog::Frame::begin);
            if job.named {
                check_file(&mut loader, &job.path);
            } else {
                let _ = loader.load(&job.path);
            }
            if let Some(frame) = frame {
                reads.push((index, frame.end()));
            }
            checked += 1;
        }
        keep(&mut loader, &mut reads);
        // The last loader's forms (every file of a small run) are not freed one by one:
        // the process ends right after the report, and freeing them cost more CPU than
        // any single check. At scale, the earlier loaders were dropped after their batch.
        std::mem::forget(loader);
    };
    if threads <= 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(work);
            }
            work();
        });
    }
    // Like the last loaders: the shared files live until the process ends.
    std::mem::forget(shared);
    results.into_inner().unwrap_or_default()
}

/// Take a loader's problems, the texts of the files they point into and its warnings.
fn take_results(loader: &mut Loader) -> (Vec<Diagnostic>, Vec<(String, String)>, Vec<Diagnostic>) {
    let found = std::mem::take(&mut loader.diagnostics);
    let mut files: Vec<&str> = found.iter().map(|d| d.file.as_str()).collect();
    files.sort_unstable();
    files.dedup();
    let sources = files
        .iter()
        .filter_map(|file| loader.sources.get(file).map(|text| (file.to_string(), text.to_string())))
        .collect();
    (found, sources, std::mem::take(&mut loader.warnings))
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

// The file walk is shared with `runner test` and `runner list`, so it lives in the loader.
pub(crate) use crate::load::yaml_files;

/// Warnings as `warning[code]: file:line:col: message` lines with their hint.
fn render_warnings(warnings: &[Diagnostic]) -> String {
    let mut text = String::new();
    for warning in warnings {
        text.push_str(&format!(
            "warning[{}]: {}:{}:{}: {}\n",
            warning.code,
            warning.file,
            warning.line(),
            warning.column(),
            warning.message
        ));
        if let Some(hint) = &warning.hint {
            text.push_str(&format!("  = help: {hint}\n"));
        }
    }
    text
}

/// One GitHub Actions workflow command for `diagnostic`:
/// `::error file=F,line=L,col=C,title=CODE::message` (with the hint on a second line),
/// escaped as the runner expects so `:`/`,` in values and newlines in text survive.
pub(crate) fn github_annotation(diagnostic: &Diagnostic) -> String {
    let property = |text: &str| {
        text.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
            .replace(':', "%3A")
            .replace(',', "%2C")
    };
    let data = |text: &str| text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    let mut message = diagnostic.message.clone();
    if let Some(hint) = &diagnostic.hint {
        message.push_str(&format!("\nhelp: {hint}"));
    }
    format!(
        "::error file={},line={},col={},title={}::{}\n",
        property(&diagnostic.file),
        diagnostic.line(),
        diagnostic.column(),
        property(&format!("runner {}", diagnostic.code)),
        data(&message)
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_annotations_escape_their_values() {
        let mut diagnostic = Diagnostic::new(
            "dir,x/wf:1.yaml",
            crate::load::yaml::Range::default(),
            "unknown-field",
            "unknown field `timout`\n100% sure",
        );
        diagnostic.hint = Some("did you mean `timeout`?".into());
        let line = github_annotation(&diagnostic);
        assert!(line.starts_with("::error file=dir%2Cx/wf%3A1.yaml,line="), "{line}");
        assert!(line.contains(",title=runner unknown-field::"), "{line}");
        assert!(
            line.ends_with("::unknown field `timout`%0A100%25 sure%0Ahelp: did you mean `timeout`?\n"),
            "{line}"
        );
        assert_eq!(line.matches('\n').count(), 1);
    }
}
