//! `cron`: enable or disable a lane's cron job through the registry's cron backend
//! (the `openclaw` CLI, read once per run so only differing jobs are edited, or a
//! command template). Planned in a dry run.

pub(crate) mod jobs;

use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;

use crate::expr::values::to_mj;
use crate::model::lanes::{CronBackend, Lane};
use crate::model::step::CronStep;
use crate::steps;
use crate::steps::api::{Runtime, StepCall, StepResult};

pub(crate) use jobs::{JobStates, list_argv, list_failure};

/// Default time limit of a cron toggle.
pub(crate) const DEFAULT_CRON_TIMEOUT: Duration = Duration::from_secs(30);

/// Resolve the lane and its cron id, compare with the job's state and edit it when it
/// differs.
pub(crate) async fn run(call: &StepCall<'_>, cron: &CronStep) -> StepResult {
    let StepCall { engine, inv, step, path, context, .. } = *call;
    let Some(registry) = inv.unit.registry.as_deref() else {
        return StepResult::failed("a cron step needs a lane registry", Json::Null);
    };
    if cron.read {
        return read(call, &registry.cron_backend).await;
    }
    let (Some(lane_template), Some(enabled_value)) = (&cron.lane, &cron.enabled) else {
        // The loader refuses this shape; a step built another way fails here.
        return StepResult::failed(cron.shape_problem().unwrap_or_default(), Json::Null);
    };
    let lane_id = match engine.eval().render_text(lane_template, context) {
        Ok(l) => l,
        Err(e) => return StepResult::failed(format!("lane: {e}"), Json::Null),
    };
    let Some(lane) = registry.lane(&lane_id) else {
        return StepResult::failed(
            format!(
                "no lane `{lane_id}` in the lane registry; lanes: {}",
                crate::diagnostics::one_of(&registry.ids())
            ),
            Json::Null,
        );
    };
    let cron_id = match resolve_cron_id(lane, |name| engine.env_var(name)) {
        Ok(id) => id,
        Err(e) => return StepResult::failed(e, Json::Null),
    };
    let enabled = match engine.eval().render_dyn(enabled_value, context) {
        Ok(Json::Bool(b)) => b,
        Ok(other) => {
            return StepResult::failed(
                format!("enabled must be true or false, found {}", crate::expr::values::describe(&other)),
                Json::Null,
            );
        }
        Err(e) => return StepResult::failed(format!("enabled: {e}"), Json::Null),
    };
    let reason = match cron.reason.as_ref().map(|r| engine.eval().render_text(r, context)).transpose() {
        Ok(r) => r,
        Err(e) => return StepResult::failed(format!("reason: {e}"), Json::Null),
    };
    let mut current = None;
    let (argv, timeout) = match &registry.cron_backend {
        CronBackend::Openclaw { program, timeout } => {
            let program = program.clone().unwrap_or_else(|| "openclaw".into());
            let limit =
                step.timeout.map(|t| t.get()).or(timeout.map(|t| t.get())).unwrap_or(DEFAULT_CRON_TIMEOUT);
            let states = states(engine, &list_argv(&program), limit, &inv.cancel).await;
            let unknown = json!({"lane": lane.id, "cron_id": cron_id, "enabled": enabled, "changed": false});
            match states.as_ref().map(|s| s.get(&cron_id).copied()) {
                Ok(Some(state)) => current = Some(state),
                Ok(None) => {
                    return StepResult::failed(
                        format!(
                            "cron job {cron_id} of lane `{}` is not listed by `{program} cron list --all --json`; nothing changed",
                            lane.id
                        ),
                        unknown,
                    );
                }
                Err(e) => {
                    return StepResult::failed(
                        format!("reading the cron jobs failed, nothing changed: {e}"),
                        unknown,
                    );
                }
            }
            (
                vec![
                    program,
                    "cron".into(),
                    "edit".into(),
                    cron_id.clone(),
                    if enabled { "--enable" } else { "--disable" }.into(),
                ],
                limit,
            )
        }
        CronBackend::Kubernetes { namespace, cronjob, timeout } => {
            let masker = engine.masker();
            let ctx = engine.ctx(inv, context, &masker, DEFAULT_CRON_TIMEOUT);
            let request = steps::kubernetes::cron::StepRequest {
                lane,
                cron_id: &cron_id,
                enabled,
                reason: reason.as_deref(),
                namespace: namespace.as_deref(),
                cronjob: cronjob.as_deref(),
                timeout: step.timeout.or(*timeout).map_or(DEFAULT_CRON_TIMEOUT, |t| t.get()),
                plan: inv.plan && engine.plan().writes(step),
            };
            let toggled =
                steps::kubernetes::cron::run_step(&ctx, &request, &|name| engine.env_var(name), &|token| {
                    if let Ok(mut known) = engine.secrets().write() {
                        known.add(token);
                    }
                })
                .await;
            return match toggled {
                steps::kubernetes::cron::Toggled::Ok(output) => StepResult::ok(output),
                steps::kubernetes::cron::Toggled::Planned(output) => engine.planned(step, path, output),
                steps::kubernetes::cron::Toggled::Failed(error, output) => StepResult::failed(error, output),
            };
        }
        CronBackend::Command { argv, timeout, list } => {
            if let Some(list) = list {
                let limit = step.timeout.map(|t| t.get()).or(timeout.map(|t| t.get()));
                let states = states(engine, list, limit.unwrap_or(DEFAULT_CRON_TIMEOUT), &inv.cancel).await;
                match jobs::known_state(states, &cron_id, &lane.id, list) {
                    Ok(state) => current = Some(state),
                    Err(e) => {
                        return StepResult::failed(
                            e,
                            json!({"lane": lane.id, "cron_id": cron_id, "enabled": enabled, "changed": false}),
                        );
                    }
                }
            }
            let lane_value = to_mj(&serde_json::to_value(lane).unwrap_or(Json::Null));
            let backend_context =
                minijinja::context! { lane => lane_value, cron_id => cron_id.clone(), enabled => enabled };
            let mut rendered = Vec::with_capacity(argv.len());
            for (index, arg) in argv.iter().enumerate() {
                match engine.eval().render_text(arg, &backend_context) {
                    Ok(a) => rendered.push(a),
                    Err(e) => {
                        return StepResult::failed(format!("cron_backend.argv[{index}]: {e}"), Json::Null);
                    }
                }
            }
            (rendered, timeout.map(|t| t.get()).unwrap_or(DEFAULT_CRON_TIMEOUT))
        }
    };
    let mut output = json!({
        "lane": lane.id, "cron_id": cron_id, "enabled": enabled, "reason": reason,
        "command": argv, "applied": false, "dry_run": inv.plan,
        "was_enabled": current, "changed": current.is_none_or(|c| c != enabled),
    });
    // Already in the wanted state: no edit (re-enabling resets openclaw's error count).
    if current == Some(enabled) {
        output["command"] = Json::Null;
        return StepResult::ok(output);
    }
    if inv.plan && engine.plan().writes(step) {
        return engine.planned(step, path, output);
    }
    let spec = steps::exec::CommandSpec {
        argv: argv.clone(),
        env: Vec::new(),
        cwd: None,
        stdin: None,
        timeout: step.timeout.map(|t| t.get()).unwrap_or(timeout),
        max_output_bytes: 64 * 1024,
    };
    let program = argv.first().cloned().unwrap_or_default();
    let error = match steps::hooks::run_command(engine.hooks(), &spec, &inv.cancel).await {
        Ok(done) if done.exit_code == Some(0) => None,
        Ok(done) if done.timed_out => {
            Some(format!("`{program}` timed out after {}s", spec.timeout.as_secs()))
        }
        Ok(done) => {
            // Cut with a visible `…`, so a clipped message never reads as complete.
            let detail = steps::exec::clip(done.stderr.trim(), 200);
            let code = done.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "a signal".into());
            Some(format!("`{}` failed (exit {code}): {detail}", argv[..3.min(argv.len())].join(" ")))
        }
        Err(e) => Some(e),
    };
    match error {
        None => {
            output["applied"] = Json::Bool(true);
            if let Some(list) = list_command(&registry.cron_backend)
                && let Some(Ok(states)) = engine.cron_jobs().lock().await.get_mut(&list)
            {
                states.insert(cron_id.clone(), enabled);
            }
            StepResult::ok(output)
        }
        Some(error) => {
            output["error"] = Json::String(error.clone());
            StepResult::failed(error, output)
        }
    }
}

