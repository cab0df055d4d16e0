//! `runner run --record FILE`: watch a real run's HTTP exchanges and commands and
//! write them as a test file (the fixture format of `runner test`), secrets masked and
//! auth headers dropped, so a real heartbeat becomes an offline test.

use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use indexmap::IndexMap;
use serde_json::Value as Json;

use super::fixtures::split_url;
use crate::engine::mask::{Masker, is_sensitive_header};
use crate::model::test_file::{
    CommandFixture, Expectations, Fixtures, HttpFixture, HttpMatch, HttpRespond, TestCase, TestFile, TestKind,
};
use crate::steps::exec::CommandOutput;
use crate::steps::hooks::{CommandAnswer, Hooks, HttpAnswer};
use crate::steps::http::Request;

/// Lets everything through to the world and remembers it.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    http: Mutex<Vec<HttpFixture>>,
    commands: Mutex<Vec<CommandFixture>>,
    requests: Mutex<Vec<String>>,
    argvs: Mutex<Vec<Vec<String>>>,
}

impl Hooks for Recorder {
    fn http(&self, _request: &Request) -> HttpAnswer {
        HttpAnswer::Network
    }

    fn http_observed(&self, request: &Request, status: u16, headers: &[(String, String)], body: &[u8]) {
        let (path, query) = split_url(&request.url);
        let method = request.method.as_str();
        let text = String::from_utf8_lossy(body).into_owned();
        // Keep JSON readable as YAML when that loses nothing; otherwise the exact text.
        let json = serde_json::from_str::<Json>(&text)
            .ok()
            .filter(|parsed| serde_json::to_string(parsed).is_ok_and(|compact| compact == text));
        let kept_headers: IndexMap<String, String> = headers
            .iter()
            .filter(|(name, _)| !is_sensitive_header(name))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        let fixture = HttpFixture {
            matcher: HttpMatch {
                method: Some(method.to_string()),
                path: path.clone(),
                query: query.into_iter().collect(),
                // Bodies often carry timestamps and ids that change on every run; the
                // order (`times: 1`) and the method, path and query identify requests.
                body: None,
            },
            respond: HttpRespond {
                status: Some(status),
                body: if json.is_none() && !text.is_empty() { Some(text) } else { None },
                json,
                headers: kept_headers,
                delay: None,
                fault: None,
            },
            times: Some(1),
        };
        if let Ok(mut all) = self.http.lock() {
            all.push(fixture);
        }
        if let Ok(mut all) = self.requests.lock() {
            all.push(format!("{method} {path}"));
        }
    }

    fn command(&self, _argv: &[String]) -> CommandAnswer {
        CommandAnswer::Run
    }

    /// Looks the program up for real and records the answer as a fixture naming it
    /// (`[program]`, `missing` when absent), which is how a replay answers `which()`.
    fn which(&self, program: &str) -> Option<bool> {
        let found =
            !crate::template::collections::which_in(program, std::env::var_os("PATH").as_deref()).is_none();
        if let Ok(mut all) = self.commands.lock()
            && !all.iter().any(|f| f.matcher.len() == 1 && f.matcher[0] == program)
        {
            all.push(CommandFixture {
                matcher: vec![program.to_string()],
                exit_code: 0,
                stdout: String::new(),
                stderr: String::new(),
                hang: false,
                missing: !found,
                times: Some(1),
            });
        }
        Some(found)
    }

    fn command_observed(&self, argv: &[String], output: &CommandOutput) {
        let fixture = CommandFixture {
            matcher: argv.to_vec(),
            exit_code: output.exit_code.unwrap_or(1),
            stdout: output.stdout.clone(),
            stderr: output.stderr.clone(),
            hang: output.timed_out,
            missing: false,
            times: Some(1),
        };
        if let Ok(mut all) = self.commands.lock() {
            all.push(fixture);
        }
        if let Ok(mut all) = self.argvs.lock() {
            all.push(argv.to_vec());
        }
    }
}

