//! A stateful fake Dispatch on 127.0.0.1: a ready queue per lane, active work per
//! agent, a PR-fix queue, claims that conflict (409) when another agent holds the
//! issue, and recorded agent runs. Plus fake `gh` and `openclaw` programs whose cron
//! toggles land in a state file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Request, Response, Server};

/// What the fake knows.
#[derive(Debug, Default)]
pub struct State {
    /// Ready items per lane (Dispatch's queue cache: it keeps saying `claimable` until
    /// it syncs, so a stale item can still be claimed by two agents).
    pub queues: HashMap<String, Vec<Value>>,
    /// Active work per agent name.
    pub active: HashMap<String, Value>,
    /// Issue id -> agent holding its lease.
    pub claims: HashMap<String, String>,
    /// Recorded agent runs.
    pub runs: Vec<Value>,
    /// Heartbeats received, by agent.
    pub heartbeats: Vec<String>,
}

/// A running fake Dispatch.
pub struct Dispatch {
    /// The HTTP server.
    pub server: Server,
    /// Its state.
    pub state: Arc<Mutex<State>>,
}

fn ready_item(id: &str, repo: &str, number: u64, lane: &str) -> Value {
    json!({
        "issueId": id, "id": id, "repoFullName": repo, "number": number, "title": format!("Issue {number}"),
        "lane": lane, "status": "status/ready", "labels": ["status/ready"], "claimable": true,
    })
}

impl Dispatch {
    /// Start a fake with every answer delayed by `latency`.
    pub fn start(latency: Duration) -> Dispatch {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let server = Server::start(move |request, _| {
            let response = answer(&shared, request);
            response.after(latency)
        });
        Dispatch { server, state }
    }

    /// Put a ready item into a lane's queue.
    pub fn add_ready(&self, lane: &str, id: &str, repo: &str, number: u64) {
        if let Ok(mut state) = self.state.lock() {
            state.queues.entry(lane.to_string()).or_default().push(ready_item(id, repo, number, lane));
        }
    }

    /// Give an agent active work on a lane.
    pub fn set_active(&self, agent: &str, lane: &str, repo: &str, number: u64) {
        if let Ok(mut state) = self.state.lock() {
            state.active.insert(
                agent.to_string(),
                json!({"hasActiveWork": true, "context": {
                    "repoFullName": repo, "issueNumber": number, "lane": lane,
                    "nextAction": "Address the review comments", "checkpoint": "PR_OPENED"
                }}),
            );
        }
    }
}

fn answer(state: &Arc<Mutex<State>>, request: &Request) -> Response {
    let Ok(mut state) = state.lock() else { return Response::raw(500, "poisoned") };
    let path = request.path().to_string();
    let query: HashMap<String, String> = request
        .target
        .split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| {
                    (k.to_string(), percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let body: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["api", "agents", agent, "heartbeat"]) => {
            state.heartbeats.push((*agent).to_string());
            Response::json(
                200,
                &json!({"status": "ok", "summary": "synced 2 repos", "warnings": [], "errors": [], "touchedIssueUrls": []}),
            )
        }
        ("GET", ["api", "pr-fix-queue", "queued"]) => Response::json(200, &json!([])),
        ("GET", ["api", "agents", agent, "active-work"]) => {
            Response::json(200, state.active.get(*agent).unwrap_or(&json!({"hasActiveWork": false})))
        }
        ("GET", ["api", "issues"]) => Response::json(200, &json!([])),
        ("GET", ["api", "agent-work"]) => Response::json(200, &json!({"activeWork": []})),
        ("GET", ["api", "agents", _agent, "queue"]) => {
            let lane = query.get("lane").cloned().unwrap_or_default();
            Response::json(200, &Value::Array(state.queues.get(&lane).cloned().unwrap_or_default()))
        }
        ("POST", ["api", "issues", "claim"]) => {
            let id = body["issueId"].as_str().unwrap_or_default().to_string();
            let agent = body["agentName"].as_str().unwrap_or_default().to_string();
            match state.claims.get(&id) {
                Some(holder) if holder != &agent => {
                    Response::json(409, &json!({"error": "issue is actively leased", "holder": holder}))
                }
                _ => {
                    state.claims.insert(id.clone(), agent.clone());
                    Response::json(
                        200,
                        &json!({"claimed": true, "issueId": id, "agentName": agent, "leaseSeconds": 3600}),
                    )
                }
            }
        }
        ("GET", ["api", "agents", _agent, "next-task"]) => Response::json(200, &json!({"type": "idle"})),
        ("POST", ["api", "agent-runs"]) => {
            state.runs.push(body);
            Response::json(201, &json!({"id": format!("run{}", state.runs.len())}))
        }
        _ => Response::json(404, &json!({"error": "not found"})),
    }
}

/// Write fake `gh` and `openclaw` into `dir`; `openclaw cron edit ID --enable|--disable`
/// appends `ID enabled|disabled` to `cron-state.log` there. Returns the PATH to use.
pub fn fake_programs(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    let state = dir.join("cron-state.log");
    let write = |name: &str, body: String| {
        let path = bin.join(name);
        std::fs::write(&path, body).expect("write program");
        let mut permissions = std::fs::metadata(&path).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&path, permissions).expect("chmod");
    };
    write(
        "openclaw",
        format!(
            "#!/bin/sh\n[ \"$1 $2\" = \"cron edit\" ] || exit 2\ncase \"$4\" in --enable) s=enabled;; --disable) s=disabled;; *) exit 2;; esac\necho \"$3 $s\" >> '{}'\n",
            state.display()
        ),
    );
    write(
        "gh",
        "#!/bin/sh\n[ \"$1\" = \"--version\" ] && { echo 'gh version 2 (fake)'; exit 0; }\necho '{}'\n"
            .to_string(),
    );
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// The last state each cron id was set to.
pub fn cron_state(dir: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(dir.join("cron-state.log")).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(id, state)| (id.to_string(), state.to_string()))
        .collect()
}

/// A checkout for `repo` under `root` (`root/<name>/.git`).
pub fn checkout(root: &Path, repo: &str) -> PathBuf {
    let name = repo.rsplit('/').next().unwrap_or(repo);
    let path = root.join(name);
    std::fs::create_dir_all(path.join(".git")).expect("mkdir checkout");
    path
}
