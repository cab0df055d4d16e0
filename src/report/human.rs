//! The human view: the workflow's own `emit` output goes to stdout untouched; progress
//! goes to stderr: a header (workflow, file, `replay`, `dry run`), one aligned line per
//! top-level step (status, id, duration, short result; nested steps only with `-v`,
//! failures always), a live status line naming the running steps while stderr is a
//! terminal, and a final line with the outcome and counts:
//! `✓ ok · 14 steps · 1 handled failure · 230ms`. A run that exits non-zero is never
//! marked ✓. `-q` keeps only the final line. Colour only when enabled by the caller
//! (see `cmd::use_color`: terminal, NO_COLOR, CLICOLOR_FORCE, TERM=dumb).

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use anstyle::{AnsiColor, Style};
use serde_json::Value;

use crate::engine::events::{Event, RunStatus, Sink, StepStatus};

/// How much to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verbosity {
    /// Only emitted output and the final line.
    Quiet,
    /// One line per top-level step, plus failures and (in a dry run) planned writes
    /// at any depth.
    Normal,
    /// Every step at any depth, step starts, planned actions in full.
    Verbose,
}

/// Where the human view goes.
#[derive(Debug, Clone, Default)]
pub(crate) enum Target {
    /// The process's stdout and stderr.
    #[default]
    Std,
    /// Two buffers standing for stdout and stderr (`runner test`).
    Buffers(Arc<Mutex<String>>, Arc<Mutex<String>>),
}

/// Width of the step column: ids up to this long line up.
const STEP_COLUMN: usize = 24;

/// The human reporter.
#[derive(Debug)]
pub(crate) struct Human {
    color: bool,
    verbosity: Verbosity,
    target: Target,
    replay: Option<String>,
    state: Mutex<State>,
    live: Option<indicatif::ProgressBar>,
}

/// What the reporter has seen of the run so far.
#[derive(Debug, Default)]
struct State {
    dry_run: bool,
    /// Top-level steps running now, in start order.
    running: Vec<String>,
    /// Top-level steps that finished ok or failed.
    steps: usize,
    /// Top-level steps that failed.
    failed: usize,
    skipped: usize,
    planned: usize,
}

/// Whether a step path names a top-level step (`probes`, not `probes[0].probe`).
fn is_top_level(path: &str) -> bool {
    !path.contains(['.', '['])
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}

impl Human {
    /// A reporter writing to stdout and stderr. `live`: show a status line for
    /// running steps (only when stderr is a terminal).
    pub(crate) fn new(color: bool, verbosity: Verbosity) -> Self {
        Human {
            color,
            verbosity,
            target: Target::Std,
            replay: None,
            state: Mutex::new(State::default()),
            live: None,
        }
    }

    /// Mark the run as a replay of `recording` in the header.
    #[must_use]
    pub(crate) fn with_replay(mut self, recording: Option<String>) -> Self {
        self.replay = recording;
        self
    }