/// What is known about the run when writing the recording.
#[derive(Debug)]
pub(crate) struct RunFacts<'a> {
    /// The recording's path.
    pub file: &'a Path,
    /// The workflow's path.
    pub workflow: &'a Path,
    /// Inputs as typed values.
    pub inputs: IndexMap<String, Json>,
    /// Environment the workflow declared, by name, with the values it saw (secrets
    /// already replaced).
    pub env: IndexMap<String, String>,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// The exit code.
    pub exit_code: i32,
    /// The outputs.
    pub outputs: Json,
}

impl Recorder {
    /// The recording as a test file, every secret masked.
    pub(crate) fn to_test_file(&self, facts: RunFacts<'_>, masker: &Masker) -> Result<String, String> {
        let dir = facts.file.parent().unwrap_or(Path::new("."));
        let workflow = relative_to(dir, facts.workflow);
        let http = self.http.lock().map(|h| h.clone()).unwrap_or_default();
        let commands = self.commands.lock().map(|c| c.clone()).unwrap_or_default();
        let requests = self.requests.lock().map(|r| r.clone()).unwrap_or_default();
        let argvs = self.argvs.lock().map(|a| a.clone()).unwrap_or_default();
        let case = TestCase {
            name: format!("recorded run of {}", crate::report::timestamp(std::time::SystemTime::now())),
            inputs: facts.inputs,
            dry_run: facts.dry_run,
            fixtures: Fixtures { env: facts.env, http, commands },
            expect: Expectations {
                exit_code: Some(facts.exit_code),
                outputs: Some(facts.outputs),
                requests: Some(requests),
                commands: Some(argvs),
                // A real run's parallel steps may take turns in any order.
                any_order: true,
                ..Expectations::default()
            },
        };
        let file = TestFile {
            kind: TestKind::Test,
            workflow: workflow.display().to_string(),
            defaults: None,
            cases: vec![case],
        };
        // Mask the structure, then the text again: no secret survives in any form.
        let value = masker.value(&serde_json::to_value(&file).map_err(|e| e.to_string())?);
        let file: TestFile = serde_json::from_value(value).map_err(|e| e.to_string())?;
        let yaml = serde_saphyr::to_string(&file).map_err(|e| e.to_string())?;
        let schema = std::env::current_dir().unwrap_or_default().join("schemas/test.schema.json");
        let modeline = if schema.is_file() {
            format!("# yaml-language-server: $schema={}\n", relative_to(dir, &schema).display())
        } else {
            String::new()
        };
        Ok(format!(
            "{modeline}# Recorded by `runner run --record`: replay with `runner run {} --replay <this file>`,\n# or run it as a test with `runner test <this file>`. Secrets are masked as ***.\n{}",
            facts.workflow.display(),
            masker.text(&yaml)
        ))
    }
}

/// `to` relative to the directory `from` (both made absolute first).
pub(crate) fn relative_to(from: &Path, to: &Path) -> PathBuf {
    let absolute = |p: &Path| -> PathBuf {
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        crate::load::normalize(&joined)
    };
    let from = absolute(from);
    let to = absolute(to);
    let from_parts: Vec<Component<'_>> = from.components().collect();
    let to_parts: Vec<Component<'_>> = to.components().collect();
    let common = from_parts.iter().zip(&to_parts).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from_parts.len() {
        out.push("..");
    }
    for part in &to_parts[common..] {
        out.push(part.as_os_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_is_recorded_once_as_a_fixture() {
        let recorder = Recorder::default();
        assert_eq!(recorder.which("surely-not-a-program-xyz"), Some(false));
        assert_eq!(recorder.which("surely-not-a-program-xyz"), Some(false));
        let fixtures = recorder.commands.lock().map(|c| c.clone()).unwrap_or_default();
        assert_eq!(fixtures.len(), 1);
        assert_eq!(fixtures[0].matcher, ["surely-not-a-program-xyz"]);
        assert!(fixtures[0].missing);
        assert!(recorder.argvs.lock().map(|a| a.is_empty()).unwrap_or(false), "nothing was run");
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_to(Path::new("/a/b"), Path::new("/a/c/d.yaml")), PathBuf::from("../c/d.yaml"));
        assert_eq!(relative_to(Path::new("/a"), Path::new("/a/d.yaml")), PathBuf::from("d.yaml"));
    }
}
