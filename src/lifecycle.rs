//! Lifecycle moves and level selection: pure functions over the lifecycle and
//! roles models, used by the engine and `runner roles`. Drawing is in `graph`.

use serde::Serialize;

use crate::model::lifecycle::{Lifecycle, StateType};
use crate::model::roles::{Role, Roles, TextField};

/// How an item should move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Move {
    /// By this event.
    Event(String),
    /// To this state (key or label), by whichever transition leads there.
    To(String),
    /// By the event a role's completion result fires.
    Completion {
        /// The role.
        role: String,
        /// Its result.
        result: String,
    },
    /// By the state's `route`: the item's labels (and fields) pick the case.
    Route {
        /// The item's labels.
        labels: Vec<String>,
        /// The item's fields, for a route by `field`.
        fields: serde_json::Value,
    },
}

/// How a route decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Routed {
    /// The policy (or field) that decided.
    pub by: String,
    /// Its value for the item.
    pub value: String,
    /// Where the value came from: the override label, the policy default, or the field.
    pub source: String,
    /// The case taken: an event of the state, or `wait`.
    pub case: String,
}

/// A move the lifecycle allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Moved {
    /// The state it was in.
    pub from: String,
    /// Its label.
    pub from_label: String,
    /// The event that moved it.
    pub event: String,
    /// The state it is in now.
    pub to: String,
    /// Its label.
    pub to_label: String,
    /// The new state's type.
    pub to_type: String,
    /// The new state's role, if any.
    pub to_role: Option<String>,
    /// Actions to run with the move, in order.
    pub actions: Vec<String>,
    /// Labels to add to the item.
    pub add_labels: Vec<String>,
    /// Labels to remove from the item.
    pub remove_labels: Vec<String>,
    /// With a route: how it decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Routed>,
    /// True when the route says `wait`: the item stays where it is.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub waiting: bool,
}

/// The value of the routing policy `name` for an item with these labels: the first
/// override label `<prefix><value>` naming one of its values, else the default.
pub(crate) fn policy_value(lifecycle: &Lifecycle, name: &str, labels: &[String]) -> Option<(String, String)> {
    let policy = lifecycle.policies.get(name)?;
    let prefix = policy.prefix(name).to_lowercase();
    for label in labels {
        let lower = label.trim().to_lowercase();
        if let Some(value) = lower.strip_prefix(&prefix)
            && let Some(known) = policy.values.iter().find(|v| v.to_lowercase() == value)
        {
            return Some((known.clone(), format!("the label `{}`", label.trim())));
        }
    }
    Some((policy.default.clone(), "the policy default".to_string()))
}

