//! The `kubernetes` cron backend: a lane's worker is a CronJob, switched by its
//! `spec.suspend`. The CronJob is read first; a job already in the wanted state is not
//! written (no PATCH at all). The write is one JSON merge patch of `spec.suspend`.

use std::time::Duration;

use serde_json::{Value as Json, json};

use super::auth::Cluster;
use super::client::{ApiRequest, Client, MERGE_PATCH, segment};
use crate::expr::values::to_mj;
use crate::model::lanes::{DEFAULT_CRONJOB_NAME, Lane};
use crate::model::step::HttpMethod;
use crate::steps::StepCtx;
use crate::steps::hooks::Hooks;
use crate::steps::kubernetes::is_dns_subdomain;

/// What to switch.
#[derive(Debug, Clone)]
pub(crate) struct Toggle<'a> {
    /// Lane id (for the output).
    pub lane: &'a str,
    /// The CronJob's name.
    pub cronjob: &'a str,
    /// The backend's namespace, if set.
    pub namespace: Option<&'a str>,
    /// Wanted state.
    pub enabled: bool,
    /// Why (for the output).
    pub reason: Option<&'a str>,
    /// Only plan the write.
    pub plan: bool,
    /// Time limit of each request.
    pub timeout: Duration,
}

/// How a toggle ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Toggled {
    /// Done (or nothing to do): the output.
    Ok(Json),
    /// A dry run: the exact patch that would be sent.
    Planned(Json),
    /// Failed: one-line error and the output so far.
    Failed(String, Json),
}

/// The API path of a CronJob.
pub(crate) fn cronjob_path(namespace: &str, name: &str) -> String {
    format!("/apis/batch/v1/namespaces/{}/cronjobs/{}", segment(namespace), segment(name))
}

/// The merge patch that suspends (`enabled: false`) or resumes a CronJob.
pub(crate) fn suspend_patch(enabled: bool) -> Json {
    json!({"spec": {"suspend": !enabled}})
}

/// Read the CronJob and patch `spec.suspend` when it differs. `cluster` is the result
/// of discovering the credentials (an error fails the toggle, nothing is sent).
pub(crate) async fn toggle(
    cluster: Result<Cluster, String>,
    toggle: &Toggle<'_>,
    hooks: Option<&dyn Hooks>,
) -> Toggled {
    let mut output = json!({
        "lane": toggle.lane, "cronjob": toggle.cronjob, "namespace": toggle.namespace,
        "enabled": toggle.enabled, "reason": toggle.reason, "was_enabled": null,
        "changed": false, "applied": false, "dry_run": toggle.plan, "patch": null,
    });
    let cluster = match cluster {
        Ok(cluster) => cluster,
        Err(e) => return Toggled::Failed(format!("Kubernetes credentials: {e}; nothing changed"), output),
    };
    let namespace = toggle
        .namespace
        .map(str::to_string)
        .or_else(|| cluster.namespace.clone())
        .unwrap_or_else(|| "default".into());
    output["namespace"] = Json::String(namespace.clone());
    let client = Client::new(cluster);
    let path = cronjob_path(&namespace, toggle.cronjob);
    let get = ApiRequest { method: HttpMethod::Get, path: path.clone(), content_type: None, body: None };
    let current = match client.send(&get, toggle.timeout, hooks).await {
        Ok(reply) => reply.body,
        Err(failure) => {
            return Toggled::Failed(
                format!(
                    "reading CronJob {namespace}/{} failed, nothing changed: {}",
                    toggle.cronjob, failure.message
                ),
                output,
            );
        }
    };
    let suspended = match current.pointer("/spec/suspend") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(_) => {
            return Toggled::Failed(
                format!(
                    "CronJob {namespace}/{} has a non-boolean spec.suspend; nothing changed",
                    toggle.cronjob
                ),
                output,
            );
        }
    };
    let was_enabled = !suspended;
    output["was_enabled"] = Json::Bool(was_enabled);
    if was_enabled == toggle.enabled {
        return Toggled::Ok(output);
    }
    output["changed"] = Json::Bool(true);
    let patch = ApiRequest {
        method: HttpMethod::Patch,
        path: path.clone(),
        content_type: Some(MERGE_PATCH),
        body: Some(suspend_patch(toggle.enabled)),
    };
    output["patch"] = json!({
        "method": "PATCH", "path": path, "content_type": MERGE_PATCH, "body": patch.body,
    });
    if toggle.plan {
        return Toggled::Planned(output);
    }
    match client.send(&patch, toggle.timeout, hooks).await {
        Ok(_) => {
            output["applied"] = Json::Bool(true);
            Toggled::Ok(output)
        }
        Err(failure) => {
            let message =
                format!("patching CronJob {namespace}/{} failed: {}", toggle.cronjob, failure.message);
            output["error"] = Json::String(message.clone());
            Toggled::Failed(message, output)
        }
    }
}

