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
    /// PR-fix items: `{id, repo, pr, lane, status, generation, handouts: ["agent@gen"],
    /// acks: ["agent@gen"]}`.
    pub pr_fix: Vec<Value>,
    /// tasks/report idempotency: (agent, key) -> (canonical payload, agentRunId).
    pub report_keys: HashMap<(String, String), (String, String)>,
    /// Groomer runs asked for (their request bodies).
    pub groomer_runs: Vec<Value>,
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

impl Dispatch {
    /// Queue a PR-fix item (generation 1) in a Dispatch PR-fix lane (`NORMAL`, `ESCALATED`).
    pub fn add_pr_fix(&self, id: &str, repo: &str, pr: u64, lane: &str) {
        if let Ok(mut state) = self.state.lock() {
            let queued_at = format!("2026-10-01T00:00:{:02}Z", state.pr_fix.len());
            state.pr_fix.push(json!({
                "id": id, "repo": repo, "pr": pr, "lane": lane, "status": "QUEUED", "generation": 1,
                "handouts": [], "acks": [], "queuedAt": queued_at,
            }));
        }
    }

    /// What the hand-out sweep does to an unacknowledged item after 30 minutes: a new
    /// generation, handed to nobody yet.
    pub fn reclaim(&self, id: &str) {
        if let Ok(mut state) = self.state.lock()
            && let Some(item) = state.pr_fix.iter_mut().find(|item| item["id"] == id)
        {
            item["generation"] = json!(item["generation"].as_u64().unwrap_or(1) + 1);
            item["handouts"] = json!([]);
            item["acks"] = json!([]);
        }
    }

    /// A PR-fix item by id (a copy).
    pub fn pr_fix_item(&self, id: &str) -> Value {
        self.state
            .lock()
            .ok()
            .and_then(|state| state.pr_fix.iter().find(|item| item["id"] == id).cloned())
            .unwrap_or(Value::Null)
    }
}

/// A JSON value with every object's keys sorted, as text: the payload identity
/// tasks/report compares under one idempotency key.
fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

fn has(list: &Value, entry: &str) -> bool {
    list.as_array().is_some_and(|items| items.iter().any(|v| v == entry))
}

fn push(list: &mut Value, entry: String) {
    if let Some(items) = list.as_array_mut() {
        items.push(Value::String(entry));
    }
}

/// Each lane's PR-fix lane (`lanes[].dispatch.pr_fix_lane`) as the shipped lane registry
/// (workflows/lanes.yaml) configures it, read once.
fn registry_pr_fix_lanes() -> &'static HashMap<String, String> {
    static LANES: std::sync::OnceLock<HashMap<String, String>> = std::sync::OnceLock::new();
    LANES.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/lanes.yaml");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let registry = runner::support::parse_yaml(&text).map(|d| d.value).unwrap_or_default();
        let lanes = registry["lanes"].as_array().cloned().unwrap_or_default();
        lanes
            .iter()
            .filter_map(|lane| {
                let id = lane["id"].as_str()?;
                let pr_fix = lane["dispatch"]["pr_fix_lane"].as_str()?;
                Some((id.to_string(), pr_fix.to_string()))
            })
            .collect()
    })
}

/// The registry lane's PR-fix lane: the shipped registry's setting, else its default
/// (`NORMAL`, as for a lane of a generated registry the shipped one does not list).
fn pr_fix_lane(lane: &str) -> &'static str {
    registry_pr_fix_lanes().get(lane).map_or("NORMAL", String::as_str)
}

const OUTCOMES: &[&str] = &[
    "pr_opened",
    "pr_updated",
    "issue_updated",
    "issue_closed",
    "blocked",
    "failed",
    "no_changes_needed",
    "already_addressed",
];

