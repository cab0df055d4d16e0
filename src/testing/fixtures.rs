//! Fixture hooks: answer HTTP requests and commands from canned entries, and log
//! what the run asked for, so a case can compare it with what it expects.

use std::sync::Mutex;
use std::time::Duration;

use crate::model::test_file::{CommandFixture, HttpFixture};
use crate::steps::hooks::{CannedResponse, CommandAnswer, Hooks, HttpAnswer};
use crate::steps::http::Request;

/// What a run did, as the fixtures saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Log {
    /// Requests as `METHOD /decoded/path`.
    pub requests: Vec<String>,
    /// Commands, each as its argv.
    pub commands: Vec<Vec<String>>,
    /// Requests and commands no fixture matched, described.
    pub unmatched: Vec<String>,
}

/// Hooks answering from fixtures.
#[derive(Debug)]
pub(crate) struct FixtureHooks {
    http: Vec<HttpFixture>,
    commands: Vec<CommandFixture>,
    used_http: Mutex<Vec<u32>>,
    used_commands: Mutex<Vec<u32>>,
    log: Mutex<Log>,
}

impl FixtureHooks {
    /// Hooks over these fixtures (earlier entries win).
    pub(crate) fn new(http: Vec<HttpFixture>, commands: Vec<CommandFixture>) -> Self {
        let (h, c) = (http.len(), commands.len());
        FixtureHooks {
            http,
            commands,
            used_http: Mutex::new(vec![0; h]),
            used_commands: Mutex::new(vec![0; c]),
            log: Mutex::new(Log::default()),
        }
    }

