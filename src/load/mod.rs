//! Loading files: raw text -> spanned YAML -> schema check -> typed model -> semantic
//! checks. Every problem becomes a [`Diagnostic`]; a file with problems yields no model.

pub(crate) mod check_lanes;
pub(crate) mod check_lifecycle;
pub(crate) mod check_prompts;
pub(crate) mod check_schedule;
pub(crate) mod check_test;
pub(crate) mod check_workflow;
pub(crate) mod layers;
#[cfg(test)]
mod mutation_tests;
pub(crate) mod schema_check;
mod shared;
pub(crate) mod yaml;

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diagnostics::{Diagnostic, Sources, did_you_mean, one_of};
use crate::fsutil::ReadFailure;
use crate::model::{FileKind, LaneRegistry, PromptManifest, Workflow};
pub(crate) use shared::SharedLoads;
use shared::{Claim, Claimed, SharedLoad};
use yaml::{Document, Location, Pos, Range};

/// Largest file runner reads (8 MiB).
pub(crate) const MAX_FILE_BYTES: u64 = crate::fsutil::MAX_READ_BYTES;

/// A file that loaded cleanly.
#[derive(Debug, Clone)]
pub(crate) enum Loaded {
    /// A workflow.
    Workflow(Arc<Workflow>),
    /// A lane registry.
    Lanes(Arc<LaneRegistry>),
    /// A prompt manifest.
    Prompts(Arc<PromptManifest>),
    /// A test file.
    Test(Arc<crate::model::TestFile>),
    /// A lifecycle.
    Lifecycle(Arc<crate::model::Lifecycle>),
    /// A roles file.
    Roles(Arc<crate::model::Roles>),
    /// A schedule.
    Schedule(Arc<crate::model::Schedule>),
}

impl Loaded {
    /// The file's kind.
    pub(crate) fn kind(&self) -> FileKind {
        match self {
            Loaded::Workflow(_) => FileKind::Workflow,
            Loaded::Lanes(_) => FileKind::Lanes,
            Loaded::Prompts(_) => FileKind::Prompts,
            Loaded::Test(_) => FileKind::Test,
            Loaded::Lifecycle(_) => FileKind::Lifecycle,
            Loaded::Roles(_) => FileKind::Roles,
            Loaded::Schedule(_) => FileKind::Schedule,
        }
    }
}

#[derive(Debug, Clone)]
enum Slot {
    InProgress,
    Done(Option<Loaded>),
}

/// Why a file could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// It does not exist.
    Missing,
    /// Something else (permissions, a directory, too large, not UTF-8); already
    /// reported as a diagnostic.
    Reported,
}

/// Loads files once each, remembers their text for diagnostics and collects every
/// problem found in them or in the files they refer to.
#[derive(Debug, Default)]
pub(crate) struct Loader {
    /// Every problem found so far.
    pub diagnostics: Vec<Diagnostic>,
    /// The text of every file read, by display name.
    pub sources: Sources,
    slots: HashMap<PathBuf, Slot>,
    stack: Vec<String>,
    documents: HashMap<String, Arc<Document>>,
    /// Things worth knowing that do not make a file invalid (`runner validate` prints
    /// them to stderr; they never change an exit code).
    pub warnings: Vec<Diagnostic>,
    /// Files checked by any loader of this process (`runner validate`'s threads), and
    /// this loader's number among them.
    shared: Option<(Arc<SharedLoads>, usize)>,
    /// What each file's check read (with `runner validate`'s read log on), given again
    /// to the log when the file's result is reused.
    reads: HashMap<PathBuf, Arc<crate::readlog::Reads>>,
}

/// A path shortened lexically (`a/./b/../c` -> `a/c`), for display and joining.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let can_pop = matches!(out.components().next_back(), Some(Component::Normal(_)));
                if can_pop {
                    out.pop();
                } else if !matches!(out.components().next_back(), Some(Component::RootDir)) {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

/// `target` relative to the directory of `file`.
pub(crate) fn sibling(file: &Path, target: &str) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new(""));
    normalize(&dir.join(target))
}

