//! `runner export kubernetes`: a schedule file as Kubernetes manifests.
//!
//! One ConfigMap holds every file the schedule needs (its workflows and the workflows
//! they call, lane registries, lifecycles, roles, prompt templates and manifests),
//! mounted read-only as the container's working directory. One CronJob per entry runs
//! `runner run <workflow>` with the entry's inputs. When a lane registry uses the
//! `kubernetes` cron backend, or a workflow has `kubernetes` steps, a ServiceAccount,
//! Role and RoleBinding grant exactly what those need. Secrets are only ever
//! referenced (`secretKeyRef`), never read.
//!
//! Mapping of the schedule's policies (Kubernetes has no equivalent for all of them):
//! - `overlap: skip` and `queue` -> `concurrencyPolicy: Forbid` (with `queue`, a firing
//!   missed while the previous run was active still starts within the starting
//!   deadline); `replace` -> `Replace`.
//! - `missed: none` -> `startingDeadlineSeconds: 60`; `last` and `all` -> a deadline of
//!   50 periods of the entry (at most 7 days): the controller then starts the latest
//!   missed firing once (Kubernetes never replays each one, so `all` acts as `last`).
//! - `timeout` -> `activeDeadlineSeconds`; `jitter` is not exported (the controller
//!   starts Jobs itself); `dry_run` -> `--dry-run`.
//! - 6-field (seconds) and `@every` expressions have no CronJob form and are refused.
//!
//! The output is deterministic: objects in a fixed order, keys in a fixed order, files
//! sorted by path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

use serde_json::{Map, Value as Json, json};

use crate::load::{Loaded, Loader, sibling};
use crate::model::lanes::{CronBackend, DEFAULT_CRONJOB_NAME};
use crate::model::schedule::{Missed, Overlap, Schedule, ScheduleEntry};
use crate::model::step::StepKind;
use crate::model::steps_iter::walk_steps;
use crate::model::workflow::Workflow;
use crate::steps::kubernetes::{is_dns_label, is_dns_subdomain};

/// Where the files are mounted (the container's working directory).
pub(crate) const MOUNT: &str = "/etc/runner";
/// Largest ConfigMap Kubernetes stores (1 MiB), minus room for metadata.
pub(crate) const MAX_CONFIGMAP_BYTES: usize = 1_000_000;

/// Options of the export.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Container image running `runner`.
    pub image: String,
    /// Namespace of every object.
    pub namespace: String,
    /// Prefix of every object name.
    pub prefix: String,
    /// Extra labels on every object (and pod).
    pub labels: Vec<(String, String)>,
    /// Name of the Secret holding the declared secrets (keys: their env var names).
    pub secret: String,
}

/// Problems found while exporting: one line each.
pub(crate) type Problems = Vec<String>;

/// What the export collected from the files.
#[derive(Debug, Default)]
struct Collected {
    /// Relative path -> content.
    files: BTreeMap<String, String>,
    /// Workflow path -> secret env var names (and whether optional).
    secrets: BTreeMap<String, BTreeMap<String, bool>>,
    /// Workflow path -> the workflows it calls.
    calls: BTreeMap<String, BTreeSet<String>>,
    /// CronJob names the `kubernetes` cron backend patches.
    cronjobs: BTreeSet<String>,
    /// (apiGroup, resource) -> verbs needed by `kubernetes` steps.
    resources: BTreeMap<(String, String), BTreeSet<&'static str>>,
}

/// A path relative to the working directory, `..`-free, with `/` separators.
fn relative_key(path: &Path) -> Result<String, String> {
    let normalized = crate::load::normalize(path);
    let mut parts = Vec::new();
    for component in normalized.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "{} is outside the working directory; run `runner export` from the directory that holds every file",
                    path.display()
                ));
            }
        }
    }
    Ok(parts.join("/"))
}

/// The ConfigMap key of a path (keys may not hold `/`).
fn config_key(path: &str) -> String {
    path.replace('/', "__")
}

