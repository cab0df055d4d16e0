//! Meaning checks for lifecycles and roles: the state machine's integrity, and roles
//! whose levels, rules and completion events fit together.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use super::layers::Layers;
use super::yaml::{Document, escape_pointer};
use super::{Loaded, Loader};
use crate::diagnostics::{did_you_mean, one_of};
use crate::model::FileKind;
use crate::model::lifecycle::{Lifecycle, State, StateType, Transition};
use crate::model::roles::Roles;

/// CSS colour names a state's `color` may use.
const CSS_COLOURS: &[&str] = &[
    "aliceblue",
    "antiquewhite",
    "aqua",
    "aquamarine",
    "azure",
    "beige",
    "bisque",
    "black",
    "blanchedalmond",
    "blue",
    "blueviolet",
    "brown",
    "burlywood",
    "cadetblue",
    "chartreuse",
    "chocolate",
    "coral",
    "cornflowerblue",
    "cornsilk",
    "crimson",
    "cyan",
    "darkblue",
    "darkcyan",
    "darkgoldenrod",
    "darkgray",
    "darkgreen",
    "darkgrey",
    "darkkhaki",
    "darkmagenta",
    "darkolivegreen",
    "darkorange",
    "darkorchid",
    "darkred",
    "darksalmon",
    "darkseagreen",
    "darkslateblue",
    "darkslategray",
    "darkslategrey",
    "darkturquoise",
    "darkviolet",
    "deeppink",
    "deepskyblue",
    "dimgray",
    "dimgrey",
    "dodgerblue",
    "firebrick",
    "floralwhite",
    "forestgreen",
    "fuchsia",
    "gainsboro",
    "ghostwhite",
    "gold",
    "goldenrod",
    "gray",
    "green",
    "greenyellow",
    "grey",
    "honeydew",
    "hotpink",
    "indianred",
    "indigo",
    "ivory",
    "khaki",
    "lavender",
    "lavenderblush",
    "lawngreen",
    "lemonchiffon",
    "lightblue",
    "lightcoral",
    "lightcyan",
    "lightgoldenrodyellow",
    "lightgray",
    "lightgreen",
    "lightgrey",
    "lightpink",
    "lightsalmon",
    "lightseagreen",
    "lightskyblue",
    "lightslategray",
    "lightslategrey",
    "lightsteelblue",
    "lightyellow",
    "lime",
    "limegreen",
    "linen",
    "magenta",
    "maroon",
    "mediumaquamarine",
    "mediumblue",
    "mediumorchid",
    "mediumpurple",
    "mediumseagreen",
    "mediumslateblue",
    "mediumspringgreen",
    "mediumturquoise",
    "mediumvioletred",
    "midnightblue",
    "mintcream",
    "mistyrose",
    "moccasin",
    "navajowhite",
    "navy",
    "oldlace",
    "olive",
    "olivedrab",
    "orange",
    "orangered",
    "orchid",
    "palegoldenrod",
    "palegreen",
    "paleturquoise",
    "palevioletred",
    "papayawhip",
    "peachpuff",
    "peru",
    "pink",
    "plum",
    "powderblue",
    "purple",
    "rebeccapurple",
    "red",
    "rosybrown",
    "royalblue",
    "saddlebrown",
    "salmon",
    "sandybrown",
    "seagreen",
    "seashell",
    "sienna",
    "silver",
    "skyblue",
    "slateblue",
    "slategray",
    "slategrey",
    "snow",
    "springgreen",
    "steelblue",
    "tan",
    "teal",
    "thistle",
    "tomato",
    "turquoise",
    "violet",
    "wheat",
    "white",
    "whitesmoke",
    "yellow",
    "yellowgreen",
];

/// Whether a colour is `#rgb`, `#rrggbb` or a CSS colour name.
pub(crate) fn valid_colour(colour: &str) -> bool {
    match colour.strip_prefix('#') {
        Some(hex) => (hex.len() == 3 || hex.len() == 6) && hex.chars().all(|c| c.is_ascii_hexdigit()),
        None => CSS_COLOURS.contains(&colour.to_ascii_lowercase().as_str()),
    }
}

