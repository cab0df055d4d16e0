//! `runner show RUN --html FILE`: one self-contained page (inline CSS, no scripts, no
//! external assets) with the run's timeline: a bar per step placed at its start and
//! as wide as its duration, nested under its parent; steps that ran at the same time
//! have bars side by side on the time axis; failures are red and marked.

use std::fmt::Write as _;

use serde_json::Value;

use crate::engine::events::StepStatus;
use crate::report::human::duration;
use crate::report::run_report::RunReport;
use crate::report::run_report::{by_start, depth};

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em;margin:0 0 .3em}table.meta td{padding:1px 12px 1px 0;vertical-align:top}\
.timeline{margin:1em 0;border-top:1px solid #ccc}.row{display:flex;align-items:center;\
border-bottom:1px solid #eee;min-height:22px}.label{width:28%;white-space:nowrap;overflow:hidden;\
text-overflow:ellipsis;font-family:monospace;font-size:12px}.track{position:relative;flex:1;height:18px;\
background:repeating-linear-gradient(90deg,#fafafa 0,#fafafa 10%,#f0f0f0 10%,#f0f0f0 10.1%)}\
.bar{position:absolute;top:3px;height:12px;min-width:2px;border-radius:2px;background:#4a8}\
.bar.failed{background:#d33}.bar.skipped{background:#bbb}.bar.planned{background:#e9b949}\
.row.failed .label{color:#c00;font-weight:bold}.time{width:12%;text-align:right;font-size:12px;\
color:#666;padding-right:6px}pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:12px}\
.error{color:#c00;font-size:12px;font-family:monospace;padding-left:30%}.legend span{display:inline-block;\
width:10px;height:10px;margin:0 4px 0 12px;border-radius:2px}";

/// Escape text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn pretty(value: &Value) -> String {
    escape(&serde_json::to_string_pretty(value).unwrap_or_default())
}

/// The page.
pub(crate) fn page(report: &RunReport) -> String {
    let status = report.status.map_or("unknown", |s| s.name());
    // The axis spans the run, or the last step end if the run's own time is missing.
    let span = report
        .steps
        .iter()
        .map(|s| s.start_ms.saturating_add(s.duration_ms))
        .chain([report.duration_ms])
        .max()
        .unwrap_or(0)
        .max(1);
    let pct = |ms: u64| (ms as f64 / span as f64 * 100.0).min(100.0);
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>{} run {}</title><style>{STYLE}</style></head><body>\n",
        escape(&report.workflow),
        escape(&report.run_id)
    );
    let _ = write!(
        html,
        "<h1>{} <small>({})</small></h1>\n<table class=\"meta\">\
<tr><td>run</td><td>{}</td></tr><tr><td>status</td><td id=\"status\">{status}, exit {}{}</td></tr>\
<tr><td>started</td><td>{}</td></tr><tr><td>duration</td><td>{}</td></tr>\
<tr><td>runner</td><td>{}</td></tr></table>\n",
        escape(&report.workflow),
        escape(&report.file),
        escape(&report.run_id),
        report.exit_code.map_or("?".to_string(), |c| c.to_string()),
        if report.dry_run { ", dry run" } else { "" },
        escape(&report.started_at),
        duration(report.duration_ms),
        escape(&report.runner_version)
    );
    if let Some(error) = &report.error {
        let _ = writeln!(html, "<p class=\"error\" style=\"padding:0\">✗ {}</p>", escape(error));
    }
    let _ = write!(
        html,
        "<h2>Timeline</h2><div class=\"legend\">0 → {}<span style=\"background:#4a8\"></span>ok\
<span style=\"background:#d33\"></span>failed<span style=\"background:#bbb\"></span>skipped\
<span style=\"background:#e9b949\"></span>planned — bars that overlap ran at the same time</div>\n\
<div class=\"timeline\">\n",
        duration(span)
    );
    for step in by_start(report) {
        let class = step.status.name();
        let left = pct(step.start_ms);
        let width = pct(step.duration_ms).min(100.0 - left);
        let mark = if step.status == StepStatus::Failed { "✗ " } else { "" };
        let tip = format!(
            "{} [{}] {} +{} for {}{}",
            step.path,
            step.kind,
            class,
            duration(step.start_ms),
            duration(step.duration_ms),
            if step.summary.is_empty() { String::new() } else { format!(": {}", step.summary) }
        );
        let _ = writeln!(
            html,
            "<div class=\"row {class}\"><div class=\"label\" style=\"padding-left:{}px\" title=\"{}\">{mark}{}</div>\
<div class=\"time\">{}</div><div class=\"track\"><div class=\"bar {class}\" data-step=\"{}\" \
style=\"left:{left:.3}%;width:{width:.3}%\" title=\"{}\"></div></div></div>",
            depth(&step.path) * 14,
            escape(&step.path),
            escape(&step.path),
            duration(step.duration_ms),
            escape(&step.path),
            escape(&tip)
        );
        if let Some(error) = &step.error {
            let _ = writeln!(html, "<div class=\"error\">{}</div>", escape(error));
        }
        if let Some(planned) = &step.planned {
            let _ = writeln!(html, "<pre style=\"margin-left:30%\">{}</pre>", pretty(planned));
        }
    }
    html.push_str("</div>\n");
    let _ = writeln!(
        html,
        "<h2>Inputs</h2><pre id=\"inputs\">{}</pre>",
        pretty(&Value::Object(report.inputs.clone()))
    );
    let _ = writeln!(html, "<h2>Outputs</h2><pre id=\"outputs\">{}</pre>", pretty(&report.outputs));
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::run_report::StepRecord;

    fn step(path: &str, status: StepStatus, start_ms: u64, duration_ms: u64) -> StepRecord {
        StepRecord {
            path: path.into(),
            name: path.into(),
            kind: "exec".into(),
            status,
            started_at: String::new(),
            start_ms,
            duration_ms,
            attempts: 1,
            summary: "<b>".into(),
            error: (status == StepStatus::Failed).then(|| "boom <script>".to_string()),
            planned: None,
            retries: Vec::new(),
        }
    }

    #[test]
    fn every_step_gets_a_bar_and_text_is_escaped() {
        let report = RunReport {
            workflow: "w<x>".into(),
            duration_ms: 1000,
            steps: vec![
                step("a", StepStatus::Ok, 0, 500),
                step("fan[0].x", StepStatus::Ok, 500, 400),
                step("fan[1].x", StepStatus::Failed, 500, 300),
                step("fan", StepStatus::Failed, 500, 500),
            ],
            ..RunReport::default()
        };
        let page = page(&report);
        assert_eq!(page.matches("class=\"bar ").count(), 4);
        assert!(page.contains("data-step=\"fan[1].x\" style=\"left:50.000%;width:30.000%\""), "{page}");
        assert!(!page.contains("<script>") && page.contains("boom &lt;script&gt;"));
        assert!(!page.contains("http://") && !page.contains("https://"), "no external assets");
    }
}