impl Collected {
    fn add_file(&mut self, path: &Path, problems: &mut Problems) -> Option<String> {
        let key = match relative_key(path) {
            Ok(key) => key,
            Err(e) => {
                problems.push(e);
                return None;
            }
        };
        if self.files.contains_key(&key) {
            return Some(key);
        }
        match std::fs::read_to_string(path) {
            Ok(text) => {
                self.files.insert(key.clone(), text);
                Some(key)
            }
            Err(e) => {
                problems.push(format!("cannot read {}: {e}", path.display()));
                None
            }
        }
    }

    fn add_workflow(&mut self, loader: &mut Loader, path: &Path, problems: &mut Problems) {
        let Some(key) = self.add_file(path, problems) else { return };
        if self.secrets.contains_key(&key) {
            return;
        }
        let workflow: std::sync::Arc<Workflow> = match loader.load(path) {
            Ok(Some(Loaded::Workflow(workflow))) => workflow,
            _ => {
                problems
                    .push(format!("{} is not a valid workflow (run `runner validate {0}`)", path.display()));
                return;
            }
        };
        self.secrets
            .insert(key.clone(), workflow.secrets.values().map(|s| (s.env.clone(), s.optional)).collect());
        for relative in [&workflow.lifecycle, &workflow.roles].into_iter().flatten() {
            self.add_file(&sibling(path, relative), problems);
        }
        if let Some(lanes) = &workflow.lanes {
            self.add_registry(loader, &sibling(path, lanes), problems);
        }
        for step in walk_steps(&workflow.steps).chain(walk_steps(&workflow.finally)) {
            match &step.kind {
                StepKind::Call(call) => {
                    let callee = sibling(path, &call.workflow);
                    if let Ok(callee_key) = relative_key(&callee) {
                        self.calls.entry(key.clone()).or_default().insert(callee_key);
                    }
                    self.add_workflow(loader, &callee, problems);
                }
                StepKind::Render(render) if !crate::template::is_template(&render.template) => {
                    self.add_prompt(loader, &sibling(path, &render.template), problems);
                }
                StepKind::Kubernetes(k8s) => {
                    let api_version =
                        k8s.manifest.get("apiVersion").and_then(Json::as_str).unwrap_or_default();
                    let kind = k8s.manifest.get("kind").and_then(Json::as_str).unwrap_or_default();
                    let group = api_version.rsplit_once('/').map(|(g, _)| g.to_string()).unwrap_or_default();
                    let resource = k8s
                        .resource
                        .clone()
                        .unwrap_or_else(|| crate::steps::kubernetes::client::plural(kind));
                    let verbs = self.resources.entry((group, resource)).or_default();
                    verbs.insert(match k8s.action {
                        crate::model::kubernetes::KubernetesAction::Create => "create",
                        crate::model::kubernetes::KubernetesAction::Apply => "patch",
                    });
                    if k8s.wait.is_some() || k8s.action == crate::model::kubernetes::KubernetesAction::Apply {
                        verbs.insert("get");
                    }
                }
                _ => {}
            }
        }
    }

    fn add_registry(&mut self, loader: &mut Loader, path: &Path, problems: &mut Problems) {
        let Some(key) = self.add_file(path, problems) else { return };
        let registry = match loader.load(path) {
            Ok(Some(Loaded::Lanes(registry))) => registry,
            _ => {
                problems.push(format!("{key} is not a valid lane registry"));
                return;
            }
        };
        for lane in &registry.lanes {
            self.add_prompt(loader, &sibling(path, &lane.prompt), problems);
        }
        if let CronBackend::Kubernetes { cronjob, .. } = &registry.cron_backend {
            let template = cronjob.as_deref().unwrap_or(DEFAULT_CRONJOB_NAME);
            let eval = crate::engine::values::Evaluator::default();
            for lane in &registry.lanes {
                let lane_value =
                    crate::engine::values::to_mj(&serde_json::to_value(lane).unwrap_or(Json::Null));
                let context = minijinja::context! { lane => lane_value, cron_id => lane.cron.id.clone() };
                match eval.render_text(template, &context) {
                    Ok(name) if is_dns_subdomain(&name) => {
                        self.cronjobs.insert(name);
                    }
                    Ok(name) => problems.push(format!(
                        "{key}: cron_backend.cronjob gives `{name}` for lane `{}`, not a valid name",
                        lane.id
                    )),
                    Err(e) => problems.push(format!("{key}: cron_backend.cronjob: {e}")),
                }
            }
        }
    }