    /// What the run did so far.
    pub(crate) fn log(&self) -> Log {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// The decoded path and query pairs of a request URL.
pub(crate) fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    match reqwest::Url::parse(url) {
        Ok(parsed) => {
            let path = percent_encoding::percent_decode_str(parsed.path()).decode_utf8_lossy().into_owned();
            let query = parsed.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
            (path, query)
        }
        Err(_) => (url.to_string(), Vec::new()),
    }
}

impl Hooks for FixtureHooks {
    fn http(&self, request: &Request) -> HttpAnswer {
        let method = request.method.as_str();
        let (path, query) = split_url(&request.url);
        if let Ok(mut log) = self.log.lock() {
            log.requests.push(format!("{method} {path}"));
        }
        let Ok(mut used) = self.used_http.lock() else { return HttpAnswer::Unmatched };
        for (index, fixture) in self.http.iter().enumerate() {
            if fixture.times.is_some_and(|times| used[index] >= times) {
                continue;
            }
            let m = &fixture.matcher;
            let method_ok = m.method.as_ref().is_none_or(|want| want.eq_ignore_ascii_case(method));
            let path_ok = glob_path(&m.path, &path);
            let query_ok = m.query.iter().all(|(key, want)| query.iter().any(|(k, v)| k == key && v == want));
            let body_ok = m.body.as_ref().is_none_or(|want| {
                request
                    .body
                    .as_ref()
                    .is_some_and(|have| super::compare::subset_errors(want, have, "").is_empty())
            });
            if method_ok && path_ok && query_ok && body_ok {
                used[index] += 1;
                let respond = &fixture.respond;
                if let Some(fault) = respond.fault {
                    return HttpAnswer::Fault(fault);
                }
                let (body, mut headers) = match (&respond.json, &respond.body) {
                    (Some(json), _) => (
                        json.to_string().into_bytes(),
                        vec![("content-type".to_string(), "application/json".to_string())],
                    ),
                    (None, Some(body)) => (body.clone().into_bytes(), Vec::new()),
                    (None, None) => (Vec::new(), Vec::new()),
                };
                if respond.headers.keys().any(|k| k.eq_ignore_ascii_case("content-type")) {
                    headers.clear();
                }
                headers.extend(respond.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
                return HttpAnswer::Canned(CannedResponse {
                    status: respond.status.unwrap_or(200),
                    headers,
                    body,
                    delay: respond.delay.map(|d| d.get()).unwrap_or(Duration::ZERO),
                });
            }
        }
        let query_text = if query.is_empty() {
            String::new()
        } else {
            let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("?{}", pairs.join("&"))
        };
        let body = request.body.as_ref().map(|b| format!(" with body {b}")).unwrap_or_default();
        if let Ok(mut log) = self.log.lock() {
            log.unmatched.push(format!("request {method} {path}{query_text}{body}"));
        }
        HttpAnswer::Unmatched
    }

    /// A test world has only the programs its command fixtures name: a fixture whose
    /// first argument matches `program` says it is installed (or not, with `missing`).
    fn which(&self, program: &str) -> Option<bool> {
        let fixture = self.commands.iter().find(|f| f.matcher.first().is_some_and(|p| glob_text(p, program)));
        Some(fixture.is_some_and(|f| !f.missing))
    }

    fn command(&self, argv: &[String]) -> CommandAnswer {
        if let Ok(mut log) = self.log.lock() {
            log.commands.push(argv.to_vec());
        }
        let Ok(mut used) = self.used_commands.lock() else { return CommandAnswer::Unmatched };
        for (index, fixture) in self.commands.iter().enumerate() {
            if fixture.times.is_some_and(|times| used[index] >= times) {
                continue;
            }
            if argv_matches(&fixture.matcher, argv) {
                used[index] += 1;
                if fixture.missing {
                    return CommandAnswer::Missing;
                }
                if fixture.hang {
                    return CommandAnswer::Hang;
                }
                return CommandAnswer::Canned {
                    exit_code: fixture.exit_code,
                    stdout: fixture.stdout.clone(),
                    stderr: fixture.stderr.clone(),
                };
            }
        }
        if let Ok(mut log) = self.log.lock() {
            log.unmatched.push(format!("command {}", crate::steps::hooks::quote_argv(argv)));
        }
        CommandAnswer::Unmatched
    }
}

/// Match an argv against a pattern: `*` is one argument, a final `**` any number, and
/// `*` inside an entry any text.
pub(crate) fn argv_matches(pattern: &[String], argv: &[String]) -> bool {
    match pattern.split_first() {
        None => argv.is_empty(),
        Some((first, rest)) if first == "**" && rest.is_empty() => true,
        Some((first, rest)) => match argv.split_first() {
            None => false,
            Some((arg, args)) => glob_text(first, arg) && argv_matches(rest, args),
        },
    }
}

/// `*` matches any text (including none).
pub(crate) fn glob_text(pattern: &str, text: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (index, part) in parts.iter().enumerate() {
        if index == 0 {
            let Some(stripped) = rest.strip_prefix(part) else { return false };
            rest = stripped;
        } else if index == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(found) => rest = &rest[found + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Match a path: `*` within one segment, `**` across any number of segments.
pub(crate) fn glob_path(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let path: Vec<&str> = path.trim_matches('/').split('/').collect();
    segments(&pattern, &path)
}

fn segments(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if *first == "**" => (0..=path.len()).any(|skip| segments(rest, &path[skip..])),
        Some((first, rest)) => match path.split_first() {
            Some((segment, others)) => glob_text(first, segment) && segments(rest, others),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argv_wildcards() {
        assert!(argv_matches(
            &v(&["gh", "pr", "view", "*", "**"]),
            &v(&["gh", "pr", "view", "12", "--json", "x"])
        ));
        assert!(argv_matches(&v(&["gh", "**"]), &v(&["gh"])));
        assert!(!argv_matches(&v(&["gh", "*"]), &v(&["gh"])));
        assert!(argv_matches(&v(&["test", "-d", "/data/git/*"]), &v(&["test", "-d", "/data/git/repo"])));
        assert!(!argv_matches(&v(&["a"]), &v(&["a", "b"])));
    }

    #[test]
    fn path_globs() {
        assert!(glob_path("/api/agents/*/queue", "/api/agents/saffron-local/queue"));
        assert!(!glob_path("/api/agents/*/queue", "/api/agents/a/b/queue"));
        assert!(glob_path("/api/**", "/api/agents/a/b/queue"));
        assert!(glob_path("/api/issues", "/api/issues"));
        assert!(glob_text("saffron-*", "saffron-local"));
        assert!(glob_text("*-local", "saffron-local"));
        assert!(!glob_text("a*c", "abd"));
    }

    #[test]
    fn urls_split_into_decoded_path_and_query() {
        let (path, query) = split_url("http://h/api/agents/a%2Fb/queue?lane=local&x=1%202");
        assert_eq!(path, "/api/agents/a/b/queue");
        assert_eq!(query, vec![("lane".into(), "local".into()), ("x".into(), "1 2".into())]);
    }
}
