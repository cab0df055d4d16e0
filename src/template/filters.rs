//! Generic helpers for data from JSON APIs, added to the template environment.
//!
//! API payloads are loosely shaped: a field may be missing, `null`, a number or a
//! numeric string, labels may be strings or `{name: ...}` objects. With strict
//! undefined, reading `a.b.c` where `b` is missing is an error, so workflows need a
//! few tolerant accessors. Everything here is generic (nothing knows about Dispatch):
//!
//! | name | kind | what it does |
//! |---|---|---|
//! | `dig(key, ...)` | filter | nested lookup by keys/indexes; `none` when any level is missing or of the wrong kind |
//! | `to_int(default=none)` | filter | integer conversion like Python's `int()`; `default` when it is impossible |
//! | `label_names` | filter | names of a label list (strings or `{name: ...}` maps), lower-cased, unique, empties dropped |
//! | `compact` | filter | a map without its `none` / undefined values |
//! | `fromjson` | filter | parse JSON text into a value |
//! | `regex_find(pattern)` | filter | first match of a regex (its first group if it has one), else `none` |
//! | `one_line(max=none)` | filter | whitespace runs collapsed to one space, trimmed, cut to `max` characters with `…` |
//! | `matching(pattern)` | test | a string in which the regex finds a match (non-strings: false) |
//! | `now_utc()` | function | the current UTC time as `YYYY-MM-DDTHH:MM:SSZ` |

use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::value::{Rest, Serde, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};

/// Add the filters, tests and functions of this module to `env`.
pub(crate) fn register(env: &mut Environment<'_>) {
    env.add_filter("dig", dig);
    env.add_filter("to_int", to_int);
    env.add_filter("label_names", label_names);
    env.add_filter("compact", compact);
    env.add_filter("fromjson", fromjson);
    env.add_filter("regex_find", regex_find);
    env.add_filter("one_line", one_line);
    env.add_test("matching", matching);
    env.add_function("now_utc", now_utc);
}

/// `value | dig('a', 'b', 0)`: `value.a.b[0]`, or `none` as soon as a level is missing,
/// `none`, or not a map (for a text key) / list (for an integer key).
fn dig(value: &Value, keys: Rest<Value>) -> Value {
    let mut current = value.clone();
    for key in keys.0 {
        let next = match (current.kind(), key.kind()) {
            (ValueKind::Map, _) => current.get_item(&key).ok(),
            (ValueKind::Seq, ValueKind::Number) => current.get_item(&key).ok(),
            _ => None,
        };
        match next {
            Some(v) if !v.is_undefined() && !v.is_none() => current = v,
            _ => return Value::from(()),
        }
    }
    if current.is_undefined() { Value::from(()) } else { current }
}

/// `value | to_int`: like Python's `int()`: integers stay, floats are truncated,
/// booleans are 0/1, text is an optionally signed whole number (surrounding
/// whitespace allowed). Anything else gives `default` (`none` unless given).
fn to_int(value: &Value, default: Option<Value>) -> Value {
    let default = default.unwrap_or(Value::from(()));
    let fallback = || default.clone();
    match value.kind() {
        ValueKind::Bool => Value::from(i64::from(value.is_true())),
        ValueKind::Number => match value.as_i64() {
            Some(n) => Value::from(n),
            None => match f64::try_from(value.clone()) {
                Ok(f) if f.is_finite() && f.abs() < 9.2e18 => Value::from(f.trunc() as i64),
                _ => fallback(),
            },
        },
        ValueKind::String => {
            let text = value.as_str().unwrap_or_default().trim();
            let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return fallback();
            }
            text.parse::<i64>().map(Value::from).unwrap_or_else(|_| fallback())
        }
        _ => fallback(),
    }
}

/// `labels | label_names`: from a list of strings or `{name: ...}` maps (other entries
/// ignored), the names as text, lower-cased, without empties and duplicates, in order.
/// Anything but a list gives an empty list.
fn label_names(value: &Value) -> Value {
    let mut names: Vec<String> = Vec::new();
    if value.kind() == ValueKind::Seq
        && let Ok(items) = value.try_iter()
    {
        for item in items {
            let name = match item.kind() {
                ValueKind::String | ValueKind::Number => Some(item.to_string()),
                ValueKind::Map => item
                    .get_attr("name")
                    .ok()
                    .filter(|n| !n.is_undefined() && !n.is_none())
                    .map(|n| n.as_str().map(str::to_string).unwrap_or_else(|| n.to_string())),
                _ => None,
            };
            if let Some(name) = name.map(|n| n.trim().to_lowercase()).filter(|n| !n.is_empty())
                && !names.contains(&name)
            {
                names.push(name);
            }
        }
    }
    Value::from(names)
}

