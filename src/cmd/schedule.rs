//! `runner schedule [FILE]`: validate the schedule, then print the next fire times
//! (`--next`) or run the scheduler in the foreground.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::cli::{OutputFormat, ScheduleArgs};
use crate::cmd::Out;
use crate::engine::lock::default_state_dir;
use crate::error::Error;
use crate::load::{Loaded, Loader, ReadError};
use crate::model::Schedule;
use crate::schedule::service::{self, Config, Service};

/// Run `runner schedule`.
pub(crate) fn run(args: &ScheduleArgs, out: &mut Out) -> Result<(), Error> {
    let stop_timeout = match crate::model::duration::parse_duration(&args.stop_timeout) {
        Ok(d) => d.get(),
        Err(e) => {
            return Err(Error::Usage(format!("--stop-timeout: {e}")));
        }
    };
    let (schedule, workflow_names) = load(&args.file, args)?;
    if let Some(count) = args.next {
        let from = match args.from.as_deref() {
            None => Utc::now(),
            Some(text) => match DateTime::parse_from_rfc3339(text) {
                Ok(t) => t.with_timezone(&Utc),
                Err(e) => {
                    return Err(Error::Usage(format!(
                        "--from `{text}`: {e}; expected a time like 2026-10-25T00:00:00Z"
                    )));
                }
            },
        };
        return next(&schedule, &args.file, count, from, args.output, out);
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            return Err(Error::Internal(format!("cannot find the runner executable: {e}")));
        }
    };
    let config = Config {
        file: args.file.clone(),
        state_dir: args.state_dir.clone().unwrap_or_else(default_state_dir),
        json: args.output == OutputFormat::Json,
        stop_timeout,
        exe,
        workflow_names,
    };
    let service = match Service::new(&schedule, config) {
        Ok(service) => service,
        Err(message) => {
            return Err(Error::Invalid(message));
        }
    };
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => Error::status(runtime.block_on(service.run())),
        Err(e) => Err(Error::Internal(format!("cannot start the runtime: {e}"))),
    }
}

/// Load and fully validate the schedule (and the workflows it names); also each
/// entry's workflow name.
fn load(file: &Path, args: &ScheduleArgs) -> Result<(Schedule, Vec<String>), Error> {
    let mut loader = Loader::new();
    match loader.load(file) {
        Ok(Some(Loaded::Schedule(schedule))) => {
            let names = schedule
                .entries
                .iter()
                .map(|entry| match loader.load(&crate::load::sibling(file, &entry.workflow)) {
                    Ok(Some(Loaded::Workflow(workflow))) => workflow.name.clone(),
                    _ => String::new(),
                })
                .collect();
            Ok(((*schedule).clone(), names))
        }
        Ok(Some(other)) => Err(Error::Invalid(format!(
            "{} is a {} file; expected a schedule (`kind: schedule`)",
            file.display(),
            other.kind().name()
        ))),
        Ok(None) | Err(ReadError::Reported) => Err(Error::problems(super::render_problems(
            &mut loader,
            super::stderr_color(args.color),
            "nothing was scheduled",
        ))),
        Err(ReadError::Missing) => Err(Error::NoInput(format!("no such schedule: {}", file.display()))),
    }
}

/// Print the next `count` fire times of every entry, from `from`.
fn next(
    schedule: &Schedule,
    file: &Path,
    count: usize,
    from: DateTime<Utc>,
    output: OutputFormat,
    out: &mut Out,
) -> Result<(), Error> {
    let plans = match service::plans(schedule) {
        Ok(plans) => plans,
        Err(message) => {
            return Err(Error::Invalid(message));
        }
    };
    let mut listing = Vec::new();
    for (entry, plan) in schedule.entries.iter().zip(&plans) {
        let mut times = Vec::new();
        let mut t = from;
        for _ in 0..count {
            let Some(next) = plan.spec.next_after(t) else { break };
            times.push(next);
            t = next;
        }
        listing.push((entry, plan, times));
    }
    match output {
        OutputFormat::Json => {
            let value: Vec<_> = listing
                .iter()
                .map(|(entry, plan, times)| {
                    json!({
                        "entry": entry.id,
                        "workflow": crate::load::sibling(file, &entry.workflow).display().to_string(),
                        "cron": entry.cron,
                        "time_zone": plan.spec.zone().name(),
                        "next": times.iter().map(|t| t.with_timezone(&plan.spec.zone()).to_rfc3339()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            out.out(&format!("{}\n", serde_json::Value::Array(value)));
        }
        OutputFormat::Human => {
            let mut text = String::new();
            for (entry, plan, times) in &listing {
                text.push_str(&format!(
                    "{}  {} ({})  {}\n",
                    entry.id,
                    entry.cron,
                    plan.spec.zone().name(),
                    crate::load::sibling(file, &entry.workflow).display()
                ));
                for t in times {
                    let local = t.with_timezone(&plan.spec.zone());
                    text.push_str(&format!(
                        "  {}  ({})\n",
                        local.format("%Y-%m-%d %H:%M:%S %:z %a"),
                        t.format("%H:%M:%SZ")
                    ));
                }
            }
            out.out(&text);
        }
    }
    Ok(())
}
