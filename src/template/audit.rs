//! Template helpers for the nightly audit decomposer (`workflows/audit-parent.yaml`):
//! reading an audit issue's recommended breakdown into child-issue candidates, and
//! keeping the parent's "Decomposed into" block. Parsing lives here, not in template
//! code, because it needs unit-level cases.
//!
//! | name | kind | what it does |
//! |---|---|---|
//! | `audit_breakdown(repo, number)` | filter | the child candidates of an audit issue body: `{source, candidates: [{title, priority, key, marker, detail, finding}], duplicates, skipped, problem}` |
//! | `decomposed_children` | filter | the issue numbers listed in a body's "Decomposed into" block (`[]` when there is none) |
//! | `with_decomposed_block(children)` | filter | the body with its "Decomposed into" block replaced (or appended); children are `{number, title}` maps, `number` may be `none` for a child not created yet |
//!
//! Candidates come from the numbered list under `## Recommended issue breakdown`; when
//! that section is missing or has no usable item, from the `###` headings under
//! `## Top findings`. A title is the item's bold text, else the text before a colon
//! (within 100 characters), else the whole item; markdown and a leading priority
//! marker (`[P1] -`, `P2:`, `(p0)`) are removed and the priority kept; titles are cut
//! to 120 characters and de-duplicated without regard to case. Each candidate's `key`
//! (the first 16 hex digits of SHA-256 of `<repo>#<number>:<lower-case title>`) names
//! the child for good: its hidden marker is `audit-child:v1 parent=<repo>#<number> key=<key>`.

use std::sync::LazyLock;

use minijinja::value::{Serde, ValueKind};
use minijinja::{Environment, Value};
use regex::Regex;
use serde_json::{Value as Json, json};

/// First line of the parent's generated block.
pub(crate) const BLOCK_START: &str = "<!-- audit-decompose:start -->";
/// Last line of the parent's generated block.
pub(crate) const BLOCK_END: &str = "<!-- audit-decompose:end -->";

const MAX_TITLE: usize = 120;
const COLON_WITHIN: usize = 100;

/// Add this module's filters to `env`.
pub(crate) fn register(env: &mut Environment<'_>) {
    env.add_filter("audit_breakdown", audit_breakdown);
    env.add_filter("decomposed_children", decomposed_children);
    env.add_filter("with_decomposed_block", with_decomposed_block);
}

fn audit_breakdown(body: &Value, repo: &str, number: i64) -> Value {
    Value::from(Serde(breakdown(body.as_str().unwrap_or_default(), repo, number)))
}

fn decomposed_children(body: &Value) -> Value {
    Value::from(Serde(children_in_block(body.as_str().unwrap_or_default())))
}

fn with_decomposed_block(body: &Value, children: &Value) -> Value {
    let mut listed = Vec::new();
    if let Ok(items) = children.try_iter() {
        for child in items {
            let number = child.get_attr("number").ok().filter(|n| n.kind() == ValueKind::Number);
            let title = child.get_attr("title").ok().and_then(|t| t.as_str().map(str::to_string));
            listed.push((number.and_then(|n| n.as_i64()), title.unwrap_or_default()));
        }
    }
    Value::from(replace_block(body.as_str().unwrap_or_default(), &listed))
}

// ---------------------------------------------------------------------------

struct Section<'a> {
    level: usize,
    title: String,
    lines: Vec<&'a str>,
}

static HEADING: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$").ok());
static ITEM: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^\s{0,3}\d{1,3}[.)]\s+(.*\S)\s*$").ok());
static BOLD: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\*\*(.+?)\*\*|__(.+?)__").ok());
static LEAD_PRIORITY: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)^[\[(]?\s*p([0-3])\s*[\])]?(?:\s*[-:–—]\s*|\s+)").ok());
static TRAIL_PRIORITY: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)\s*[\[(]\s*p([0-3])\s*[\])]\s*$").ok());
static LINK: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\[([^\]]*)\]\([^)]*\)").ok());
static NUMBER_REF: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"#(\d+)").ok());