/// The command that lists the backend's job states, if it has one (the Kubernetes
/// backend reads each CronJob itself; a `command` backend without `list` never reads).
fn list_command(backend: &CronBackend) -> Option<Vec<String>> {
    match backend {
        CronBackend::Openclaw { program, .. } => Some(list_argv(program.as_deref().unwrap_or("openclaw"))),
        CronBackend::Command { list, .. } => list.clone(),
        CronBackend::Kubernetes { .. } => None,
    }
}

/// `read: true`: the run's one read of the job states, now, into the cache every later
/// toggle of the run uses (a toggle never reads again). Nothing to read (the Kubernetes
/// backend, a `command` backend without `list`) is `read: false` and succeeds.
async fn read(call: &StepCall<'_>, backend: &CronBackend) -> StepResult {
    let StepCall { engine, inv, step, .. } = *call;
    let Some(list) = list_command(backend) else {
        return StepResult::ok(json!({"read": false, "command": null, "jobs": null}));
    };
    let backend_limit = match backend {
        CronBackend::Openclaw { timeout, .. } | CronBackend::Command { timeout, .. } => *timeout,
        CronBackend::Kubernetes { timeout, .. } => *timeout,
    };
    let limit = step.timeout.or(backend_limit).map_or(DEFAULT_CRON_TIMEOUT, |t| t.get());
    match states(engine, &list, limit, &inv.cancel).await {
        Ok(jobs) => {
            let jobs: serde_json::Map<String, Json> =
                jobs.into_iter().map(|(id, enabled)| (id, Json::Bool(enabled))).collect();
            StepResult::ok(json!({"read": true, "command": list, "jobs": jobs}))
        }
        Err(e) => StepResult::failed(
            format!("reading the cron jobs failed: {e}"),
            json!({"read": false, "command": list, "jobs": null}),
        ),
    }
}

