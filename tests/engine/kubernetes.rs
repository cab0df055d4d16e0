//! The `kubernetes` cron backend and the `kubernetes` step against the fake Kubernetes
//! API (TLS with a CA made in the test, bearer token, content types checked).

use std::time::Duration;

use serde_json::json;

use super::super::fake::kubernetes::{Kubernetes, TOKEN};
use super::{CRON_WORKFLOW, Case, code, events, finished, registry, stderr, stdout, step};

const BACKEND: &str = "{type: kubernetes, timeout: 5s}";

fn env(fake: &Kubernetes) -> Vec<(String, String)> {
    fake.env()
}

fn run(case: &Case, args: &[&str], fake: &Kubernetes) -> std::process::Output {
    let env = env(fake);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    case.run(args, &pairs)
}

fn no_token(output: &std::process::Output) {
    assert!(!stdout(output).contains(TOKEN), "token in stdout: {}", stdout(output));
    assert!(!stderr(output).contains(TOKEN), "token in stderr: {}", stderr(output));
}

#[test]
fn suspend_and_resume_patch_spec_suspend_only_when_it_differs() {
    let fake = Kubernetes::start(&[("fleet/worker-local", false), ("fleet/worker-cloud", true)]);
    let case = Case::new(CRON_WORKFLOW);
    registry(&case, BACKEND);

    // Disable local (running): GET then one merge patch.
    let output = run(&case, &["-o", "json", "-i", "lane=local", "-i", "on=false"], &fake);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(fake.suspended("fleet/worker-local"), Some(true));
    let result = finished(&events(&output))["outputs"]["result"].clone();
    assert_eq!(result["changed"], true);
    assert_eq!(result["applied"], true);
    assert_eq!(result["was_enabled"], true);
    assert_eq!(result["namespace"], "fleet", "from the service account's namespace file");
    // Resume cloud (suspended).
    let output = run(&case, &["-i", "lane=cloud", "-i", "on=true"], &fake);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(fake.suspended("fleet/worker-cloud"), Some(false));
    assert_eq!(
        fake.calls(),
        [
            "GET /apis/batch/v1/namespaces/fleet/cronjobs/worker-local",
            "PATCH /apis/batch/v1/namespaces/fleet/cronjobs/worker-local",
            "GET /apis/batch/v1/namespaces/fleet/cronjobs/worker-cloud",
            "PATCH /apis/batch/v1/namespaces/fleet/cronjobs/worker-cloud",
        ]
    );
    assert!(fake.complaints().is_empty(), "{:?}", fake.complaints());
    no_token(&output);
}

#[test]
fn already_in_state_sends_no_patch() {
    let fake = Kubernetes::start(&[("fleet/worker-local", true)]);
    let case = Case::new(CRON_WORKFLOW);
    registry(&case, BACKEND);
    let output = run(&case, &["-o", "json", "-i", "lane=local", "-i", "on=false"], &fake);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let result = finished(&events(&output))["outputs"]["result"].clone();
    assert_eq!((result["changed"].clone(), result["applied"].clone()), (json!(false), json!(false)));
    assert_eq!(fake.calls(), ["GET /apis/batch/v1/namespaces/fleet/cronjobs/worker-local"]);
}

#[test]
fn dry_run_shows_the_exact_patch_and_sends_none() {
    let fake = Kubernetes::start(&[("fleet/worker-local", false)]);
    let case = Case::new(CRON_WORKFLOW);
    registry(&case, "{type: kubernetes, namespace: fleet, cronjob: \"runner-{{ lane.id }}\"}");
    fake.state.lock().expect("state").cronjobs.insert(
        "fleet/runner-local".into(),
        json!({"metadata": {"name": "runner-local"}, "spec": {"suspend": false}}),
    );
    let output = run(&case, &["--dry-run", "-o", "json", "-i", "lane=local", "-i", "on=false"], &fake);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let planned = events(&output).into_iter().find(|e| e["event"] == "step_planned").expect("planned");
    assert_eq!(
        planned["action"]["patch"],
        json!({"method": "PATCH", "path": "/apis/batch/v1/namespaces/fleet/cronjobs/runner-local",
               "content_type": "application/merge-patch+json", "body": {"spec": {"suspend": true}}})
    );
    assert_eq!(fake.calls(), ["GET /apis/batch/v1/namespaces/fleet/cronjobs/runner-local"]);
    assert_eq!(fake.suspended("fleet/runner-local"), Some(false));
}

