//! Collection helpers, so workflows state domain rules instead of looping in Jinja:
//! sort by several keys, min/max by key, first match, index/group by key, unique, and
//! normalising enum-like strings. Keys are dotted paths (`a.b`); `a|b` means `a`, or
//! `b` when `a` is missing (servers spell fields differently). A missing level is
//! `none`, never an error, so untidy server data does not break a run.
//!
//! | helper | example | result |
//! |---|---|---|
//! | `sort_by(*keys)` | `items \| sort_by('queuedAt', '-pr')` | sorted copy; `-` = descending |
//! | `min_by(key)` / `max_by(key)` | `items \| min_by('queuedAt')` | the item, or `none` |
//! | `find_by(key, value?)` | `prs \| find_by('evidence')` | first item whose key equals `value` (or is truthy) |
//! | `index_by(key)` | `lanes \| index_by('id')` | map key → first item |
//! | `group_by(key)` | `issues \| group_by('lane')` | map key → items, in order |
//! | `count_by(key, missing?)` | `items \| count_by('lane', missing='unknown')` | map key → number of items, in order |
//! | `unique_by(key?)` | `urls \| unique_by` | first item per key (or value) |
//! | `project(name=path, ...)` | `checks \| project(name='name\|context')` | each item as a map of just these fields |
//! | `normalize(aliases?, prefix?)` | `'In_Progress' \| normalize(prefix='status/')` | `status/in-progress` |
//! | `flatten` | `groups \| map(attribute='skipped') \| flatten` | one list of the lists' items |
//! | `x is intersecting(list)` | `lane.infer_labels is intersecting(labels)` | whether they share an item |
//! | `which(name)` | `which('gh')` | the program's path on `PATH`, or `none` (nothing is run) |

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};

/// Add the helpers to an environment.
pub(crate) fn register(env: &mut Environment<'_>) {
    env.add_filter("sort_by", sort_by);
    env.add_filter("min_by", min_by);
    env.add_filter("max_by", max_by);
    env.add_filter("find_by", find_by);
    env.add_filter("index_by", index_by);
    env.add_filter("group_by", group_by);
    env.add_filter("count_by", count_by);
    env.add_filter("unique_by", unique_by);
    env.add_filter("normalize", normalize);
    env.add_filter("project", project);
    env.add_filter("flatten", flatten);
    env.add_test("intersecting", intersecting);
    env.add_function("which", |name: &str| which_in(name, std::env::var_os("PATH").as_deref()));
}

/// The value at a dotted path (`a|b`: the first alternative present), `none` when a
/// level is missing.
fn at(value: &Value, path: &str) -> Value {
    path.split('|')
        .map(|alternative| at_path(value, alternative.trim()))
        .find(|v| !v.is_none())
        .unwrap_or(Value::from(()))
}

fn at_path(value: &Value, path: &str) -> Value {
    let mut current = value.clone();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let next = match current.kind() {
            ValueKind::Map => current.get_attr(part).ok(),
            ValueKind::Seq => part.parse::<i64>().ok().and_then(|i| current.get_item(&Value::from(i)).ok()),
            _ => None,
        };
        match next {
            Some(v) if !v.is_undefined() && !v.is_none() => current = v,
            _ => return Value::from(()),
        }
    }
    current
}

fn items(value: &Value, filter: &str) -> Result<Vec<Value>, Error> {
    if value.is_none() || value.is_undefined() {
        return Ok(Vec::new());
    }
    match value.kind() {
        ValueKind::Seq | ValueKind::Iterable => Ok(value.try_iter()?.collect()),
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("`{filter}` needs a list, found {}", value.kind()),
        )),
    }
}

fn key_text(value: &Value) -> String {
    match value.as_str() {
        Some(text) => text.to_string(),
        None if value.is_none() => String::new(),
        None => value.to_string(),
    }
}

/// `list | sort_by('a', '-b')`: a sorted copy, by `a` then by `b` descending. The sort
/// is stable; `none` sorts before everything else.
// minijinja hands filter arguments over by value.
#[allow(clippy::needless_pass_by_value)]
fn sort_by(value: &Value, keys: Rest<String>) -> Result<Value, Error> {
    let mut list = items(value, "sort_by")?;
    if keys.0.is_empty() {
        list.sort();
        return Ok(Value::from(list));
    }
    let keys: Vec<(&str, bool)> =
        keys.0.iter().map(|k| k.strip_prefix('-').map_or((k.as_str(), false), |k| (k, true))).collect();
    list.sort_by(|a, b| {
        for (key, descending) in &keys {
            let order = at(a, key).cmp(&at(b, key));
            let order = if *descending { order.reverse() } else { order };
            if order != Ordering::Equal {
                return order;
            }
        }
        Ordering::Equal
    });
    Ok(Value::from(list))
}

