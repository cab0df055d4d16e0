//! The `kubernetes` step: render a manifest, then create it (POST) or server-side
//! apply it (PATCH `application/apply-patch+yaml`), optionally waiting for a condition.
//! A dry run shows the exact request and manifest. The client modules are below.
//!
//! The client: a small Kubernetes API client (plain HTTPS through reqwest, bearer token, the
//! cluster CA), credentials (in-cluster service account or kubeconfig), the
//! `kubernetes` cron backend.
//!
//! Why not kube-rs: the runner already has an HTTP stack with time limits, secret
//! masking, fixtures and recording; the few calls needed here (GET, merge patch, create,
//! server-side apply) are plain requests, and kube-rs would add a second HTTP stack
//! (hyper-util, tower, its own TLS setup) plus `k8s-openapi` to every build.

pub(crate) mod auth;
pub(crate) mod client;
pub(crate) mod cron;

use std::time::Duration;

use serde_json::{Map, Value as Json, json};

use super::{Outcome, Retry, StepCtx};
use crate::model::kubernetes::{KubernetesAction, KubernetesStep};
pub(crate) use crate::model::kubernetes::{is_dns_label, is_dns_subdomain};
use crate::model::step::HttpMethod;
use crate::steps::kubernetes::auth::Cluster;
use crate::steps::kubernetes::client::{
    APPLY_PATCH, ApiRequest, Client, JSON, collection_path, plural, segment,
};

/// Default time limit of one API request.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Run a `kubernetes` step: prepare the request (its token joins the masked secrets),
/// show it in a dry run, else send it with the step's retries (an apply is idempotent,
/// a create only with `retry.unsafe_methods`).
pub(crate) async fn run(
    call: &crate::steps::api::StepCall<'_>,
    k8s: &KubernetesStep,
) -> crate::steps::api::StepResult {
    use crate::steps::api::StepResult;
    let crate::steps::api::StepCall { engine, inv, step, path, context, .. } = *call;
    let timeout = step.timeout.map(|t| t.get()).unwrap_or(DEFAULT_TIMEOUT);
    let masker = engine.masker();
    let ctx = engine.ctx(inv, context, &masker, timeout);
    let prepared = match prepare(&ctx, k8s, &|name| engine.env_var(name)) {
        Ok(p) => p,
        Err(e) => return StepResult::failed(e, Json::Null),
    };
    if let (Some(token), Ok(mut known)) = (prepared.token(), engine.secrets().write()) {
        known.add(token);
    }
    if inv.plan && engine.plan().writes(step) {
        return engine.planned(step, path, prepared.describe());
    }
    let retry_allowed =
        prepared.action == KubernetesAction::Apply || step.retry.as_ref().is_some_and(|r| r.unsafe_methods);
    engine.attempts(inv, step, path, retry_allowed, timeout, || execute(&ctx, &prepared)).await
}

/// How often a `wait` reads the object.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// A step ready to send (or to show in a plan).
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// The credentials (an error is reported when the request is sent, so a dry run
    /// still shows the manifest without any).
    pub cluster: Result<Cluster, String>,
    /// What is done.
    pub action: KubernetesAction,
    /// The rendered manifest, `metadata.namespace` filled in.
    pub manifest: Json,
    /// The request.
    pub request: ApiRequest,
    /// The object's path (for `wait`), when it has a name.
    pub object_path: Option<String>,
    /// Namespace.
    pub namespace: String,
    /// Wait for this condition.
    pub wait: Option<Wait>,
}

/// A rendered `wait`.
#[derive(Debug, Clone)]
pub(crate) struct Wait {
    /// Condition that ends the wait successfully.
    pub condition: String,
    /// Conditions that end it as a failure.
    pub failures: Vec<String>,
    /// Total time.
    pub timeout: Duration,
}

fn text_at<'a>(manifest: &'a Json, pointer: &str) -> Option<&'a str> {
    manifest.pointer(pointer).and_then(Json::as_str).filter(|s| !s.trim().is_empty())
}

impl Prepared {
    /// The credentials' token, to be masked by the engine.
    pub(crate) fn token(&self) -> Option<&str> {
        self.cluster.as_ref().ok().and_then(|c| c.token.as_deref())
    }

    /// What a dry run shows: the exact request and manifest (never the token).
    pub(crate) fn describe(&self) -> Json {
        json!({
            "action": match self.action { KubernetesAction::Create => "create", KubernetesAction::Apply => "apply" },
            "server": self.cluster.as_ref().map(|c| c.server.clone()).ok(),
            "method": self.request.method.as_str(),
            "path": self.request.path,
            "content_type": self.request.content_type,
            "manifest": self.manifest,
            "wait": self.wait.as_ref().map(|w| json!({"condition": w.condition, "timeout": crate::model::Duration(w.timeout).to_string()})),
        })
    }
}