#[test]
fn api_errors_are_one_line_and_never_show_the_token() {
    let case = Case::new(CRON_WORKFLOW);
    registry(&case, BACKEND);
    // 403
    let fake = Kubernetes::start(&[("fleet/worker-local", false)]);
    fake.fail_with(
        403,
        "Forbidden",
        &format!(
            "cronjobs.batch \"worker-local\" is forbidden: token {TOKEN} cannot get\nin namespace fleet"
        ),
    );
    let output = run(&case, &["-i", "lane=local", "-i", "on=false"], &fake);
    assert_eq!(code(&output), 1);
    let text = stderr(&output);
    assert!(
        text.contains("reading CronJob fleet/worker-local failed, nothing changed: Kubernetes API: 403 Forbidden on GET /apis/batch/v1/namespaces/fleet/cronjobs/worker-local: cronjobs.batch \"worker-local\" is forbidden: token *** cannot get in namespace fleet"),
        "{text}"
    );
    no_token(&output);
    // 404: no such CronJob.
    let fake = Kubernetes::start(&[]);
    let output = run(&case, &["-i", "lane=local", "-i", "on=false"], &fake);
    assert_eq!(code(&output), 1);
    assert!(stderr(&output).contains("404 Not Found on GET /apis/batch/v1/namespaces/fleet/cronjobs/worker-local: cronjobs.batch \"worker-local\" not found"), "{}", stderr(&output));
    // A malformed CronJob is not written on a guess.
    let fake = Kubernetes::start(&[("fleet/worker-local", false)]);
    fake.state.lock().expect("state").cronjobs.get_mut("fleet/worker-local").expect("cj")["spec"]["suspend"] =
        json!("no");
    let output = run(&case, &["-i", "lane=local", "-i", "on=false"], &fake);
    assert_eq!(code(&output), 1);
    assert!(stderr(&output).contains("non-boolean spec.suspend; nothing changed"), "{}", stderr(&output));
    // 409 on the patch (the GET succeeds).
    let fake = Kubernetes::start(&[("fleet/worker-local", false)]);
    fake.fail_writes(
        409,
        "Conflict",
        "Operation cannot be fulfilled on cronjobs.batch \"worker-local\": the object has been modified",
    );
    let output = run(&case, &["-i", "lane=local", "-i", "on=false"], &fake);
    assert_eq!(code(&output), 1);
    assert!(
        stderr(&output).contains("patching CronJob fleet/worker-local failed: Kubernetes API: 409 Conflict on PATCH /apis/batch/v1/namespaces/fleet/cronjobs/worker-local: Operation cannot be fulfilled"),
        "{}",
        stderr(&output)
    );
    assert_eq!(fake.suspended("fleet/worker-local"), Some(false));
}

#[test]
fn api_down_and_slow_api_fail_within_the_timeout() {
    let case = Case::new(CRON_WORKFLOW);
    registry(&case, "{type: kubernetes, timeout: 1s}");
    // Down: nothing listens on the port any more.
    let fake = Kubernetes::start(&[("fleet/worker-local", false)]);
    let mut env = fake.env();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port().to_string()
    };
    env[1].1 = closed;
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let output = case.run(&["-i", "lane=local", "-i", "on=false"], &pairs);
    assert_eq!(code(&output), 1);
    assert!(stderr(&output).contains("is unreachable"), "{}", stderr(&output));
    // Slow: answers after 4s, the backend's limit is 1s.
    fake.set_delay(Duration::from_secs(4));
    let started = std::time::Instant::now();
    let output = run(&case, &["-i", "lane=local", "-i", "on=false"], &fake);
    assert_eq!(code(&output), 1);
    assert!(stderr(&output).contains("did not answer"), "{}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(4), "the timeout ended it");
    assert_eq!(fake.suspended("fleet/worker-local"), Some(false));
}

#[test]
fn the_cluster_ca_is_the_only_trust_root() {
    let fake = Kubernetes::start(&[("fleet/worker-local", false)]);
    let other = Kubernetes::start(&[]);
    // The service account dir of `other` holds another CA (and the same token).
    let mut env = fake.env();
    env[2].1 = other.sa_path().display().to_string();
    let case = Case::new(CRON_WORKFLOW);
    registry(&case, BACKEND);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let output = case.run(&["-i", "lane=local", "-i", "on=false"], &pairs);
    assert_eq!(code(&output), 1);
    assert!(stderr(&output).contains("is unreachable"), "{}", stderr(&output));
    assert!(fake.calls().is_empty(), "nothing reached the API through an untrusted certificate");
}

const JOB_WORKFLOW: &str = r#"name: t
inputs:
  issue: {type: integer}