/// next-task: PR-fix work first (an item is handed to an agent once per generation;
/// an item another agent acknowledged at this generation is that agent's), else idle.
fn next_task(state: &mut State, agent: &str, query: &HashMap<String, String>) -> Response {
    if query.get("mode").map(String::as_str) == Some("groom") {
        return Response::json(
            410,
            &json!({"error": "External grooming task dispatch is retired; use POST /api/groomer/run"}),
        );
    }
    let lane = query.get("lane").map(|lane| pr_fix_lane(lane));
    let found = state.pr_fix.iter_mut().find(|item| {
        let stamp = format!("{agent}@{}", item["generation"]);
        let acked_by_other = item["acks"].as_array().is_some_and(|acks| {
            acks.iter().any(|a| {
                a.as_str().is_some_and(|a| a.ends_with(&format!("@{}", item["generation"])) && a != stamp)
            })
        });
        item["status"] == "QUEUED"
            && lane.is_none_or(|lane| item["lane"] == lane)
            && !has(&item["handouts"], &stamp)
            && !acked_by_other
    });
    match found {
        Some(item) => {
            let stamp = format!("{agent}@{}", item["generation"]);
            push(&mut item["handouts"], stamp);
            Response::json(
                200,
                &json!({
                    "type": "followup-pr", "shouldRun": true, "agentName": agent, "lane": item["lane"],
                    "pullRequest": {"repoFullName": item["repo"], "number": item["pr"]},
                    "prFixItem": {"id": item["id"], "generation": item["generation"]},
                    "reasons": ["CI failing"], "instructions": "Fix the PR.", "stopAfter": "one push",
                    "forbiddenActions": ["open a new PR"],
                }),
            )
        }
        None => match query.get("lane").and_then(|lane| state.queues.get(lane)).and_then(|q| q.first()) {
            // Implement work: the lane's top ready issue; next-task locks nothing, so two
            // workers can be handed the same issue (the claim decides).
            Some(item) => Response::json(
                200,
                &json!({
                    "type": "implement", "shouldRun": true, "agentName": agent, "lane": item["lane"],
                    "issue": {"repoFullName": item["repoFullName"], "number": item["number"], "title": item["title"]},
                    "instructions": "Implement the issue.", "stopAfter": "PR opened", "forbiddenActions": [],
                }),
            ),
            None => {
                Response::json(200, &json!({"type": "idle", "shouldRun": false, "reason": "nothing to do"}))
            }
        },
    }
}

fn find_item<'a>(state: &'a mut State, body: &Value) -> Option<&'a mut Value> {
    state.pr_fix.iter_mut().find(|item| item["repo"] == body["repo"] && item["pr"] == body["pr"])
}

fn pr_fix_ack(state: &mut State, body: &Value) -> Response {
    let agent = body["agentName"].as_str().unwrap_or_default().to_string();
    let Some(item) = find_item(state, body) else {
        return Response::json(404, &json!({"error": "PR fix item not found"}));
    };
    let conflict = |reason: &str| {
        Response::json(409, &json!({"error": format!("Cannot acknowledge: {reason}"), "reason": reason}))
    };
    if body["generation"] != item["generation"] {
        return conflict("generation-mismatch");
    }
    if item["status"] != "QUEUED" {
        return conflict("not-queued");
    }
    let stamp = format!("{agent}@{}", item["generation"]);
    if !has(&item["handouts"], &stamp) {
        return conflict("not-stamped");
    }
    if has(&item["acks"], &stamp) {
        return Response::json(200, &json!({"acknowledged": true, "alreadyAcknowledged": true}));
    }
    push(&mut item["acks"], stamp);
    Response::json(200, &json!({"acknowledged": true, "item": item.clone()}))
}

fn pr_fix_mark(state: &mut State, body: &Value) -> Response {
    if !body["generation"].is_u64() {
        return Response::json(400, &json!({"error": "generation is required for bearer callers"}));
    }
    let Some(item) = find_item(state, body) else {
        return Response::json(404, &json!({"error": "PR fix item not found"}));
    };
    if body["generation"] != item["generation"] {
        return Response::json(
            409,
            &json!({"error": format!("Generation mismatch: item is at generation {}", item["generation"])}),
        );
    }
    item["status"] = json!(body["status"].as_str().unwrap_or_default().to_uppercase());
    Response::json(200, item)
}

