//! The layering lint (also run by `.ci/check-layers`): every `crate::` path in
//! src/ must point to the same or a lower layer, and the modules may not import
//! each other in a cycle. The layer order is written down in the README's
//! "Architecture" section; `LAYERS` below is the one place it is enforced.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers from the bottom up. A path belongs to the longest prefix listed here;
/// a module may import its own layer and any layer below it.
const LAYERS: &[&[&str]] = &[
    // Utilities: no knowledge of workflows.
    &[
        "exit",
        "error",
        "output",
        "fsutil",
        "readlog",
        "diagnostics",
        "mermaid",
        "template",
        // Masking, expression values and scopes (below the steps that use them).
        "expr",
    ],
    // The typed file formats.
    &["model"],
    // Pure functions over the model: lifecycle moves, prompt rendering, cron times.
    &["lifecycle", "render", "schedule::cron"],
    // YAML -> checked model, with diagnostics.
    &["load"],
    // Read-only uses of loaded files: Mermaid drawings, the DevClaw import.
    &["graph", "import"],
    // Loaded project -> executable plan.
    &["plan"],
    // One file per step kind.
    &["steps"],
    // The engine loop: ordering, retries, timeouts, events.
    &["engine"],
    // What a run produced, for people and machines.
    &["report"],
    // Past runs on disk.
    &["history"],
    // Things that drive the engine: the scheduler, offline workflow tests.
    &["schedule", "testing", "export"],
    // The command line.
    &["cmd", "cli"],
];

/// Known imports against the layering, each with its reason. (from, to, why)
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

/// A module path (`load::yaml`) -> its unit: the longest prefix in `LAYERS`.
fn unit(path: &[String]) -> Option<(&'static str, usize)> {
    let mut best: Option<(&'static str, usize)> = None;
    for (layer, names) in LAYERS.iter().enumerate() {
        for name in names.iter() {
            let segments: Vec<&str> = name.split("::").collect();
            let matches =
                segments.len() <= path.len() && segments.iter().zip(path).all(|(a, b)| *a == b.as_str());
            if matches && best.is_none_or(|(b, _)| b.split("::").count() < segments.len()) {
                best = Some((name, layer));
            }
        }
    }
    best
}

fn excepted(from: &str, to: &str) -> bool {
    EXCEPTIONS
        .iter()
        .any(|(f, t, _)| from.split("::").next() == Some(*f) && to.split("::").next() == Some(*t))
}

/// `src/load/yaml.rs` -> `["load", "yaml"]`; `src/load/mod.rs` -> `["load"]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut segments: Vec<String> = relative.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if segments.last().is_some_and(|s| s == "mod") {
        segments.pop();
    }
    segments
}

/// The text with `//` comments and string literals blanked out.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => in_string = false,
                '\n' => out.push('\n'),
                _ => {}
            }
            continue;
        }
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => in_string = true,
            // A char literal `'"'` would otherwise open a string.
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with("\"'") {
                    chars.next();
                    chars.next();
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Every path a `crate::` prefix names in `code`, groups expanded:
/// `crate::{a::b, c}` -> `a::b`, `c`.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        tree(rest.trim_start(), Vec::new(), &mut found);
    }
    found
}

