//! Meaning checks for lifecycles and roles: the state machine's integrity, and roles
//! whose levels, rules and completion events fit together.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use super::yaml::{Document, escape_pointer};
use super::{Loaded, Loader, sibling};
use crate::diagnostics::{did_you_mean, one_of};
use crate::model::FileKind;
use crate::model::lifecycle::{Lifecycle, Roles, StateType};

/// Check a lifecycle; problems go to the loader.
pub fn check_lifecycle(
    loader: &mut Loader,
    path: &Path,
    name: &str,
    document: &Document,
    lifecycle: &Lifecycle,
) {
    let keys: Vec<&str> = lifecycle.states.keys().map(String::as_str).collect();
    if !lifecycle.states.contains_key(&lifecycle.initial) {
        loader.report(
            name,
            document,
            "/initial",
            "lifecycle",
            format!("initial state `{}` does not exist; states: {}", lifecycle.initial, one_of(&keys)),
            did_you_mean(&lifecycle.initial, keys.iter().copied()),
        );
    }
    let roles = load_roles(loader, path, name, document, lifecycle.roles.as_deref());
    let mut labels: HashMap<String, &str> = HashMap::new();
    for (key, state) in &lifecycle.states {
        let pointer = format!("/states/{}", escape_pointer(key));
        if let Some(first) = labels.insert(state.label.to_lowercase(), key) {
            loader.report(
                name,
                document,
                &format!("{pointer}/label"),
                "lifecycle",
                format!(
                    "label `{}` is also the label of state `{first}`; each state needs its own label",
                    state.label
                ),
                None,
            );
        }
        match (state.ty, &state.role) {
            (StateType::Queue | StateType::Active, None) => loader.report_key(
                name,
                document,
                &pointer,
                "lifecycle",
                format!("{} state `{key}` must have a `role` (who picks it up)", state.ty.name()),
                None,
            ),
            (_, Some(role)) => {
                if let Some(roles) = &roles
                    && !roles.roles.contains_key(role)
                {
                    let ids: Vec<&str> = roles.roles.keys().map(String::as_str).collect();
                    loader.report(
                        name,
                        document,
                        &format!("{pointer}/role"),
                        "lifecycle",
                        format!("no role `{role}` in the roles file; roles: {}", one_of(&ids)),
                        did_you_mean(role, ids.iter().copied()),
                    );
                }
            }
            _ => {}
        }
        if state.ty == StateType::Terminal && !state.on.is_empty() {
            loader.report(
                name,
                document,
                &format!("{pointer}/on"),
                "lifecycle",
                format!("terminal state `{key}` must not have transitions"),
                Some("make it a `hold` state if items can leave it".into()),
            );
        }
        for (event, transition) in &state.on {
            let target = transition.target();
            if !lifecycle.states.contains_key(target) {
                let at = match transition {
                    crate::model::lifecycle::Transition::Target(_) => {
                        format!("{pointer}/on/{}", escape_pointer(event))
                    }
                    crate::model::lifecycle::Transition::Full(_) => {
                        format!("{pointer}/on/{}/target", escape_pointer(event))
                    }
                };
                loader.report(
                    name,
                    document,
                    &at,
                    "lifecycle",
                    format!("transition `{event}` of `{key}` targets `{target}`, which is not a state"),
                    did_you_mean(target, keys.iter().copied()),
                );
            }
        }
    }
    // Reachability from the initial state.
    if lifecycle.states.contains_key(&lifecycle.initial) {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut queue: VecDeque<&str> = VecDeque::from([lifecycle.initial.as_str()]);
        while let Some(key) = queue.pop_front() {
            if !seen.insert(key) {
                continue;
            }
            if let Some(state) = lifecycle.states.get(key) {
                queue.extend(state.on.values().map(|t| t.target()));
            }
        }
        for key in lifecycle.states.keys() {
            if !seen.contains(key.as_str()) {
                loader.report_key(
                    name,
                    document,
                    &format!("/states/{}", escape_pointer(key)),
                    "lifecycle",
                    format!("state `{key}` cannot be reached from the initial state `{}`", lifecycle.initial),
                    Some("add a transition into it, or remove it".into()),
                );
            }
        }
    }
    // Roles and the events they produce.
    if let Some(roles) = &roles {
        for (role_id, role) in &roles.roles {
            let active: Vec<(&String, &crate::model::lifecycle::State)> = lifecycle
                .states
                .iter()
                .filter(|(_, s)| s.ty == StateType::Active && s.role.as_deref() == Some(role_id.as_str()))
                .collect();
            for (key, state) in &active {
                for (result, event) in &role.completion {
                    if !state.on.contains_key(event) {
                        loader.report_key(
                            name,
                            document,
                            &format!("/states/{}", escape_pointer(key)),
                            "lifecycle",
                            format!(
                                "role `{role_id}` can finish with `{result}` (event `{event}`), but its active state `{key}` has no `{event}` transition; the item would be left there"
                            ),
                            None,
                        );
                    }
                }
                let produced: BTreeSet<&str> = role.completion.values().map(String::as_str).collect();
                for event in state.on.keys() {
                    if !produced.contains(event.as_str()) {
                        loader.report_key(
                            name,
                            document,
                            &format!("/states/{}/on/{}", escape_pointer(key), escape_pointer(event)),
                            "lifecycle",
                            format!(
                                "event `{event}` of active state `{key}` can never fire: role `{role_id}` produces only {}",
                                one_of(&produced.iter().copied().collect::<Vec<_>>())
                            ),
                            None,
                        );
                    }
                }
            }
        }
    }
}

