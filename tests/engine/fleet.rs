//! The fleet on today's Dispatch, end to end: the shipped worker-task, task-report and
//! pr-fix-queue workflows against the stateful fake Dispatch (generations, acks,
//! reclaims, idempotent reports).

use serde_json::{Value, json};

use super::super::{code, stderr, stdout};
use super::support::Fleet;

/// A worker of the frontier lane takes one task and returns its packet.
fn take_task(fleet: &Fleet, agent: &str) -> Value {
    let agent = format!("agent={agent}");
    let (code, out, err) = fleet.run("worker-task.yaml", &["lane=frontier", "json=true", &agent]);
    assert_eq!(code, 0, "{out}\n{err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("packet JSON ({e}): {out}"))
}

/// The task-report inputs a worker derives from its packet's `report` map.
fn report_inputs(packet: &Value, agent: &str, outcome: &str, summary: &str) -> Vec<String> {
    let report = &packet["report"];
    let mut inputs =
        vec![format!("agent={agent}"), format!("outcome={outcome}"), format!("summary={summary}")];
    for key in ["task_type", "repo", "pr_number", "issue_number", "pr_fix_id", "pr_fix_generation"] {
        match &report[key] {
            Value::String(text) => inputs.push(format!("{key}={text}")),
            Value::Number(n) => inputs.push(format!("{key}={n}")),
            _ => {}
        }
    }
    inputs
}

fn report(fleet: &Fleet, inputs: &[String]) -> (i32, String, String) {
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    fleet.run("task-report.yaml", &inputs)
}

#[test]
fn two_workers_of_one_lane_take_pr_fix_items_through_next_task_ack_and_report() {
    let fleet = Fleet::start();
    let dispatch = &fleet.dispatch;
    dispatch.add_pr_fix("fix-1", "misospace/widgets", 11, "ESCALATED");
    dispatch.add_pr_fix("fix-2", "misospace/gadgets", 22, "ESCALATED");
    dispatch.add_pr_fix("fix-9", "misospace/other", 99, "NORMAL");

    // Two workers of the frontier lane: each gets its own item, acknowledged.
    let a = take_task(&fleet, "saffron-frontier");
    let b = take_task(&fleet, "saffron-frontier-2");
    assert_eq!((a["action"].as_str(), a["acknowledged"].as_bool()), (Some("pr-fix"), Some(true)), "{a}");
    assert_eq!(a["prFixItem"], json!({"id": "fix-1", "generation": 1}));
    assert_eq!(b["prFixItem"], json!({"id": "fix-2", "generation": 1}), "{b}");
    assert_eq!(dispatch.pr_fix_item("fix-1")["acks"], json!(["saffron-frontier@1"]));
    assert_eq!(dispatch.pr_fix_item("fix-2")["acks"], json!(["saffron-frontier-2@1"]));

    // Both report; each report echoes its prFixItem and settles its item.
    let a_report = report_inputs(&a, "saffron-frontier", "pr_updated", "Fixed the lint step");
    let (code, out, err) = report(&fleet, &a_report);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.starts_with("REPORTED: pr_updated for pr-fix:fix-1:g1 as run run1; PR-fix item fixed"),
        "{out}"
    );
    let (code, out, err) =
        report(&fleet, &report_inputs(&b, "saffron-frontier-2", "blocked", "Needs a maintainer"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(dispatch.pr_fix_item("fix-1")["status"], "FIXED");
    assert_eq!(dispatch.pr_fix_item("fix-2")["status"], "BLOCKED");
    assert_eq!(dispatch.pr_fix_item("fix-9")["status"], "QUEUED", "another lane's item is untouched");

    // A retry of A's report (same key, same payload) is a success and no second run.
    let (code, out, err) = report(&fleet, &a_report);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out, "DUPLICATE: pr-fix:fix-1:g1:pr_updated was already reported as run run1\n");
    assert_eq!(dispatch.state.lock().expect("state").runs.len(), 2, "no second run");

    // The same key with another payload is refused: exit 3.
    let other = report_inputs(&a, "saffron-frontier", "pr_updated", "A different summary");
    let (code, _, err) = report(&fleet, &other);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("CONFLICT: idempotency key pr-fix:fix-1:g1:pr_updated belongs to another report"),
        "{err}"
    );
    assert_eq!(dispatch.state.lock().expect("state").runs.len(), 2);

    // Nothing left for the lane: the next worker run is idle.
    let idle = take_task(&fleet, "saffron-frontier");
    assert_eq!(idle["action"], "clear", "{idle}");

    // Every request carried the token and named its agent.
    let requests = dispatch.server.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.headers.get("authorization").map(String::as_str) == Some("Bearer e2e-token-77"))
    );
    assert!(requests.iter().all(|r| r.headers.contains_key("x-agent-name")));
}