/// `list | min_by('key')`: the first item with the smallest key, `none` when empty.
fn min_by(value: &Value, key: &str) -> Result<Value, Error> {
    let list = items(value, "min_by")?;
    Ok(list
        .into_iter()
        .reduce(|best, it| if at(&it, key) < at(&best, key) { it } else { best })
        .unwrap_or(Value::from(())))
}

/// `list | max_by('key')`: the first item with the largest key, `none` when empty.
fn max_by(value: &Value, key: &str) -> Result<Value, Error> {
    let list = items(value, "max_by")?;
    Ok(list
        .into_iter()
        .reduce(|best, it| if at(&it, key) > at(&best, key) { it } else { best })
        .unwrap_or(Value::from(())))
}

/// `list | find_by('key')`: the first item whose key is truthy; with a second
/// argument, the first whose key equals it (a number equals its text: `"11"` finds 11).
/// `none` when nothing matches.
// minijinja hands filter arguments over by value.
#[allow(clippy::needless_pass_by_value)]
fn find_by(value: &Value, key: &str, expected: Option<Value>) -> Result<Value, Error> {
    let list = items(value, "find_by")?;
    Ok(list
        .into_iter()
        .find(|it| {
            let found = at(it, key);
            match &expected {
                Some(expected) if expected.is_number() || found.is_number() => {
                    !found.is_none() && key_text(&found) == key_text(expected)
                }
                Some(expected) => &found == expected,
                None => found.is_true(),
            }
        })
        .unwrap_or(Value::from(())))
}

/// `list | index_by('key')`: a map from each key (as text) to the first item with it.
/// Items without the key are left out. Keys come out sorted, as in every template map.
fn index_by(value: &Value, key: &str) -> Result<Value, Error> {
    let mut map = indexmap::IndexMap::new();
    for it in items(value, "index_by")? {
        let k = at(&it, key);
        if !k.is_none() {
            map.entry(key_text(&k)).or_insert(it);
        }
    }
    Ok(Value::from_pairs(map))
}

/// `list | group_by('key')`: a map from each key (as text) to the items with it, in
/// order. Items without the key are grouped under `""`. Keys come out sorted.
fn group_by(value: &Value, key: &str) -> Result<Value, Error> {
    let mut map: indexmap::IndexMap<String, Vec<Value>> = indexmap::IndexMap::new();
    for it in items(value, "group_by")? {
        map.entry(key_text(&at(&it, key))).or_default().push(it);
    }
    Ok(Value::from_pairs(map.into_iter().map(|(k, v)| (k, Value::from(v)))))
}

/// `list | count_by('key', missing='unknown')`: a map from each key (as text, in order
/// of first appearance) to how many items have it; items without the key count under
/// `missing` (default: the empty text).
// minijinja hands filter arguments over by value.
#[allow(clippy::needless_pass_by_value)]
fn count_by(value: &Value, key: &str, kwargs: Kwargs) -> Result<Value, Error> {
    let missing: Option<String> = kwargs.get("missing")?;
    kwargs.assert_all_used()?;
    let mut map: indexmap::IndexMap<String, usize> = indexmap::IndexMap::new();
    for it in items(value, "count_by")? {
        let mut k = key_text(&at(&it, key));
        if k.is_empty() {
            k = missing.clone().unwrap_or_default();
        }
        *map.entry(k).or_default() += 1;
    }
    Ok(Value::from_pairs(map.into_iter().map(|(k, n)| (k, Value::from(n)))))
}

/// `list | unique_by('key')`: the first item of each key; without a key, of each value.
fn unique_by(value: &Value, key: Option<&str>) -> Result<Value, Error> {
    let mut seen: Vec<Value> = Vec::new();
    let mut out = Vec::new();
    for it in items(value, "unique_by")? {
        let k = key.map_or_else(|| it.clone(), |key| at(&it, key));
        if !seen.contains(&k) {
            seen.push(k);
            out.push(it);
        }
    }
    Ok(Value::from(out))
}

