//! `type: cron` with `read: true`: the run's one read of the job states, taken before
//! the toggles need it (the heartbeat puts it beside the lane probes), which the toggles
//! then use without reading again.

use super::{Case, code, events, fake_openclaw, finished, registry, stderr, step};

/// A read, then a toggle of each lane: local's job is disabled and cloud's enabled in
/// the fake's list, so only local is edited.
const READ_THEN_TOGGLE: &str = "name: t\nlanes: lanes.yaml\nsteps:\n  - id: state\n    type: cron\n    read: true\n  - id: local\n    type: cron\n    lane: local\n    enabled: true\n  - id: cloud\n    type: cron\n    lane: cloud\n    enabled: true\noutputs:\n  state: \"{{ steps.state.output }}\"\n  local: \"{{ steps.local.output.changed }}\"\n  cloud: \"{{ steps.cloud.output.changed }}\"\n";

#[test]
fn a_cron_read_is_the_one_read_the_toggles_use() {
    let case = Case::new(READ_THEN_TOGGLE);
    registry(&case, "{type: openclaw}");
    let path = fake_openclaw(&case, 0);
    let output = case.run(&["-o", "json"], &[("PATH", &path)]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let outputs = finished(&events(&output))["outputs"].clone();
    assert_eq!(outputs["state"]["read"], true);
    assert_eq!(
        outputs["state"]["command"],
        serde_json::json!(["openclaw", "cron", "list", "--all", "--json"])
    );
    assert_eq!(outputs["state"]["jobs"]["6b09bed4-cfbe-4c35-bbee-2b66c5ef17aa"], false);
    assert_eq!(outputs["state"]["jobs"]["8a6daaff-641b-4e1c-a263-f3814b043539"], true);
    assert_eq!((outputs["local"].clone(), outputs["cloud"].clone()), (true.into(), false.into()));
    let calls = std::fs::read_to_string(case.path("calls.log")).expect("called");
    assert_eq!(calls, "cron list --all --json\ncron edit 6b09bed4-cfbe-4c35-bbee-2b66c5ef17aa --enable\n");

    // A dry run reads too (it changes nothing) and plans the one edit.
    std::fs::remove_file(case.path("calls.log")).expect("rm");
    let dry = case.run(&["--dry-run", "-o", "json"], &[("PATH", &path)]);
    assert_eq!(code(&dry), 0, "{}", stderr(&dry));
    assert_eq!(step(&events(&dry), "state")["status"], "ok");
    let planned: Vec<_> = events(&dry).into_iter().filter(|e| e["event"] == "step_planned").collect();
    assert_eq!(planned.len(), 1, "{planned:?}");
    assert_eq!(planned[0]["path"], "local");
    assert_eq!(std::fs::read_to_string(case.path("calls.log")).expect("called"), "cron list --all --json\n");
}

#[test]
fn a_failed_cron_read_fails_once_and_the_toggles_do_not_read_again() {
    let case =
        Case::new(&READ_THEN_TOGGLE.replace("    read: true\n", "    read: true\n    on_error: continue\n"));
    registry(&case, "{type: openclaw}");
    let path = case.program(
        "openclaw",
        &format!(
            "#!/bin/sh\necho \"$@\" >> \"{}\"\necho 'Gateway not reachable' >&2\nexit 1\n",
            case.path("calls.log").display()
        ),
    );
    let output = case.run(&["-o", "json"], &[("PATH", &path)]);
    assert_eq!(code(&output), 1);
    let events = events(&output);
    assert_eq!(
        step(&events, "state")["error"],
        "reading the cron jobs failed: `openclaw cron list` failed (exit 1): Gateway not reachable"
    );
    assert_eq!(
        step(&events, "local")["error"],
        "reading the cron jobs failed, nothing changed: `openclaw cron list` failed (exit 1): Gateway not reachable"
    );
    assert_eq!(std::fs::read_to_string(case.path("calls.log")).expect("called"), "cron list --all --json\n");
}

#[test]
fn a_backend_without_a_list_reads_nothing() {
    let case = Case::new(
        "name: t\nlanes: lanes.yaml\nsteps:\n  - id: state\n    type: cron\n    read: true\noutputs:\n  state: \"{{ steps.state.output }}\"\n",
    );
    registry(&case, "{type: command, argv: [\"false\"]}");
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        finished(&events(&output))["outputs"]["state"],
        serde_json::json!({"read": false, "command": null, "jobs": null})
    );
}

#[test]
fn a_cron_step_is_either_a_read_or_a_toggle() {
    for (fields, expected) in [
        (
            "    read: true\n    lane: local\n",
            "a cron step with `read: true` only reads the job states; remove `lane`",
        ),
        ("    lane: local\n", "a cron step needs `enabled` (or `read: true` to only read the job states)"),
        ("    enabled: true\n", "a cron step needs `lane` (or `read: true` to only read the job states)"),
    ] {
        let case =
            Case::new(&format!("name: t\nlanes: lanes.yaml\nsteps:\n  - id: c\n    type: cron\n{fields}"));
        registry(&case, "{type: openclaw}");
        let output = case.run(&[], &[]);
        assert_eq!(code(&output), 65, "{fields}");
        let text = stderr(&output);
        assert!(text.contains(expected) && text.contains("wf.yaml:4:5"), "{fields}: {text}");
    }
}
