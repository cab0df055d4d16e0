//! `runner test`: run *.test.yaml cases offline.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use crate::cli::TestArgs;
use crate::cmd::{Out, use_color};
use crate::exit;
use crate::load::{Loaded, Loader, display, normalize};
use crate::testing;

/// Run `runner test`.
pub fn run(args: &TestArgs, out: &mut Out) -> i32 {
    let mut paths: Vec<PathBuf> = args.paths.iter().map(|p| normalize(p)).collect();
    if paths.is_empty() {
        paths = ["workflows", "examples"].iter().map(PathBuf::from).filter(|p| p.is_dir()).collect();
    }
    let mut files = Vec::new();
    for path in &paths {
        if !path.exists() {
            out.err(&format!("runner: no such file or directory: {}\n", display(path)));
            return exit::NOINPUT;
        }
        files.extend(testing::test_files(path));
    }
    if files.is_empty() {
        out.err("runner: no *.test.yaml files found\n");
        return exit::NOINPUT;
    }
    let color = use_color(args.color, std::io::stdout().is_terminal());
    let paint =
        |code: &str, text: &str| if color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() };
    let mut loader = Loader::new();
    let mut loaded = Vec::new();
    for file in &files {
        match loader.load(file) {
            Ok(Some(Loaded::Test(tests))) => loaded.push((file.clone(), tests)),
            Ok(Some(other)) => loader.report_range(
                &display(file),
                crate::load::yaml::Range::default(),
                "kind",
                format!("expected a test file (`kind: test`), found a {} file", other.kind().name()),
                None,
            ),
            _ => {}
        }
    }
    if !loader.diagnostics.is_empty() {
        out.err(&super::render_problems(
            &mut loader,
            color,
            "no test ran (problems in the test files or their workflows)",
        ));
        return exit::DATAERR;
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    for (file, tests) in &loaded {
        let mut filtered = (**tests).clone();
        if let Some(filter) = &args.case {
            filtered.cases.retain(|c| c.name.contains(filter.as_str()));
            if filtered.cases.is_empty() {
                continue;
            }
        }
        let results = match testing::run_file(&mut loader, file, &filtered) {
            Ok(results) => results,
            Err(e) => {
                out.out(&format!("{} {}: {e}\n", paint("31", "FAIL"), display(file)));
                failed += filtered.cases.len();
                continue;
            }
        };
        for result in results {
            if result.failures.is_empty() {
                passed += 1;
                out.out(&format!("{} {} › {}\n", paint("32", "PASS"), display(file), result.name));
            } else {
                failed += 1;
                let mut text = format!("{} {} › {}\n", paint("31", "FAIL"), display(file), result.name);
                for failure in &result.failures {
                    for (index, line) in failure.lines().enumerate() {
                        let lead = if index == 0 { "  - " } else { "    " };
                        text.push_str(&format!("{lead}{line}\n"));
                    }
                }
                out.out(&text);
            }
        }
    }
    out.out(&format!("{passed} passed, {failed} failed\n"));
    if failed > 0 { exit::FAILURE } else { exit::OK }
}