#[test]
fn a_reclaimed_generation_makes_the_stale_workers_mark_and_ack_fail_with_generation_mismatch() {
    let fleet = Fleet::start();
    let dispatch = &fleet.dispatch;
    dispatch.add_pr_fix("fix-1", "misospace/widgets", 11, "ESCALATED");

    // Worker A is handed generation 1 (a dry run: it never acknowledges), then the
    // hand-out sweep reclaims the item as generation 2.
    let stale = fleet.run_args("worker-task.yaml", &["--dry-run", "-i", "lane=frontier", "-i", "json=true"]);
    assert_eq!(code(&stale), 0, "{}", stderr(&stale));
    let packet: Value = serde_json::from_str(stdout(&stale).trim()).expect("packet");
    assert_eq!(
        (packet["prFixItem"]["generation"].as_u64(), packet["acknowledged"].as_bool()),
        (Some(1), Some(false))
    );
    dispatch.reclaim("fix-1");
    // `pr-fix-queue.yaml` on widgets#11 as the frontier worker.
    let queue = |op: &str, generation: &str, status: Option<&str>| {
        let mut inputs = vec![op, "repo=misospace/widgets", "pr=11", generation, "agent=saffron-frontier"];
        inputs.extend(status);
        fleet.run("pr-fix-queue.yaml", &inputs)
    };

    // A's mark at generation 1 is the generation-mismatch outcome (exit 3); nothing changes.
    let (code, out, err) = queue("op=mark", "generation=1", Some("status=blocked"));
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(err.contains("CONFLICT: mark misospace/widgets#11 generation 1: generation-mismatch"), "{err}");
    assert_eq!(dispatch.pr_fix_item("fix-1")["status"], "QUEUED");
    assert_eq!(dispatch.pr_fix_item("fix-1")["generation"], 2);

    // So is a late ack of the old generation.
    let (code, _, err) = queue("op=ack", "generation=1", None);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("generation-mismatch"), "{err}");

    // The new generation is handed out again (to the same agent too) and can be settled.
    let fresh = take_task(&fleet, "saffron-frontier");
    assert_eq!(fresh["prFixItem"], json!({"id": "fix-1", "generation": 2}), "{fresh}");
    let (code, out, err) = queue("op=mark", "generation=2", Some("status=stale"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(dispatch.pr_fix_item("fix-1")["status"], "STALE");
}

#[test]
fn the_heartbeat_runs_the_groomer_when_dispatch_retired_groom_tasks() {
    let fleet = Fleet::start();
    let dispatch = &fleet.dispatch;
    let (code, out, err) = fleet.run("heartbeat.yaml", &["no_probe=true"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("[*] Groomer: nothing to groom"), "{out}");
    assert!(!err.contains("Grooming task check failed"), "{err}");
    let state = dispatch.state.lock().expect("state");
    assert_eq!(state.groomer_runs, vec![json!({"dryRun": false})]);
    assert_eq!(state.runs.len(), 1, "the heartbeat's own run record");
    assert_eq!(state.runs[0]["status"], "ok", "{:?}", state.runs);
}

#[test]
fn two_workers_handed_the_same_issue_one_claims_it_the_other_gets_the_conflict_terminal() {
    let fleet = Fleet::start();
    let dispatch = &fleet.dispatch;
    dispatch.add_ready("frontier", "iss-7", "misospace/widgets", 7);

    let a = take_task(&fleet, "saffron-frontier");
    assert_eq!(
        (a["action"].as_str(), a["issueId"].as_str()),
        (Some("claim-ready-issue"), Some("iss-7")),
        "{a}"
    );
    assert_eq!(a["verified"], true, "the claim was re-read and is ours alone");
    let (code, out, err) = fleet.run("worker-task.yaml", &["lane=frontier", "agent=saffron-frontier-2"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Claim conflict on #7: issue is actively leased. Response: "), "{out}");
    assert_eq!(
        dispatch.state.lock().expect("state").claims.get("iss-7").map(String::as_str),
        Some("saffron-frontier")
    );

    // The winner reports; the report carries the issue's identity as its key.
    let (code, out, err) =
        report(&fleet, &report_inputs(&a, "saffron-frontier", "pr_opened", "Opened PR #8"));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("REPORTED: pr_opened for implement:misospace/widgets#7 as run run1"), "{out}");
}
