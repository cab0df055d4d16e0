//! `runner runs`: list the run history, newest first, from file names only.

use std::time::SystemTime;

use crate::cli::{OutputFormat, RunsArgs};
use crate::cmd::Out;
use crate::engine::lock::default_state_dir;
use crate::error::Error;
use crate::history::{self, Entry};
use crate::report::human::duration;

const STATUSES: [&str; 4] = ["ok", "failed", "cancelled", "skipped"];

/// Run `runner runs`.
pub(crate) fn run(args: &RunsArgs, out: &mut Out) -> Result<(), Error> {
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    if let Some(status) = &args.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(Error::Usage(format!(
            "unknown status `{status}`; expected one of {}",
            crate::diagnostics::one_of(&STATUSES)
        )));
    }
    let since = match args.since.as_deref().map(|s| since_id(s, SystemTime::now())) {
        None => None,
        Some(Ok(cutoff)) => Some(cutoff),
        Some(Err(message)) => {
            return Err(Error::Usage(format!("--since: {message}")));
        }
    };
    let dir = history::dir(&state_dir);
    let all = history::list(&dir);
    let total = all.len();
    let workflow = args.workflow.as_deref().map(history::file_safe);
    let shown: Vec<Entry> = all
        .into_iter()
        .filter(|e| workflow.as_ref().is_none_or(|w| &e.workflow == w))
        .filter(|e| args.status.as_ref().is_none_or(|s| &e.status == s))
        .filter(|e| since.as_ref().is_none_or(|cutoff| e.id.as_str() >= cutoff.as_str()))
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    match args.output {
        OutputFormat::Json => {
            let mut text = serde_json::to_string(&shown).unwrap_or_else(|_| "[]".into());
            text.push('\n');
            out.out(&text);
        }
        OutputFormat::Human => out.out(&table(&shown, total, &dir.display().to_string())),
    }
    Ok(())
}

/// The human table.
pub(crate) fn table(entries: &[Entry], total: usize, dir: &str) -> String {
    if entries.is_empty() {
        return if total == 0 {
            format!("no runs in {dir}\n")
        } else {
            format!("no runs match ({total} in {dir})\n")
        };
    }
    let width = entries.iter().map(|e| e.workflow.len()).max().unwrap_or(8).max(8);
    let mut text = format!(
        "{:<29}  {:<24}  {:<width$}  {:<9}  {:>4}  {:>8}\n",
        "RUN", "STARTED", "WORKFLOW", "STATUS", "EXIT", "DURATION"
    );
    for e in entries {
        text.push_str(&format!(
            "{:<29}  {:<24}  {:<width$}  {:<9}  {:>4}  {:>8}\n",
            e.id,
            e.started_at,
            e.workflow,
            e.status,
            e.exit_code,
            duration(e.duration_ms)
        ));
    }
    let noun = if entries.len() == 1 { "run" } else { "runs" };
    text.push_str(&format!("{} {noun} shown ({total} in {dir})\n", entries.len()));
    text
}

/// The smallest run id started at or after `since` (a duration ago or an RFC 3339 time),
/// so filtering is a text comparison of ids.
fn since_id(since: &str, now: SystemTime) -> Result<String, String> {
    if let Ok(ago) = crate::model::duration::parse_duration(since) {
        let at = now.checked_sub(ago.get()).unwrap_or(SystemTime::UNIX_EPOCH);
        return Ok(history::compact_time(at));
    }
    match chrono::DateTime::parse_from_rfc3339(since) {
        Ok(time) => Ok(history::compact_time(SystemTime::from(time))),
        Err(_) => {
            Err(format!("`{since}` is neither a duration (`24h`, `7d`) nor a time (`2026-12-01T00:00:00Z`)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn since_takes_durations_and_times() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 2);
        assert_eq!(since_id("1d", now).expect("duration"), "19700102T000000.000Z");
        assert_eq!(since_id("1970-01-01T01:00:00+01:00", now).expect("time"), "19700101T000000.000Z");
        assert!(since_id("yesterday", now).is_err());
    }
}