/// The display name of a path.
pub(crate) fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Every *.yaml / *.yml under `dir`, sorted, skipping hidden directories and `target`.
pub(crate) fn yaml_files(dir: &Path) -> Vec<PathBuf> {
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

/// Give the read log what a reused result's check read; a result whose reads were not
/// logged cannot be cached. The result is reused by canonical path, so `path` may be
/// another name of the file first read (a symlink): that name is logged too, with the
/// same digest, so a link pointed elsewhere later is noticed.
fn reuse_reads(path: &Path, reads: Option<&crate::readlog::Reads>) {
    match reads {
        Some(reads) => {
            crate::readlog::extend(reads);
            if let Some(first) = reads.files.first()
                && Path::new(&first.path) != path
            {
                crate::readlog::record_digest(path, first.digest.clone());
            }
        }
        None if crate::readlog::active() => crate::readlog::mark_uncacheable(),
        None => {}
    }
}

impl Loader {
    /// A fresh loader.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A fresh loader that takes referenced files already checked from `shared` and
    /// adds the ones it checks.
    pub(crate) fn with_shared(shared: Arc<SharedLoads>) -> Self {
        let me = shared.join();
        Loader { shared: Some((shared, me)), ..Self::default() }
    }

    /// Read a file's text, reporting unreadable files. `Missing` is not reported here,
    /// so the caller can decide between exit 66 and a diagnostic at the reference.
    pub(crate) fn read(&mut self, path: &Path) -> Result<String, ReadError> {
        self.read_from(path, None)
    }

    /// [`Loader::read`] for a file named in another file: a file that exists but
    /// cannot be read (a directory, a FIFO, a device, too large, no permission) is
    /// reported at `at`, the reference (file and range), not at `path:0:0`.
    pub(crate) fn read_from(&mut self, path: &Path, at: Option<(&str, Range)>) -> Result<String, ReadError> {
        let name = display(path);
        let failure = match crate::fsutil::read_text(path, MAX_FILE_BYTES) {
            Ok(text) => {
                self.sources.insert(&name, text.clone());
                crate::template::bounds::remember_source(&name, path);
                return Ok(text);
            }
            Err(ReadFailure::Missing) => return Err(ReadError::Missing),
            Err(ReadFailure::NotUtf8 { bytes, valid_up_to }) => {
                let prefix = String::from_utf8_lossy(&bytes[..valid_up_to.min(bytes.len())]).into_owned();
                let index = yaml::LineIndex::new(&prefix);
                let start = index.pos_of_offset(valid_up_to);
                let range = Range { start, end: valid_up_to };
                self.sources.insert(&name, prefix);
                self.diagnostics.push(
                    Diagnostic::new(
                        &name,
                        range,
                        "encoding",
                        format!("file is not UTF-8 text (invalid byte at offset {valid_up_to})"),
                    )
                    .with_hint(Some("runner files must be UTF-8 text; is this a binary file?".into())),
                );
                return Err(ReadError::Reported);
            }
            Err(other) => other,
        };
        let (code, hint) = match &failure {
            ReadFailure::TooLarge { .. } => {
                ("too-large", Some("split it into smaller workflows joined with `call`".to_string()))
            }
            ReadFailure::NotAFile(_) => ("io", Some("name a regular file".to_string())),
            _ => ("io", None),
        };
        let diagnostic = match at {
            Some((file, range)) => {
                Diagnostic::new(file, range, code, format!("cannot read `{name}`: {failure}"))
            }
            None => Diagnostic::new(&name, Range::default(), code, format!("cannot read file: {failure}")),
        };
        self.diagnostics.push(diagnostic.with_hint(hint));
        Err(ReadError::Reported)
    }

    /// Read a file whose problems are reported elsewhere (a second reader of the same
    /// reference): its text, or `None` without a diagnostic.
    pub(crate) fn read_quiet(&mut self, path: &Path) -> Option<String> {
        let text = crate::fsutil::read_text(path, MAX_FILE_BYTES).ok()?;
        self.sources.insert(&display(path), text.clone());
        Some(text)
    }

    /// The parsed document of a loaded file (for locating values), by display name.
    pub(crate) fn document(&self, name: &str) -> Option<Arc<Document>> {
        self.documents.get(name).cloned()
    }

    /// Load and fully check a YAML file of any kind. Reports `Missing` to the caller.
    pub(crate) fn load(&mut self, path: &Path) -> Result<Option<Loaded>, ReadError> {
        self.load_from(path, None)
    }

    /// [`Loader::load`] for a file named at `at` (see [`Loader::read_from`]).
    pub(crate) fn load_from(
        &mut self,
        path: &Path,
        at: Option<(&str, Range)>,
    ) -> Result<Option<Loaded>, ReadError> {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        match self.slots.get(&key) {
            Some(Slot::Done(result)) => {
                reuse_reads(path, self.reads.get(&key).map(|reads| &**reads));
                return Ok(result.clone());
            }
            Some(Slot::InProgress) => {
                // A reference cycle (the checkers report cycles before they get here,
                // so this is a safety net): the files on it have not finished logging
                // their reads, so no result that depends on them is remembered.
                if crate::readlog::active() {
                    crate::readlog::mark_uncacheable();
                }
                return Ok(None);
            }
            None => {}
        }
        let name = display(path);
        let shared = self.shared.clone();
        let mine = match &shared {
            Some((shared, me)) => match shared.claim(&key, *me) {
                Claim::Done(load) => {
                    reuse_reads(path, load.reads.as_deref());
                    if let Some(reads) = load.reads {
                        self.reads.insert(key.clone(), reads);
                    }
                    self.sources.insert(&name, load.text.to_string());
                    if let Some(document) = load.document {
                        self.documents.insert(name, document);
                    }
                    self.slots.insert(key, Slot::Done(load.result.clone()));
                    return Ok(load.result);
                }
                Claim::Mine => Some(Claimed::new(Arc::clone(shared), key.clone())),
                Claim::Alone => None,
            },
            None => None,
        };
        // What this file's check reads (itself, the files it references), for reuse.
        let frame = crate::readlog::Frame::nested();
        // An unreadable file gives up the claim when `mine` is dropped.
        let text = self.read_from(path, at)?;
        self.slots.insert(key.clone(), Slot::InProgress);
        self.stack.push(name.clone());
        let result = self.load_text(path, &name, &text);
        self.stack.pop();
        let reads = frame.map(|frame| Arc::new(frame.end()));
        if let Some(reads) = &reads {
            self.reads.insert(key.clone(), Arc::clone(reads));
        }
        if let Some(mut mine) = mine {
            let document = self.documents.get(&name).cloned();
            let load = SharedLoad { result: result.clone(), text: text.into(), document, reads };
            mine.release(load, !self.stack.is_empty());
        }
        self.slots.insert(key, Slot::Done(result.clone()));
        Ok(result)
    }

    /// Whether `path` is being loaded right now (a reference cycle).
    pub(crate) fn in_progress(&self, path: &Path) -> bool {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        matches!(self.slots.get(&key), Some(Slot::InProgress))
    }

    /// The chain of files being loaded, outermost first.
    pub(crate) fn chain(&self) -> &[String] {
        &self.stack
    }

    /// Parse a file and check it against its kind's schema, without meaning checks.
    fn parse_checked(&mut self, name: &str, text: &str) -> Option<(Arc<Document>, FileKind)> {
        let document = match yaml::parse(text) {
            Ok(d) => Arc::new(d),
            Err(e) => {
                let mut d = Diagnostic::new(name, e.range, "yaml", e.message).with_hint(e.hint);
                if let Some((range, label)) = e.related {
                    d = d.with_related(range, label);
                }
                self.diagnostics.push(d);
                return None;
            }
        };
        self.documents.insert(name.to_string(), document.clone());
        let kind = self.detect_kind(name, &document)?;
        if matches!(kind, FileKind::Lifecycle | FileKind::Roles) && layers::extends(&document) {
            // Checked after merging with its base (layers::load_typed).
            return Some((document, kind));
        }
        let problems = schema_check::checker(kind).check(&document.value);
        if !problems.is_empty() {
            for problem in problems {
                let location = document.locate(&problem.pointer);
                let range =
                    if problem.on_key { location.key.unwrap_or(location.value) } else { location.value };
                let message = as_written(&document, &problem.pointer, text, problem.message);
                self.push_at(name, &document, range, location, problem.code, message, problem.hint);
            }
            return None;
        }
        Some((document, kind))
    }

    /// Load a file of a known kind with the schema check only (no meaning checks, no
    /// other files), e.g. a prompt manifest whose templates are rendered by the caller.
    pub(crate) fn load_shallow<T: DeserializeOwned>(
        &mut self,
        path: &Path,
        expected: FileKind,
    ) -> Result<Option<T>, ReadError> {
        let text = self.read(path)?;
        let name = display(path);
        let Some((document, kind)) = self.parse_checked(&name, &text) else { return Ok(None) };
        if kind != expected {
            self.diagnostics.push(Diagnostic::new(
                &name,
                document.locate("").value,
                "kind",
                format!("expected a {} file, found a {} file", expected.name(), kind.name()),
            ));
            return Ok(None);
        }
        Ok(self.typed(&name, &document))
    }

    fn load_text(&mut self, path: &Path, name: &str, text: &str) -> Option<Loaded> {
        let (document, kind) = self.parse_checked(name, text)?;
        match kind {
            FileKind::Workflow => {
                let workflow: Workflow = self.typed(name, &document)?;
                let workflow = Arc::new(workflow);
                let before = self.diagnostics.len();
                check_workflow::check(self, path, name, &document, text, &workflow);
                (self.diagnostics.len() == before).then(|| Loaded::Workflow(workflow))
            }
            FileKind::Lanes => {
                let registry: LaneRegistry = self.typed(name, &document)?;
                let before = self.diagnostics.len();
                check_lanes::check(self, path, name, &document, &registry);
                (self.diagnostics.len() == before).then(|| Loaded::Lanes(Arc::new(registry)))
            }
            FileKind::Lifecycle => {
                let (lifecycle, layers): (crate::model::Lifecycle, _) =
                    layers::load_typed(self, path, name, &document, kind)?;
                let before = self.diagnostics.len();
                check_lifecycle::check_lifecycle(self, &layers, &lifecycle);
                (self.diagnostics.len() == before).then(|| Loaded::Lifecycle(Arc::new(lifecycle)))
            }
            FileKind::Roles => {
                let (roles, layers): (crate::model::Roles, _) =
                    layers::load_typed(self, path, name, &document, kind)?;
                let before = self.diagnostics.len();
                check_lifecycle::check_roles(self, &layers, &roles);
                (self.diagnostics.len() == before).then(|| Loaded::Roles(Arc::new(roles)))
            }
            FileKind::Test => {
                let tests: crate::model::TestFile = self.typed(name, &document)?;
                let before = self.diagnostics.len();
                check_test::check(self, path, name, &document, &tests);
                (self.diagnostics.len() == before).then(|| Loaded::Test(Arc::new(tests)))
            }
            FileKind::Schedule => {
                let schedule: crate::model::Schedule = self.typed(name, &document)?;
                let before = self.diagnostics.len();
                check_schedule::check(self, path, name, &document, &schedule);
                (self.diagnostics.len() == before).then(|| Loaded::Schedule(Arc::new(schedule)))
            }
            FileKind::Prompts => {
                let manifest: PromptManifest = self.typed(name, &document)?;
                let before = self.diagnostics.len();
                check_prompts::check(self, path, name, &document, &manifest);
                (self.diagnostics.len() == before).then(|| Loaded::Prompts(Arc::new(manifest)))
            }
        }
    }

    fn detect_kind(&mut self, name: &str, document: &Document) -> Option<FileKind> {
        let root = &document.value;
        if root.is_null() {
            self.diagnostics.push(
                Diagnostic::new(name, document.locate("").value, "empty", "file is empty")
                    .with_hint(Some("a workflow needs at least `name` and `steps`".into())),
            );
            return None;
        }
        let Value::Object(map) = root else {
            self.diagnostics.push(Diagnostic::new(
                name,
                document.locate("").value,
                "type",
                format!("expected a map at the top of the file, found {}", schema_check::describe(root)),
            ));
            return None;
        };
        match map.get("kind") {
            None => Some(FileKind::Workflow),
            Some(Value::String(kind)) => match FileKind::from_name(kind) {
                Some(k) => Some(k),
                None => {
                    let names: Vec<&str> = FileKind::ALL.iter().map(|k| k.name()).collect();
                    let location = document.locate("/kind");
                    self.diagnostics.push(
                        Diagnostic::new(
                            name,
                            location.value,
                            "unknown-kind",
                            format!("unknown file kind `{kind}`; expected one of {}", one_of(&names)),
                        )
                        .with_hint(did_you_mean(kind, names.iter().copied())),
                    );
                    None
                }
            },
            Some(other) => {
                let location = document.locate("/kind");
                self.diagnostics.push(Diagnostic::new(
                    name,
                    location.value,
                    "type",
                    format!("`kind`: expected text, found {}", schema_check::describe(other)),
                ));
                None
            }
        }
    }

    fn typed<T: DeserializeOwned>(&mut self, name: &str, document: &Document) -> Option<T> {
        // Deserialize from a reference: no copy of the whole document.
        match T::deserialize(&document.value) {
            Ok(model) => Some(model),
            Err(e) => {
                self.diagnostics.push(Diagnostic::new(
                    name,
                    document.locate("").value,
                    "schema",
                    e.to_string(),
                ));
                None
            }
        }
    }

    /// Report a problem at a located value, naming the alias/merge site when the value
    /// was defined elsewhere.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_at(
        &mut self,
        name: &str,
        _document: &Document,
        range: Range,
        location: Location,
        code: &'static str,
        message: String,
        hint: Option<String>,
    ) {
        let mut diagnostic = Diagnostic::new(name, range, code, message).with_hint(hint);
        if let Some(via) = location.via {
            diagnostic = diagnostic.with_related(
                via,
                format!("used here (line {}), defined at line {}", via.start.line, range.start.line),
            );
        }
        self.diagnostics.push(diagnostic);
    }

    /// Load a file that another file names at `pointer` (a path relative to `from`),
    /// expecting `kind`. A missing file or one of another kind is reported at the
    /// reference; a file with problems of its own is reported there (and, with
    /// `note_invalid`, also at the reference). `what` names the file in messages, e.g.
    /// "lane registry".
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn load_reference(
        &mut self,
        from: &Path,
        name: &str,
        document: &Document,
        pointer: &str,
        relative: &str,
        kind: FileKind,
        what: &str,
        note_invalid: bool,
    ) -> Option<Loaded> {
        let target = sibling(from, relative);
        let at = document.locate(pointer).value;
        match self.load_from(&target, Some((name, at))) {
            Ok(Some(loaded)) if loaded.kind() == kind => Some(loaded),
            Ok(Some(other)) => {
                self.report(
                    name,
                    document,
                    pointer,
                    "kind",
                    format!("`{}` is a {} file, not a {what}", display(&target), other.kind().name()),
                    Some(format!("a {what} starts with `kind: {}`", kind.name())),
                );
                None
            }
            // A file that could not be read was reported at the reference already.
            Err(ReadError::Reported) => None,
            Ok(None) => {
                if note_invalid {
                    self.report(
                        name,
                        document,
                        pointer,
                        "reference",
                        format!("{what} `{}` has problems (reported in that file)", display(&target)),
                        None,
                    );
                }
                None
            }
            Err(ReadError::Missing) => {
                self.report(
                    name,
                    document,
                    pointer,
                    "missing-file",
                    format!("{what} `{}` does not exist", display(&target)),
                    Some("the path is relative to this file".into()),
                );
                None
            }
        }
    }

    /// Report a problem at a JSON pointer of a document.
    pub(crate) fn report(
        &mut self,
        name: &str,
        document: &Document,
        pointer: &str,
        code: &'static str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let location = document.locate(pointer);
        self.push_at(name, document, location.value, location, code, message.into(), hint);
    }

    /// Report a problem at the key of a JSON pointer (falls back to the value).
    pub(crate) fn report_key(
        &mut self,
        name: &str,
        document: &Document,
        pointer: &str,
        code: &'static str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let location = document.locate(pointer);
        self.push_at(
            name,
            document,
            location.key.unwrap_or(location.value),
            location,
            code,
            message.into(),
            hint,
        );
    }

    /// Report a problem at an exact byte range of a file.
    pub(crate) fn report_range(
        &mut self,
        name: &str,
        range: Range,
        code: &'static str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.diagnostics.push(Diagnostic::new(name, range, code, message).with_hint(hint));
    }
}