/// The shortest poll interval of a state `check`.
const MIN_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Check a lifecycle (merged over its base, if it extends one); problems go to the
/// loader, in the file that wrote the value.
pub(crate) fn check_lifecycle(loader: &mut Loader, layers: &Layers, lifecycle: &Lifecycle) {
    let keys: Vec<&str> = lifecycle.states.keys().map(String::as_str).collect();
    if !lifecycle.states.contains_key(&lifecycle.initial) {
        layers.report(
            loader,
            "/initial",
            "lifecycle",
            format!("initial state `{}` does not exist; states: {}", lifecycle.initial, one_of(&keys)),
            did_you_mean(&lifecycle.initial, keys.iter().copied()),
        );
    }
    let roles = lifecycle.roles.as_deref().and_then(|relative| {
        let top = &layers.files[0];
        let at = layers.at("/roles");
        let (name, document) = (at.name.clone(), at.document.clone());
        load_workflow_roles(loader, &top.path, &name, &document, relative)
    });
    check_policies(loader, layers, lifecycle);
    let mut labels: HashMap<String, &str> = HashMap::new();
    for (key, state) in &lifecycle.states {
        let pointer = format!("/states/{}", escape_pointer(key));
        if let Some(first) = labels.insert(state.label.to_lowercase(), key) {
            layers.report(
                loader,
                &format!("{pointer}/label"),
                "lifecycle",
                format!(
                    "label `{}` is also the label of state `{first}`; each state needs its own label",
                    state.label
                ),
                None,
            );
        }
        if let Some(colour) = &state.color
            && !valid_colour(colour)
        {
            layers.report(
                loader,
                &format!("{pointer}/color"),
                "lifecycle",
                format!("colour `{colour}` is not `#rgb`, `#rrggbb` or a CSS colour name"),
                did_you_mean(colour, CSS_COLOURS.iter().copied()).or_else(|| {
                    Some(
                        "e.g. `\"#0366d6\"`, `\"#fff\"` or `steelblue` (quote values starting with `#`)"
                            .into(),
                    )
                }),
            );
        }
        match (state.ty, &state.role) {
            (StateType::Queue | StateType::Active, None) => layers.report_key(
                loader,
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
                    layers.report(
                        loader,
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
            layers.report(
                loader,
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
                    Transition::Target(_) => format!("{pointer}/on/{}", escape_pointer(event)),
                    Transition::Full(_) => format!("{pointer}/on/{}/target", escape_pointer(event)),
                };
                layers.report(
                    loader,
                    &at,
                    "lifecycle",
                    format!("transition `{event}` of `{key}` targets `{target}`, which is not a state"),
                    did_you_mean(target, keys.iter().copied()),
                );
            }
        }
        check_route(loader, layers, lifecycle, key, state);
        if let Some(check) = &state.check {
            let at = format!("{pointer}/check");
            if check.every.get() < MIN_CHECK_INTERVAL {
                layers.report(
                    loader,
                    &format!("{at}/every"),
                    "lifecycle",
                    format!("`check` polls every {}; the shortest interval is 10s", check.every),
                    Some("poll no more often than the tracker's rate limits allow, e.g. `1m`".into()),
                );
            }
            let top = layers.files[0].path.clone();
            let layer = layers.at(&format!("{at}/workflow")).clone();
            if let Some(Loaded::Workflow(workflow)) = loader.load_reference(
                &top,
                &layer.name,
                &layer.document,
                &format!("{at}/workflow"),
                &check.workflow,
                FileKind::Workflow,
                "check workflow",
                true,
            ) && !workflow.outputs.contains_key("event")
            {
                layers.report(
                    loader,
                    &format!("{at}/workflow"),
                    "lifecycle",
                    format!("check workflow `{}` has no `event` output", check.workflow),
                    Some(
                        "its `event` output names the event to fire (empty while nothing has happened)"
                            .into(),
                    ),
                );
            }
        }
    }
    // Reachability from the initial state and the entry states.
    if lifecycle.states.contains_key(&lifecycle.initial) {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut queue: VecDeque<&str> = VecDeque::from([lifecycle.initial.as_str()]);
        queue.extend(lifecycle.states.iter().filter(|(_, s)| s.entry).map(|(k, _)| k.as_str()));
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
                layers.report_key(
                    loader,
                    &format!("/states/{}", escape_pointer(key)),
                    "lifecycle",
                    format!(
                        "state `{key}` cannot be reached from the initial state `{}` or an entry state",
                        lifecycle.initial
                    ),
                    Some("add a transition into it, mark it `entry: true` if items enter it from outside (a tool, a person), or remove it".into()),
                );
            }
        }
    }
    // Roles and the events they produce.
    if let Some(roles) = &roles {
        for (role_id, role) in &roles.roles {
            let active: Vec<(&String, &State)> = lifecycle
                .states
                .iter()
                .filter(|(_, s)| s.ty == StateType::Active && s.role.as_deref() == Some(role_id.as_str()))
                .collect();
            for (key, state) in &active {
                for (result, event) in &role.completion {
                    if !state.on.contains_key(event) {
                        layers.report_key(
                            loader,
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
                        layers.report_key(
                            loader,
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

fn check_policies(loader: &mut Loader, layers: &Layers, lifecycle: &Lifecycle) {
    for (name, policy) in &lifecycle.policies {
        let pointer = format!("/policies/{}", escape_pointer(name));
        let mut seen = BTreeSet::new();
        for (index, value) in policy.values.iter().enumerate() {
            if !seen.insert(value.to_lowercase()) {
                layers.report(
                    loader,
                    &format!("{pointer}/values/{index}"),
                    "lifecycle",
                    format!("value `{value}` of policy `{name}` is listed twice"),
                    None,
                );
            }
        }
        if !policy.values.iter().any(|v| v.eq_ignore_ascii_case(&policy.default)) {
            let values: Vec<&str> = policy.values.iter().map(String::as_str).collect();
            layers.report(
                loader,
                &format!("{pointer}/default"),
                "lifecycle",
                format!(
                    "default `{}` of policy `{name}` is not one of its values {}",
                    policy.default,
                    one_of(&values)
                ),
                did_you_mean(&policy.default, values.iter().copied()),
            );
        }
    }
}

fn check_route(loader: &mut Loader, layers: &Layers, lifecycle: &Lifecycle, key: &str, state: &State) {
    let Some(route) = &state.route else { return };
    let pointer = format!("/states/{}/route", escape_pointer(key));
    let events: Vec<&str> = state.on.keys().map(String::as_str).collect();
    let mut outcomes: Vec<(String, &String)> =
        route.cases.iter().map(|(v, e)| (format!("{pointer}/cases/{}", escape_pointer(v)), e)).collect();
    if let Some(otherwise) = &route.otherwise {
        outcomes.push((format!("{pointer}/otherwise"), otherwise));
    }
    for (at, event) in &outcomes {
        if event.as_str() != "wait" && !state.on.contains_key(event.as_str()) {
            layers.report(
                loader,
                at,
                "lifecycle",
                format!(
                    "route case `{event}` is not an event of state `{key}` (its events: {}) nor `wait`",
                    if events.is_empty() { "none".to_string() } else { one_of(&events) }
                ),
                did_you_mean(event, events.iter().copied()),
            );
        }
    }
    match (&route.policy, &route.field) {
        (Some(_), Some(_)) | (None, None) => layers.report(
            loader,
            &pointer,
            "lifecycle",
            "a `route` needs exactly one of `policy` (a routing policy) or `field` (an item field)",
            None,
        ),
        (Some(name), None) => {
            let Some(policy) = lifecycle.policies.get(name) else {
                let names: Vec<&str> = lifecycle.policies.keys().map(String::as_str).collect();
                layers.report(
                    loader,
                    &format!("{pointer}/policy"),
                    "lifecycle",
                    format!(
                        "no routing policy `{name}`; policies: {}",
                        if names.is_empty() {
                            "none (declare them under `policies`)".to_string()
                        } else {
                            one_of(&names)
                        }
                    ),
                    did_you_mean(name, names.iter().copied()),
                );
                return;
            };
            let values: Vec<&str> = policy.values.iter().map(String::as_str).collect();
            for value in route.cases.keys() {
                if !policy.values.iter().any(|v| v.eq_ignore_ascii_case(value)) {
                    layers.report_key(
                        loader,
                        &format!("{pointer}/cases/{}", escape_pointer(value)),
                        "lifecycle",
                        format!("`{value}` is not a value of policy `{name}` {}", one_of(&values)),
                        did_you_mean(value, values.iter().copied()),
                    );
                }
            }
            if route.otherwise.is_none() {
                let missing: Vec<&str> = values
                    .iter()
                    .copied()
                    .filter(|v| !route.cases.keys().any(|c| c.eq_ignore_ascii_case(v)))
                    .collect();
                if !missing.is_empty() {
                    layers.report_key(
                        loader,
                        &format!("{pointer}/cases"),
                        "routing",
                        format!(
                            "the route of `{key}` has no case for {name} {}; an item with that value would be stuck",
                            one_of(&missing)
                        ),
                        Some(format!("add a case for each value of `{name}` (an event of `{key}` or `wait`), or `otherwise`")),
                    );
                }
            }
        }
        (None, Some(field)) => {
            if route.otherwise.is_none() {
                layers.report_key(
                    loader,
                    &format!("{pointer}/cases"),
                    "routing",
                    format!("the route of `{key}` by field `{field}` needs `otherwise`: a field can hold any value"),
                    None,
                );
            }
        }
    }
}

fn check_level_name(
    loader: &mut Loader,
    layers: &Layers,
    role: &crate::model::roles::Role,
    at: &str,
    name: &str,
    allow_ends: bool,
) {
    let levels: Vec<&str> = role.levels.keys().map(String::as_str).collect();
    let ends = matches!(name.to_lowercase().as_str(), "lowest" | "highest");
    if role.resolve_level(name).is_none() || (ends && !allow_ends) {
        let aliases: Vec<&str> = role.aliases.keys().map(String::as_str).collect();
        let extra =
            if aliases.is_empty() { String::new() } else { format!(" or an alias {}", one_of(&aliases)) };
        let ends_text = if allow_ends { ", `lowest` or `highest`" } else { "" };
        layers.report(
            loader,
            at,
            "roles",
            format!(
                "{} `{name}` is not one of the levels {}{extra}{ends_text}",
                if allow_ends { "level" } else { "default level" },
                one_of(&levels)
            ),
            did_you_mean(name, levels.iter().copied()),
        );
    }
}

/// Check a roles file (merged over its base, if it extends one); problems go to the
/// loader, in the file that wrote the value.
pub(crate) fn check_roles(loader: &mut Loader, layers: &Layers, roles: &Roles) {
    let ids: Vec<&str> = roles.roles.keys().map(String::as_str).collect();
    for (alias, target) in &roles.role_aliases {
        let at = format!("/role_aliases/{}", escape_pointer(alias));
        if roles.roles.contains_key(alias) {
            layers.report_key(
                loader,
                &at,
                "roles",
                format!(
                    "role alias `{alias}` shadows the role `{alias}`; an alias is an old name, not a role"
                ),
                None,
            );
        } else if !roles.roles.contains_key(target) {
            layers.report(
                loader,
                &at,
                "roles",
                format!("role alias `{alias}` points to `{target}`, which is not a role {}", one_of(&ids)),
                did_you_mean(target, ids.iter().copied()),
            );
        }
    }
    for (role_id, role) in &roles.roles {
        let pointer = format!("/roles/{}", escape_pointer(role_id));
        let levels: Vec<&str> = role.levels.keys().map(String::as_str).collect();
        for (alias, target) in &role.aliases {
            let at = format!("{pointer}/aliases/{}", escape_pointer(alias));
            if role.levels.keys().any(|l| l.eq_ignore_ascii_case(alias))
                || matches!(alias.to_lowercase().as_str(), "lowest" | "highest")
            {
                layers.report_key(
                    loader,
                    &at,
                    "roles",
                    format!(
                        "alias `{alias}` of role `{role_id}` shadows a level of the same name; an alias is an old name for a level, not a level"
                    ),
                    Some("remove the alias, or rename it".into()),
                );
            } else if !role.levels.contains_key(target) {
                layers.report(
                    loader,
                    &at,
                    "roles",
                    format!(
                        "alias `{alias}` points to `{target}`, which is not one of the levels {}",
                        one_of(&levels)
                    ),
                    did_you_mean(target, levels.iter().copied()),
                );
            }
        }
        check_level_name(
            loader,
            layers,
            role,
            &format!("{pointer}/default_level"),
            &role.default_level,
            false,
        );
        if let Some(selection) = &role.level_selection {
            for (index, rule) in selection.rules.iter().enumerate() {
                check_level_name(
                    loader,
                    layers,
                    role,
                    &format!("{pointer}/level_selection/rules/{index}/level"),
                    &rule.level,
                    true,
                );
                if let (Some(min), Some(max)) = (rule.min_words, rule.max_words)
                    && min > max
                {
                    layers.report(
                        loader,
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
                        layers.report(
                            loader,
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
pub(crate) fn load_lifecycle(
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
        lifecycle.roles.as_deref().and_then(|r| super::layers::lifecycle_roles(loader, path, relative, r));
    Some((lifecycle, roles))
}

/// Load the roles file a workflow (or a lifecycle) names, reported at its `roles:` line.
pub(crate) fn load_workflow_roles(
    loader: &mut Loader,
    path: &Path,
    name: &str,
    document: &Document,
    relative: &str,
) -> Option<Arc<Roles>> {
    match loader.load_reference(
        path,
        name,
        document,
        "/roles",
        relative,
        FileKind::Roles,
        "roles file",
        false,
    ) {
        Some(Loaded::Roles(roles)) => Some(roles),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_in_short_long_and_named_forms() {
        for ok in ["#fff", "#0366D6", "steelblue", "RebeccaPurple"] {
            assert!(valid_colour(ok), "{ok}");
        }
        for bad in ["fff", "#ffff", "#12345g", "notacolour", ""] {
            assert!(!valid_colour(bad), "{bad}");
        }
    }
}