    /// Show a live status line naming the running top-level steps and their time,
    /// redrawn on stderr. Call only when stderr is a terminal; not in quiet mode.
    #[must_use]
    pub(crate) fn with_live_status(mut self, enabled: bool) -> Self {
        if !enabled || self.verbosity == Verbosity::Quiet || !matches!(self.target, Target::Std) {
            return self;
        }
        let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            bar.set_style(style);
        }
        self.live = Some(bar);
        self
    }

    /// A reporter writing into buffers, without colour.
    pub(crate) fn to_buffers(stdout: Arc<Mutex<String>>, stderr: Arc<Mutex<String>>) -> Self {
        Human {
            color: false,
            verbosity: Verbosity::Normal,
            target: Target::Buffers(stdout, stderr),
            replay: None,
            state: Mutex::new(State::default()),
            live: None,
        }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.color { format!("{style}{text}{style:#}") } else { text.to_string() }
    }

    fn green(&self, text: &str) -> String {
        self.paint(AnsiColor::Green.on_default(), text)
    }

    fn red(&self, text: &str) -> String {
        self.paint(AnsiColor::Red.on_default(), text)
    }

    fn yellow(&self, text: &str) -> String {
        self.paint(AnsiColor::Yellow.on_default(), text)
    }

    fn dim(&self, text: &str) -> String {
        self.paint(Style::new().dimmed(), text)
    }

    fn write(&self, to_stderr: bool, text: &str) {
        let print = || match &self.target {
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
        };
        match &self.live {
            // The live line is cleared, the text printed, the line redrawn below it.
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    fn progress(&self, line: &str) {
        self.write(true, &format!("{line}\n"));
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Redraw the live line after the running set changed.
    fn redraw(&self, running: &[String]) {
        let Some(bar) = &self.live else { return };
        // Between two top-level steps the line keeps its last text for an instant.
        let Some(message) = live_message(running) else { return };
        if bar.message().is_empty() {
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
        }
        bar.reset_elapsed();
        bar.set_message(message);
    }

    /// `✓ probe-all        1.2s  {"lanes": 3}` with the step column aligned.
    fn step_line(&self, glyph: &str, path: &str, duration_ms: u64, detail: &str) -> String {
        let indent = if is_top_level(path) { "" } else { "  " };
        let width = STEP_COLUMN.saturating_sub(indent.len());
        let time = format!("{:>6}", duration(duration_ms));
        let detail = if detail.is_empty() { String::new() } else { format!("  {detail}") };
        format!("{glyph} {indent}{path:<width$} {}{detail}", self.dim(&time))
    }

    /// The last line: outcome, counts, time; never ✓ for a non-zero exit.
    fn final_line(&self, status: RunStatus, exit_code: i32, duration_ms: u64, error: Option<&str>) -> String {
        let state = self.state();
        let mut parts: Vec<String> = Vec::new();
        let glyph = match (status, exit_code) {
            (RunStatus::Ok, 0) => {
                parts.push("ok".into());
                self.green("✓")
            }
            (RunStatus::Ok, code) => {
                parts.push(format!("exit {code}"));
                self.red("✗")
            }
            (RunStatus::Failed, code) => {
                parts.push(format!("failed (exit {code})"));
                self.red("✗")
            }
            (RunStatus::Cancelled, code) => {
                parts.push(format!("cancelled (exit {code})"));
                self.yellow("✗")
            }
            (RunStatus::Skipped, _) => {
                parts.push("skipped".into());
                self.yellow("-")
            }
        };
        if status != RunStatus::Skipped {
            parts.push(plural(state.steps, "step", "steps"));
            if status == RunStatus::Ok && state.failed > 0 {
                parts.push(plural(state.failed, "handled failure", "handled failures"));
            }
            if state.planned > 0 {
                parts.push(format!("{} planned", state.planned));
            }
            if state.skipped > 0 {
                parts.push(format!("{} skipped", state.skipped));
            }
            parts.push(duration(duration_ms));
        }
        let mut line = format!("{glyph} {}", parts.join(" · "));
        if let Some(error) = error.filter(|e| !e.is_empty()) {
            line.push_str(&format!(": {error}"));
        }
        line
    }
}

/// The live status line's text for the running top-level steps.
fn live_message(running: &[String]) -> Option<String> {
    match running {
        [] => None,
        [one] => Some(format!("running {one}")),
        [first, rest @ ..] => Some(format!("running {first} and {} more", rest.len())),
    }
}

/// A duration for people: `12ms`, `1.4s`, `2m03s`.
pub(crate) fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// One line describing a planned action.
pub(crate) fn describe_action(kind: &str, action: &Value) -> String {
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
            Event::RunStarted { workflow, file, dry_run } => {
                self.state().dry_run = *dry_run;
                if quiet {
                    return;
                }
                let mut header = format!(
                    "{} {workflow} {}",
                    self.paint(Style::new().bold(), "▶"),
                    self.dim(&format!("({file})"))
                );
                if let Some(recording) = &self.replay {
                    header.push_str(&format!(" · {}", self.yellow(&format!("replay of {recording}"))));
                }
                if *dry_run {
                    header.push_str(&format!(" · {}", self.yellow("dry run: writes are only reported")));
                }
                self.progress(&header);
            }
            Event::Lock { key, outcome } if !quiet => {
                self.progress(&format!("  lock `{key}`: {outcome}"));
            }
            Event::StepStarted { path, .. } => {
                if is_top_level(path) {
                    let running = {
                        let mut state = self.state();
                        state.running.push(path.clone());
                        state.running.clone()
                    };
                    self.redraw(&running);
                }
                if verbose {
                    self.progress(&format!("{} {path}", self.dim("…")));
                }
            }
            Event::StepRetry { path, attempt, delay_ms, error }
                if !quiet && (verbose || is_top_level(path)) =>
            {
                self.progress(&format!(
                    "{} {path} attempt {attempt} failed: {error}; retrying in {}",
                    self.yellow("↻"),
                    duration(*delay_ms)
                ));
            }
            Event::StepPlanned { path, kind, action, .. } => {
                let top = is_top_level(path);
                let dry_run = {
                    let mut state = self.state();
                    if top {
                        state.planned += 1;
                    }
                    state.dry_run
                };
                // Plan-mode calls inside a real run (the probe's preflight) are internals.
                if quiet || !(top || verbose || dry_run) {
                    return;
                }
                self.progress(&format!(
                    "{} {path} {}",
                    self.paint(AnsiColor::Cyan.on_default(), "~"),
                    describe_action(kind, action)
                ));
                if verbose {
                    let pretty = serde_json::to_string_pretty(action).unwrap_or_default();
                    for line in pretty.lines() {
                        self.progress(&format!("    {line}"));
                    }
                }
            }
            Event::StepFinished { path, kind, status, duration_ms, summary, error, .. } => {
                let top = is_top_level(path);
                if top {
                    let running = {
                        let mut state = self.state();
                        state.running.retain(|p| p != path);
                        match status {
                            StepStatus::Ok => state.steps += 1,
                            StepStatus::Failed => {
                                state.steps += 1;
                                state.failed += 1;
                            }
                            StepStatus::Skipped => state.skipped += 1,
                            StepStatus::Planned => {}
                        }
                        state.running.clone()
                    };
                    self.redraw(&running);
                }
                let failed = *status == StepStatus::Failed;
                let shown = match status {
                    StepStatus::Planned => false,
                    StepStatus::Skipped => verbose,
                    StepStatus::Failed => true,
                    StepStatus::Ok => top || verbose,
                };
                if quiet || !shown {
                    return;
                }
                let glyph = match status {
                    StepStatus::Ok => self.green("✓"),
                    StepStatus::Failed => self.red("✗"),
                    _ => self.dim("-"),
                };
                let detail = match error {
                    Some(error) if failed => error.clone(),
                    // An emit step's result is the text just printed above it.
                    _ if kind == "emit" => String::new(),
                    _ => summary.clone(),
                };
                self.progress(&self.step_line(&glyph, path, *duration_ms, &detail));
            }
            Event::RunFinished { status, exit_code, duration_ms, error, .. } => {
                if let Some(bar) = &self.live {
                    bar.finish_and_clear();
                }
                let line = self.final_line(*status, *exit_code, *duration_ms, error.as_deref());
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
    fn the_final_line_counts_and_never_marks_a_failure_ok() {
        let human = Human::new(false, Verbosity::Normal);
        {
            let mut state = human.state();
            state.steps = 14;
            state.failed = 1;
        }
        assert_eq!(
            human.final_line(RunStatus::Ok, 0, 230, None),
            "✓ ok · 14 steps · 1 handled failure · 230ms"
        );
        assert_eq!(
            human.final_line(RunStatus::Ok, 1, 1400, None),
            "✗ exit 1 · 14 steps · 1 handled failure · 1.4s"
        );
        assert_eq!(
            human.final_line(RunStatus::Failed, 1, 5, Some("step `x` failed")),
            "✗ failed (exit 1) · 14 steps · 5ms: step `x` failed"
        );
        assert_eq!(human.final_line(RunStatus::Skipped, 0, 5, Some("lock held")), "- skipped: lock held");
    }

    #[test]
    fn step_lines_line_up() {
        let human = Human::new(false, Verbosity::Normal);
        let a = human.step_line("✓", "heartbeat", 12, "200");
        let b = human.step_line("✓", "groom", 1450, "");
        assert_eq!(a, format!("✓ {:<24}   12ms  200", "heartbeat"));
        assert_eq!(a.find("ms"), b.find("1.4s").map(|i| i + 2));
        let nested = human.step_line("✗", "probes[0].probe", 3, "boom");
        assert!(nested.starts_with("✗   probes[0].probe"), "{nested}");
    }

    #[test]
    fn the_live_line_names_the_running_steps() {
        assert_eq!(live_message(&[]), None);
        assert_eq!(live_message(&["probes".into()]).as_deref(), Some("running probes"));
        assert_eq!(
            live_message(&["a".into(), "b".into(), "c".into()]).as_deref(),
            Some("running a and 2 more")
        );
    }

    #[test]
    fn colour_is_only_added_when_asked() {
        let plain = Human::new(false, Verbosity::Normal);
        assert_eq!(plain.green("✓"), "✓");
        let coloured = Human::new(true, Verbosity::Normal);
        assert_eq!(coloured.green("✓"), "\x1b[32m✓\x1b[0m");
    }

    #[test]
    fn planned_actions_are_one_line() {
        let action = serde_json::json!({"method": "POST", "url": "http://x/y", "body": {"a": 1}});
        assert_eq!(describe_action("http", &action), "would POST http://x/y {\"a\":1}");
        let action = serde_json::json!({"argv": ["echo", "a b", "$(x)"]});
        assert_eq!(describe_action("exec", &action), "would run echo 'a b' '$(x)'");
    }
}