/// A message about the number at `pointer` with the number as written in the file
/// (`99999999999999999999`), not as JSON prints it after conversion (`1e+20`).
fn as_written(document: &Document, pointer: &str, source: &str, message: String) -> String {
    let Some(Value::Number(n)) = document.value.pointer(pointer) else { return message };
    let range = document.locate(pointer).value;
    let Some(written) = source.get(range.start.offset..range.end).map(str::trim) else { return message };
    let printed = n.to_string();
    if written.is_empty() || written == printed {
        return message;
    }
    message.replace(&printed, written)
}

/// Find `needle` used inside a template tag of a located scalar and return its exact
/// range, so a problem inside a template points at the name, not the whole string.
pub(crate) fn refine(source: &str, location: &Location, needle: &str) -> Range {
    let value = location.value;
    let start = value.start.offset.min(source.len());
    let end = value.end.min(source.len()).max(start);
    let Some(haystack) = source.get(start..end) else { return value };
    let found = crate::template::find_in_tags(haystack, needle).or_else(|| haystack.find(needle));
    match found {
        Some(found) => range_in(value, haystack, found, needle.len()),
        None => value,
    }
}

/// Place a range given in template text coordinates (e.g. a syntax error) inside the
/// located scalar that holds the template.
pub(crate) fn refine_template_range(
    source: &str,
    location: &Location,
    template: &str,
    range: std::ops::Range<usize>,
) -> Range {
    let value = location.value;
    let start = value.start.offset.min(source.len());
    let end = value.end.min(source.len()).max(start);
    let Some(haystack) = source.get(start..end) else { return value };
    let Some(snippet) = template.get(range.clone()).filter(|s| !s.is_empty()) else { return value };
    // Plain and quoted single-line scalars hold the template verbatim (after a quote).
    for shift in [0usize, 1] {
        let at = range.start + shift;
        if haystack.get(at..at + snippet.len()) == Some(snippet) {
            return range_in(value, haystack, at, snippet.len());
        }
    }
    match haystack.find(snippet) {
        Some(found) => range_in(value, haystack, found, snippet.len()),
        None => value,
    }
}

