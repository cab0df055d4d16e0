//! Hosting a DevClaw configuration: `runner import devclaw`, layered files, routing,
//! level aliases and older label formats, and free-text options starting with `-`.

use serde_json::Value;

use super::support::json_stdout;
use crate::{code, redact, root, runner, runner_in, stderr, stdout};

const DEFAULT: &str = "tests/fixtures/devclaw/workflow.yaml";

/// Tests for the generated PR-check workflow: each PR status gives DevClaw's event.
const CHECK_TESTS: &str = r#"
kind: test
workflow: pr-approved.yaml
x-list: &list [gh, pr, list, --repo=o/demo, --state, all, --search, '#7', --json, 'state,reviewDecision,mergeable,url', --limit, '1']
cases:
  - name: approved
    inputs: {repo: o/demo, issue: 7}
    commands:
      - {match: *list, stdout: '[{"state": "OPEN", "reviewDecision": "APPROVED", "mergeable": "MERGEABLE", "url": "https://x/pr/1"}]'}
    expect: {outputs: {event: APPROVED, pr: "https://x/pr/1"}}
  - name: merged counts as approved
    inputs: {repo: o/demo, issue: 7}
    commands:
      - {match: *list, stdout: '[{"state": "MERGED", "reviewDecision": "", "mergeable": "UNKNOWN", "url": "u"}]'}
    expect: {outputs: {event: APPROVED}}
  - name: changes requested
    inputs: {repo: o/demo, issue: 7}
    commands:
      - {match: *list, stdout: '[{"state": "OPEN", "reviewDecision": "CHANGES_REQUESTED", "mergeable": "MERGEABLE", "url": "u"}]'}
    expect: {outputs: {event: CHANGES_REQUESTED}}
  - name: a conflict
    inputs: {repo: o/demo, issue: 7}
    commands:
      - {match: *list, stdout: '[{"state": "OPEN", "reviewDecision": "REVIEW_REQUIRED", "mergeable": "CONFLICTING", "url": "u"}]'}
    expect: {outputs: {event: MERGE_CONFLICT}}
  - name: closed without merging
    inputs: {repo: o/demo, issue: 7}
    commands:
      - {match: *list, stdout: '[{"state": "CLOSED", "reviewDecision": "", "mergeable": "UNKNOWN", "url": "u"}]'}
    expect: {outputs: {event: PR_CLOSED}}
  - name: waiting for a review
    inputs: {repo: o/demo, issue: 7}
    commands:
      - {match: *list, stdout: '[{"state": "OPEN", "reviewDecision": "REVIEW_REQUIRED", "mergeable": "MERGEABLE", "url": "u"}]'}
    expect: {outputs: {event: ""}}
  - name: no PR yet
    inputs: {repo: o/demo, issue: 7}
    commands:
      - {match: *list, stdout: '[]'}
    expect: {outputs: {event: "", pr: ""}}
"#;