/// Render the step into a request. `env` is the run's environment (for credentials).
pub(crate) fn prepare(
    ctx: &StepCtx<'_>,
    step: &KubernetesStep,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Prepared, String> {
    let mut manifest =
        ctx.eval.render_dyn(&step.manifest, ctx.context).map_err(|e| format!("manifest: {e}"))?;
    let Json::Object(_) = manifest else {
        return Err("manifest: expected a map (an object with apiVersion, kind and metadata)".into());
    };
    let api_version =
        text_at(&manifest, "/apiVersion").ok_or("manifest: `apiVersion` is missing or empty")?.to_string();
    let kind = text_at(&manifest, "/kind").ok_or("manifest: `kind` is missing or empty")?.to_string();
    let cluster = Cluster::discover(env, ctx.dir);
    let namespace = match text_at(&manifest, "/metadata/namespace") {
        Some(ns) => ns.to_string(),
        None => match &step.namespace {
            Some(template) => {
                ctx.eval.render_text(template, ctx.context).map_err(|e| format!("namespace: {e}"))?
            }
            None => {
                cluster.as_ref().ok().and_then(|c| c.namespace.clone()).unwrap_or_else(|| "default".into())
            }
        },
    };
    if !is_dns_label(&namespace) {
        return Err(format!(
            "namespace `{namespace}` is not a DNS label (lower case letters, digits and `-`, at most 63)"
        ));
    }
    let name = text_at(&manifest, "/metadata/name").map(str::to_string);
    if let Some(name) = &name
        && !is_dns_subdomain(name)
    {
        return Err(format!(
            "metadata.name `{name}` is not a valid object name (lower case letters, digits, `-` and `.`)"
        ));
    }
    if let Some(object) = manifest.as_object_mut() {
        let metadata = object.entry("metadata").or_insert_with(|| Json::Object(Map::new()));
        let Json::Object(metadata) = metadata else {
            return Err("manifest: `metadata` must be a map".into());
        };
        metadata.insert("namespace".into(), Json::String(namespace.clone()));
        // Label and annotation values are strings in Kubernetes; a `{{ number }}`
        // template yields a number, which the API would refuse.
        for key in ["labels", "annotations"] {
            if let Some(Json::Object(values)) = metadata.get_mut(key) {
                for value in values.values_mut() {
                    if let Json::Number(_) | Json::Bool(_) = value {
                        *value = Json::String(value.to_string());
                    }
                }
            }
        }
    }
    let resource = step.resource.clone().unwrap_or_else(|| plural(&kind));
    let collection = collection_path(&api_version, &namespace, &resource);
    let object_path = name.as_ref().map(|n| format!("{collection}/{}", segment(n)));
    let request = match step.action {
        KubernetesAction::Create => {
            if name.is_none() && text_at(&manifest, "/metadata/generateName").is_none() {
                return Err(
                    "manifest: `metadata.name` or `metadata.generateName` is needed to create an object"
                        .into(),
                );
            }
            ApiRequest {
                method: HttpMethod::Post,
                path: collection,
                content_type: Some(JSON),
                body: Some(manifest.clone()),
            }
        }
        KubernetesAction::Apply => {
            let Some(path) = &object_path else {
                return Err("manifest: `metadata.name` is needed for a server-side apply".into());
            };
            let manager = step.field_manager.as_deref().unwrap_or("runner");
            let mut query = format!("?fieldManager={}", segment(manager));
            if step.force {
                query.push_str("&force=true");
            }
            ApiRequest {
                method: HttpMethod::Patch,
                path: format!("{path}{query}"),
                content_type: Some(APPLY_PATCH),
                body: Some(manifest.clone()),
            }
        }
    };
    let wait = step.wait.as_ref().map(|w| Wait {
        condition: w.condition.clone(),
        failures: w.failure_conditions.clone().unwrap_or_else(|| vec!["Failed".into()]),
        timeout: w.timeout.get(),
    });
    Ok(Prepared { cluster, action: step.action, manifest, request, object_path, namespace, wait })
}

fn failed(error: String, output: Json, transient: bool) -> Outcome {
    Outcome::Failed {
        error,
        output,
        retry: if transient { Retry::Yes { after: None } } else { Retry::No },
        proceed: false,
    }
}

/// The status of `condition` in an object's `status.conditions` (`"True"`, ...).
pub(crate) fn condition_status<'a>(object: &'a Json, condition: &str) -> Option<&'a str> {
    object
        .pointer("/status/conditions")
        .and_then(Json::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Json::as_str) == Some(condition))
        .and_then(|c| c.get("status").and_then(Json::as_str))
}