    /// A prompt template, plus the prompt manifest next to it and the registry that
    /// manifest names.
    fn add_prompt(&mut self, loader: &mut Loader, path: &Path, problems: &mut Problems) {
        self.add_file(path, problems);
        let manifest = path.parent().unwrap_or(Path::new(".")).join("prompts.yaml");
        if manifest.is_file() && !self.files.contains_key(&relative_key(&manifest).unwrap_or_default()) {
            self.add_file(&manifest, problems);
            if let Ok(Some(Loaded::Prompts(prompts))) = loader.load(&manifest)
                && let Some(lanes) = &prompts.lanes
            {
                self.add_registry(loader, &sibling(&manifest, lanes), problems);
            }
        }
    }
}

/// The shortest gap between consecutive firings of an entry (seconds), looked at over
/// a few weeks of firings.
fn period_seconds(entry_spec: &crate::schedule::cron::Spec) -> Option<i64> {
    let mut t = chrono::DateTime::<chrono::Utc>::from_timestamp(1_767_225_600, 0)?; // 2026-01-01
    let mut smallest: Option<i64> = None;
    let mut previous = entry_spec.next_after(t)?;
    for _ in 0..64 {
        t = previous;
        let next = entry_spec.next_after(t)?;
        let gap = (next - previous).num_seconds();
        smallest = Some(smallest.map_or(gap, |s| s.min(gap)));
        previous = next;
    }
    smallest
}

fn labels(options: &Options, extra: &[(&str, &str)]) -> Json {
    let mut map = Map::new();
    map.insert("app.kubernetes.io/name".into(), json!("runner"));
    map.insert("app.kubernetes.io/managed-by".into(), json!("runner-export"));
    for (k, v) in extra {
        map.insert((*k).into(), json!(v));
    }
    for (k, v) in &options.labels {
        map.insert(k.clone(), json!(v));
    }
    Json::Object(map)
}

fn metadata(name: &str, options: &Options, extra: &[(&str, &str)]) -> Json {
    json!({"name": name, "namespace": options.namespace, "labels": labels(options, extra)})
}