#[test]
fn devclaws_default_workflow_imports_validates_and_graphs() {
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().to_str().expect("utf8");
    let import = runner(&["import", "devclaw", DEFAULT, "--out", dir]);
    assert_eq!(code(&import), 0, "{}", stderr(&import));
    insta::assert_snapshot!("devclaw_import_report", redact(&stdout(&import), out.path()));
    let validate = runner(&["validate", dir]);
    assert_eq!(code(&validate), 0, "{}", stdout(&validate));
    let graph = runner(&["graph", &format!("{dir}/lifecycle.yaml")]);
    assert_eq!(code(&graph), 0, "{}", stderr(&graph));
    let diagram = stdout(&graph);
    assert!(diagram.contains("    [*] --> toResearch: entry\n"), "{diagram}");
    assert!(!diagram.contains("[*] --> researching"), "only the state a tool fills is an entry: {diagram}");
    assert!(
        diagram.contains(
            // `:` is written as Mermaid's entity code: a bare one ends a state-diagram note.
            "route#58; review#58;human → wait, review#58;agent → PICKUP, review#58;skip → wait · check prApproved every 1m"
        ),
        "{diagram}"
    );
    // The imported roles keep devclaw's level names, models and results.
    let roles = std::fs::read_to_string(out.path().join("roles.yaml")).expect("roles.yaml");
    assert!(roles.contains("senior: anthropic/claude-opus-4-6"), "{roles}");
    assert!(roles.contains("opus: senior") && roles.contains("mid: medior"), "{roles}");
    // The generated PR check behaves like DevClaw's review pass.
    std::fs::write(out.path().join("checks/pr-approved.test.yaml"), CHECK_TESTS).expect("write");
    let tests = runner(&["test", &format!("{dir}/checks")]);
    assert_eq!(code(&tests), 0, "{}{}", stdout(&tests), stderr(&tests));
    assert!(stdout(&tests).contains("7 passed, 0 failed"), "{}", stdout(&tests));
    // A second import refuses to overwrite, unless told to.
    let again = runner(&["import", "devclaw", DEFAULT, "--out", dir]);
    assert_eq!(code(&again), 64);
    assert!(stderr(&again).contains("would overwrite"), "{}", stderr(&again));
    assert_eq!(code(&runner(&["import", "devclaw", DEFAULT, "--out", dir, "--force"])), 0);
}

#[test]
fn the_import_reports_what_it_cannot_carry_with_the_keys_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("workflow.yaml"),
        "roles:\n  developer:\n    emoji: {junior: x}\n    models:\n      senior: {model: m/opus, maxWorkers: 3}\n  tester: false\n  designer:\n    models: {junior: m/small}\nworkflow:\n  roleExecution: sequential\n  reviewPolicy: auto\n  futureKey: 1\n  states:\n    toReview:\n      type: queue\n      role: reviewer\n      label: To Review\n      color: \"#fff\"\n      priority: 2.5\n      check: ciGreen\n      on: {PICKUP: reviewing, SKIP: toTest}\ntimeouts:\n  gitPullMs: 1000\ninstance:\n  name: laptop\n",
    )
    .expect("write");
    let import = runner_in(dir.path(), &["import", "devclaw", "workflow.yaml", "--out", "out"]);
    assert_eq!(code(&import), 0, "{}", stderr(&import));
    let report = stdout(&import);
    for line in [
        "workflow.yaml:3:5: not carried: roles.developer.emoji: announcement emoji",
        "workflow.yaml:10:3: not carried: workflow.roleExecution: `sequential` role execution",
        "workflow.yaml:11:3: adapted: workflow.reviewPolicy: `auto` is not a value DevClaw still accepts (human, agent, skip); imported as `human`",
        "workflow.yaml:12:3: unknown key: workflow.futureKey: `workflow` has no key `futureKey`",
        "workflow.yaml:20:7: not carried: workflow.states.toReview.check: check `ciGreen`",
        "workflow.yaml:23:3: not carried: timeouts.gitPullMs:",
        "workflow.yaml:25:3: not carried: instance.name:",
    ] {
        assert!(report.contains(line), "missing `{line}` in:\n{report}");
    }
    let validate = runner_in(dir.path(), &["validate", "out"]);
    assert_eq!(code(&validate), 0, "{}", stdout(&validate));
    let roles = json_stdout(&runner_in(dir.path(), &["show-config", "out/roles.yaml", "-o", "json"]));
    assert_eq!(roles["roles"]["tester"]["enabled"], false);
    assert_eq!(roles["roles"]["developer"]["levels"]["senior"]["max_workers"], 3);
    assert_eq!(roles["roles"]["designer"]["levels"]["junior"], "m/small");
    let lifecycle = json_stdout(&runner_in(dir.path(), &["show-config", "out/lifecycle.yaml", "-o", "json"]));
    assert_eq!(lifecycle["states"]["toReview"]["priority"], 2.5);
    assert_eq!(lifecycle["states"]["toReview"]["color"], "#fff");
    assert_eq!(lifecycle["states"]["toReview"]["route"]["cases"]["skip"], "SKIP");
}