fn sections(body: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section<'_>> = Vec::new();
    let mut fenced = false;
    for line in body.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        let heading = if fenced { None } else { HEADING.as_ref().and_then(|re| re.captures(line)) };
        match heading {
            Some(caps) => out.push(Section {
                level: caps.get(1).map_or(1, |m| m.as_str().len()),
                title: caps.get(2).map_or("", |m| m.as_str()).to_string(),
                lines: Vec::new(),
            }),
            None => {
                if let Some(last) = out.last_mut() {
                    last.lines.push(line);
                }
            }
        }
    }
    out
}

fn heading_is(title: &str, name: &str) -> bool {
    clean(title).to_lowercase().trim_end_matches(':').trim().starts_with(name)
}

/// The lines of the section named `name`, including its sub-sections, and its level.
fn section_body<'a>(all: &'a [Section<'a>], name: &str) -> Option<(usize, Vec<&'a Section<'a>>)> {
    let start = all.iter().position(|s| heading_is(&s.title, name))?;
    let level = all[start].level;
    let mut parts = vec![&all[start]];
    parts.extend(all[start + 1..].iter().take_while(|s| s.level > level));
    Some((level, parts))
}

/// Markdown emphasis, code and links removed; whitespace collapsed.
fn clean(text: &str) -> String {
    let text = match LINK.as_ref() {
        Some(re) => re.replace_all(text, "$1").into_owned(),
        None => text.to_string(),
    };
    let text: String = text.chars().filter(|c| !matches!(c, '*' | '`')).collect();
    let text = text.replace("__", "");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A title without its priority markers, and the priority (`p0`..`p3`) if any.
fn strip_priority(title: &str) -> (String, Option<String>) {
    let mut title = title.trim().to_string();
    let mut priority = None;
    if let Some(caps) = LEAD_PRIORITY.as_ref().and_then(|re| re.captures(&title)) {
        priority = caps.get(1).map(|m| format!("p{}", m.as_str()));
        let end = caps.get(0).map_or(0, |m| m.end());
        title = title[end..].to_string();
    }
    if let Some(caps) = TRAIL_PRIORITY.as_ref().and_then(|re| re.captures(&title)) {
        priority = priority.or_else(|| caps.get(1).map(|m| format!("p{}", m.as_str())));
        let start = caps.get(0).map_or(title.len(), |m| m.start());
        title.truncate(start);
    }
    (title, priority)
}

fn tidy_title(raw: &str) -> (String, Option<String>) {
    let (title, priority) = strip_priority(&clean(raw));
    let title =
        title.trim_matches(|c: char| c.is_whitespace() || matches!(c, '-' | ':' | '.' | ';' | '–' | '—'));
    let title: String = title.chars().take(MAX_TITLE).collect();
    (title.trim_end().to_string(), priority)
}

/// Title and priority of one numbered item's text.
fn item_title(text: &str) -> (String, Option<String>, String) {
    // A leading priority marker may sit outside or inside the bold text.
    let (rest, outer_priority) = strip_priority(&clean_priority_prefix(text));
    let (raw_title, remainder) = match BOLD.as_ref().and_then(|re| re.captures(&rest)) {
        Some(caps) => {
            let whole = caps.get(0).map_or(0..0, |m| m.range());
            let inner = caps.get(1).or_else(|| caps.get(2)).map_or("", |m| m.as_str());
            (inner.to_string(), format!("{}{}", &rest[..whole.start], &rest[whole.end..]))
        }
        None => {
            let plain = LINK.as_ref().map_or(rest.clone(), |re| re.replace_all(&rest, "$1").into_owned());
            match plain.find(':') {
                Some(at) if plain[..at].chars().count() <= COLON_WITHIN => {
                    (plain[..at].to_string(), plain[at + 1..].to_string())
                }
                _ => (plain, String::new()),
            }
        }
    };
    let (title, inner_priority) = tidy_title(&raw_title);
    let detail = clean(
        remainder.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, ':' | '-' | '–' | '—')),
    );
    (title, outer_priority.or(inner_priority), detail)
}

/// `**[P1]** - Title` -> `[P1] - Title` so the priority is seen before the bold title.
fn clean_priority_prefix(text: &str) -> String {
    let trimmed = text.trim();
    for mark in ["**", "__"] {
        if let Some(rest) = trimmed.strip_prefix(mark)
            && let Some(end) = rest.find(mark)
            && strip_priority(&format!("{} x", &rest[..end])).1.is_some()
            && strip_priority(&format!("{} x", &rest[..end])).0 == "x"
        {
            return format!("{} {}", &rest[..end], &rest[end + mark.len()..]);
        }
    }
    trimmed.to_string()
}