/// `map | compact`: the map without the keys whose value is `none` or undefined.
fn compact(value: &Value) -> Result<Value, Error> {
    if value.kind() != ValueKind::Map {
        return Err(Error::new(ErrorKind::InvalidOperation, "compact expects a map"));
    }
    let mut out = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        if !item.is_none() && !item.is_undefined() {
            out.push((key, item));
        }
    }
    Ok(Value::from_pairs(out))
}

/// `text | fromjson`: the value the JSON text describes. Invalid JSON is an error.
fn fromjson(value: &Value) -> Result<Value, Error> {
    let text =
        value.as_str().ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "fromjson expects text"))?;
    let parsed: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("fromjson: not valid JSON: {e}")))?;
    Ok(Value::from(Serde(parsed)))
}

fn compile(pattern: &str) -> Result<regex::Regex, Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("invalid regex `{pattern}`: {e}")))
}

/// `text | regex_find(pattern)`: the first match of `pattern` in the text (the first
/// capture group when the pattern has one), or `none` (also for a non-text value).
fn regex_find(value: &Value, pattern: &str) -> Result<Value, Error> {
    let regex = compile(pattern)?;
    let Some(text) = value.as_str() else { return Ok(Value::from(())) };
    let Some(captures) = regex.captures(text) else { return Ok(Value::from(())) };
    let found = if regex.captures_len() > 1 { captures.get(1) } else { captures.get(0) };
    Ok(found.map(|m| Value::from(m.as_str())).unwrap_or(Value::from(())))
}

/// `value is matching(pattern)`: the value is text and the regex finds a match in it
/// (not anchored: use `^...$` for a whole-text match; `(?i)` ignores case).
fn matching(value: &Value, pattern: &str) -> Result<bool, Error> {
    let regex = compile(pattern)?;
    Ok(value.as_str().is_some_and(|text| regex.is_match(text)))
}

/// `text | one_line(max)`: every run of whitespace (line breaks included) becomes one
/// space, the ends are trimmed, and at most `max` characters are kept (the last one
/// then being `…`). A non-text value is printed first (`none` gives an empty text).
fn one_line(value: &Value, max: Option<usize>) -> String {
    let text = if value.is_none() || value.is_undefined() {
        String::new()
    } else {
        value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string())
    };
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match max {
        Some(max) if line.chars().count() > max => {
            let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
            cut.push('…');
            cut
        }
        _ => line,
    }
}