fn task_report(state: &mut State, agent: &str, body: &Value) -> Response {
    let task_type = body["taskType"].as_str().unwrap_or_default();
    let outcome = body["outcome"].as_str().unwrap_or_default();
    if !["implement", "followup-pr", "groom"].contains(&task_type) || !OUTCOMES.contains(&outcome) {
        return Response::json(400, &json!({"error": "taskType or outcome is not in the allow-list"}));
    }
    let key = body["idempotencyKey"].as_str().map(|key| (agent.to_string(), key.to_string()));
    let mut payload = body.clone();
    if let Some(map) = payload.as_object_mut() {
        map.remove("idempotencyKey");
    }
    let payload = canonical(&payload);
    if let Some(key) = &key
        && let Some((stored, run)) = state.report_keys.get(key)
    {
        return if *stored == payload {
            Response::json(
                200,
                &json!({"ok": true, "agentName": agent, "agentRunId": run, "duplicate": true,
                        "prFixResolution": {"matched": false, "action": "skipped", "reason": "duplicate report"}}),
            )
        } else {
            Response::json(
                409,
                &json!({"error": "Idempotency key was already used with a different payload"}),
            )
        };
    }
    let echo = &body["prFixItem"];
    let resolution =
        match state.pr_fix.iter_mut().find(|item| {
            echo.is_object() && item["id"] == echo["id"] && item["generation"] == echo["generation"]
        }) {
            Some(item) => {
                let (status, action) = match outcome {
                    "blocked" => ("BLOCKED", "blocked"),
                    "failed" => ("QUEUED", "none"),
                    _ => ("FIXED", "fixed"),
                };
                item["status"] = json!(status);
                json!({"matched": true, "action": action, "itemId": item["id"]})
            }
            None => json!({"matched": false, "action": "none", "reason": "no current PR-fix item echoed"}),
        };
    state.runs.push(json!({"agentName": agent, "runType": task_type, "outcome": outcome}));
    let run = format!("run{}", state.runs.len());
    if let Some(key) = key {
        state.report_keys.insert(key, (payload, run.clone()));
    }
    Response::json(
        200,
        &json!({"ok": true, "agentName": agent, "report": body, "agentRunId": run, "prFixResolution": resolution}),
    )
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
        ("GET", ["api", "pr-fix-queue", "queued"]) => {
            let lane = query.get("lane").map(|lane| lane.to_uppercase());
            let items: Vec<Value> = state
                .pr_fix
                .iter()
                .filter(|item| {
                    item["status"] == "QUEUED"
                        && lane.as_ref().is_none_or(|lane| item["lane"] == lane.as_str())
                })
                .cloned()
                .collect();
            Response::json(200, &Value::Array(items))
        }
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
        ("GET", ["api", "agents", agent, "next-task"]) => next_task(&mut state, agent, &query),
        ("POST", ["api", "pr-fix-queue", "ack"]) => pr_fix_ack(&mut state, &body),
        ("POST", ["api", "pr-fix-queue", "mark"]) => pr_fix_mark(&mut state, &body),
        ("POST", ["api", "agents", agent, "tasks", "report"]) => task_report(&mut state, agent, &body),
        ("GET", ["api", "issues", "state"]) => {
            let repo = query.get("repo").cloned().unwrap_or_default();
            let number: u64 = query.get("number").and_then(|n| n.parse().ok()).unwrap_or_default();
            let found = state
                .queues
                .values()
                .flatten()
                .find(|item| item["repoFullName"] == repo.as_str() && item["number"] == number)
                .cloned();
            match found {
                Some(item) => {
                    let id = item["issueId"].as_str().unwrap_or_default().to_string();
                    let mut labels = vec![json!("status/ready")];
                    if let Some(holder) = state.claims.get(&id) {
                        labels = vec![json!("status/in-progress"), json!(format!("agent/{holder}"))];
                    }
                    Response::json(
                        200,
                        &json!({"issueId": id, "repoFullName": repo, "number": number, "state": "open", "labels": labels}),
                    )
                }
                None => Response::json(
                    404,
                    &json!({"error": format!("Issue not found in cache: {repo}#{number}")}),
                ),
            }
        }
        ("POST", ["api", "issues", "unclaim"]) => {
            let id = body["issueId"].as_str().unwrap_or_default().to_string();
            let agent = body["agentName"].as_str().unwrap_or_default();
            if state.claims.get(&id).map(String::as_str) == Some(agent) {
                state.claims.remove(&id);
                Response::json(200, &json!({"success": true, "status": "status/ready"}))
            } else {
                Response::json(400, &json!({"error": format!("Issue is not assigned to {agent}")}))
            }
        }
        ("POST", ["api", "groomer", "run"]) => {
            state.groomer_runs.push(body);
            Response::json(200, &json!({"candidateNumber": null, "dryRun": true}))
        }
        ("POST", ["api", "agent-runs"]) => {
            state.runs.push(body);
            Response::json(201, &json!({"id": format!("run{}", state.runs.len())}))
        }
        _ => Response::json(404, &json!({"error": "not found"})),
    }
}