/// `text | normalize(aliases={...}, prefix='status/')`: an enum-like string in one
/// spelling: trimmed, lower case, `_` and spaces as `-`; then replaced by its entry in
/// `aliases` if it has one; then given `prefix` unless it already starts with it.
/// `none` and empty text give `none`.
// minijinja hands filter arguments over by value.
#[allow(clippy::needless_pass_by_value)]
fn normalize(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let aliases: Option<Value> = kwargs.get("aliases")?;
    let prefix: Option<String> = kwargs.get("prefix")?;
    kwargs.assert_all_used()?;
    if value.is_none() || value.is_undefined() {
        return Ok(Value::from(()));
    }
    let raw = match value.as_str() {
        Some(text) => text.to_string(),
        None => value.to_string(),
    };
    let mut text: String = raw
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == '_' || c.is_whitespace() { '-' } else { c })
        .collect();
    if text.is_empty() {
        return Ok(Value::from(()));
    }
    if let Some(aliases) = aliases
        && let Ok(alias) = aliases.get_item(&Value::from(text.as_str()))
        && !alias.is_undefined()
        && !alias.is_none()
    {
        text = key_text(&alias);
    }
    if let Some(prefix) = prefix
        && !text.starts_with(&prefix)
    {
        text = format!("{prefix}{text}");
    }
    Ok(Value::from(text))
}

/// `list | project(name='name|context', state='state')`: each item as a map holding only
/// the given fields, each read from its path (`none` when missing). Renames and picks
/// fields of untidy server data in one step, without a loop.
// minijinja hands filter arguments over by value.
#[allow(clippy::needless_pass_by_value)]
fn project(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let fields: Vec<(String, String)> = kwargs
        .args()
        .map(|name| Ok((name.to_string(), kwargs.get::<String>(name)?)))
        .collect::<Result<_, Error>>()?;
    let list = items(value, "project")?;
    Ok(Value::from(
        list.iter()
            .map(|it| Value::from_pairs(fields.iter().map(|(name, path)| (name.clone(), at(it, path)))))
            .collect::<Vec<_>>(),
    ))
}

/// `lists | flatten`: the items of each list, in order (one level; `none` is skipped,
/// anything else is kept as one item).
fn flatten(value: &Value) -> Result<Value, Error> {
    let mut out = Vec::new();
    for it in items(value, "flatten")? {
        match it.kind() {
            ValueKind::Seq | ValueKind::Iterable => out.extend(it.try_iter()?),
            _ if it.is_none() || it.is_undefined() => {}
            _ => out.push(it),
        }
    }
    Ok(Value::from(out))
}

/// `a is intersecting(b)`: whether the lists share an item.
fn intersecting(value: &Value, other: &Value) -> bool {
    let (Ok(left), Ok(right)) = (items(value, "intersecting"), items(other, "intersecting")) else {
        return false;
    };
    left.iter().any(|item| right.contains(item))
}

/// The full path of `name` on `search` (a `PATH` value), or `none`. A name with a
/// `/` is checked as it is. Nothing is run.
pub(crate) fn which_in(name: &str, search: Option<&std::ffi::OsStr>) -> Value {
    match find_program(name, search) {
        Some(path) => Value::from(path.display().to_string()),
        None => Value::from(()),
    }
}