/// Check the options; problems are one line each.
pub(crate) fn check_options(options: &Options) -> Problems {
    let mut problems = Vec::new();
    if options.image.trim().is_empty() || options.image.contains(char::is_whitespace) {
        problems.push(format!("--image `{}` is not an image reference", options.image));
    }
    if !is_dns_label(&options.namespace) {
        problems.push(format!(
            "--namespace `{}` is not a DNS label (lower case letters, digits, `-`)",
            options.namespace
        ));
    }
    if !options.prefix.is_empty() && !is_dns_label(options.prefix.trim_end_matches('-')) {
        problems.push(format!("--name-prefix `{}`: lower case letters, digits and `-` only", options.prefix));
    }
    if !is_dns_subdomain(&options.secret) {
        problems.push(format!("--secret-name `{}` is not a valid object name", options.secret));
    }
    let key = regex::Regex::new(
        r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$",
    );
    let value = regex::Regex::new(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$");
    if let (Ok(key), Ok(value)) = (key, value) {
        for (k, v) in &options.labels {
            if !key.is_match(k) || !value.is_match(v) {
                problems.push(format!("--label `{k}={v}` is not a valid Kubernetes label"));
            }
        }
    }
    problems
}

/// Build the manifests of `schedule` (read from `file`, paths relative to the working
/// directory). Each object is a JSON value; [`to_yaml`] writes the stream.
pub(crate) fn export(file: &Path, schedule: &Schedule, options: &Options) -> Result<Vec<Json>, Problems> {
    let mut problems = check_options(options);
    let mut loader = Loader::new();
    let mut collected = Collected::default();
    collected.add_file(file, &mut problems);
    let plans = crate::schedule::service::plans(schedule).map_err(|e| vec![e])?;
    let mut entries = Vec::new();
    for (entry, plan) in schedule.entries.iter().zip(&plans) {
        let workflow = sibling(file, &entry.workflow);
        collected.add_workflow(&mut loader, &workflow, &mut problems);
        // Inputs naming files (e.g. a prompt) travel with the workflows.
        for value in entry.inputs.values() {
            if let Some(text) = value.as_str()
                && !text.contains("://")
                && Path::new(text).is_file()
            {
                collected.add_prompt(&mut loader, Path::new(text), &mut problems);
            }
        }
        let schedule_text = entry.cron.trim();
        if schedule_text.starts_with("@every")
            || (!schedule_text.starts_with('@') && schedule_text.split_whitespace().count() != 5)
        {
            problems.push(format!(
                "entry `{}`: cron `{}` has no Kubernetes CronJob form (5 fields or @hourly/@daily/@weekly/@monthly/@yearly)",
                entry.id, entry.cron
            ));
        }
        let key = relative_key(&workflow).unwrap_or_default();
        entries.push((entry, plan.spec.zone().name().to_string(), period_seconds(&plan.spec), key));
    }
    let size: usize = collected.files.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_CONFIGMAP_BYTES {
        problems.push(format!(
            "the files come to {size} bytes, more than a ConfigMap holds ({MAX_CONFIGMAP_BYTES})"
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let p = &options.prefix;
    let config_name = format!("{p}files");
    let account = format!("{p}runner");
    let needs_account = !collected.cronjobs.is_empty() || !collected.resources.is_empty();
    let mut objects = Vec::new();
    let data: Map<String, Json> =
        collected.files.iter().map(|(path, text)| (config_key(path), Json::String(text.clone()))).collect();
    objects.push(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": metadata(&config_name, options, &[]),
        "data": data,
    }));
    if needs_account {
        let mut rules = Vec::new();
        if !collected.cronjobs.is_empty() {
            rules.push(json!({
                "apiGroups": ["batch"], "resources": ["cronjobs"],
                "resourceNames": collected.cronjobs.iter().collect::<Vec<_>>(),
                "verbs": ["get", "patch"],
            }));
        }
        for ((group, resource), verbs) in &collected.resources {
            rules.push(json!({"apiGroups": [group], "resources": [resource], "verbs": verbs.iter().collect::<Vec<_>>()}));
        }
        objects.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(&account, options, &[])}));
        objects.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": metadata(&account, options, &[]), "rules": rules,
        }));
        objects.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": metadata(&account, options, &[]),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": options.namespace}],
        }));
    }
    let items: Vec<Json> =
        collected.files.keys().map(|path| json!({"key": config_key(path), "path": path})).collect();
    for (entry, zone, period, workflow) in entries {
        objects.push(cronjob(entry, &zone, period, &workflow, &collected, options, &items, needs_account));
    }
    Ok(objects)
}

