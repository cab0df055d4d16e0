//! Mutation tests over the loader and the template evaluator (proptest): shipped
//! workflow files with flipped bytes, truncations, duplicated or deleted lines and deep
//! nesting must never panic and must yield only located diagnostics; random templates
//! over random values must never panic.
//!
//! `RUNNER_FUZZ_CASES=N` raises the case count (default 256 per property, a few seconds
//! in a debug build); the longest case is printed with `--nocapture`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;

use super::Loader;
use crate::diagnostics::{self, Diagnostic};

fn cases() -> u32 {
    std::env::var("RUNNER_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// A copy of the shipped files (workflows, examples, prompts) to mutate next to, so
/// relative references still resolve; and the list of YAML files in it.
fn tree() -> &'static (tempfile::TempDir, Vec<PathBuf>) {
    static TREE: OnceLock<(tempfile::TempDir, Vec<PathBuf>)> = OnceLock::new();
    TREE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut files = Vec::new();
        let mut pending: Vec<PathBuf> =
            ["workflows", "examples", "cron-prompts"].iter().map(|d| root.join(d)).collect();
        while let Some(current) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&current) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                let target = dir.path().join(&relative);
                if path.is_dir() {
                    let _ = std::fs::create_dir_all(&target);
                    pending.push(path);
                } else {
                    if let Some(parent) = target.parent() {
                        let _ = std::fs::create_dir_all(parent);
                    }
                    let _ = std::fs::copy(&path, &target);
                    if relative.extension().is_some_and(|e| e == "yaml") {
                        files.push(target);
                    }
                }
            }
        }
        files.sort();
        (dir, files)
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Truncate(Index),
    DuplicateLine(Index),
    DeleteLine(Index),
    Nest(Index, usize, bool),
    Insert(Index, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        any::<Index>().prop_map(Mutation::DuplicateLine),
        any::<Index>().prop_map(Mutation::DeleteLine),
        (any::<Index>(), 1usize..400, any::<bool>()).prop_map(|(i, n, f)| Mutation::Nest(i, n, f)),
        (
            any::<Index>(),
            prop::sample::select(vec![
                ": ", "- ", "&a ", "*a", "<<: *a\n", "{{ ", " }}", "{% if %}", "\t", "\"", "'", "---\n",
                "!!str ", "? ", "#", "\n  ", "[", "]", "{", "}", ".nan", "1e999999", "~", "\u{feff}", "é",
                "\r\n",
            ])
            .prop_map(str::to_string)
        )
            .prop_map(|(i, s)| Mutation::Insert(i, s)),
    ]
}

fn line_bounds(text: &[u8], index: &Index) -> (usize, usize) {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1))
        .collect();
    let start = starts[index.index(starts.len())];
    let end = text[start..].iter().position(|b| *b == b'\n').map_or(text.len(), |p| start + p + 1);
    (start, end)
}

fn apply(text: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = text.to_vec();
    for mutation in mutations {
        if out.is_empty() {
            out.push(b'x');
        }
        match mutation {
            Mutation::Flip(i, byte) => {
                let at = i.index(out.len());
                out[at] = *byte;
            }
            Mutation::Truncate(i) => out.truncate(i.index(out.len())),
            Mutation::DuplicateLine(i) => {
                let (start, end) = line_bounds(&out, i);
                let line = out[start..end].to_vec();
                out.splice(end..end, line);
            }
            Mutation::DeleteLine(i) => {
                let (start, end) = line_bounds(&out, i);
                out.drain(start..end);
            }
            Mutation::Nest(i, depth, flow) => {
                let at = i.index(out.len() + 1);
                let nested = if *flow {
                    format!("{}x{}", "[".repeat(*depth), "]".repeat(*depth))
                } else {
                    (0..*depth).map(|d| format!("\n{}- ", "  ".repeat(d))).collect::<String>() + "x\n"
                };
                out.splice(at..at, nested.into_bytes());
            }
            Mutation::Insert(i, text) => {
                let at = i.index(out.len() + 1);
                out.splice(at..at, text.bytes());
            }
        }
    }
    out
}