fn load_roles(
    loader: &mut Loader,
    path: &Path,
    name: &str,
    document: &Document,
    relative: Option<&str>,
) -> Option<Arc<Roles>> {
    match loader.load_reference(
        path,
        name,
        document,
        "/roles",
        relative?,
        FileKind::Roles,
        "roles file",
        false,
    ) {
        Some(Loaded::Roles(roles)) => Some(roles),
        _ => None,
    }
}

/// Check a roles file; problems go to the loader.
pub fn check_roles(loader: &mut Loader, name: &str, document: &Document, roles: &Roles) {
    for (role_id, role) in &roles.roles {
        let pointer = format!("/roles/{}", escape_pointer(role_id));
        let levels: Vec<&str> = role.levels.keys().map(String::as_str).collect();
        if !role.levels.contains_key(&role.default_level) {
            loader.report(
                name,
                document,
                &format!("{pointer}/default_level"),
                "roles",
                format!(
                    "default level `{}` is not one of the levels {}",
                    role.default_level,
                    one_of(&levels)
                ),
                did_you_mean(&role.default_level, levels.iter().copied()),
            );
        }
        if let Some(selection) = &role.level_selection {
            for (index, rule) in selection.rules.iter().enumerate() {
                if !role.levels.contains_key(&rule.level) {
                    loader.report(
                        name,
                        document,
                        &format!("{pointer}/level_selection/rules/{index}/level"),
                        "roles",
                        format!("level `{}` is not one of the levels {}", rule.level, one_of(&levels)),
                        did_you_mean(&rule.level, levels.iter().copied()),
                    );
                }
                if let (Some(min), Some(max)) = (rule.min_words, rule.max_words)
                    && min > max
                {
                    loader.report(
                        name,
                        document,
                        &format!("{pointer}/level_selection/rules/{index}"),
                        "roles",
                        format!(
                            "`min_words` ({min}) is more than `max_words` ({max}); the rule can never match"
                        ),
                        None,
                    );
                }
                for (k, keyword) in rule.keywords.iter().enumerate() {
                    if keyword.trim().is_empty() {
                        loader.report(
                            name,
                            document,
                            &format!("{pointer}/level_selection/rules/{index}/keywords/{k}"),
                            "roles",
                            "an empty keyword matches nothing".to_string(),
                            None,
                        );
                    }
                }
            }
        }
    }
}

/// Load the lifecycle a workflow names, with the roles file it names.
pub fn load_lifecycle(
    loader: &mut Loader,
    path: &Path,
    name: &str,
    document: &Document,
    relative: &str,
) -> Option<(Arc<Lifecycle>, Option<Arc<Roles>>)> {
    let lifecycle = match loader.load_reference(
        path,
        name,
        document,
        "/lifecycle",
        relative,
        FileKind::Lifecycle,
        "lifecycle",
        false,
    )? {
        Loaded::Lifecycle(lifecycle) => lifecycle,
        _ => return None,
    };
    let roles =
        lifecycle.roles.as_ref().and_then(|r| match loader.load(&sibling(&sibling(path, relative), r)) {
            Ok(Some(Loaded::Roles(roles))) => Some(roles),
            _ => None,
        });
    Some((lifecycle, roles))
}

/// Load the roles file a workflow names.
pub fn load_workflow_roles(
    loader: &mut Loader,
    path: &Path,
    name: &str,
    document: &Document,
    relative: &str,
) -> Option<Arc<Roles>> {
    load_roles(loader, path, name, document, Some(relative))
}
