//! A fake Kubernetes API on 127.0.0.1, over TLS with a certificate from a CA made in
//! the test (rcgen). A TLS front accepts connections and forwards the plain bytes to
//! the shared fake [`Server`], whose handler keeps CronJobs and Jobs and checks the
//! bearer token, verbs, paths and content types (merge patch for `spec.suspend`,
//! apply patch for server-side apply, JSON for a create).
//!
//! Also writes an in-cluster service-account directory (`token`, `ca.crt`,
//! `namespace`) for `RUNNER_K8S_SERVICE_ACCOUNT_DIR`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Request, Response, Server};

/// The token the fake accepts.
pub const TOKEN: &str = "fake-sa-token-7f3a9c2e1b";

/// What the fake knows.
#[derive(Debug, Default)]
pub struct State {
    /// CronJobs by `namespace/name`.
    pub cronjobs: BTreeMap<String, Value>,
    /// Jobs by `namespace/name`, in creation order of their uid.
    pub jobs: BTreeMap<String, Value>,
    /// Answer every request with this status (and a Status body) instead.
    pub fail_with: Option<(u16, &'static str, String)>,
    /// Fail only writes (POST, PATCH) with this status.
    pub fail_writes: Option<(u16, &'static str, String)>,
    /// Delay every answer.
    pub delay: Duration,
    /// Problems the fake saw in requests (wrong content type, bad auth, ...).
    pub complaints: Vec<String>,
    uid: u64,
}

/// A running fake API.
pub struct Kubernetes {
    /// The plain backend (its `requests()` are what the client sent).
    pub backend: Server,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// Its state.
    pub state: Arc<Mutex<State>>,
    /// The service-account directory (token, ca.crt, namespace).
    pub sa_dir: tempfile::TempDir,
    front: Option<(tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>)>,
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    Response::json(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code}),
    )
}

fn parse_path(path: &str) -> Option<(String, String, String, Option<String>)> {
    // /apis/batch/v1/namespaces/NS/RESOURCE[/NAME]
    let rest = path.strip_prefix("/apis/batch/v1/namespaces/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [ns, resource] => Some(("batch/v1".into(), ns.to_string(), resource.to_string(), None)),
        [ns, resource, name] => {
            Some(("batch/v1".into(), ns.to_string(), resource.to_string(), Some(name.to_string())))
        }
        _ => None,
    }
}

fn answer(state: &Mutex<State>, request: &Request) -> Response {
    let Ok(mut state) = state.lock() else { return Response::raw(500, "poisoned") };
    let delay = state.delay;
    let response = answer_locked(&mut state, request);
    response.after(delay)
}

