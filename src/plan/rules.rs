//! Guard contract rules compiled to regexes once per process, not once per check: a
//! guard in a loop or a long-lived supervisor checks many texts against the same few
//! rules. The loader already refused rules that do not compile; a failure here is kept
//! and reported like any other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use regex::Regex;

use crate::model::lanes::GuardRule;

type Key = (String, bool);
type Cache = Mutex<HashMap<Key, Result<Arc<Regex>, String>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The rule's whole-text regex, compiled the first time it is asked for.
pub(crate) fn compiled(rule: &GuardRule) -> Result<Arc<Regex>, String> {
    let key = (rule.pattern.clone(), rule.ignore_case);
    if let Ok(known) = cache().lock()
        && let Some(found) = known.get(&key)
    {
        return found.clone();
    }
    let built = crate::load::check_workflow::compile_rule(rule).map(Arc::new);
    if let Ok(mut known) = cache().lock() {
        known.insert(key, built.clone());
    }
    built
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, ignore_case: bool) -> GuardRule {
        serde_json::from_value(serde_json::json!({
            "id": "r", "pattern": pattern, "verdict": "accept", "ignore_case": ignore_case,
        }))
        .unwrap_or_else(|e| panic!("rule: {e}"))
    }

    #[test]
    fn compiled_once_and_whole_text() {
        let first = compiled(&rule("done( \\d+)?", false)).unwrap_or_else(|e| panic!("{e}"));
        let again = compiled(&rule("done( \\d+)?", false)).unwrap_or_else(|e| panic!("{e}"));
        assert!(Arc::ptr_eq(&first, &again));
        assert!(first.is_match("done 3"));
        assert!(!first.is_match("not done"));
        assert!(compiled(&rule("DONE", true)).is_ok_and(|r| r.is_match("done")));
        assert!(compiled(&rule("(", false)).is_err());
    }
}