/// `runner roles select` over the imported DevClaw roles.
fn select(roles: &str, role: &str, args: &[&str]) -> Value {
    let mut all = vec!["roles", "select", "--roles", roles, "--role", role, "-o", "json"];
    all.extend_from_slice(args);
    let output = runner(&all);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    json_stdout(&output)
}

#[test]
fn level_labels_in_every_devclaw_format_aliases_precedence_and_lowest_highest() {
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().to_str().expect("utf8");
    assert_eq!(code(&runner(&["import", "devclaw", DEFAULT, "--out", dir])), 0);
    let roles = format!("{dir}/roles.yaml");
    // (role, labels, title, the level chosen, the rule that chose it)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        // Aliases: old level names keep working.
        ("developer", "developer:mid", "x", "medior", "label"),
        ("architect", "architect:opus", "x", "senior", "label"),
        ("architect", "architect:sonnet", "x", "junior", "label"),
        ("tester", "tester:reviewer", "x", "medior", "label"),
        // Older label formats: `role.level`, old role names, bare level names, a slot name.
        ("developer", "dev.senior", "x", "senior", "label"),
        ("tester", "qa:junior", "x", "junior", "label"),
        ("qa", "qa.senior", "x", "senior", "label"),
        ("architect", "opus", "x", "senior", "label"),
        ("developer", "developer:junior:Cordelia", "x", "junior", "label"),
        // Precedence: own label > bare level name > another role's label > rules > default.
        ("developer", "senior,developer:junior", "x", "junior", "label"),
        ("developer", "tester:senior,junior", "x", "junior", "label"),
        ("tester", "developer:senior", "Fix typo", "senior", "inherited"),
        ("reviewer", "developer:medior", "x", "junior", "default"),
        // Rules that say lowest / highest instead of naming a level.
        ("developer", "", "Fix typo in README", "junior", "rule simple"),
        ("developer", "", "Refactor the auth layer", "senior", "rule complex"),
        ("architect", "", "Database schema migration plan", "senior", "rule complex"),
        ("architect", "", "Document the architecture", "junior", "default"),
        ("developer", "", "Add an endpoint", "medior", "default"),
    ];
    for &(role, labels, title, level, rule) in cases {
        let mut args = vec!["--title", title];
        if !labels.is_empty() {
            args.extend(["--labels", labels]);
        }
        let chosen = select(&roles, role, &args);
        assert_eq!(
            (chosen["level"].as_str(), chosen["rule"].as_str()),
            (Some(level), Some(rule)),
            "{role} with labels `{labels}`, title `{title}`"
        );
    }
    // Free text may start with `-`.
    let body = select(&roles, "developer", &["--title", "- a list", "--body", "- small change"]);
    assert_eq!(body["level"], "junior", "{body}");
}