fn answer_locked(state: &mut State, request: &Request) -> Response {
    if request.headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {TOKEN}")) {
        state.complaints.push(format!("bad authorization on {} {}", request.method, request.target));
        return status(401, "Unauthorized", "Unauthorized");
    }
    if let Some((code, reason, message)) = &state.fail_with {
        return status(*code, reason, message);
    }
    let content_type = request.headers.get("content-type").cloned().unwrap_or_default();
    let Some((_, ns, resource, name)) = parse_path(request.path()) else {
        return status(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({})", request.path()),
        );
    };
    match (request.method.as_str(), resource.as_str(), name) {
        ("GET", "cronjobs", Some(name)) => match state.cronjobs.get(&format!("{ns}/{name}")) {
            Some(cronjob) => Response::json(200, cronjob),
            None => status(404, "NotFound", &format!("cronjobs.batch \"{name}\" not found")),
        },
        ("PATCH", "cronjobs", Some(name)) => {
            if content_type != "application/merge-patch+json" {
                state.complaints.push(format!("cronjob patch with content type `{content_type}`"));
                return status(415, "UnsupportedMediaType", "expected a merge patch");
            }
            if let Some((code, reason, message)) = &state.fail_writes {
                return status(*code, reason, message);
            }
            let Ok(patch) = serde_json::from_str::<Value>(&request.body) else {
                return status(400, "BadRequest", "patch is not JSON");
            };
            let Some(cronjob) = state.cronjobs.get_mut(&format!("{ns}/{name}")) else {
                return status(404, "NotFound", &format!("cronjobs.batch \"{name}\" not found"));
            };
            if patch != json!({"spec": {"suspend": true}}) && patch != json!({"spec": {"suspend": false}}) {
                state.complaints.push(format!("unexpected cronjob patch {patch}"));
                return status(422, "Invalid", "unexpected patch");
            }
            cronjob["spec"]["suspend"] = patch["spec"]["suspend"].clone();
            Response::json(200, cronjob)
        }
        ("POST", "jobs", None) => {
            if content_type != "application/json" {
                state.complaints.push(format!("job create with content type `{content_type}`"));
                return status(415, "UnsupportedMediaType", "expected JSON");
            }
            if let Some((code, reason, message)) = &state.fail_writes {
                return status(*code, reason, message);
            }
            let Ok(mut job) = serde_json::from_str::<Value>(&request.body) else {
                return status(400, "BadRequest", "body is not JSON");
            };
            let generated = job
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .map(|prefix| format!("{prefix}{:05}", state.uid + 1));
            let Some(name) =
                job.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string).or(generated)
            else {
                return status(422, "Invalid", "metadata.name: Required value");
            };
            job["metadata"]["name"] = json!(name);
            let key = format!("{ns}/{name}");
            if state.jobs.contains_key(&key) {
                return status(409, "AlreadyExists", &format!("jobs.batch \"{name}\" already exists"));
            }
            state.uid += 1;
            job["metadata"]["uid"] = json!(format!("uid-{}", state.uid));
            job["metadata"]["namespace"] = json!(ns);
            state.jobs.insert(key, job.clone());
            Response::json(201, &job)
        }
        ("PATCH", "jobs", Some(name)) => {
            if content_type != "application/apply-patch+yaml" {
                state.complaints.push(format!("apply with content type `{content_type}`"));
                return status(415, "UnsupportedMediaType", "expected an apply patch");
            }
            if !request.target.contains("fieldManager=") {
                state.complaints.push("apply without fieldManager".into());
                return status(422, "Invalid", "fieldManager is required for apply requests");
            }
            let Ok(mut job) = serde_json::from_str::<Value>(&request.body) else {
                return status(400, "BadRequest", "body is not YAML");
            };
            let key = format!("{ns}/{name}");
            let existed = state.jobs.contains_key(&key);
            if !existed {
                state.uid += 1;
            }
            let uid = state
                .jobs
                .get(&key)
                .and_then(|j| j.pointer("/metadata/uid").cloned())
                .unwrap_or(json!(format!("uid-{}", state.uid)));
            job["metadata"]["uid"] = uid;
            state.jobs.insert(key, job.clone());
            Response::json(if existed { 200 } else { 201 }, &job)
        }
        ("GET", "jobs", Some(name)) => match state.jobs.get(&format!("{ns}/{name}")) {
            Some(job) => {
                let mut job = job.clone();
                job["status"] = json!({"conditions": [{"type": "Complete", "status": "True"}]});
                Response::json(200, &job)
            }
            None => status(404, "NotFound", &format!("jobs.batch \"{name}\" not found")),
        },
        (method, resource, _) => {
            state.complaints.push(format!("unexpected {method} on {resource}"));
            status(405, "MethodNotAllowed", "not supported by the fake")
        }
    }
}