/// The job states listed by the backend's list command `list` (`openclaw cron list
/// --all --json`, or a `command` backend's `list`), read once the first time a run
/// needs them (also in a dry run: it only reads). The lock is held during the read,
/// so concurrent toggles share it.
async fn states(
    engine: &dyn Runtime,
    list: &[String],
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<JobStates, String> {
    let mut cache = engine.cron_jobs().lock().await;
    if let Some(known) = cache.get(list) {
        return known.clone();
    }
    let program = jobs::list_label(list);
    let spec = steps::exec::CommandSpec {
        argv: list.to_vec(),
        env: Vec::new(),
        cwd: None,
        stdin: None,
        timeout,
        max_output_bytes: 4 * 1024 * 1024,
    };
    let read = match steps::hooks::run_command(engine.hooks(), &spec, cancel).await {
        Ok(done) if done.exit_code == Some(0) => jobs::parse_jobs_of(&program, &done.stdout),
        Ok(done) if done.timed_out => Err(format!("`{program}` timed out after {}s", timeout.as_secs())),
        Ok(done) => {
            let code = done.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "a signal".into());
            Err(format!("`{program}` failed (exit {code}): {}", list_failure(&done.stdout, &done.stderr)))
        }
        Err(e) => Err(e),
    };
    // A cancelled read is not remembered as the run's answer.
    if !cancel.is_cancelled() {
        cache.insert(list.to_vec(), read.clone());
    }
    read
}

/// The cron id of a lane: the `id_env` override when set (it must be a UUID, so an
/// environment value can never smuggle an option into the command), else the registry's.
pub(crate) fn resolve_cron_id(lane: &Lane, env: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    if let Some(name) = &lane.cron.id_env
        && let Some(value) = env(name).filter(|v| !v.trim().is_empty())
    {
        let value = value.trim().to_string();
        if !is_uuid(&value) {
            return Err(format!(
                "{name} is set but is not a UUID; refusing to use it as the cron id of lane `{}`",
                lane.id
            ));
        }
        return Ok(value);
    }
    Ok(lane.cron.id.clone())
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == 5
        && groups.iter().zip(lengths).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        assert!(is_uuid("6b09bed4-cfbe-4c35-bbee-2b66c5ef17aa"));
        assert!(!is_uuid("--help"));
        assert!(!is_uuid("6b09bed4-cfbe-4c35-bbee-2b66c5ef17a"));
    }
}