/// Decide a state's route for an item.
pub(crate) fn route(
    lifecycle: &Lifecycle,
    state_key: &str,
    labels: &[String],
    fields: &serde_json::Value,
) -> Result<Routed, String> {
    let Some(state) = lifecycle.states.get(state_key) else {
        return Err(format!("no state `{state_key}` in the lifecycle"));
    };
    let Some(route) = &state.route else {
        return Err(format!("state `{state_key}` has no `route`"));
    };
    let (by, value, source) = match (&route.policy, &route.field) {
        (Some(policy), _) => {
            let Some((value, source)) = policy_value(lifecycle, policy, labels) else {
                return Err(format!("no policy `{policy}` in the lifecycle"));
            };
            (policy.clone(), value, source)
        }
        (None, Some(field)) => {
            let value = match fields.get(field) {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (field.clone(), value, format!("the field `{field}`"))
        }
        (None, None) => return Err(format!("the route of `{state_key}` names no policy or field")),
    };
    let case = route
        .cases
        .iter()
        .find(|(v, _)| v.eq_ignore_ascii_case(&value))
        .map(|(_, case)| case.clone())
        .or_else(|| route.otherwise.clone());
    match case {
        Some(case) => Ok(Routed { by, value, source, case }),
        None => Err(format!("the route of `{state_key}` has no case for {by} `{value}` and no `otherwise`")),
    }
}

/// Work out a move, or say why the lifecycle does not allow it.
pub(crate) fn step(
    lifecycle: &Lifecycle,
    roles: Option<&Roles>,
    state: &str,
    how: &Move,
) -> Result<Moved, String> {
    let Some((from, current)) = lifecycle.find(state) else {
        let keys: Vec<&str> = lifecycle.states.keys().map(String::as_str).collect();
        return Err(format!(
            "no state `{state}` in the lifecycle (by key or label); states: {}",
            keys.join(", ")
        ));
    };
    let events: Vec<&str> = current.on.keys().map(String::as_str).collect();
    let mut routed = None;
    let (event, transition) = match how {
        Move::Route { labels, fields } => {
            let decided = route(lifecycle, from, labels, fields)?;
            if decided.case == "wait" {
                return Ok(Moved {
                    from: from.to_string(),
                    from_label: current.label.clone(),
                    event: String::new(),
                    to: from.to_string(),
                    to_label: current.label.clone(),
                    to_type: current.ty.name().to_string(),
                    to_role: current.role.clone(),
                    actions: Vec::new(),
                    add_labels: Vec::new(),
                    remove_labels: Vec::new(),
                    route: Some(decided),
                    waiting: true,
                });
            }
            let Some((event, transition)) = current.on.get_key_value(decided.case.as_str()) else {
                return Err(format!(
                    "the route of `{from}` takes `{}`, which is not one of its events ({})",
                    decided.case,
                    events.join(", ")
                ));
            };
            routed = Some(decided);
            (event.clone(), transition)
        }
        Move::Event(event) => match current.on.get_key_value(event.as_str()) {
            Some((event, transition)) => (event.clone(), transition),
            None => {
                return Err(format!(
                    "state `{from}` ({}) has no transition for `{event}`; its events: {}",
                    current.label,
                    if events.is_empty() { "none".to_string() } else { events.join(", ") }
                ));
            }
        },
        Move::To(target) => {
            let Some((target_key, _)) = lifecycle.find(target) else {
                return Err(format!("no state `{target}` in the lifecycle"));
            };
            match current.on.iter().find(|(_, t)| t.target() == target_key) {
                Some((event, transition)) => (event.clone(), transition),
                None => {
                    return Err(format!(
                        "the lifecycle does not allow `{from}` -> `{target_key}`; from `{from}` an item can go to: {}",
                        targets(current)
                    ));
                }
            }
        }
        Move::Completion { role, result } => {
            let Some(roles) = roles else { return Err("completion rules need a roles file".into()) };
            let Some(role_def) = roles.roles.get(role) else {
                return Err(format!(
                    "no role `{role}`; roles: {}",
                    roles.roles.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            };
            let Some(event) = role_def.completion.get(result) else {
                return Err(format!(
                    "{} cannot complete with `{result}`; its results: {}",
                    role,
                    role_def.completion.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            };
            if current.ty != StateType::Active || current.role.as_deref() != Some(role.as_str()) {
                return Err(format!("state `{from}` is not an active state of role `{role}`"));
            }
            match current.on.get_key_value(event.as_str()) {
                Some((event, transition)) => (event.clone(), transition),
                None => {
                    return Err(format!("state `{from}` has no transition for `{event}` ({role}:{result})"));
                }
            }
        }
    };
    let to = transition.target().to_string();
    let Some(next) = lifecycle.states.get(&to) else {
        return Err(format!("transition `{event}` of `{from}` targets the unknown state `{to}`"));
    };
    Ok(Moved {
        from: from.to_string(),
        from_label: current.label.clone(),
        event,
        to: to.clone(),
        to_label: next.label.clone(),
        to_type: next.ty.name().to_string(),
        to_role: next.role.clone(),
        actions: transition.actions().to_vec(),
        add_labels: if next.label == current.label { Vec::new() } else { vec![next.label.clone()] },
        remove_labels: if next.label == current.label { Vec::new() } else { vec![current.label.clone()] },
        route: routed,
        waiting: false,
    })
}

fn targets(state: &crate::model::lifecycle::State) -> String {
    let list: Vec<String> = state.on.iter().map(|(e, t)| format!("{} (by {e})", t.target())).collect();
    if list.is_empty() { "nowhere (no transitions)".into() } else { list.join(", ") }
}

/// The level chosen for a piece of work, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Selection {
    /// The role.
    pub role: String,
    /// The level.
    pub level: String,
    /// Its model.
    pub model: String,
    /// Workers allowed at this level at once (2 unless the roles file says otherwise).
    pub max_workers: u32,
    /// Which rule decided: `label`, `inherited`, `rule <name>` or `default`.
    pub rule: String,
    /// Why, in words.
    pub reason: String,
}

/// Choose a level for `role_id` of `roles` (its role aliases apply to labels).
pub(crate) fn select_level_in(
    roles: &Roles,
    role_id: &str,
    title: &str,
    body: &str,
    labels: &[String],
) -> Option<Selection> {
    let (id, role) = find_role(roles, role_id)?;
    Some(select_level_with(&roles.role_aliases, id, role, title, body, labels))
}

/// A role by id or by one of its old names (`dev`, `qa`), ignoring case.
pub(crate) fn find_role<'a>(roles: &'a Roles, name: &str) -> Option<(&'a str, &'a Role)> {
    if let Some((id, role)) = roles.roles.get_key_value(name) {
        return Some((id, role));
    }
    let lower = name.trim().to_lowercase();
    let canonical = roles
        .role_aliases
        .iter()
        .find(|(alias, _)| alias.to_lowercase() == lower)
        .map(|(_, target)| target.as_str())
        .unwrap_or(lower.as_str());
    roles
        .roles
        .iter()
        .find(|(id, _)| id.to_lowercase() == canonical.to_lowercase())
        .map(|(id, r)| (id.as_str(), r))
}

/// A level label as written on an item.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LevelLabel {
    /// `<role>:<level>[:<Name>]` (current) or `<role>.<level>` (older); the role is canonical.
    Role { role: String, level: String },
    /// A bare level name (the oldest format), e.g. `senior` or `opus`.
    Bare(String),
}

fn parse_level_label(role_aliases: &indexmap::IndexMap<String, String>, label: &str) -> Option<LevelLabel> {
    let label = label.trim();
    let canonical_role = |role: &str| {
        let lower = role.trim().to_lowercase();
        role_aliases
            .iter()
            .find(|(alias, _)| alias.to_lowercase() == lower)
            .map(|(_, target)| target.to_lowercase())
            .unwrap_or(lower)
    };
    if let Some((role, rest)) = label.split_once(':') {
        let level = rest.split(':').next().unwrap_or_default().trim();
        if role.trim().is_empty() || level.is_empty() {
            return None;
        }
        return Some(LevelLabel::Role { role: canonical_role(role), level: level.to_lowercase() });
    }
    if let Some((role, level)) = label.split_once('.') {
        let level = level.trim();
        if role.trim().is_empty() || level.is_empty() || level.contains(['.', ' ']) || role.contains(' ') {
            return None;
        }
        return Some(LevelLabel::Role { role: canonical_role(role), level: level.to_lowercase() });
    }
    (!label.is_empty() && !label.contains(' ')).then(|| LevelLabel::Bare(label.to_lowercase()))
}

/// Choose a level. Precedence, first that decides:
/// 1. this role's own level label, the first in label order, in any format:
///    `<role>:<level>[:<Name>]`, the older `<role>.<level>`, the role by an old name
///    (`dev:`, `qa.`) and the level by an alias (`mid`, `opus`);
/// 2. a bare level name label (`senior`, `opus`), the oldest format;
/// 3. if the role inherits: the first other role's level label naming a level this role has;
/// 4. the rules in order (a rule's level may be `lowest` or `highest`);
/// 5. the default level.
pub(crate) fn select_level_with(
    role_aliases: &indexmap::IndexMap<String, String>,
    role_id: &str,
    role: &Role,
    title: &str,
    body: &str,
    labels: &[String],
) -> Selection {
    let pick = |level: &str, rule: String, reason: String| {
        let level = role.resolve_level(level).unwrap_or(level);
        Selection {
            role: role_id.to_string(),
            level: level.to_string(),
            model: role.levels.get(level).map(|m| m.model().to_string()).unwrap_or_else(|| level.to_string()),
            max_workers: match role.levels.get(level) {
                Some(crate::model::roles::LevelModel::Full { max_workers: Some(n), .. }) => *n,
                _ => 2,
            },
            rule,
            reason,
        }
    };
    let me = role_id.to_lowercase();
    let parsed: Vec<(LevelLabel, &String)> =
        labels.iter().filter_map(|label| Some((parse_level_label(role_aliases, label)?, label))).collect();
    let named = |level: &str| role.resolve_level(level).filter(|_| !matches!(level, "lowest" | "highest"));
    for (parsed, label) in &parsed {
        if let LevelLabel::Role { role: owner, level } = parsed
            && owner == &me
            && let Some(level) = named(level)
        {
            return pick(level, "label".into(), format!("the item is labelled `{label}`"));
        }
    }
    for (parsed, label) in &parsed {
        if let LevelLabel::Bare(level) = parsed
            && let Some(level) = named(level)
        {
            return pick(
                level,
                "label".into(),
                format!("the item is labelled `{label}` (a bare level name)"),
            );
        }
    }
    let selection = role.level_selection.clone().unwrap_or_default();
    if selection.inherit {
        for (parsed, label) in &parsed {
            if let LevelLabel::Role { role: owner, level } = parsed
                && owner != &me
                && let Some(level) = named(level)
            {
                return pick(level, "inherited".into(), format!("inherited from the label `{label}`"));
            }
        }
    }
    for (index, rule) in selection.rules.iter().enumerate() {
        let fields = if rule.fields.is_empty() {
            vec![TextField::Title, TextField::Body]
        } else {
            rule.fields.clone()
        };
        let text: String = fields
            .iter()
            .map(|f| match f {
                TextField::Title => title,
                TextField::Body => body,
            })
            .collect::<Vec<_>>()
            .join(" ");
        let words = text.split_whitespace().count() as u32;
        let mut reasons = Vec::new();
        if !rule.keywords.is_empty() {
            match rule.keywords.iter().find(|k| contains_words(&text, k)) {
                Some(found) => reasons.push(format!("mentions \"{found}\"")),
                None => continue,
            }
        }
        if let Some(min) = rule.min_words {
            if words < min {
                continue;
            }
            reasons.push(format!("{words} words >= {min}"));
        }
        if let Some(max) = rule.max_words {
            if words > max {
                continue;
            }
            reasons.push(format!("{words} words <= {max}"));
        }
        let name = rule.name.clone().unwrap_or_else(|| format!("#{}", index + 1));
        let reason = if reasons.is_empty() { "always".to_string() } else { reasons.join(", ") };
        return pick(&rule.level, format!("rule {name}"), reason);
    }
    pick(&role.default_level, "default".into(), "no label or rule decided".into())
}

/// Whether `phrase` occurs in `text` as whole words, ignoring case ("css" does not match
/// "process", "architect" does not match "architecture").
pub(crate) fn contains_words(text: &str, phrase: &str) -> bool {
    let text = text.to_lowercase();
    let phrase = phrase.trim().to_lowercase();
    if phrase.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(found) = text[from..].find(&phrase) {
        let start = from + found;
        let end = start + phrase.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
            return true;
        }
        from = start + phrase.chars().next().map(char::len_utf8).unwrap_or(1);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifecycle() -> Lifecycle {
        serde_json::from_value(serde_json::json!({
            "kind": "lifecycle", "initial": "toTest",
            "policies": {"test": {"values": ["agent", "skip"], "default": "agent"}},
            "states": {
                "toTest": {"type": "queue", "role": "tester", "label": "To Test",
                           "route": {"policy": "test", "cases": {"agent": "PICKUP", "skip": "SKIP"}},
                           "on": {"PICKUP": "testing", "SKIP": {"target": "done", "actions": ["closeIssue"]}}},
                "testing": {"type": "active", "role": "tester", "label": "Testing", "on": {"PASS": "done"}},
                "triage": {"type": "hold", "label": "Triage",
                           "route": {"field": "kind", "cases": {"bug": "FIX"}, "otherwise": "wait"},
                           "on": {"FIX": "toTest"}},
                "done": {"type": "terminal", "label": "Done"}
            }
        }))
        .expect("lifecycle")
    }

    #[test]
    fn routes_follow_the_override_label_else_the_default() {
        let lifecycle = lifecycle();
        let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let how = |l: &[&str]| Move::Route { labels: labels(l), fields: serde_json::Value::Null };
        let skipped = step(&lifecycle, None, "To Test", &how(&["bug", "Test:Skip"])).expect("move");
        assert_eq!((skipped.to.as_str(), skipped.actions.clone()), ("done", vec!["closeIssue".to_string()]));
        assert_eq!(skipped.route.as_ref().map(|r| r.source.as_str()), Some("the label `Test:Skip`"));
        let default = step(&lifecycle, None, "toTest", &how(&["test:maybe"])).expect("move");
        assert_eq!((default.event.as_str(), default.to.as_str()), ("PICKUP", "testing"));
        assert_eq!(default.route.map(|r| r.source), Some("the policy default".to_string()));
        let by_field =
            |kind: &str| Move::Route { labels: Vec::new(), fields: serde_json::json!({"kind": kind}) };
        assert_eq!(step(&lifecycle, None, "triage", &by_field("bug")).expect("move").to, "toTest");
        let waiting = step(&lifecycle, None, "triage", &by_field("idea")).expect("move");
        assert!(waiting.waiting && waiting.to == "triage" && waiting.add_labels.is_empty());
        assert!(step(&lifecycle, None, "testing", &how(&[])).is_err());
    }

    #[test]
    fn level_labels_in_old_formats_and_aliases() {
        let roles: Roles = serde_json::from_value(serde_json::json!({
            "kind": "roles", "role_aliases": {"dev": "developer"},
            "roles": {"developer": {
                "levels": {"junior": "h", "medior": "s", "senior": "o"}, "aliases": {"mid": "medior"},
                "default_level": "mid", "completion": {"done": "COMPLETE"},
                "level_selection": {"rules": [{"level": "highest", "keywords": ["refactor"]}]}
            }}
        }))
        .expect("roles");
        let pick = |labels: &[&str], title: &str| {
            let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
            let chosen = select_level_in(&roles, "dev", title, "", &labels).expect("role");
            (chosen.level, chosen.rule)
        };
        assert_eq!(pick(&["dev.senior"], "x"), ("senior".into(), "label".into()));
        assert_eq!(pick(&["developer:mid:Cordelia"], "x"), ("medior".into(), "label".into()));
        assert_eq!(pick(&["JUNIOR"], "x"), ("junior".into(), "label".into()));
        assert_eq!(pick(&["tester:senior"], "x"), ("medior".into(), "default".into()));
        assert_eq!(pick(&[], "Refactor it"), ("senior".into(), "rule #1".into()));
        assert_eq!(pick(&["developer:lowest"], "x"), ("medior".into(), "default".into()));
    }

    #[test]
    fn whole_words_only() {
        assert!(contains_words("Refactor the parser", "refactor"));
        assert!(!contains_words("process the file", "css"));
        assert!(!contains_words("the architecture doc", "architect"));
        assert!(contains_words("a database schema change", "database schema"));
        assert!(contains_words("fix typo.", "fix typo"));
    }
}