#[test]
fn a_layered_project_validates_and_shows_its_merged_configuration() {
    let project = "examples/devclaw/projects/no-tests/lifecycle.yaml";
    let validate = runner(&["validate", "examples/devclaw/projects/no-tests"]);
    assert_eq!(code(&validate), 0, "{}", stdout(&validate));
    let merged = runner(&["show-config", project, "-o", "json"]);
    assert_eq!(code(&merged), 0, "{}", stderr(&merged));
    let merged = json_stdout(&merged);
    assert_eq!(merged["policies"]["test"]["default"], "skip");
    assert_eq!(merged["roles"], "roles.yaml");
    assert!(merged.get("extends").is_none());
    // The merged result is a complete lifecycle by the committed schema.
    assert!(crate::committed_validator("lifecycle").is_valid(&merged), "{merged}");
    let yaml = stdout(&runner(&["show-config", project]));
    assert!(
        yaml.starts_with("# examples/devclaw/projects/no-tests/lifecycle.yaml (merged)\nkind: lifecycle\n"),
        "{yaml}"
    );
    let roles =
        json_stdout(&runner(&["show-config", "examples/devclaw/projects/no-tests/roles.yaml", "-o", "json"]));
    assert_eq!(roles["roles"]["architect"]["enabled"], false);
    assert!(crate::committed_validator("roles").is_valid(&roles), "{roles}");
    assert!(roles["roles"]["tester"].get("enabled").is_none(), "{roles}");
    assert_eq!(roles["roles"]["developer"]["levels"]["junior"], "anthropic/claude-haiku-4-5");
    assert_eq!(roles["roles"]["developer"]["levels"]["senior"]["max_workers"], 1);
    let select = runner(&[
        "roles",
        "select",
        "--roles",
        "examples/devclaw/projects/no-tests/roles.yaml",
        "--role",
        "developer",
        "--title",
        "x",
        "--labels",
        "developer:mid",
    ]);
    assert_eq!(
        stdout(&select),
        "level: medior\nmodel: anthropic/claude-sonnet-4-5\nrule:  label (the item is labelled `developer:mid`)\n"
    );
    // An error in a layer is reported in that layer's file.
    let dir = tempfile::tempdir().expect("tempdir");
    let base = root().join("examples/devclaw/lifecycle.yaml");
    std::fs::write(
        dir.path().join("over.yaml"),
        format!(
            "kind: lifecycle\nextends: {}\nstates:\n  toTest:\n    route: {{policy: test, cases: {{agent: PICKUP}}}}\n",
            base.display()
        ),
    )
    .expect("write");
    let bad = runner_in(dir.path(), &["validate", "-o", "json", "over.yaml"]);
    assert_eq!(code(&bad), 65);
    let found = json_stdout(&bad);
    assert_eq!(
        (found[0]["file"].as_str(), found[0]["line"].as_u64()),
        (Some("over.yaml"), Some(5)),
        "{found}"
    );
    assert_eq!(found[0]["code"], "routing");
}

#[test]
fn a_state_check_needs_an_existing_workflow_with_an_event_output_and_a_sane_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
    write(
        "check.yaml",
        "name: c\nsteps:\n  - {type: set, values: {e: APPROVED}}\noutputs:\n  event: \"{{ steps[0] }}\"\n",
    );
    write("no-event.yaml", "name: n\nsteps:\n  - {type: set, values: {e: x}}\n");
    let lifecycle = |check: &str| {
        format!(
            "kind: lifecycle\ninitial: q\nstates:\n  q:\n    type: queue\n    role: r\n    label: Q\n    check: {check}\n    on: {{APPROVED: d}}\n  d: {{type: terminal, label: D}}\n"
        )
    };
    let first = |check: &str| {
        write("l.yaml", &lifecycle(check));
        let found = json_stdout(&runner_in(dir.path(), &["validate", "-o", "json", "l.yaml"]));
        (found[0]["line"].as_u64().unwrap_or(0), found[0]["message"].as_str().unwrap_or_default().to_string())
    };
    write("l.yaml", &lifecycle("{workflow: check.yaml, every: 1m}"));
    let ok = runner_in(dir.path(), &["validate", "l.yaml"]);
    assert_eq!(code(&ok), 0, "{}", stdout(&ok));
    let (line, message) = first("{workflow: gone.yaml, every: 1m}");
    assert_eq!(line, 8);
    assert!(message.contains("check workflow `gone.yaml` does not exist"), "{message}");
    let (_, message) = first("{workflow: no-event.yaml, every: 1m}");
    assert!(message.contains("has no `event` output"), "{message}");
    let (_, message) = first("{workflow: check.yaml, every: 5s}");
    assert!(message.contains("the shortest interval is 10s"), "{message}");
    let (_, message) = first("{workflow: check.yaml, every: soon}");
    assert!(message.contains("duration"), "{message}");
}