/// `now_utc()`: the current time in UTC, to the second: `2026-06-21T14:03:09Z`.
fn now_utc() -> String {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format_utc(seconds)
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn format_utc(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rest = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, ctx: serde_json::Value) -> Result<String, String> {
        let env = crate::template::environment();
        env.render_str(template, Value::from(Serde(ctx))).map_err(|e| e.to_string())
    }

    fn eval(expression: &str, ctx: serde_json::Value) -> serde_json::Value {
        let env = crate::template::environment();
        let value = env
            .compile_expression(expression)
            .and_then(|e| e.eval(Value::from(Serde(ctx))))
            .map_err(|e| e.to_string());
        match value {
            Ok(v) => serde_json::to_value(&v).unwrap_or(json!("<unserialisable>")),
            Err(e) => json!(format!("<error: {e}>")),
        }
    }

    #[test]
    fn dig_tolerates_missing_levels() {
        let ctx = json!({"a": {"b": [10, {"c": "x"}], "n": null}, "s": "text"});
        assert_eq!(eval("a | dig('b', 1, 'c')", ctx.clone()), json!("x"));
        assert_eq!(eval("a | dig('b', 0)", ctx.clone()), json!(10));
        assert_eq!(eval("a | dig('missing', 'c')", ctx.clone()), json!(null));
        assert_eq!(eval("a | dig('n', 'c')", ctx.clone()), json!(null));
        assert_eq!(eval("s | dig('x')", ctx.clone()), json!(null));
        assert_eq!(eval("a | dig('b', 'x')", ctx.clone()), json!(null));
        assert_eq!(eval("(a | dig('zzz')) is none", ctx), json!(true));
    }

    #[test]
    fn to_int_is_like_python_int() {
        let ctx = json!({"i": 12, "f": 12.9, "s": " 42 ", "neg": "-3", "bad": "12a", "dec": "1.5", "b": true, "n": null, "l": [1]});
        assert_eq!(eval("i | to_int", ctx.clone()), json!(12));
        assert_eq!(eval("f | to_int", ctx.clone()), json!(12));
        assert_eq!(eval("s | to_int", ctx.clone()), json!(42));
        assert_eq!(eval("neg | to_int", ctx.clone()), json!(-3));
        assert_eq!(eval("bad | to_int", ctx.clone()), json!(null));
        assert_eq!(eval("dec | to_int", ctx.clone()), json!(null));
        assert_eq!(eval("b | to_int", ctx.clone()), json!(1));
        assert_eq!(eval("n | to_int", ctx.clone()), json!(null));
        assert_eq!(eval("l | to_int(0)", ctx.clone()), json!(0));
        assert_eq!(eval("missing | to_int", ctx), json!(null));
    }

    #[test]
    fn label_names_accepts_both_shapes() {
        let ctx = json!({"labels": ["Status/Ready", {"name": "Agent/Saffron"}, "", {"name": null}, {"x": 1}, "status/ready", 7], "n": null});
        assert_eq!(eval("labels | label_names", ctx.clone()), json!(["status/ready", "agent/saffron", "7"]));
        assert_eq!(eval("n | label_names", ctx.clone()), json!([]));
        assert_eq!(eval("missing | label_names", ctx), json!([]));
    }

    #[test]
    fn compact_drops_none() {
        let ctx = json!({"m": {"a": 1, "b": null, "c": "", "d": false}});
        assert_eq!(eval("m | compact", ctx.clone()), json!({"a": 1, "c": "", "d": false}));
        assert_eq!(eval("dict(a=1, b=none) | compact", ctx.clone()), json!({"a": 1}));
        assert!(eval("1 | compact", ctx).as_str().is_some_and(|e| e.starts_with("<error")));
    }

    #[test]
    fn fromjson_parses() {
        let ctx = json!({"t": "{\"a\": [1, 2, null]}", "bad": "{"});
        assert_eq!(eval("t | fromjson", ctx.clone()), json!({"a": [1, 2, null]}));
        assert!(eval("bad | fromjson", ctx).as_str().is_some_and(|e| e.starts_with("<error")));
    }

    #[test]
    fn regexes() {
        let ctx = json!({"url": "https://github.com/o/r/pull/42", "n": null, "t": "Update Dependency x"});
        assert_eq!(eval("url | regex_find('/pull/([0-9]+)')", ctx.clone()), json!("42"));
        assert_eq!(eval("url | regex_find('github')", ctx.clone()), json!("github"));
        assert_eq!(eval("url | regex_find('/issues/([0-9]+)')", ctx.clone()), json!(null));
        assert_eq!(eval("n | regex_find('x')", ctx.clone()), json!(null));
        assert_eq!(eval("t is matching('(?i)^update dep')", ctx.clone()), json!(true));
        assert_eq!(eval("t is matching('^update dep')", ctx.clone()), json!(false));
        assert_eq!(eval("n is matching('.*')", ctx.clone()), json!(false));
        assert!(eval("t is matching('(')", ctx).as_str().is_some_and(|e| e.starts_with("<error")));
    }

    #[test]
    fn one_line_collapses_and_cuts() {
        let ctx = json!({"t": "  a\n\n b\tc  ", "n": null, "m": {"k": 1}});
        assert_eq!(render("{{ t | one_line }}", ctx.clone()), Ok("a b c".into()));
        assert_eq!(render("{{ t | one_line(3) }}", ctx.clone()), Ok("a …".into()));
        assert_eq!(render("[{{ n | one_line }}]", ctx.clone()), Ok("[]".into()));
        assert_eq!(render("{{ 5 | one_line }}", ctx), Ok("5".into()));
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_781_964_189), "2026-06-20T14:03:09Z");
        let now = render("{{ now_utc() }}", json!({})).unwrap_or_default();
        assert!(now.len() == 20 && now.ends_with('Z'), "{now}");
    }
}