fn find_program(name: &str, search: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    if name.is_empty() {
        return None;
    }
    if name.contains('/') {
        let path = Path::new(name);
        return is_executable(path).then(|| path.to_path_buf());
    }
    std::env::split_paths(search?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use minijinja::value::Serde;
    use serde_json::{Value as Json, json};

    fn eval(expression: &str, ctx: Json) -> Json {
        let env = crate::template::environment();
        let value =
            env.compile_expression(expression).and_then(|e| e.eval(minijinja::Value::from(Serde(ctx))));
        match value {
            Ok(v) => serde_json::to_value(&v).unwrap_or(json!("<unserialisable>")),
            Err(e) => json!(format!("<error: {e}>")),
        }
    }

    fn queue() -> Json {
        json!({"q": [
            {"id": "a", "at": "2026-01-02", "pr": 3, "lane": "local"},
            {"id": "b", "at": "2026-01-01", "pr": 9, "lane": "cloud"},
            {"id": "c", "at": "2026-01-01", "pr": 4},
        ]})
    }

    #[test]
    fn sort_by_several_keys_and_descending() {
        assert_eq!(
            eval("q | sort_by('at', 'pr') | map(attribute='id') | list", queue()),
            json!(["c", "b", "a"])
        );
        assert_eq!(
            eval("q | sort_by('at', '-pr') | map(attribute='id') | list", queue()),
            json!(["b", "c", "a"])
        );
        assert_eq!(eval("q | sort_by('lane') | map(attribute='id') | list", queue()), json!(["c", "b", "a"]));
        assert_eq!(eval("none | sort_by('x')", json!({})), json!([]));
        assert!(eval("5 | sort_by('x')", json!({})).as_str().is_some_and(|e| e.contains("needs a list")));
    }

    #[test]
    fn min_and_max_by_key_keep_the_first_on_ties() {
        assert_eq!(eval("(q | min_by('at')).id", queue()), json!("b"));
        assert_eq!(eval("(q | max_by('pr')).id", queue()), json!("b"));
        assert_eq!(eval("[] | min_by('at')", json!({})), Json::Null);
    }

    #[test]
    fn find_by_truthy_or_equal() {
        assert_eq!(eval("(q | find_by('lane')).id", queue()), json!("a"));
        assert_eq!(eval("(q | find_by('lane', 'cloud')).id", queue()), json!("b"));
        assert_eq!(eval("q | find_by('lane', 'frontier')", queue()), Json::Null);
        assert_eq!(
            eval("(x | find_by('a.b', 2)).n", json!({"x": [{"n": 1, "a": 5}, {"n": 2, "a": {"b": 2}}]})),
            json!(2)
        );
    }

    #[test]
    fn alternatives_text_numbers_and_intersecting() {
        let issues = json!({"x": [{"number": "9"}, {"issueNumber": 11}, {"number": 12}]});
        assert_eq!(eval("x | find_by('number|issueNumber', 11)", issues.clone()), json!({"issueNumber": 11}));
        assert_eq!(eval("x | find_by('number|issueNumber', 9)", issues.clone()), json!({"number": "9"}));
        assert_eq!(eval("x | find_by('number', 'nine')", issues), Json::Null);
        assert_eq!(eval("['a', 'b'] is intersecting(['c', 'b'])", json!({})), json!(true));
        assert_eq!(eval("['a'] is intersecting(none)", json!({})), json!(false));
    }

    #[test]
    fn project_picks_and_renames_fields() {
        let checks = json!({"c": [{"name": "t", "conclusion": "FAILURE", "x": 1}, {"context": "ci", "state": "ERROR"}]});
        assert_eq!(
            eval("c | project(name='name|context', result='conclusion|state')", checks),
            json!([{"name": "t", "result": "FAILURE"}, {"name": "ci", "result": "ERROR"}])
        );
    }

    #[test]
    fn flatten_one_level() {
        assert_eq!(eval("[[1, 2], none, [], [3, [4]], 5] | flatten", json!({})), json!([1, 2, 3, [4], 5]));
    }

    #[test]
    fn index_group_unique() {
        assert_eq!(eval("(q | index_by('lane')).cloud.id", queue()), json!("b"));
        // Template maps keep their keys sorted.
        assert_eq!(eval("q | index_by('lane') | list", queue()), json!(["cloud", "local"]));
        assert_eq!(
            eval("(q | group_by('at'))['2026-01-01'] | map(attribute='id') | list", queue()),
            json!(["b", "c"])
        );
        assert_eq!(eval("q | unique_by('at') | map(attribute='id') | list", queue()), json!(["a", "b"]));
        assert_eq!(eval("q | count_by('at')", queue()), json!({"2026-01-01": 2, "2026-01-02": 1}));
        assert_eq!(
            eval("q | count_by('lane', missing='unknown')", queue()),
            json!({"cloud": 1, "local": 1, "unknown": 1})
        );
        assert_eq!(eval("[1, 2, 1, 3, 2] | unique_by", json!({})), json!([1, 2, 3]));
    }

    #[test]
    fn normalize_enum_like_strings() {
        assert_eq!(eval("' In_Progress ' | normalize", json!({})), json!("in-progress"));
        assert_eq!(eval("'In Review' | normalize(prefix='status/')", json!({})), json!("status/in-review"));
        assert_eq!(eval("'status/ready' | normalize(prefix='status/')", json!({})), json!("status/ready"));
        assert_eq!(eval("'GPT' | normalize(aliases={'gpt': 'frontier'})", json!({})), json!("frontier"));
        assert_eq!(eval("none | normalize", json!({})), Json::Null);
        assert_eq!(eval("'' | normalize(prefix='x')", json!({})), Json::Null);
        assert!(eval("'a' | normalize(bogus=1)", json!({})).as_str().is_some_and(|e| e.contains("bogus")));
    }

    #[test]
    fn which_looks_up_path_without_running() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let program = dir.path().join("tool");
        std::fs::write(&program, "#!/bin/sh\n").unwrap_or_else(|e| panic!("write: {e}"));
        let plain = dir.path().join("data");
        std::fs::write(&plain, "x").unwrap_or_else(|e| panic!("write: {e}"));
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod: {e}"));
        let search = std::env::join_paths(["/nonexistent", dir.path().to_str().unwrap_or_default()])
            .unwrap_or_else(|e| panic!("join: {e}"));
        assert_eq!(super::which_in("tool", Some(&search)).as_str(), program.to_str());
        assert!(super::which_in("data", Some(&search)).is_none());
        assert!(super::which_in("missing", Some(&search)).is_none());
        assert!(super::which_in("tool", None).is_none());
        assert_eq!(super::which_in(program.to_str().unwrap_or_default(), None).as_str(), program.to_str());
    }
}