#[allow(clippy::too_many_arguments)]
fn cronjob(
    entry: &ScheduleEntry,
    zone: &str,
    period: Option<i64>,
    workflow: &str,
    collected: &Collected,
    options: &Options,
    items: &[Json],
    needs_account: bool,
) -> Json {
    let p = &options.prefix;
    let name = format!("{p}{}", entry.id.replace('_', "-"));
    let mut args = vec![json!("run"), json!(workflow)];
    for (input, value) in &entry.inputs {
        let text = match value {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        args.push(json!("-i"));
        args.push(json!(format!("{input}={text}")));
    }
    if entry.dry_run {
        args.push(json!("--dry-run"));
    }
    // Secrets of every workflow the entry may run (it and what it calls), by env name.
    let mut secrets: BTreeMap<String, bool> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut stack = vec![workflow.to_string()];
    while let Some(next) = stack.pop() {
        if !seen.insert(next.clone()) {
            continue;
        }
        if let Some(own) = collected.secrets.get(&next) {
            for (env, optional) in own {
                let slot = secrets.entry(env.clone()).or_insert(*optional);
                *slot = *slot && *optional;
            }
        }
        if let Some(callees) = collected.calls.get(&next) {
            stack.extend(callees.iter().cloned());
        }
    }
    let mut env = vec![
        json!({"name": "RUNNER_STATE_DIR", "value": "/var/lib/runner"}),
        json!({"name": "HOME", "value": "/tmp"}),
    ];
    for (var, optional) in &secrets {
        env.push(json!({"name": var, "valueFrom": {"secretKeyRef": {"name": options.secret, "key": var, "optional": optional}}}));
    }
    let (concurrency, deadline) = (
        match entry.overlap {
            Overlap::Skip | Overlap::Queue => "Forbid",
            Overlap::Replace => "Replace",
        },
        match entry.missed {
            Missed::None => 60,
            Missed::Last | Missed::All => period.map_or(3600, |p| (p * 50).clamp(60, 7 * 24 * 3600)),
        },
    );
    let timeout = entry.timeout().as_secs().max(1);
    let extra = [("runner.dev/entry", entry.id.as_str())];
    let mut pod_spec = json!({
        "restartPolicy": "Never",
        "automountServiceAccountToken": needs_account,
        "securityContext": {
            "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": "runner",
            "image": options.image,
            "command": ["runner"],
            "args": args,
            "workingDir": MOUNT,
            "env": env,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
            "securityContext": {
                "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [
                {"name": "files", "mountPath": MOUNT, "readOnly": true},
                {"name": "state", "mountPath": "/var/lib/runner"},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        }],
        "volumes": [
            {"name": "files", "configMap": {"name": format!("{p}files"), "items": items}},
            {"name": "state", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ],
    });
    if needs_account && let Some(spec) = pod_spec.as_object_mut() {
        spec.insert("serviceAccountName".into(), json!(format!("{p}runner")));
    }
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": metadata(&name, options, &extra),
        "spec": {
            "schedule": entry.cron,
            "timeZone": zone,
            "concurrencyPolicy": concurrency,
            "startingDeadlineSeconds": deadline,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels(options, &extra)},
                "spec": {
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": timeout,
                    "template": {"metadata": {"labels": labels(options, &extra)}, "spec": pod_spec},
                },
            },
        },
    })
}

/// The objects as one YAML stream (`---` between documents).
pub(crate) fn to_yaml(objects: &[Json]) -> Result<String, String> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        let text = serde_saphyr::to_string(object).map_err(|e| format!("cannot write YAML: {e}"))?;
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_paths() {
        assert_eq!(
            relative_key(Path::new("workflows/../workflows/a.yaml")).as_deref(),
            Ok("workflows/a.yaml")
        );
        assert!(relative_key(Path::new("../x.yaml")).is_err());
        assert!(relative_key(Path::new("/etc/x.yaml")).is_err());
        assert_eq!(config_key("cron-prompts/worker.md"), "cron-prompts__worker.md");
    }

    #[test]
    fn options_are_checked() {
        let options = Options {
            image: "bad image".into(),
            namespace: "Fleet".into(),
            prefix: "x_".into(),
            labels: vec![("team".into(), "ops".into()), ("bad key!".into(), "v".into())],
            secret: "runner-secrets".into(),
        };
        let problems = check_options(&options);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[3].contains("bad key!"));
    }
}
