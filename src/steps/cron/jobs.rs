//! The `openclaw` cron backend's read side: one `openclaw cron list --all --json` per
//! run tells the `cron` step each job's `enabled` flag, so it edits only the jobs whose
//! state differs. Re-enabling an enabled job is not a no-op in openclaw (it resets the
//! job's `consecutiveErrors`, defeating its failure backoff), and every edit costs a
//! CLI start of more than a second.

use std::collections::HashMap;

use serde_json::Value as Json;

/// The arguments after the program that list every job, disabled ones included
/// (without `--all` openclaw leaves disabled jobs out).
pub(crate) const LIST_ARGS: [&str; 4] = ["cron", "list", "--all", "--json"];

/// The jobs' `enabled` flags by job id, as read once in a run.
pub(crate) type JobStates = HashMap<String, bool>;

/// The full list command for `program`.
pub(crate) fn list_argv(program: &str) -> Vec<String> {
    std::iter::once(program.to_string()).chain(LIST_ARGS.iter().map(|a| (*a).to_string())).collect()
}

/// Parse the list's stdout: `{"jobs": [{"id": ..., "enabled": true|false, ...}, ...]}`.
/// Jobs without a text id or a boolean `enabled` are an error (the state is unknown,
/// so nothing may be changed on a guess).
#[cfg(test)]
pub(crate) fn parse_jobs(stdout: &str) -> Result<JobStates, String> {
    parse_jobs_of("openclaw cron list", stdout)
}

/// [`parse_jobs`] for any list command; `label` names it in errors (see [`list_label`]).
pub(crate) fn parse_jobs_of(label: &str, stdout: &str) -> Result<JobStates, String> {
    let value: Json =
        serde_json::from_str(stdout.trim()).map_err(|e| format!("`{label}` printed no JSON ({e})"))?;
    let Some(jobs) = value.get("jobs").and_then(Json::as_array) else {
        return Err(format!("`{label}` printed no `jobs` list"));
    };
    let mut states = JobStates::with_capacity(jobs.len());
    for (index, job) in jobs.iter().enumerate() {
        let Some(id) = job.get("id").and_then(Json::as_str) else {
            return Err(format!("`{label}`: jobs[{index}] has no text `id`"));
        };
        let Some(enabled) = job.get("enabled").and_then(Json::as_bool) else {
            return Err(format!("`{label}`: job {id} has no boolean `enabled`"));
        };
        states.insert(id.to_string(), enabled);
    }
    Ok(states)
}

/// How a list command is named in messages: the program and its arguments up to the
/// first option (`openclaw cron list`).
pub(crate) fn list_label(argv: &[String]) -> String {
    let words: Vec<&str> = argv.iter().map(String::as_str).take_while(|a| !a.starts_with('-')).collect();
    if words.is_empty() { argv.first().cloned().unwrap_or_default() } else { words.join(" ") }
}

/// The listed state of `cron_id` (lane `lane`), or why it is unknown: then nothing may
/// be changed.
pub(crate) fn known_state(
    states: Result<JobStates, String>,
    cron_id: &str,
    lane: &str,
    list: &[String],
) -> Result<bool, String> {
    match states.map(|s| s.get(cron_id).copied()) {
        Ok(Some(state)) => Ok(state),
        Ok(None) => Err(format!(
            "cron job {cron_id} of lane `{lane}` is not listed by `{}`; nothing changed",
            list.join(" ")
        )),
        Err(e) => Err(format!("reading the cron jobs failed, nothing changed: {e}")),
    }
}

/// The one-line error of a list command that did not succeed. openclaw prints its JSON
/// error on stdout and the human text on stderr; prefer the JSON message.
pub(crate) fn list_failure(stdout: &str, stderr: &str) -> String {
    let from_json = serde_json::from_str::<Json>(stdout.trim())
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Json::as_str).map(str::to_string));
    let text = from_json.unwrap_or_else(|| stderr.trim().to_string());
    crate::steps::exec::clip(&text.replace(['\n', '\r'], " "), 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_real_shape() {
        let out = r#"{"jobs":[{"id":"a","name":"A","enabled":true,"state":{}},{"id":"b","enabled":false}],
            "total":2,"offset":0,"limit":200,"hasMore":false}"#;
        let states = parse_jobs(out).expect("parses");
        assert_eq!(states.get("a"), Some(&true));
        assert_eq!(states.get("b"), Some(&false));
        assert_eq!(states.len(), 2);
    }

    #[test]
    fn refuses_unknown_state() {
        assert!(parse_jobs("not json").unwrap_err().contains("no JSON"));
        assert!(parse_jobs(r#"{"ok":true}"#).unwrap_err().contains("no `jobs` list"));
        assert!(
            parse_jobs(r#"{"jobs":[{"id":"a"}]}"#).unwrap_err().contains("job a has no boolean `enabled`")
        );
        assert!(parse_jobs(r#"{"jobs":[{"enabled":true}]}"#).unwrap_err().contains("jobs[0]"));
    }

    #[test]
    fn failure_prefers_the_json_message_and_is_one_line() {
        let stdout = r#"{"ok": false, "error": {"type": "cli_error", "message": "Gateway not reachable"}}"#;
        assert_eq!(list_failure(stdout, "other\ntext"), "Gateway not reachable");
        assert_eq!(list_failure("", "line one\nline two\n"), "line one line two");
    }

    #[test]
    fn list_command() {
        assert_eq!(list_argv("oc"), ["oc", "cron", "list", "--all", "--json"]);
        assert_eq!(list_label(&list_argv("oc")), "oc cron list");
        assert_eq!(list_label(&["toggle".to_string(), "--list".to_string()]), "toggle");
    }

    #[test]
    fn known_states_and_why_not() {
        let list = ["t".to_string(), "list".to_string()];
        let states = || parse_jobs_of("t list", r#"{"jobs":[{"id":"a","enabled":false}]}"#);
        assert_eq!(known_state(states(), "a", "l", &list), Ok(false));
        assert_eq!(
            known_state(states(), "b", "l", &list),
            Err("cron job b of lane `l` is not listed by `t list`; nothing changed".into())
        );
        assert!(
            known_state(Err("boom".into()), "a", "l", &list).unwrap_err().ends_with("nothing changed: boom")
        );
        assert!(parse_jobs_of("t list", "{}").unwrap_err().starts_with("`t list` printed no `jobs`"));
    }
}