const STOPWORDS: &[&str] =
    &["with", "from", "that", "this", "into", "when", "should", "their", "there", "about"];

fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| t.chars().count() >= 4 && !STOPWORDS.contains(t))
        .map(str::to_string)
        .collect()
}

fn related(a: &str, b: &str) -> bool {
    let (la, lb) = (a.to_lowercase(), b.to_lowercase());
    if !la.is_empty() && !lb.is_empty() && (la.contains(&lb) || lb.contains(&la)) {
        return true;
    }
    let tb = tokens(b);
    let mut shared = tokens(a);
    shared.sort();
    shared.dedup();
    shared.iter().filter(|t| tb.contains(t)).count() >= 2
}

/// The child key: the first 16 hex digits of SHA-256 of `<repo>#<number>:<lower title>`.
pub(crate) fn child_key(repo: &str, number: i64, title: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{repo}#{number}:{}", title.to_lowercase()).as_bytes(),
    );
    digest.as_ref().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

struct Finding {
    title: String,
    priority: Option<String>,
    text: String,
}

fn findings(all: &[Section<'_>]) -> Vec<Finding> {
    let Some((level, parts)) = section_body(all, "top findings") else { return Vec::new() };
    parts
        .iter()
        .skip(1)
        .filter(|s| s.level == level + 1)
        .filter_map(|s| {
            let numbered = ITEM.as_ref().and_then(|re| re.captures(&s.title)).and_then(|c| c.get(1));
            let raw = numbered.map_or(s.title.as_str(), |m| m.as_str());
            let (title, priority) = tidy_title(raw);
            let text = s.lines.iter().map(|l| l.trim_end()).collect::<Vec<_>>().join("\n").trim().to_string();
            (!title.is_empty()).then_some(Finding { title, priority, text })
        })
        .collect()
}

/// Candidates of an audit issue body, as JSON (see the module docs).
pub(crate) fn breakdown(body: &str, repo: &str, number: i64) -> Json {
    let all = sections(body);
    let found = findings(&all);
    let mut raw: Vec<(String, Option<String>, String, Option<String>)> = Vec::new();
    let mut skipped = Vec::new();
    if let Some((_, parts)) = section_body(&all, "recommended issue breakdown") {
        let lines: Vec<&str> = parts.iter().flat_map(|s| s.lines.iter().copied()).collect();
        let mut current: Option<(String, Vec<String>)> = None;
        let mut items = Vec::new();
        for line in lines {
            if let Some(text) = ITEM.as_ref().and_then(|re| re.captures(line)).and_then(|c| c.get(1)) {
                items.extend(current.take());
                current = Some((text.as_str().to_string(), Vec::new()));
            } else if let Some((_, extra)) = current.as_mut()
                && !line.trim().is_empty()
            {
                extra.push(clean(line.trim().trim_start_matches(['-', '*', '+']).trim()));
            }
        }
        items.extend(current);
        for (text, extra) in items {
            let (title, priority, detail) = item_title(&text);
            if title.is_empty() {
                skipped.push(text);
                continue;
            }
            let detail =
                std::iter::once(detail).chain(extra).filter(|d| !d.is_empty()).collect::<Vec<_>>().join("\n");
            let finding = found.iter().find(|f| related(&title, &f.title)).map(|f| f.text.clone());
            raw.push((title, priority, detail, finding));
        }
    }
    let source = if !raw.is_empty() {
        Some("recommended")
    } else if !found.is_empty() {
        raw = found
            .iter()
            .map(|f| (f.title.clone(), f.priority.clone(), String::new(), Some(f.text.clone())))
            .collect();
        Some("top-findings")
    } else {
        None
    };
    let mut seen = Vec::new();
    let mut duplicates = Vec::new();
    let mut candidates = Vec::new();
    for (title, priority, detail, finding) in raw {
        let lower = title.to_lowercase();
        if seen.contains(&lower) {
            duplicates.push(title);
            continue;
        }
        seen.push(lower);
        let key = child_key(repo, number, &title);
        candidates.push(json!({
            "title": title, "priority": priority, "key": key,
            "marker": format!("audit-child:v1 parent={repo}#{number} key={key}"),
            "detail": detail, "finding": finding,
        }));
    }
    let problem = source.is_none().then(|| {
        "no numbered list under \"Recommended issue breakdown\" and no ### headings under \"Top findings\"".to_string()
    });
    json!({"source": source, "candidates": candidates, "duplicates": duplicates, "skipped": skipped, "problem": problem})
}

fn block_range(body: &str) -> Option<(usize, usize)> {
    let start = body.find(BLOCK_START)?;
    let end = body[start..].find(BLOCK_END).map_or(body.len(), |at| start + at + BLOCK_END.len());
    Some((start, end))
}

/// Issue numbers listed in the generated block.
pub(crate) fn children_in_block(body: &str) -> Vec<i64> {
    let Some((start, end)) = block_range(body) else { return Vec::new() };
    NUMBER_REF
        .as_ref()
        .map(|re| {
            re.captures_iter(&body[start..end]).filter_map(|c| c.get(1)?.as_str().parse().ok()).collect()
        })
        .unwrap_or_default()
}

/// `body` with the generated block replaced, or appended when it has none.
pub(crate) fn replace_block(body: &str, children: &[(Option<i64>, String)]) -> String {
    let mut block = format!("{BLOCK_START}\n## Decomposed into\n\n");
    for (number, title) in children {
        let title = clean(title);
        match number {
            Some(n) => block.push_str(&format!("- #{n} {title}\n")),
            None => block.push_str(&format!("- (new) {title}\n")),
        }
    }
    block.push_str(BLOCK_END);
    match block_range(body) {
        Some((start, end)) => format!("{}{block}{}", &body[..start], &body[end..]),
        None if body.trim().is_empty() => format!("{block}\n"),
        None => format!("{}\n\n{block}\n", body.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titles(parsed: &Json) -> Vec<String> {
        parsed["candidates"]
            .as_array()
            .map(|c| c.iter().map(|c| c["title"].as_str().unwrap_or_default().to_string()).collect())
            .unwrap_or_default()
    }

    const AUDIT: &str = "# Weekly audit: misospace/widgets\n\nSummary text.\n\n## Top findings\n\n### 1. Token written to debug logs\nThe client logs the bearer token at debug level.\n\n### 2. Retry loop never backs off\nIt hammers the API.\n\n## Recommended issue breakdown\n\n1. **Redact the token in debug logs** - in `client.rs`\n2. **[P1] Add exponential backoff to the retry loop**\n   - cap at 60s\n3. **redact the token in debug logs**\n\n## Notes\nnothing\n";

    #[test]
    fn numbered_list_with_bold_titles() {
        let parsed = breakdown(AUDIT, "misospace/widgets", 40);
        assert_eq!(parsed["source"], "recommended");
        assert_eq!(
            titles(&parsed),
            ["Redact the token in debug logs", "Add exponential backoff to the retry loop"]
        );
        let first = &parsed["candidates"][0];
        assert_eq!(first["detail"], "in client.rs");
        assert_eq!(
            first["finding"], "The client logs the bearer token at debug level.",
            "matched by shared tokens"
        );
        assert_eq!(parsed["candidates"][1]["priority"], "p1");
        assert_eq!(parsed["candidates"][1]["detail"], "cap at 60s");
        assert_eq!(parsed["candidates"][1]["finding"], "It hammers the API.");
    }

    #[test]
    fn duplicates_are_dropped_without_regard_to_case() {
        let parsed = breakdown(AUDIT, "misospace/widgets", 40);
        assert_eq!(parsed["duplicates"], json!(["redact the token in debug logs"]));
        let body = "## Recommended issue breakdown\n1. Fix the cache: stale\n2. FIX THE CACHE: again\n";
        assert_eq!(titles(&breakdown(body, "o/r", 1)), ["Fix the cache"]);
    }

    #[test]
    fn colon_titles_and_priority_markers() {
        let body = "## Recommended Issue Breakdown:\n\n1. [P0] - Rotate the leaked key: it is in git history\n2) P2: Document the `--dry-run` flag\n3. Split the [worker](https://x/y) module into lanes (p3)\n4. A title whose colon comes far too late to be a title separator because this line goes on and on and on: yes\n";
        let parsed = breakdown(body, "o/r", 7);
        assert_eq!(
            titles(&parsed),
            [
                "Rotate the leaked key",
                "Document the --dry-run flag",
                "Split the worker module into lanes",
                "A title whose colon comes far too late to be a title separator because this line goes on and on and on: yes",
            ]
        );
        let priorities: Vec<&Json> = parsed["candidates"]
            .as_array()
            .map(|c| c.iter().map(|c| &c["priority"]).collect())
            .unwrap_or_default();
        assert_eq!(priorities, [&json!("p0"), &json!("p2"), &json!("p3"), &Json::Null]);
        assert_eq!(parsed["candidates"][0]["detail"], "it is in git history");
        assert!(titles(&parsed).iter().all(|t| t.chars().count() <= MAX_TITLE));
    }

    #[test]
    fn no_breakdown_falls_back_to_top_findings() {
        let body = "## Top findings\n\n### [P1] Token written to debug logs\nDetails.\n\n### Retry loop never backs off\n\n## Recommended issue breakdown\n\nSee above.\n";
        let parsed = breakdown(body, "o/r", 3);
        assert_eq!(parsed["source"], "top-findings");
        assert_eq!(titles(&parsed), ["Token written to debug logs", "Retry loop never backs off"]);
        assert_eq!(parsed["candidates"][0]["priority"], "p1");
        assert_eq!(parsed["candidates"][0]["finding"], "Details.");
    }

    #[test]
    fn nothing_parseable_is_reported_not_crashed() {
        for body in [
            "",
            "Just prose.\n",
            "## Recommended issue breakdown\n\n- a bullet, not numbered\n",
            "```\n## Top findings\n### fenced\n```\n",
        ] {
            let parsed = breakdown(body, "o/r", 1);
            assert_eq!(parsed["source"], Json::Null, "{body:?}");
            assert_eq!(parsed["candidates"], json!([]));
            assert!(parsed["problem"].as_str().is_some_and(|p| p.contains("Recommended issue breakdown")));
        }
        let parsed = breakdown("## Recommended issue breakdown\n1. ****\n2. **Real one**\n", "o/r", 1);
        assert_eq!(titles(&parsed), ["Real one"]);
        assert_eq!(parsed["skipped"], json!(["****"]));
    }

    #[test]
    fn keys_are_stable_and_case_blind() {
        assert_eq!(child_key("o/r", 5, "Fix It"), child_key("o/r", 5, "fix it"));
        assert_ne!(child_key("o/r", 5, "Fix It"), child_key("o/r", 6, "Fix It"));
        let key = child_key("o/r", 5, "Fix It");
        assert_eq!(key.len(), 16);
        assert_eq!(key, "8d743036e83459a9", "sha256(\"o/r#5:fix it\"), as the original computed it");
        let parsed = breakdown("## Recommended issue breakdown\n1. **Fix It**\n", "o/r", 5);
        assert_eq!(parsed["candidates"][0]["marker"], format!("audit-child:v1 parent=o/r#5 key={key}"));
    }

    #[test]
    fn the_decomposed_block_is_appended_then_replaced_in_place() {
        let body = "Audit text.\n";
        let once = replace_block(body, &[(Some(12), "First".into()), (None, "Second".into())]);
        assert_eq!(
            once,
            "Audit text.\n\n<!-- audit-decompose:start -->\n## Decomposed into\n\n- #12 First\n- (new) Second\n<!-- audit-decompose:end -->\n"
        );
        assert_eq!(children_in_block(&once), [12]);
        let twice = replace_block(&once, &[(Some(12), "First".into()), (Some(13), "Second".into())]);
        assert!(twice.starts_with("Audit text.\n\n<!-- audit-decompose:start -->"));
        assert_eq!(twice.matches(BLOCK_START).count(), 1);
        assert_eq!(children_in_block(&twice), [12, 13]);
        assert_eq!(replace_block(&twice, &[(Some(12), "First".into()), (Some(13), "Second".into())]), twice);
        assert_eq!(children_in_block("no block #5"), Vec::<i64>::new());
    }
}