/// Parse one use tree at the start of `text` under `prefix`.
fn tree(text: &str, prefix: Vec<String>, found: &mut Vec<Vec<String>>) {
    if let Some(inner) = text.strip_prefix('{') {
        let mut depth = 0usize;
        let mut start = 0usize;
        for (index, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    tree(inner[start..index].trim(), prefix, found);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    tree(inner[start..index].trim(), prefix.clone(), found);
                    start = index + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(text.len());
    let name = &text[..end];
    let mut path = prefix;
    if !name.is_empty() && name != "self" {
        path.push(name.to_string());
    }
    match text[end..].strip_prefix("::") {
        Some(more) if !more.starts_with('*') => tree(more, path, found),
        _ if !path.is_empty() => found.push(path),
        _ => {}
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for path in entries.flatten().map(|e| e.path()) {
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Imports between units: (from, to) -> the files that import.
type Edges = BTreeMap<(&'static str, &'static str), BTreeSet<String>>;

/// The imports between units, and the modules or paths that have no layer.
fn edges(src: &Path) -> (Edges, Vec<String>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut edges = Edges::new();
    let mut unplaced = Vec::new();
    for file in &files {
        let module = module_path(src, file);
        if module == ["lib"] || module == ["main"] {
            continue;
        }
        let shown = file.strip_prefix(src).unwrap_or(file).display().to_string();
        let Some((from, _)) = unit(&module) else {
            unplaced.push(format!("src/{shown}: module `{}` has no layer", module.join("::")));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for path in crate_paths(&code_only(&text)) {
            match unit(&path) {
                Some((to, _)) if to != from => {
                    edges.entry((from, to)).or_default().insert(format!("src/{shown}"));
                }
                Some(_) => {}
                None => unplaced.push(format!("src/{shown}: `crate::{}` has no layer", path.join("::"))),
            }
        }
    }
    (edges, unplaced)
}

fn layer_of(name: &str) -> usize {
    LAYERS.iter().position(|names| names.contains(&name)).unwrap_or(usize::MAX)
}

/// A cycle among `edges`, as its units in order, if there is one.
fn find_cycle(edges: &BTreeSet<(&'static str, &'static str)>) -> Option<Vec<&'static str>> {
    fn visit(
        node: &'static str,
        edges: &BTreeSet<(&'static str, &'static str)>,
        state: &mut BTreeMap<&'static str, u8>,
        stack: &mut Vec<&'static str>,
    ) -> Option<Vec<&'static str>> {
        state.insert(node, 1);
        stack.push(node);
        for &(_, next) in edges.iter().filter(|(from, _)| *from == node) {
            match state.get(next) {
                Some(1) => {
                    let at = stack.iter().position(|n| *n == next).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next);
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(cycle) = visit(next, edges, state, stack) {
                        return Some(cycle);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node, 2);
        None
    }
    let mut state = BTreeMap::new();
    let nodes: BTreeSet<&'static str> = edges.iter().map(|(from, _)| *from).collect();
    for node in nodes {
        if !state.contains_key(node)
            && let Some(cycle) = visit(node, edges, &mut state, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

/// The problems in the tree under `src`, one line each.
fn problems(src: &Path) -> Vec<String> {
    let (edges, mut problems) = edges(src);
    let mut kept = BTreeSet::new();
    for (&(from, to), files) in &edges {
        if excepted(from, to) {
            continue;
        }
        kept.insert((from, to));
        if layer_of(to) > layer_of(from) {
            let files: Vec<&str> = files.iter().map(String::as_str).collect();
            problems.push(format!("`{from}` imports `{to}`, a higher layer, in {}", files.join(", ")));
        }
    }
    if let Some(cycle) = find_cycle(&kept) {
        problems.push(format!("import cycle: {}", cycle.join(" -> ")));
    }
    problems
}

#[test]
fn layers_import_downward_only_and_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = problems(&src);
    assert!(
        found.is_empty(),
        "layering problems (order and exceptions: tests/engine/layers.rs, README \"Architecture\"):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_lint_sees_grouped_paths_and_ignores_comments_and_strings() {
    let code = code_only(
        "use crate::{load::yaml::{Range, Pos}, model};\n// crate::cmd::x\nlet s = \"crate::cmd\"; x(crate::engine::run::go);",
    );
    let paths: Vec<String> = crate_paths(&code).iter().map(|p| p.join("::")).collect();
    assert_eq!(paths, ["load::yaml::Range", "load::yaml::Pos", "model", "engine::run::go"]);
    assert_eq!(unit(&["expr".into(), "mask".into(), "MASK".into()]).map(|u| u.0), Some("expr"));
    assert_eq!(unit(&["engine".into(), "run".into()]).map(|u| u.0), Some("engine"));
}

#[test]
fn the_lint_fails_an_upward_import_and_a_cycle() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("runner-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("model")).expect("scratch dir");
    std::fs::write(dir.join("model/mod.rs"), "use crate::load::Loader;\n").expect("write");
    std::fs::write(dir.join("load.rs"), "use crate::model::Step;\n").expect("write");
    std::fs::write(dir.join("exit.rs"), "pub const OK: i32 = 0; // crate::cmd\n").expect("write");
    let found = problems(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("`model` imports `load`, a higher layer, in src/model/mod.rs"), "{found:?}");
    assert!(found[1].starts_with("import cycle: "), "{found:?}");
}