fn range_in(value: Range, haystack: &str, found: usize, len: usize) -> Range {
    let prefix = &haystack[..found];
    let (line, col) = match prefix.rfind('\n') {
        None => (value.start.line, value.start.col + prefix.chars().count()),
        Some(last) => {
            (value.start.line + prefix.matches('\n').count(), prefix[last + 1..].chars().count() + 1)
        }
    };
    let offset = value.start.offset + found;
    Range { start: Pos { line, col, offset }, end: offset + len }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        assert_eq!(
            normalize(Path::new("workflows/../cron-prompts/a.md")),
            PathBuf::from("cron-prompts/a.md")
        );
        assert_eq!(normalize(Path::new("./a/./b")), PathBuf::from("a/b"));
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
        assert_eq!(normalize(Path::new("a/../../x")), PathBuf::from("../x"));
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
        assert_eq!(sibling(Path::new("w/lanes.yaml"), "../c/p.md"), PathBuf::from("c/p.md"));
    }

    #[test]
    fn a_check_logs_what_it_read_and_a_reused_result_logs_it_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let call =
            |target: &str| format!("name: w\nsteps:\n  - id: c\n    type: call\n    workflow: {target}\n");
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
        write("a.yaml", &call("child.yaml"));
        write("child.yaml", "name: child\nsteps:\n  - type: emit\n    text: hi\n");
        let mut loader = Loader::new();
        let frame = crate::readlog::Frame::begin();
        assert!(matches!(loader.load(&dir.path().join("a.yaml")), Ok(Some(_))));
        let reads = frame.end();
        let names: Vec<&str> =
            reads.files.iter().map(|read| read.path.rsplit('/').next().unwrap_or("")).collect();
        assert_eq!(names, ["a.yaml", "child.yaml"]);
        assert!(!reads.uncacheable);
        // Loaded again by the same loader: the result is reused, and so are its reads.
        let frame = crate::readlog::Frame::begin();
        assert!(matches!(loader.load(&dir.path().join("a.yaml")), Ok(Some(_))));
        assert_eq!(frame.end(), reads);
    }
}