steps:
  - id: job
    type: kubernetes
    action: create
    manifest:
      apiVersion: batch/v1
      kind: Job
      metadata:
        name: "worker-{{ inputs.issue }}"
        labels: {issue: "{{ inputs.issue }}"}
      spec:
        ttlSecondsAfterFinished: 600
        template:
          spec:
            restartPolicy: Never
            containers: [{name: w, image: "example/worker:1"}]
    wait: {condition: Complete, timeout: 20s}
outputs:
  job: "{{ steps.job.output }}"
"#;

#[test]
fn the_step_creates_applies_and_waits() {
    let fake = Kubernetes::start(&[]);
    let case = Case::new(JOB_WORKFLOW);
    let output = run(&case, &["-o", "json", "-i", "issue=7"], &fake);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let job = finished(&events(&output))["outputs"]["job"].clone();
    assert_eq!(
        (job["name"].clone(), job["uid"].clone(), job["created"].clone(), job["condition"].clone()),
        (json!("worker-7"), json!("uid-1"), json!(true), json!("Complete"))
    );
    assert_eq!(fake.jobs()[0]["metadata"]["labels"]["issue"], "7");
    // Creating it again: 409 AlreadyExists, one line.
    let output = run(&case, &["-i", "issue=7"], &fake);
    assert_eq!(code(&output), 1);
    assert!(
        stderr(&output).contains("409 Conflict on POST /apis/batch/v1/namespaces/fleet/jobs: jobs.batch \"worker-7\" already exists"),
        "{}",
        stderr(&output)
    );
    // Server-side apply: PATCH with the apply content type and a field manager.
    let apply = Case::new(&JOB_WORKFLOW.replace("action: create", "action: apply"));
    let output = run(&apply, &["-o", "json", "-i", "issue=8"], &fake);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        fake.backend.requests().iter().any(|r| r.method == "PATCH"
            && r.target == "/apis/batch/v1/namespaces/fleet/jobs/worker-8?fieldManager=runner"
            && r.headers.get("content-type").map(String::as_str) == Some("application/apply-patch+yaml")),
        "{:?}",
        fake.calls()
    );
    assert!(fake.complaints().is_empty(), "{:?}", fake.complaints());
    no_token(&output);
}

#[test]
fn the_step_dry_run_shows_the_manifest() {
    let fake = Kubernetes::start(&[]);
    let case = Case::new(JOB_WORKFLOW);
    let output = run(&case, &["--dry-run", "-o", "json", "-i", "issue=9"], &fake);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(step(&events(&output), "job")["status"], "planned");
    let action =
        events(&output).into_iter().find(|e| e["event"] == "step_planned").expect("planned")["action"]
            .clone();
    assert_eq!(action["method"], "POST");
    assert_eq!(action["path"], "/apis/batch/v1/namespaces/fleet/jobs");
    assert_eq!(
        action["manifest"]["metadata"],
        json!({"name": "worker-9", "namespace": "fleet", "labels": {"issue": "9"}})
    );
    assert!(fake.calls().is_empty());
}

// ---------------------------------------------------------------------------
// The bridge example end to end: fake Dispatch + fake Kubernetes API.

fn bridge(dispatch: &super::super::fake::dispatch::Dispatch, fake: &Kubernetes) -> std::process::Output {
    let state = tempfile::tempdir().expect("tempdir");
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin!("runner"));
    command
        .current_dir(super::super::root())
        .args(["run", "examples/kubernetes-bridge/bridge.yaml", "-o", "json"])
        .env("NO_COLOR", "1")
        .env("RUNNER_STATE_DIR", state.path())
        .env("DISPATCH_URL", &dispatch.server.url)
        .env("DISPATCH_AGENT_TOKEN", "dispatch-secret-token")
        .env("WORKER_IMAGE", "example/worker:2");
    for (key, value) in fake.env() {
        command.env(key, value);
    }
    command.output().expect("runner runs")
}