/// Write fake `gh` and `openclaw` into `dir`; `openclaw cron edit ID --enable|--disable`
/// appends `ID enabled|disabled` to `cron-state.log` there, and `openclaw cron list
/// --all --json` lists the jobs' current state. Returns the PATH to use.
pub fn fake_programs(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    let state = dir.join("cron-state.log");
    // The jobs' state before any edit: the shipped lanes' local and cloud crons
    // enabled, frontier's disabled. `cron list --all --json` answers from this seed and
    // the edits after it, in the real CLI's shape (shared/spec/openclaw-cron.md).
    let seed = dir.join("cron-seed.log");
    std::fs::write(
        &seed,
        "6b09bed4-cfbe-4c35-bbee-2b66c5ef17aa enabled\n8a6daaff-641b-4e1c-a263-f3814b043539 enabled\n1723278d-2eaa-435b-9fda-0efe8febb30b disabled\n",
    )
    .expect("write cron seed");
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
            "#!/bin/sh\nif [ \"$*\" = \"cron list --all --json\" ]; then\n  cat '{seed}' '{state}' 2>/dev/null | awk '{LIST}'\n  exit 0\nfi\n[ \"$1 $2\" = \"cron edit\" ] || exit 2\ncase \"$4\" in --enable) s=enabled;; --disable) s=disabled;; *) exit 2;; esac\necho \"$3 $s\" >> '{state}'\n",
            seed = seed.display(),
            state = state.display(),
            LIST = LIST_JOBS,
        ),
    );
    write(
        "gh",
        "#!/bin/sh\n[ \"$1\" = \"--version\" ] && { echo 'gh version 2 (fake)'; exit 0; }\necho '{}'\n"
            .to_string(),
    );
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// awk program printing `ID enabled|disabled` lines (last one per id wins) as the
/// `{"jobs": [...]}` answer of `openclaw cron list --all --json`.
const LIST_JOBS: &str = r#"{ if (!($1 in s)) ids[n++] = $1; s[$1] = $2 }
END { printf "{\"jobs\": ["; for (i = 0; i < n; i++) printf "%s{\"id\": \"%s\", \"name\": \"job %d\", \"enabled\": %s}", (i ? ", " : ""), ids[i], i, (s[ids[i]] == "enabled" ? "true" : "false"); printf "], \"total\": %d, \"offset\": 0, \"limit\": 200, \"hasMore\": false}\n", n }"#;

/// The last state each cron id was set to by an edit.
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