/// Send the request; then wait for the condition if asked.
pub(crate) async fn execute(ctx: &StepCtx<'_>, prepared: &Prepared) -> Outcome {
    let cluster = match &prepared.cluster {
        Ok(cluster) => cluster.clone(),
        Err(e) => return failed(format!("Kubernetes credentials: {e}"), Json::Null, false),
    };
    let client = Client::new(cluster);
    let reply = tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => return failed("cancelled".into(), Json::Null, false),
        reply = client.send(&prepared.request, ctx.timeout, ctx.hooks) => reply,
    };
    let reply = match reply {
        Ok(reply) => reply,
        Err(failure) => {
            let output = json!({"status_code": failure.status, "reason": failure.reason});
            return failed(failure.message, output, failure.transient);
        }
    };
    let object = &reply.body;
    let mut output = json!({
        "name": object.pointer("/metadata/name").cloned().unwrap_or(Json::Null),
        "namespace": object.pointer("/metadata/namespace").cloned().unwrap_or(Json::String(prepared.namespace.clone())),
        "uid": object.pointer("/metadata/uid").cloned().unwrap_or(Json::Null),
        "kind": prepared.manifest.get("kind").cloned().unwrap_or(Json::Null),
        "api_version": prepared.manifest.get("apiVersion").cloned().unwrap_or(Json::Null),
        "action": match prepared.action { KubernetesAction::Create => "create", KubernetesAction::Apply => "apply" },
        "status_code": reply.status,
        "created": reply.status == 201,
        "condition": null,
    });
    let Some(wait) = &prepared.wait else { return Outcome::Ok(output) };
    // A generateName object is known by the name the server gave it.
    let path = match (&prepared.object_path, object.pointer("/metadata/name").and_then(Json::as_str)) {
        (Some(path), _) => path.clone(),
        (None, Some(name)) => format!("{}/{}", prepared.request.path, segment(name)),
        (None, None) => {
            return failed("the API answered without the object's name; cannot wait".into(), output, false);
        }
    };
    let get = ApiRequest { method: HttpMethod::Get, path, content_type: None, body: None };
    let deadline = tokio::time::Instant::now() + wait.timeout;
    let mut latest = reply.body.clone();
    loop {
        if condition_status(&latest, &wait.condition) == Some("True") {
            output["condition"] = Json::String(wait.condition.clone());
            return Outcome::Ok(output);
        }
        if let Some(bad) = wait.failures.iter().find(|c| condition_status(&latest, c) == Some("True")) {
            output["condition"] = Json::String(bad.clone());
            let message = latest
                .pointer("/status/conditions")
                .and_then(Json::as_array)
                .and_then(|all| all.iter().find(|c| c.get("type").and_then(Json::as_str) == Some(bad)))
                .and_then(|c| c.get("message").and_then(Json::as_str))
                .unwrap_or_default();
            let detail = if message.is_empty() {
                String::new()
            } else {
                format!(": {}", crate::steps::exec::clip(message, 200))
            };
            return failed(
                format!(
                    "{} {} reached condition {bad}{detail}",
                    prepared.manifest["kind"].as_str().unwrap_or("object"),
                    output["name"].as_str().unwrap_or("?")
                ),
                output,
                false,
            );
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return failed(
                format!(
                    "condition {} not reached within {}",
                    wait.condition,
                    crate::model::Duration(wait.timeout)
                ),
                output,
                false,
            );
        }
        let pause = POLL_INTERVAL.min(deadline - now);
        tokio::select! {
            () = ctx.cancel.cancelled() => return failed("cancelled".into(), output, false),
            () = tokio::time::sleep(pause) => {}
        }
        match client.send(&get, ctx.timeout.min(wait.timeout), ctx.hooks).await {
            Ok(reply) => latest = reply.body,
            // A read failing while waiting is retried until the deadline.
            Err(failure) if failure.transient => {}
            Err(failure) => return failed(failure.message, output, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(is_dns_label("fleet-1"));
        assert!(!is_dns_label("Fleet"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label("a_b"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("worker.local-1"));
        assert!(!is_dns_subdomain("worker..x"));
    }

    #[test]
    fn conditions() {
        let job = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}, {"type": "Failed", "status": "False"}]}});
        assert_eq!(condition_status(&job, "Complete"), Some("True"));
        assert_eq!(condition_status(&job, "Failed"), Some("False"));
        assert_eq!(condition_status(&job, "Ready"), None);
    }
}