#[test]
fn the_bridge_claims_and_creates_a_job_per_lane() {
    let dispatch = super::super::fake::dispatch::Dispatch::start(Duration::ZERO);
    dispatch.add_ready("local", "iss-7", "o/demo", 7);
    let fake = Kubernetes::start(&[]);
    let output = bridge(&dispatch, &fake);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let lanes = finished(&events(&output))["outputs"]["lanes"].clone();
    assert_eq!(lanes[0]["result"], "job-created", "{lanes}");
    assert_eq!(lanes[0]["job"], "worker-local-7-00001");
    assert_eq!(lanes[1], json!({"lane": "cloud", "result": "idle"}));
    let jobs = fake.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0]["metadata"]["labels"],
        json!({"runner.dev/lane": "local", "runner.dev/repo": "o.demo", "runner.dev/issue": "7"})
    );
    assert_eq!(jobs[0]["spec"]["ttlSecondsAfterFinished"], 86400);
    assert!(jobs[0]["metadata"].get("ownerReferences").is_none(), "owner-less");
    assert_eq!(jobs[0]["spec"]["template"]["spec"]["containers"][0]["image"], "example/worker:2");
    assert_eq!(
        dispatch.state.lock().expect("state").claims.get("iss-7").map(String::as_str),
        Some("bridge-local")
    );
    assert!(fake.complaints().is_empty(), "{:?}", fake.complaints());
    no_token(&output);
    assert!(!stdout(&output).contains("dispatch-secret-token"));
}

#[test]
fn the_bridge_releases_the_claim_when_the_job_cannot_be_created() {
    let dispatch = super::super::fake::dispatch::Dispatch::start(Duration::ZERO);
    dispatch.add_ready("local", "iss-7", "o/demo", 7);
    let fake = Kubernetes::start(&[]);
    fake.fail_writes(403, "Forbidden", "jobs.batch is forbidden: cannot create resource \"jobs\"");
    let output = bridge(&dispatch, &fake);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let error = finished(&events(&output))["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("the worker Job for o/demo#7 was not created (Kubernetes API: 403 Forbidden on POST /apis/batch/v1/namespaces/fleet/jobs"),
        "{error}"
    );
    assert!(!error.contains('\n'), "one line: {error}");
    assert!(dispatch.state.lock().expect("state").claims.is_empty(), "the claim was released");
    assert!(fake.jobs().is_empty());
    no_token(&output);
}

// ---------------------------------------------------------------------------
// `runner export kubernetes`

fn export(schedule: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin!("runner"));
    command
        .current_dir(super::super::root())
        .args(["export", "kubernetes", schedule, "--image", "ghcr.io/example/runner:0.1.0", "-n", "fleet"])
        .args(["--label", "team=fleet"])
        .env("NO_COLOR", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("runner runs")
}

fn documents(output: &std::process::Output) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple::<serde_json::Value>(&stdout(output)).expect("a YAML stream")
}

/// Deserialise into the official type, serialise back: equal means no field was
/// unknown to the type (k8s-openapi ignores unknown fields) and every value has its type.
fn strict<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &serde_json::Value) {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc}"));
    let back = serde_json::to_value(&typed).expect("serialise");
    assert_eq!(&back, doc, "the object round-trips through {}", std::any::type_name::<T>());
}

fn check_official_types(docs: &[serde_json::Value]) {
    use k8s_openapi::api::{batch::v1 as batch, core::v1 as core, rbac::v1 as rbac};
    for doc in docs {
        match doc["kind"].as_str().unwrap_or_default() {
            "ConfigMap" => strict::<core::ConfigMap>(doc),
            "ServiceAccount" => strict::<core::ServiceAccount>(doc),
            "CronJob" => strict::<batch::CronJob>(doc),
            "Role" => strict::<rbac::Role>(doc),
            "RoleBinding" => strict::<rbac::RoleBinding>(doc),
            other => panic!("unexpected kind {other}"),
        }
    }
}

#[test]
fn the_shipped_schedule_exports_deterministic_manifests() {
    let output = export("workflows/schedule.yaml", &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&export("workflows/schedule.yaml", &[])), stdout(&output), "deterministic");
    let mut docs = documents(&output);
    check_official_types(&docs);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap_or_default()).collect();
    assert_eq!(kinds, ["ConfigMap", "CronJob", "CronJob", "CronJob", "CronJob"], "openclaw backend: no RBAC");
    // The files are snapshotted by name only: their text is the repository's.
    if let Some(data) = docs[0]["data"].as_object_mut() {
        for value in data.values_mut() {
            *value = json!("[file]");
        }
    }
    let text: String =
        docs.iter().map(|d| format!("---\n{}", serde_saphyr::to_string(d).expect("yaml"))).collect();
    insta::assert_snapshot!("export_kubernetes_shipped_schedule", text);
}

