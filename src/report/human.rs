//! The human view: the workflow's own `emit` output goes to stdout untouched; progress
//! (one line per step: status, path, duration, short result) goes to stderr, with
//! colour only on a terminal. `-q` keeps only the final line.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::engine::events::{Event, RunStatus, Sink, StepStatus};

/// How much to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Only emitted output and the final line.
    Quiet,
    /// One line per step.
    Normal,
    /// Also retries in detail, planned actions in full, step starts.
    Verbose,
}

/// Where the human view goes.
#[derive(Debug, Clone, Default)]
pub enum Target {
    /// The process's stdout and stderr.
    #[default]
    Std,
    /// Two buffers standing for stdout and stderr (`runner test`).
    Buffers(Arc<Mutex<String>>, Arc<Mutex<String>>),
}

/// The human reporter.
#[derive(Debug)]
pub struct Human {
    color: bool,
    verbosity: Verbosity,
    target: Target,
    lock: Mutex<()>,
}

impl Human {
    /// A reporter writing to stdout and stderr.
    pub fn new(color: bool, verbosity: Verbosity) -> Self {
        Human { color, verbosity, target: Target::Std, lock: Mutex::new(()) }
    }

    /// A reporter writing into buffers, without colour.
    pub fn to_buffers(stdout: Arc<Mutex<String>>, stderr: Arc<Mutex<String>>) -> Self {
        Human {
            color: false,
            verbosity: Verbosity::Normal,
            target: Target::Buffers(stdout, stderr),
            lock: Mutex::new(()),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    fn write(&self, to_stderr: bool, text: &str) {
        let _guard = self.lock.lock();
        match &self.target {
            Target::Std if to_stderr => {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
            Target::Std => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
            Target::Buffers(out, err) => {
                if let Ok(mut buffer) = if to_stderr { err.lock() } else { out.lock() } {
                    buffer.push_str(text);
                }
            }
        }
    }

    fn progress(&self, line: &str) {
        self.write(true, &format!("{line}\n"));
    }
}

/// A duration for people: `12ms`, `1.4s`, `2m03s`.
pub fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// One line describing a planned action.
pub fn describe_action(kind: &str, action: &Value) -> String {
    match kind {
        "http" => {
            let method = action.get("method").and_then(Value::as_str).unwrap_or("?");
            let url = action.get("url").and_then(Value::as_str).unwrap_or("?");
            match action.get("body") {
                Some(body) if !body.is_null() => format!("would {method} {url} {body}"),
                _ => format!("would {method} {url}"),
            }
        }
        "exec" | "cron" => {
            let key = if kind == "exec" { "argv" } else { "command" };
            let argv: Vec<String> = action
                .get(key)
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|v| v.as_str().map(shell_word).unwrap_or_default()).collect())
                .unwrap_or_default();
            format!("would run {}", argv.join(" "))
        }
        _ => format!("would {}", action),
    }
}

/// Quote a word for display only (nothing is ever run through a shell).
fn shell_word(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

impl Sink for Human {
    fn event(&self, event: &Event) {
        let quiet = self.verbosity == Verbosity::Quiet;
        let verbose = self.verbosity == Verbosity::Verbose;
        match event {
            Event::Emit { stream, text } => {
                let newline = if text.ends_with('\n') { "" } else { "\n" };
                self.write(stream == "stderr", &format!("{text}{newline}"));
            }
            Event::RunStarted { workflow, file, dry_run } if !quiet => {
                let mode = if *dry_run { " (dry run: writes are only reported)" } else { "" };
                self.progress(&format!("{} {workflow} ({file}){mode}", self.paint("1", "▶")));
            }
            Event::Lock { key, outcome } if !quiet => {
                self.progress(&format!("  lock `{key}`: {outcome}"));
            }
            Event::StepStarted { path, .. } if verbose => {
                self.progress(&format!("  {} {path}", self.paint("2", "…")));
            }
            Event::StepRetry { path, attempt, delay_ms, error } if !quiet => {
                self.progress(&format!(
                    "{} {path} attempt {attempt} failed: {error}; retrying in {}",
                    self.paint("33", "↻"),
                    duration(*delay_ms)
                ));
            }
            Event::StepPlanned { path, kind, action, .. } if !quiet => {
                self.progress(&format!("{} {path} {}", self.paint("36", "~"), describe_action(kind, action)));
                if verbose {
                    let pretty = serde_json::to_string_pretty(action).unwrap_or_default();
                    for line in pretty.lines() {
                        self.progress(&format!("    {line}"));
                    }
                }
            }
            Event::StepFinished { path, status, duration_ms, summary, .. } if !quiet => {
                let (glyph, color) = match status {
                    StepStatus::Ok => ("✓", "32"),
                    StepStatus::Failed => ("✗", "31"),
                    StepStatus::Skipped => ("-", "2"),
                    StepStatus::Planned => return,
                };
                if *status == StepStatus::Skipped && !verbose {
                    return;
                }
                let detail = if summary.is_empty() { String::new() } else { format!("  {summary}") };
                self.progress(&format!(
                    "{} {path}  {}{detail}",
                    self.paint(color, glyph),
                    self.paint("2", &duration(*duration_ms))
                ));
            }
            Event::RunFinished { status, exit_code, duration_ms, error, .. } => {
                let line = match status {
                    RunStatus::Ok => format!("{} ok in {}", self.paint("32", "✓"), duration(*duration_ms)),
                    RunStatus::Skipped => {
                        format!("{} {}", self.paint("33", "-"), error.clone().unwrap_or_default())
                    }
                    RunStatus::Cancelled => format!(
                        "{} cancelled after {} (exit {exit_code})",
                        self.paint("33", "✗"),
                        duration(*duration_ms)
                    ),
                    RunStatus::Failed => format!(
                        "{} failed after {} (exit {exit_code}): {}",
                        self.paint("31", "✗"),
                        duration(*duration_ms),
                        error.clone().unwrap_or_default()
                    ),
                };
                let line = if *status == RunStatus::Ok && *exit_code != 0 {
                    format!("{line} (exit {exit_code})")
                } else {
                    line
                };
                self.progress(&line);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(12), "12ms");
        assert_eq!(duration(1450), "1.4s");
        assert_eq!(duration(123_000), "2m03s");
    }

    #[test]
    fn planned_actions_are_one_line() {
        let action = serde_json::json!({"method": "POST", "url": "http://x/y", "body": {"a": 1}});
        assert_eq!(describe_action("http", &action), "would POST http://x/y {\"a\":1}");
        let action = serde_json::json!({"argv": ["echo", "a b", "$(x)"]});
        assert_eq!(describe_action("exec", &action), "would run echo 'a b' '$(x)'");
    }
}
