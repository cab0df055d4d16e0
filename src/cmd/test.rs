//! `runner test`: run *.test.yaml cases offline.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use std::time::Instant;

use crate::cli::{OutputFormat, TestArgs};
use crate::cmd::{Out, use_color};
use crate::error::Error;
use crate::exit;
use crate::load::{Loaded, Loader, display, normalize};
use crate::testing;

/// Run `runner test`.
pub(crate) fn run(args: &TestArgs, out: &mut Out) -> Result<(), Error> {
    let mut paths: Vec<PathBuf> = args.paths.iter().map(|p| normalize(p)).collect();
    if paths.is_empty() {
        paths = ["workflows", "examples"].iter().map(PathBuf::from).filter(|p| p.is_dir()).collect();
    }
    let mut files = Vec::new();
    for path in &paths {
        if !path.exists() {
            return Err(Error::NoInput(format!("no such file or directory: {}", display(path))));
        }
        files.extend(testing::test_files(path));
    }
    if files.is_empty() {
        return Err(Error::NoInput("no *.test.yaml files found".into()));
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
        return Err(Error::problems(super::render_problems(
            &mut loader,
            color,
            "no test ran (problems in the test files or their workflows)",
        )));
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    let json = args.output == OutputFormat::Json;
    let mut suites: Vec<Suite> = Vec::new();
    for (file, tests) in &loaded {
        let mut filtered = (**tests).clone();
        if let Some(filter) = &args.case {
            filtered.cases.retain(|c| c.name.contains(filter.as_str()));
            if filtered.cases.is_empty() {
                continue;
            }
        }
        let started = Instant::now();
        let outcome = testing::run_file(&mut loader, file, &filtered);
        let mut suite =
            Suite { file: display(file), seconds: started.elapsed().as_secs_f64(), cases: Vec::new() };
        let results = match outcome {
            Ok(results) => results,
            Err(e) => {
                if !json {
                    out.out(&format!("{} {}: {e}\n", paint("31", "FAIL"), display(file)));
                }
                failed += filtered.cases.len();
                suite.cases = filtered
                    .cases
                    .iter()
                    .map(|c| testing::CaseResult { name: c.name.clone(), failures: vec![e.to_string()] })
                    .collect();
                suites.push(suite);
                continue;
            }
        };
        for result in results {
            if result.failures.is_empty() {
                passed += 1;
                if !json {
                    out.out(&format!("{} {} › {}\n", paint("32", "PASS"), display(file), result.name));
                }
            } else {
                failed += 1;
                let mut text = format!("{} {} › {}\n", paint("31", "FAIL"), display(file), result.name);
                for failure in &result.failures {
                    for (index, line) in failure.lines().enumerate() {
                        let lead = if index == 0 { "  - " } else { "    " };
                        text.push_str(&format!("{lead}{line}\n"));
                    }
                }
                if !json {
                    out.out(&text);
                }
            }
            suite.cases.push(result);
        }
        suites.push(suite);
    }
    if let Some(path) = &args.junit
        && let Err(e) = crate::fsutil::write_atomic(path, junit(&suites).as_bytes())
    {
        return Err(Error::Internal(format!("cannot write {}: {e}", path.display())));
    }
    if json {
        out.out(&format!("{}\n", to_json(&suites, passed, failed)));
    } else {
        out.out(&format!("{passed} passed, {failed} failed\n"));
    }
    Error::status(if failed > 0 { exit::FAILURE } else { exit::OK })
}

/// One test file's results.
#[derive(Debug)]
struct Suite {
    file: String,
    seconds: f64,
    cases: Vec<testing::CaseResult>,
}

/// `{"passed": N, "failed": N, "cases": [{"file", "case", "passed", "failures"}]}`.
fn to_json(suites: &[Suite], passed: usize, failed: usize) -> String {
    let cases: Vec<serde_json::Value> = suites
        .iter()
        .flat_map(|suite| {
            suite.cases.iter().map(|case| {
                serde_json::json!({
                    "file": suite.file,
                    "case": case.name,
                    "passed": case.failures.is_empty(),
                    "failures": case.failures,
                })
            })
        })
        .collect();
    let value = serde_json::json!({"passed": passed, "failed": failed, "cases": cases});
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// JUnit XML as CI systems read it: one `<testsuite>` per test file, one `<testcase>`
/// per case, a `<failure>` with every mismatch of a failed case.
fn junit(suites: &[Suite]) -> String {
    let total: usize = suites.iter().map(|s| s.cases.len()).sum();
    let failures: usize =
        suites.iter().map(|s| s.cases.iter().filter(|c| !c.failures.is_empty()).count()).sum();
    let seconds: f64 = suites.iter().map(|s| s.seconds).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<testsuites name=\"runner test\" tests=\"{total}\" failures=\"{failures}\" errors=\"0\" time=\"{seconds:.3}\">\n"
    ));
    for suite in suites {
        let failed = suite.cases.iter().filter(|c| !c.failures.is_empty()).count();
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" time=\"{:.3}\">\n",
            xml_escape(&suite.file),
            suite.cases.len(),
            suite.seconds
        ));
        for case in &suite.cases {
            let opening = format!(
                "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\"",
                xml_escape(&case.name),
                xml_escape(&suite.file),
                xml_escape(&suite.file)
            );
            if case.failures.is_empty() {
                xml.push_str(&format!("{opening}/>\n"));
            } else {
                let first = case.failures.first().and_then(|f| f.lines().next()).unwrap_or_default();
                xml.push_str(&format!(
                    "{opening}>\n      <failure message=\"{}\" type=\"mismatch\">{}</failure>\n    </testcase>\n",
                    xml_escape(first),
                    xml_escape(&case.failures.join("\n"))
                ));
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// Text for an XML attribute or element: markup escaped, characters XML 1.0 cannot
/// hold at all (most control characters) replaced by U+FFFD.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_is_escaped_and_counts_failures() {
        let suites = vec![Suite {
            file: "wf.test.yaml".into(),
            seconds: 0.5,
            cases: vec![
                testing::CaseResult { name: "a <b> & \"c\"".into(), failures: vec![] },
                testing::CaseResult { name: "d".into(), failures: vec!["exit 1, expected 0\u{1}".into()] },
            ],
        }];
        let xml = junit(&suites);
        assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
        assert!(xml.contains("name=\"a &lt;b&gt; &amp; &quot;c&quot;\""), "{xml}");
        assert!(xml.contains("<failure message=\"exit 1, expected 0\u{FFFD}\""), "{xml}");
        let json: serde_json::Value = serde_json::from_str(&to_json(&suites, 1, 1)).unwrap_or_default();
        assert_eq!(json["cases"][1]["passed"], false);
    }
}
