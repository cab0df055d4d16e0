//! `runner show RUN`: one stored run as a tree of steps, as JSON, or as an HTML page.

use crate::cli::{OutputFormat, ShowArgs};
use crate::cmd::Out;
use crate::engine::lock::default_state_dir;
use crate::error::Error;
use crate::history;
use crate::report::human::duration;
use crate::report::run_report::RunReport;

/// Run `runner show`.
pub(crate) fn run(args: &ShowArgs, out: &mut Out) -> Result<(), Error> {
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    let path = match history::find(&state_dir, &args.run) {
        Ok(path) => path,
        Err(message) => {
            return Err(Error::NoInput(message));
        }
    };
    let report = match history::read(&path) {
        Ok(report) => report,
        Err(message) => {
            return Err(Error::Invalid(message));
        }
    };
    if let Some(file) = &args.html {
        let page = history::html::page(&report);
        return match crate::fsutil::write_atomic(file, page.as_bytes()) {
            Ok(()) => {
                out.err(&format!("wrote {}\n", file.display()));
                Ok(())
            }
            Err(e) => Err(Error::Internal(format!("cannot write {}: {e}", file.display()))),
        };
    }
    match args.output {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
            text.push('\n');
            out.out(&text);
        }
        OutputFormat::Human => out.out(&tree(&report)),
    }
    Ok(())
}

// Shared with the HTML timeline, so they live with the run report.
pub(crate) use crate::report::run_report::{by_start, depth};

/// The run as text: a header, the inputs, then one line per step (start offset,
/// duration, status, the step nested under its parent), errors and plans below.
pub(crate) fn tree(report: &RunReport) -> String {
    let status = report.status.map_or("unknown", |s| s.name());
    let mut text = format!("{} ({})\n", report.workflow, report.file);
    if !report.run_id.is_empty() {
        text.push_str(&format!("  run      {}\n", report.run_id));
    }
    text.push_str(&format!(
        "  status   {status}, exit {}{}\n",
        report.exit_code.map_or("?".to_string(), |c| c.to_string()),
        if report.dry_run { ", dry run" } else { "" }
    ));
    text.push_str(&format!("  started  {} ({})\n", report.started_at, duration(report.duration_ms)));
    if !report.runner_version.is_empty() {
        text.push_str(&format!("  runner   {}\n", report.runner_version));
    }
    for (key, value) in &report.inputs {
        text.push_str(&format!("  input    {key} = {}\n", compact(value)));
    }
    if let Some(lock) = &report.lock {
        text.push_str(&format!("  lock     {} ({})\n", lock.key, lock.outcome));
    }
    if let Some(error) = &report.error {
        text.push_str(&format!("  error    {error}\n"));
    }
    text.push_str(&format!("steps ({}):\n", report.steps.len()));
    for step in by_start(report) {
        let indent = "  ".repeat(depth(&step.path));
        let mark = match step.status {
            crate::engine::events::StepStatus::Ok => "ok",
            crate::engine::events::StepStatus::Failed => "FAILED",
            crate::engine::events::StepStatus::Skipped => "skipped",
            crate::engine::events::StepStatus::Planned => "planned",
        };
        let mut line = format!(
            "  +{:<8} {:>8}  {mark:<7}  {indent}{} [{}]",
            duration(step.start_ms),
            duration(step.duration_ms),
            step.path,
            step.kind
        );
        if !step.summary.is_empty() {
            line.push_str(&format!("  {}", step.summary));
        }
        text.push_str(&line);
        text.push('\n');
        let pad = format!("{:32}{indent}", "");
        for retry in &step.retries {
            text.push_str(&format!("{pad}retry after attempt {}: {}\n", retry.attempt, retry.error));
        }
        if let Some(error) = &step.error {
            text.push_str(&format!("{pad}error: {error}\n"));
        }
        if let Some(planned) = &step.planned {
            text.push_str(&format!("{pad}would: {}\n", compact(planned)));
        }
    }
    if !report.outputs.is_null() {
        text.push_str(&format!("outputs: {}\n", compact(&report.outputs)));
    }
    text
}

fn compact(value: &serde_json::Value) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    if text.chars().count() > 200 {
        format!("{}…", text.chars().take(200).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_nest_outside_brackets_only() {
        assert_eq!(depth("probe"), 0);
        assert_eq!(depth("probe[2].queue"), 1);
        assert_eq!(depth("a.b[x.y].c"), 2);
    }
}