#[test]
fn the_bridge_export_grants_exactly_what_it_needs() {
    let output = export("examples/kubernetes-bridge/schedule.yaml", &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let docs = documents(&output);
    check_official_types(&docs);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap_or_default()).collect();
    assert_eq!(kinds, ["ConfigMap", "ServiceAccount", "Role", "RoleBinding", "CronJob"]);
    assert_eq!(
        docs[2]["rules"],
        json!([
            {"apiGroups": ["batch"], "resources": ["cronjobs"], "resourceNames": ["worker-cloud", "worker-local"], "verbs": ["get", "patch"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]},
        ])
    );
    let files: Vec<&String> = docs[0]["data"].as_object().expect("data").keys().collect();
    assert_eq!(
        files,
        [
            "examples__kubernetes-bridge__bridge-lane.yaml",
            "examples__kubernetes-bridge__bridge.yaml",
            "examples__kubernetes-bridge__lanes.yaml",
            "examples__kubernetes-bridge__schedule.yaml",
            "examples__kubernetes-bridge__worker.md",
        ]
    );
    let cronjob = &docs[4];
    let pod = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "runner-runner");
    assert_eq!(pod["containers"][0]["args"], json!(["run", "examples/kubernetes-bridge/bridge.yaml"]));
    assert_eq!(cronjob["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"], 90);
    assert_eq!(cronjob["metadata"]["labels"]["team"], "fleet");
}

#[test]
fn the_export_references_secrets_and_never_holds_their_values() {
    let value = "sk-live-0123456789abcdef";
    let output = export(
        "examples/kubernetes-bridge/schedule.yaml",
        &[("DISPATCH_AGENT_TOKEN", value), ("KUBERNETES_SERVICE_HOST", "127.0.0.1")],
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(!stdout(&output).contains(value));
    let docs = documents(&output);
    let env = &docs[4]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array().expect("env").contains(&json!({"name": "DISPATCH_AGENT_TOKEN", "valueFrom":
            {"secretKeyRef": {"name": "runner-secrets", "key": "DISPATCH_AGENT_TOKEN", "optional": false}}})),
        "{env}"
    );
}

#[test]
fn export_refuses_what_kubernetes_cannot_schedule() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("wf.yaml"), "name: t\nsteps:\n  - type: emit\n    text: hi\n")
        .expect("write");
    std::fs::write(
        dir.path().join("schedule.yaml"),
        "kind: schedule\nentries:\n  - {id: every, workflow: wf.yaml, cron: '@every 5m'}\n  - {id: secs, workflow: wf.yaml, cron: '0 */5 * * * *'}\n",
    )
    .expect("write");
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin!("runner"))
        .current_dir(dir.path())
        .args(["export", "kubernetes", "schedule.yaml", "--image", "r:1", "--namespace", "Bad_NS"])
        .output()
        .expect("runs");
    assert_eq!(code(&output), 65);
    assert_eq!(stdout(&output), "");
    let text = stderr(&output);
    assert!(text.contains("--namespace `Bad_NS` is not a DNS label"), "{text}");
    assert!(text.contains("entry `every`: cron `@every 5m` has no Kubernetes CronJob form"), "{text}");
    assert!(text.contains("entry `secs`: cron `0 */5 * * * *` has no Kubernetes CronJob form"), "{text}");
}

#[test]
fn a_kubeconfig_current_context_works_too() {
    let fake = Kubernetes::start(&[("ops/worker-local", false)]);
    let case = Case::new(CRON_WORKFLOW);
    registry(&case, BACKEND);
    case.write(
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\ncontexts:\n- name: fake\n  context: {{cluster: c, user: u, namespace: ops}}\nclusters:\n- name: c\n  cluster: {{server: '{}', certificate-authority: {}}}\nusers:\n- name: u\n  user: {{token: {TOKEN}}}\n",
            fake.url,
            fake.sa_path().join("ca.crt").display()
        ),
    );
    let kubeconfig = case.path("kubeconfig").display().to_string();
    let output = case.run(&["-i", "lane=local", "-i", "on=false"], &[("KUBECONFIG", &kubeconfig)]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(fake.suspended("ops/worker-local"), Some(true), "the context's namespace");
    no_token(&output);
}

#[test]
fn a_recording_never_holds_the_token() {
    let fake = Kubernetes::start(&[("fleet/worker-local", false)]);
    fake.fail_with(403, "Forbidden", &format!("token {TOKEN} may not patch"));
    let case = Case::new(CRON_WORKFLOW);
    registry(&case, BACKEND);
    let recording = case.path("recorded.test.yaml").display().to_string();
    let output = run(&case, &["--record", &recording, "-i", "lane=local", "-i", "on=false"], &fake);
    assert_eq!(code(&output), 1);
    let recorded = std::fs::read_to_string(&recording).expect("recording written");
    assert!(recorded.contains("/apis/batch/v1/namespaces/fleet/cronjobs/worker-local"), "{recorded}");
    assert!(!recorded.contains(TOKEN), "{recorded}");
    no_token(&output);
}