fn assert_located(diagnostics: &[Diagnostic], what: &str) -> Result<(), TestCaseError> {
    for d in diagnostics {
        prop_assert!(d.line() >= 1 && d.column() >= 1, "{what}: no location: {d:?}");
        prop_assert!(!d.message.is_empty(), "{what}: empty message: {d:?}");
    }
    Ok(())
}

fn slowest() -> &'static std::sync::Mutex<Duration> {
    static SLOWEST: OnceLock<std::sync::Mutex<Duration>> = OnceLock::new();
    SLOWEST.get_or_init(|| std::sync::Mutex::new(Duration::ZERO))
}

fn note_duration(started: Instant, what: &str) {
    let took = started.elapsed();
    if let Ok(mut slowest) = slowest().lock()
        && took > *slowest
    {
        *slowest = took;
        println!("slowest case so far: {took:?} ({what})");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_shipped_files_never_panic_and_every_diagnostic_is_located(
        file in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let (_dir, files) = tree();
        let original = &files[file.index(files.len())];
        let text = std::fs::read(original).unwrap_or_default();
        let mutant = original.with_file_name(format!(
            "mutant-{}",
            original.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
        ));
        std::fs::write(&mutant, apply(&text, &mutations)).unwrap_or_else(|e| panic!("write: {e}"));
        let started = Instant::now();
        let mut loader = Loader::new();
        let _ = loader.load(&mutant);
        note_duration(started, &original.display().to_string());
        assert_located(&loader.diagnostics, &original.display().to_string())?;
        for diagnostic in &loader.diagnostics {
            let _ = diagnostics::render(diagnostic, &loader.sources, false);
        }
        let _ = diagnostics::to_json(&loader.diagnostics);
    }

    #[test]
    fn random_templates_over_random_values_never_panic(
        fragments in prop::collection::vec(template_fragment(), 0..12),
        value in json_value(),
    ) {
        let text: String = fragments.concat();
        let env = crate::template::environment();
        let context = minijinja::Value::from(minijinja::value::Serde(serde_json::json!({"x": value, "n": 3, "s": "é"})));
        let started = Instant::now();
        let _ = env.render_str(&text, context);
        let _ = crate::template::unknown_names(&env, &text);
        let _ = crate::template::template_variables(&env, &text);
        note_duration(started, &text);
        let mut loader = Loader::new();
        super::check_prompts::check_template_text(&mut loader, "t.md", &text, &BTreeSet::from(["x".to_string()]));
        assert_located(&loader.diagnostics, &text)?;
    }
}

fn template_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "{{ x }}",
            "{{ x | upper }}",
            "{{ x | length }}",
            "{{ x | tojson }}",
            "{{ x | fromjson }}",
            "{{ x | dig('a') }}",
            "{{ x | to_int }}",
            "{{ x | compact }}",
            "{{ x | one_line }}",
            "{{ x | regex_find('a+') }}",
            "{{ x | label_names }}",
            "{{ x is matching('.') }}",
            "{{ x[0] }}",
            "{{ x.a }}",
            "{{ x ~ x }}",
            "{{ x * n }}",
            "{{ x + 1 }}",
            "{{ n / 0 }}",
            "{{ n // 0 }}",
            "{{ -x }}",
            "{% for i in x %}{{ i }}{% endfor %}",
            "{% for i in range(n) %}",
            "{% endfor %}",
            "{% if x %}",
            "{% else %}",
            "{% endif %}",
            "{% set y = x %}",
            "{{ y }}",
            "{{ nope }}",
            "{{ x | nope }}",
            "{{ x is nope }}",
            "{{ now_utc() }}",
            "{{ range(10) | list }}",
            "{{ dict(a=x) }}",
            "{{ x | map('upper') | list }}",
            "{{ x | items | list }}",
            "{{ x | sort }}",
            "{{ x | join(',') }}",
            "{{ s | replace('é', x) }}",
            "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(x) }}",
            "{% include 'other.md' %}",
            "{{",
            "}}",
            "{%",
            "%}",
            "{##",
            "##}",
            "{{ x | default(",
            "'",
            "\"",
            "(",
            ")",
            "|",
            "\n",
        ])
        .prop_map(str::to_string),
        "[a-z{}%|()'\" ]{0,8}",
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[a-zé\\[\\]{}\"0-9 ]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