/// A `cron` step on the `kubernetes` backend, as the engine hands it over.
#[derive(Debug, Clone)]
pub(crate) struct StepRequest<'a> {
    /// The lane.
    pub lane: &'a Lane,
    /// Its cron id (the template of the CronJob name may use it).
    pub cron_id: &'a str,
    /// Wanted state.
    pub enabled: bool,
    /// Why.
    pub reason: Option<&'a str>,
    /// The backend's namespace.
    pub namespace: Option<&'a str>,
    /// The backend's CronJob name template.
    pub cronjob: Option<&'a str>,
    /// Time limit of each request.
    pub timeout: Duration,
    /// Only plan the write.
    pub plan: bool,
}

/// Render the CronJob name, find the credentials (handing the token to `secret`, the
/// engine's masker, before any request) and toggle.
pub(crate) async fn run_step(
    ctx: &StepCtx<'_>,
    request: &StepRequest<'_>,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    secret: &(dyn Fn(&str) + Sync),
) -> Toggled {
    let lane_value = to_mj(&serde_json::to_value(request.lane).unwrap_or(Json::Null));
    let names = minijinja::context! { lane => lane_value, cron_id => request.cron_id };
    let template = request.cronjob.unwrap_or(DEFAULT_CRONJOB_NAME);
    let unknown =
        json!({"lane": request.lane.id, "enabled": request.enabled, "changed": false, "applied": false});
    let name = match ctx.eval.render_text(template, &names) {
        Ok(name) => name,
        Err(e) => return Toggled::Failed(format!("cron_backend.cronjob: {e}"), unknown),
    };
    if !is_dns_subdomain(&name) {
        return Toggled::Failed(
            format!(
                "cron_backend.cronjob gave `{name}` for lane `{}`, not a valid CronJob name",
                request.lane.id
            ),
            unknown,
        );
    }
    let toggle = Toggle {
        lane: &request.lane.id,
        cronjob: &name,
        namespace: request.namespace,
        enabled: request.enabled,
        reason: request.reason,
        plan: request.plan,
        timeout: request.timeout,
    };
    let cluster = Cluster::discover(env, ctx.dir);
    if let Some(token) = cluster.as_ref().ok().and_then(|c| c.token.as_deref()) {
        secret(token);
    }
    self::toggle(cluster, &toggle, ctx.hooks).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_and_path() {
        assert_eq!(suspend_patch(false), json!({"spec": {"suspend": true}}));
        assert_eq!(suspend_patch(true), json!({"spec": {"suspend": false}}));
        assert_eq!(
            cronjob_path("fleet", "worker-local"),
            "/apis/batch/v1/namespaces/fleet/cronjobs/worker-local"
        );
    }

    #[tokio::test]
    async fn missing_credentials_change_nothing() {
        let toggle = Toggle {
            lane: "local",
            cronjob: "worker-local",
            namespace: None,
            enabled: true,
            reason: None,
            plan: false,
            timeout: Duration::from_secs(1),
        };
        let Toggled::Failed(error, _) = super::toggle(Err("no token".into()), &toggle, None).await else {
            panic!("must fail")
        };
        assert_eq!(error, "Kubernetes credentials: no token; nothing changed");
    }
}