impl Kubernetes {
    /// Start the fake with the given CronJobs (`namespace/name` -> suspended).
    pub fn start(cronjobs: &[(&str, bool)]) -> Kubernetes {
        let mut initial = State::default();
        for (key, suspended) in cronjobs {
            let (ns, name) = key.split_once('/').expect("namespace/name");
            initial.cronjobs.insert(
                key.to_string(),
                json!({"apiVersion": "batch/v1", "kind": "CronJob",
                       "metadata": {"name": name, "namespace": ns, "uid": format!("cj-{name}")},
                       "spec": {"schedule": "*/5 * * * *", "suspend": suspended}}),
            );
        }
        let state = Arc::new(Mutex::new(initial));
        let shared = state.clone();
        let backend = Server::start(move |request, _| answer(&shared, request));
        let backend_port: u16 = backend.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");

        // The test CA and a server certificate for 127.0.0.1 signed by it.
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "runner test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
        let server_key = rcgen::KeyPair::generate().expect("server key");
        let server_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("params");
        let server_cert = server_params.signed_by(&server_key, &ca).expect("server cert");
        let ca_pem = ca.pem();

        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
            )
            .expect("tls config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, mut shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                ready_tx.send(listener.local_addr().expect("addr").port()).expect("ready");
                loop {
                    tokio::select! {
                        _ = &mut shutdown_rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let acceptor = acceptor.clone();
                            tokio::spawn(async move {
                                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                                let Ok(mut plain) = tokio::net::TcpStream::connect(("127.0.0.1", backend_port)).await else { return };
                                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                            });
                        }
                    }
                }
            });
        });
        let port = ready_rx.recv_timeout(Duration::from_secs(10)).expect("tls front started");

        let sa_dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(sa_dir.path().join("token"), format!("{TOKEN}\n")).expect("token");
        std::fs::write(sa_dir.path().join("ca.crt"), &ca_pem).expect("ca");
        std::fs::write(sa_dir.path().join("namespace"), "fleet\n").expect("namespace");
        Kubernetes {
            backend,
            url: format!("https://127.0.0.1:{port}"),
            state,
            sa_dir,
            front: Some((shutdown_tx, thread)),
        }
    }

    /// The port of the TLS front.
    pub fn port(&self) -> String {
        self.url.rsplit(':').next().unwrap_or_default().to_string()
    }

    /// The environment of an in-cluster run against this fake.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into()),
            ("KUBERNETES_SERVICE_PORT".into(), self.port()),
            ("RUNNER_K8S_SERVICE_ACCOUNT_DIR".into(), self.sa_dir.path().display().to_string()),
        ]
    }

    /// The service-account directory.
    pub fn sa_path(&self) -> PathBuf {
        self.sa_dir.path().to_path_buf()
    }

    /// Whether a CronJob is suspended.
    pub fn suspended(&self, key: &str) -> Option<bool> {
        let state = self.state.lock().ok()?;
        state.cronjobs.get(key)?.pointer("/spec/suspend")?.as_bool()
    }

    /// Requests received, as `METHOD path`.
    pub fn calls(&self) -> Vec<String> {
        self.backend.requests().iter().map(|r| format!("{} {}", r.method, r.path())).collect()
    }

    /// Problems seen in requests.
    pub fn complaints(&self) -> Vec<String> {
        self.state.lock().map(|s| s.complaints.clone()).unwrap_or_default()
    }

    /// Make every answer wait.
    pub fn set_delay(&self, delay: Duration) {
        if let Ok(mut state) = self.state.lock() {
            state.delay = delay;
        }
    }

    /// Answer every request with this error.
    pub fn fail_with(&self, code: u16, reason: &'static str, message: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.fail_with = Some((code, reason, message.to_string()));
        }
    }

    /// Fail writes (POST, PATCH) with this error.
    pub fn fail_writes(&self, code: u16, reason: &'static str, message: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.fail_writes = Some((code, reason, message.to_string()));
        }
    }

    /// The jobs created.
    pub fn jobs(&self) -> Vec<Value> {
        self.state.lock().map(|s| s.jobs.values().cloned().collect()).unwrap_or_default()
    }
}

impl Drop for Kubernetes {
    fn drop(&mut self) {
        if let Some((tx, thread)) = self.front.take() {
            let _ = tx.send(());
            let _ = thread.join();
        }
    }
}
