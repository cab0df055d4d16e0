//! Tests of the `http` step against a local fake server.

use std::path::Path;
use std::time::Instant;

use minijinja::value::{Object, ObjectRepr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use serde_json::{Value as Json, json};

use crate::expr::mask::Masker;
use crate::expr::values::{Evaluator, to_mj};
use crate::model::step::{HttpStep, Redirects};
use crate::model::workflow::ApiDef;
use crate::steps::{Outcome, Retry, StepCtx};

/// What the fake server answers.
#[derive(Clone)]
struct Canned {
    status: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Duration,
    hang_up: bool,
}

fn canned(status: &str, body: &str) -> Canned {
    Canned {
        status: status.into(),
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
        delay: Duration::ZERO,
        hang_up: false,
    }
}

impl Canned {
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A one-answer HTTP/1.1 server on 127.0.0.1 recording each raw request.
struct FakeServer {
    base: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl FakeServer {
    async fn start(answer: Canned) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorder = seen.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(handle(socket, answer.clone(), recorder.clone()));
            }
        });
        FakeServer { base, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn last(&self) -> String {
        self.requests().last().cloned().unwrap_or_default()
    }
}

async fn handle(mut socket: TcpStream, answer: Canned, seen: Arc<Mutex<Vec<String>>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    seen.lock().unwrap().push(String::from_utf8_lossy(&buffer).to_string());
    if answer.hang_up {
        return;
    }
    tokio::time::sleep(answer.delay).await;
    let mut response = format!("HTTP/1.1 {}\r\n", answer.status);
    for (name, value) in &answer.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", answer.body.len()));
    let mut bytes = response.into_bytes();
    bytes.extend_from_slice(&answer.body);
    // The client may hang up early (size limit, timeout): write errors are expected.
    let _ = socket.write_all(&bytes).await;
    let _ = socket.shutdown().await;
}

struct Fixture {
    eval: Evaluator,
    context: minijinja::Value,
    masker: Masker,
    cancel: CancellationToken,
    timeout: Duration,
}

impl Fixture {
    fn new(context: &Json) -> Fixture {
        Fixture::with_context(to_mj(context))
    }

    fn with_context(context: minijinja::Value) -> Fixture {
        Fixture {
            eval: Evaluator::default(),
            context,
            masker: Masker::default(),
            cancel: CancellationToken::new(),
            timeout: Duration::from_secs(5),
        }
    }

    fn ctx(&self) -> StepCtx<'_> {
        StepCtx {
            eval: &self.eval,
            context: &self.context,
            masker: &self.masker,
            timeout: self.timeout,
            cancel: &self.cancel,
            dir: Path::new("."),
            hooks: None,
        }
    }

    async fn run(&self, step: &HttpStep, api: Option<&ApiConfig>) -> Outcome {
        let request = prepare(&self.ctx(), step, api).unwrap();
        execute(&self.ctx(), &Clients::new(), step, &request).await
    }
}

fn step(value: Json) -> HttpStep {
    serde_json::from_value(value).unwrap()
}

fn api(name: &str, def: Json, fixture: &Fixture) -> ApiConfig {
    let def: ApiDef = serde_json::from_value(def).unwrap();
    ApiConfig::render(name, &def, &fixture.eval, &fixture.context).unwrap()
}

fn failed(outcome: &Outcome) -> (&str, &Json, Retry, bool) {
    match outcome {
        Outcome::Failed { error, output, retry, proceed } => (error.as_str(), output, *retry, *proceed),
        Outcome::Ok(value) => panic!("expected a failure, got Ok({value})"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn get_json_ok() {
    let server = FakeServer::start(
        canned("200 OK", r#"{"has_work": true, "n": 2}"#).header("Content-Type", "application/json"),
    )
    .await;
    let fixture = Fixture::new(&json!({}));
    let outcome = fixture.run(&step(json!({"url": format!("{}/api/queue", server.base)})), None).await;
    let Outcome::Ok(output) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output["status"], json!(200));
    assert_eq!(output["body"], json!({"has_work": true, "n": 2}));
    assert_eq!(output["headers"]["content-type"], json!("application/json"));
    let seen = server.last();
    assert!(seen.starts_with("GET /api/queue HTTP/1.1\r\n"), "{seen}");
    assert!(seen.to_ascii_lowercase().contains("accept: application/json"), "{seen}");
}

#[tokio::test(flavor = "current_thread")]
async fn empty_success_body_is_null_and_text_decode_keeps_text() {
    let server = FakeServer::start(canned("204 No Content", "")).await;
    let fixture = Fixture::new(&json!({}));
    let outcome = fixture.run(&step(json!({"url": server.base, "method": "DELETE"})), None).await;
    let Outcome::Ok(output) = outcome else { panic!("{outcome:?}") };
    assert_eq!((&output["status"], &output["body"]), (&json!(204), &Json::Null));

    let server = FakeServer::start(canned("200 OK", "  \n")).await;
    let Outcome::Ok(output) = fixture.run(&step(json!({"url": server.base})), None).await else { panic!() };
    assert_eq!(output["body"], Json::Null);

    let server = FakeServer::start(canned("200 OK", "not json")).await;
    let text = step(json!({"url": server.base, "decode": "text"}));
    let Outcome::Ok(output) = fixture.run(&text, None).await else { panic!() };
    assert_eq!(output["body"], json!("not json"));
}

#[tokio::test(flavor = "current_thread")]
async fn status_mapped_to_a_value_with_on() {
    let server = FakeServer::start(canned("409 Conflict", r#"{"holder": "agent-7"}"#)).await;
    let fixture = Fixture::new(&json!({"inputs": {"agent": "a1"}}));
    let http = step(json!({
        "url": server.base,
        "method": "POST",
        "body": {"agent": "{{ inputs.agent }}"},
        "on": {
            "409": {"value": {"claimed": false, "code": "{{ response.status }}",
                              "by": "{{ response.body.holder }}", "me": "{{ inputs.agent }}",
                              "why": "{{ error }}"}},
            "4xx": "fail",
        },
    }));
    let Outcome::Ok(value) = fixture.run(&http, None).await else { panic!() };
    assert_eq!(value["claimed"], json!(false));
    assert_eq!(value["code"], json!(409));
    assert_eq!(value["by"], json!("agent-7"));
    assert_eq!(value["me"], json!("a1"));
    assert!(value["why"].as_str().unwrap().starts_with("HTTP 409 Conflict from POST "));
    let seen = server.last();
    assert!(seen.contains("content-type: application/json"), "{seen}");
    assert!(seen.ends_with(r#"{"agent":"a1"}"#), "{seen}");
}

#[tokio::test(flavor = "current_thread")]
async fn class_keys_and_continue() {
    let fixture = Fixture::new(&json!({}));
    let server = FakeServer::start(canned("422 Unprocessable Entity", "bad")).await;
    let http = step(json!({"url": server.base, "on": {"4xx": "continue", "http_error": "fail"}}));
    let outcome = fixture.run(&http, None).await;
    let (_, output, retry, proceed) = failed(&outcome);
    assert!(proceed);
    assert_eq!(retry, Retry::No);
    assert_eq!(output["body"], json!("bad"));

    let server = FakeServer::start(canned("500 Internal Server Error", "")).await;
    let http = step(json!({"url": server.base, "on": {"http_error": {"value": "down"}}}));
    assert_eq!(fixture.run(&http, None).await, Outcome::Ok(json!("down")));

    // `expect` decides what counts as success.
    let server = FakeServer::start(canned("404 Not Found", r#"{"x": 1}"#)).await;
    let http = step(json!({"url": server.base, "expect": [200, 404]}));
    let Outcome::Ok(output) = fixture.run(&http, None).await else { panic!() };
    assert_eq!(output["body"], json!({"x": 1}));
    let server = FakeServer::start(canned("200 OK", "{}")).await;
    let http = step(json!({"url": server.base, "expect": [201]}));
    assert!(failed(&fixture.run(&http, None).await).0.starts_with("HTTP 200 OK from GET"));
}

#[tokio::test(flavor = "current_thread")]
async fn unmapped_404_fails_without_retry() {
    let server = FakeServer::start(canned("404 Not Found", "no such\n  agent")).await;
    let fixture = Fixture::new(&json!({}));
    let url = format!("{}/a", server.base);
    let outcome = fixture.run(&step(json!({"url": url})), None).await;
    let (error, output, retry, proceed) = failed(&outcome);
    assert_eq!(error, format!("HTTP 404 Not Found from GET {url}: no such agent"));
    assert_eq!(retry, Retry::No);
    assert!(!proceed);
    assert_eq!(output["status"], json!(404));
    assert_eq!(output["body"], json!("no such\n  agent"));
}

#[tokio::test(flavor = "current_thread")]
async fn server_errors_and_429_are_retryable() {
    let fixture = Fixture::new(&json!({}));
    let server = FakeServer::start(canned("503 Service Unavailable", "")).await;
    let outcome = fixture.run(&step(json!({"url": server.base})), None).await;
    let (error, _, retry, _) = failed(&outcome);
    assert_eq!(error, format!("HTTP 503 Service Unavailable from GET {}/", server.base));
    assert_eq!(retry, Retry::Yes { after: None });

    let server =
        FakeServer::start(canned("429 Too Many Requests", "slow down").header("Retry-After", "2")).await;
    let outcome = fixture.run(&step(json!({"url": server.base})), None).await;
    assert_eq!(failed(&outcome).2, Retry::Yes { after: Some(Duration::from_secs(2)) });
}

#[test]
fn retry_after_seconds_and_dates() {
    let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
    let with = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        retry_after(&headers, now)
    };
    assert_eq!(with("Tue, 29 Feb 2000 12:00:00 GMT"), Some(MAX_RETRY_AFTER), "a leap day");
    assert_eq!(with("Wed, 30 Feb 2000 12:00:00 GMT"), None, "no such day");
    assert_eq!(with("7"), Some(Duration::from_secs(7)));
    assert_eq!(with("Sun, 06 Nov 1994 08:50:07 GMT"), Some(Duration::from_secs(30)));
    assert_eq!(with("Sat, 05 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
    assert_eq!(with("999999"), Some(MAX_RETRY_AFTER));
    assert_eq!(with("Fri, 01 Jan 2100 00:00:00 GMT"), Some(MAX_RETRY_AFTER));
    assert_eq!(with("soon"), None);
    assert_eq!(retry_after(&HeaderMap::new(), now), None);
}

#[tokio::test(flavor = "current_thread")]
async fn malformed_json_is_a_decode_failure() {
    let server = FakeServer::start(canned("200 OK", "{\"a\": ")).await;
    let fixture = Fixture::new(&json!({}));
    let outcome = fixture.run(&step(json!({"url": server.base})), None).await;
    let (error, output, retry, _) = failed(&outcome);
    assert!(error.starts_with(&format!("response from GET {}/ is not valid JSON: ", server.base)), "{error}");
    assert_eq!(retry, Retry::No);
    assert_eq!(output["body"], json!("{\"a\": "));

    let http = step(json!({"url": server.base, "on": {"decode": {"value": "{{ response.body }}"}}}));
    assert_eq!(fixture.run(&http, None).await, Outcome::Ok(json!("{\"a\": ")));
}

#[tokio::test(flavor = "current_thread")]
async fn slow_response_times_out() {
    let mut answer = canned("200 OK", "{}");
    answer.delay = Duration::from_secs(5);
    let server = FakeServer::start(answer).await;
    let mut fixture = Fixture::new(&json!({}));
    fixture.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let outcome = fixture.run(&step(json!({"url": server.base})), None).await;
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    let (error, output, retry, _) = failed(&outcome);
    assert_eq!(error, format!("no response from GET {}/ within 300ms", server.base));
    assert_eq!(retry, Retry::Yes { after: None });
    assert_eq!(*output, Json::Null);

    let http = step(
        json!({"url": server.base, "on": {"timeout": {"value": "{{ 'null' if response is none else 'set' }}|{{ error }}"}}}),
    );
    let Outcome::Ok(Json::String(text)) = fixture.run(&http, None).await else { panic!() };
    assert!(text.starts_with("null|no response from GET"), "{text}");
}

#[tokio::test(flavor = "current_thread")]
async fn cancellation_stops_the_request() {
    let mut answer = canned("200 OK", "{}");
    answer.delay = Duration::from_secs(5);
    let server = FakeServer::start(answer).await;
    let fixture = Fixture::new(&json!({}));
    let cancel = fixture.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    let outcome = fixture.run(&step(json!({"url": server.base, "on": {"timeout": "continue"}})), None).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        outcome,
        Outcome::Failed { error: "cancelled".into(), output: Json::Null, retry: Retry::No, proceed: false }
    );
}

#[tokio::test(flavor = "current_thread")]
async fn connection_refused_and_hang_up_are_transport_failures() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let fixture = Fixture::new(&json!({}));
    let url = format!("http://{address}/x");
    let outcome = fixture.run(&step(json!({"url": url})), None).await;
    let (error, output, retry, _) = failed(&outcome);
    assert!(error.starts_with(&format!("cannot reach {url}: ")), "{error}");
    assert!(error.to_ascii_lowercase().contains("refused"), "{error}");
    assert_eq!(retry, Retry::Yes { after: None });
    assert_eq!(*output, Json::Null);

    let http = step(json!({"url": url, "on": {"transport": "continue"}}));
    assert!(failed(&fixture.run(&http, None).await).3);

    let mut answer = canned("200 OK", "{}");
    answer.hang_up = true;
    let server = FakeServer::start(answer).await;
    let outcome = fixture.run(&step(json!({"url": server.base})), None).await;
    let (error, _, retry, _) = failed(&outcome);
    assert!(error.starts_with("cannot reach "), "{error}");
    assert_eq!(retry, Retry::Yes { after: None });
}

#[tokio::test(flavor = "current_thread")]
async fn redirect_loops_stop_without_retry() {
    let server = FakeServer::start(canned("302 Found", "").header("Location", "/again")).await;
    let fixture = Fixture::new(&json!({}));
    let outcome =
        fixture.run(&step(json!({"url": server.base, "on": {"transport": "continue"}})), None).await;
    let (error, _, retry, proceed) = failed(&outcome);
    assert!(error.starts_with(&format!("cannot send GET {}/: ", server.base)), "{error}");
    assert!(error.contains("redirect"), "{error}");
    assert_eq!((retry, proceed), (Retry::No, false));
    assert_eq!(server.requests().len(), MAX_REDIRECTS + 1);
}

#[tokio::test(flavor = "current_thread")]
async fn tls_failures_are_transport_failures() {
    // A server answering a TLS ClientHello with plain HTTP: the rustls provider is
    // installed (no panic) and the handshake failure is classified as `transport`.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else { return };
        let mut hello = [0u8; 4096];
        let _ = socket.read(&mut hello).await;
        let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
    });
    let fixture = Fixture::new(&json!({}));
    let outcome = fixture.run(&step(json!({"url": url})), None).await;
    let (error, _, retry, _) = failed(&outcome);
    assert!(error.starts_with(&format!("cannot reach {url}: ")), "{error}");
    assert_eq!(retry, Retry::Yes { after: None });
}

#[tokio::test(flavor = "current_thread")]
async fn oversized_body_fails_fast() {
    let big = "x".repeat(2 * 1024 * 1024);
    let server = FakeServer::start(canned("200 OK", &big)).await;
    let fixture = Fixture::new(&json!({}));
    let http = step(json!({"url": server.base, "max_response_bytes": 1_048_576, "decode": "text"}));
    let started = Instant::now();
    let outcome = fixture.run(&http, None).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let (error, output, retry, _) = failed(&outcome);
    assert_eq!(
        error,
        format!("response body from GET {}/ is larger than the limit of 1048576 bytes", server.base)
    );
    assert_eq!(retry, Retry::No);
    assert_eq!(output["status"], json!(200));
    assert_eq!(output["body"], Json::Null);
}

#[tokio::test(flavor = "current_thread")]
async fn oversized_body_without_length_is_cut_while_streaming() {
    // No Content-Length: the limit is enforced on the streamed chunks.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else { return };
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await;
        let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").await;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..800 {
            if socket.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let fixture = Fixture::new(&json!({}));
    let http = step(json!({"url": base, "max_response_bytes": 100_000}));
    let outcome = fixture.run(&http, None).await;
    assert!(failed(&outcome).0.ends_with("is larger than the limit of 100000 bytes"));
}

#[tokio::test(flavor = "current_thread")]
async fn interpolated_path_values_are_encoded() {
    let server = FakeServer::start(canned("200 OK", "[]")).await;
    let fixture = Fixture::new(&json!({"inputs": {"agent": "../a/b?c=d#e $(touch pwned)"}}));
    let dispatch = api("dispatch", json!({"base_url": format!("{}/v1/", server.base)}), &fixture);
    assert_eq!(dispatch.base_url, format!("{}/v1", server.base));
    let http = step(json!({"api": "dispatch", "path": "/agents/{{ inputs.agent }}/queue"}));
    assert!(matches!(fixture.run(&http, Some(&dispatch)).await, Outcome::Ok(_)));
    let seen = server.last();
    let line = seen.lines().next().unwrap();
    assert_eq!(line, "GET /v1/agents/..%2Fa%2Fb%3Fc%3Dd%23e%20%24%28touch%20pwned%29/queue HTTP/1.1");

    // A full `url` encodes its interpolated values the same way.
    let http = step(json!({"url": format!("{}/x/{{{{ inputs.agent }}}}", server.base)}));
    let request = prepare(&fixture.ctx(), &http, None).unwrap();
    assert_eq!(request.url, format!("{}/x/..%2Fa%2Fb%3Fc%3Dd%23e%20%24%28touch%20pwned%29", server.base));
    assert_eq!(request.api, None);
}

#[test]
fn header_line_breaks_are_refused() {
    let fixture = Fixture::new(&json!({"name": "a\r\nX-Evil: 1", "token": "t\n"}));
    let http = step(json!({"url": "http://127.0.0.1:9/", "headers": {"X-Agent-Name": "{{ name }}"}}));
    assert_eq!(
        prepare(&fixture.ctx(), &http, None),
        Err("header `X-Agent-Name` value contains a line break".into())
    );
    let http = step(json!({"url": "http://127.0.0.1:9/", "headers": {"Bad Name": "x"}}));
    assert_eq!(prepare(&fixture.ctx(), &http, None), Err("invalid header name `Bad Name`".into()));

    let def: ApiDef = serde_json::from_value(
        json!({"base_url": "http://127.0.0.1:9", "headers": {"X-Agent-Name": "{{ name }}"}}),
    )
    .unwrap();
    assert_eq!(
        ApiConfig::render("d", &def, &fixture.eval, &fixture.context),
        Err("API `d`: header `X-Agent-Name` value contains a line break".into())
    );
}

#[test]
fn header_values_keep_types_and_none_drops_them() {
    let fixture = Fixture::new(&json!({"flag": true, "n": 3, "secrets": {"token": null}}));
    let dispatch = api(
        "d",
        json!({"base_url": "http://127.0.0.1:9", "bearer": "{{ secrets.token }}",
               "headers": {"X-Gone": "{{ secrets.token }}", "X-Drop": "api"}}),
        &fixture,
    );
    assert_eq!((dispatch.bearer.as_deref(), dispatch.headers.len()), (None, 1));
    let http = step(json!({
        "api": "d", "decode": "none",
        "headers": {"X-Flag": "{{ flag }}", "X-N": "n={{ n }}", "x-drop": "{{ none }}"},
    }));
    let request = prepare(&fixture.ctx(), &http, Some(&dispatch)).unwrap();
    let expected = [("X-Flag", "true"), ("X-N", "n=3")];
    assert_eq!(request.headers, expected.map(|(n, v)| (n.to_string(), v.to_string())));
}

#[test]
fn dot_segments_from_values_are_refused() {
    let fixture = Fixture::new(&json!({"a": "..", "b": "."}));
    let dispatch = api("d", json!({"base_url": "http://127.0.0.1:9/v1"}), &fixture);
    for path in ["/agents/{{ a }}/queue", "/agents/{{ b }}", "{{ a }}", "/x/%2E%2e/y"] {
        let http = step(json!({"api": "d", "path": path}));
        let error = prepare(&fixture.ctx(), &http, Some(&dispatch)).unwrap_err();
        assert!(error.ends_with("has a `.` or `..` path segment, which would change its path"), "{error}");
    }
    let http = step(json!({"url": "http://127.0.0.1:9/x/{{ a }}"}));
    assert!(prepare(&fixture.ctx(), &http, None).is_err());
    // Dots inside a segment, or in the query, are fine.
    let http = step(json!({"api": "d", "path": "/f/{{ a }}x/v1.2?q=..", "query": {"p": "{{ a }}"}}));
    let request = prepare(&fixture.ctx(), &http, Some(&dispatch)).unwrap();
    assert_eq!(request.url, "http://127.0.0.1:9/v1/f/..x/v1.2?q=..&p=..");
}

#[test]
fn base_url_must_be_http() {
    let fixture = Fixture::new(&json!({"env": {"URL": "ftp://x", "EMPTY": ""}}));
    let render = |base: &str| {
        let def: ApiDef = serde_json::from_value(json!({"base_url": base})).unwrap();
        ApiConfig::render("d", &def, &fixture.eval, &fixture.context)
    };
    assert_eq!(
        render("{{ env.URL }}"),
        Err("API `d`: base_url `ftp://x` must start with http:// or https://".into())
    );
    assert_eq!(render("{{ env.EMPTY }}"), Err("API `d`: base_url is empty".into()));
    assert_eq!(
        render("https://x/?a=1"),
        Err("API `d`: base_url `https://x/?a=1` must not have a query or fragment".into())
    );
    assert_eq!(render("HTTPS://host:8443/api//").map(|api| api.base_url), Ok("HTTPS://host:8443/api".into()));

    let http = step(json!({"url": "file:///etc/passwd"}));
    assert_eq!(
        prepare(&fixture.ctx(), &http, None),
        Err("invalid URL `file:///etc/passwd`: only http and https are supported".into())
    );
    let http = step(json!({"url": "not a url"}));
    assert!(prepare(&fixture.ctx(), &http, None).unwrap_err().starts_with("invalid URL `not a url`: "));
    let http = step(json!({"api": "missing", "path": "/"}));
    assert_eq!(prepare(&fixture.ctx(), &http, None), Err("API `missing` is not declared".into()));
}

#[tokio::test(flavor = "current_thread")]
async fn bearer_is_sent_but_never_shown() {
    let server = FakeServer::start(canned("200 OK", "{}").header("Set-Cookie", "session=abc")).await;
    let mut fixture = Fixture::new(&json!({"secrets": {"token": "s3cret-token"}, "me": "agent-1"}));
    fixture.masker.add("s3cret-token");
    let dispatch = api(
        "dispatch",
        json!({"base_url": server.base, "bearer": "{{ secrets.token }}",
               "headers": {"X-Agent-Name": "{{ me }}", "X-Trace": "api"}}),
        &fixture,
    );
    assert!(!format!("{dispatch:?}").contains("s3cret"));
    let http = step(json!({
        "api": "dispatch", "path": "/claim", "method": "POST",
        "headers": {"x-trace": "step"}, "body": {"note": "{{ secrets.token }}"},
    }));
    let request = prepare(&fixture.ctx(), &http, Some(&dispatch)).unwrap();
    assert!(!format!("{request:?}").contains("Bearer s3cret"));
    assert_eq!(
        describe(&request, &fixture.masker),
        json!({
            "method": "POST",
            "url": format!("{}/claim", server.base),
            "headers": {
                "X-Agent-Name": "agent-1",
                "x-trace": "step",
                "Authorization": REDACTED,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            "body": {"note": "***"},
        })
    );
    let Outcome::Ok(output) = execute(&fixture.ctx(), &Clients::new(), &http, &request).await else {
        panic!()
    };
    assert_eq!(output["headers"]["set-cookie"], json!(REDACTED));
    let seen = server.last();
    assert!(seen.contains("authorization: Bearer s3cret-token\r\n"), "{seen}");
    assert!(seen.contains("x-trace: step\r\n") && !seen.contains("x-trace: api"), "{seen}");

    // A step's own Authorization replaces the bearer.
    let own = step(json!({"api": "dispatch", "headers": {"authorization": "Basic eA=="}}));
    let request = prepare(&fixture.ctx(), &own, Some(&dispatch)).unwrap();
    let auth: Vec<_> =
        request.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("authorization")).collect();
    assert_eq!(auth, vec![&("authorization".to_string(), "Basic eA==".to_string())]);
}

#[tokio::test(flavor = "current_thread")]
async fn query_lists_repeat_and_nulls_are_omitted() {
    let server = FakeServer::start(canned("200 OK", "{}")).await;
    let fixture = Fixture::new(&json!({"labels": ["a b", "c&d"], "limit": 5}));
    let http = step(json!({
        "url": format!("{}/search", server.base),
        "query": {"label": "{{ labels }}", "limit": "{{ limit }}", "skip": "{{ none }}",
                  "open": true, "mixed": [1, null, "x"]},
    }));
    let request = prepare(&fixture.ctx(), &http, None).unwrap();
    assert_eq!(
        request.url,
        format!("{}/search?label=a+b&label=c%26d&limit=5&open=true&mixed=1&mixed=x", server.base)
    );
    assert!(matches!(execute(&fixture.ctx(), &Clients::new(), &http, &request).await, Outcome::Ok(_)));
    assert!(
        server.last().starts_with("GET /search?label=a+b&label=c%26d&limit=5&open=true&mixed=1&mixed=x ")
    );

    let http = step(json!({"url": server.base, "query": {"m": {"a": 1}}}));
    assert_eq!(
        prepare(&fixture.ctx(), &http, None),
        Err("query parameter `m` is a map; give a string, number, boolean or list".into())
    );
}

/// An object-backed context like the engine's scope: only `get_value`, no copy.
#[derive(Debug)]
struct LazyScope;

impl Object for LazyScope {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        match key.as_str()? {
            "steps" => Some(to_mj(&json!({"probe": {"output": {"lane": "local"}}}))),
            "inputs" => Some(to_mj(&json!({"agent": "a1"}))),
            _ => None,
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn on_values_see_an_object_backed_scope() {
    let server = FakeServer::start(canned("409 Conflict", r#"{"holder": "b2"}"#)).await;
    let fixture = Fixture::with_context(minijinja::Value::from_object(LazyScope));
    let http = step(json!({
        "url": server.base,
        "on": {"409": {"value": {
            "lane": "{{ steps.probe.output.lane }}",
            "line": "{{ inputs.agent }} lost to {{ response.body.holder }} ({{ response.status }})",
        }}},
    }));
    assert_eq!(
        fixture.run(&http, None).await,
        Outcome::Ok(json!({"lane": "local", "line": "a1 lost to b2 (409)"}))
    );
    // A template error in the mapped value is reported with the original failure.
    let http = step(json!({"url": server.base, "on": {"4xx": {"value": "{{ nope.x }}"}}}));
    let outcome = fixture.run(&http, None).await;
    let (error, _, retry, _) = failed(&outcome);
    assert!(
        error.starts_with("HTTP 409 Conflict from GET") && error.contains("`on.4xx` value failed"),
        "{error}"
    );
    assert_eq!(retry, Retry::No);
}

#[test]
fn clients_are_cached_per_api() {
    let clients = Clients::new();
    assert!(clients.client(Some("a")).is_ok());
    let shared = clients.clone();
    assert!(shared.client(Some("b")).is_ok());
    assert!(clients.client(None).is_ok());
    assert_eq!(clients.pools.lock().unwrap().len(), 3);
}

fn hop(url: &str, method: reqwest::Method, headers: &[(&str, &str)], body: Option<&str>) -> Hop {
    Hop {
        url: Url::parse(url).unwrap(),
        method,
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        body: body.map(|b| b.as_bytes().to_vec()),
    }
}

#[test]
fn a_redirect_hop_to_another_scheme_or_port_drops_credentials() {
    let mut masker = Masker::default();
    masker.add("sekrit-value");
    let first = Url::parse("https://api.example/v1/x").unwrap();
    let headers = [
        ("Authorization", "Bearer t"),
        ("X-Thing", "k=sekrit-value"),
        ("X-Other", "c2Vrcml0LXZhbHVl"),
        ("Referer", "https://api.example/?q=1"),
        ("Accept", "application/json"),
    ];
    let names = |hop: &Hop| hop.headers.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    // Same origin, relative Location: everything kept.
    let same = hop("https://api.example/v1/x", reqwest::Method::GET, &headers, None);
    let next = next_hop(same, StatusCode::FOUND, "../y", &first, Redirects::Follow, &masker).unwrap();
    assert_eq!(next.url.as_str(), "https://api.example/y");
    assert_eq!(names(&next).len(), 5);
    // A downgrade to http on the same host, or another port, is another origin.
    for location in ["http://api.example/y", "https://api.example:8443/y", "//other.example/y"] {
        let start = hop("https://api.example/v1/x", reqwest::Method::GET, &headers, None);
        let next = next_hop(start, StatusCode::FOUND, location, &first, Redirects::Follow, &masker).unwrap();
        assert_eq!(names(&next), vec!["Accept"], "{location}");
    }
    // Not http(s): never followed.
    let start = hop("https://api.example/v1/x", reqwest::Method::GET, &headers, None);
    let error =
        next_hop(start, StatusCode::FOUND, "file:///etc/passwd", &first, Redirects::Follow, &masker).err();
    assert!(error.unwrap().contains("only http and https"));
}

#[test]
fn redirect_methods_follow_303_and_post_rules() {
    let masker = Masker::default();
    let first = Url::parse("http://h/a").unwrap();
    let post =
        || hop("http://h/a", reqwest::Method::POST, &[("Content-Type", "application/json")], Some("{}"));
    for (status, method, body) in [
        (StatusCode::SEE_OTHER, reqwest::Method::GET, false),
        (StatusCode::FOUND, reqwest::Method::GET, false),
        (StatusCode::MOVED_PERMANENTLY, reqwest::Method::GET, false),
        (StatusCode::TEMPORARY_REDIRECT, reqwest::Method::POST, true),
        (StatusCode::PERMANENT_REDIRECT, reqwest::Method::POST, true),
    ] {
        let next = next_hop(post(), status, "/b", &first, Redirects::Follow, &masker).unwrap();
        assert_eq!((next.method, next.body.is_some()), (method, body), "{status}");
        assert_eq!(next.headers.is_empty(), !body, "{status}: content-type goes with the body");
    }
    let head = hop("http://h/a", reqwest::Method::HEAD, &[], None);
    let next = next_hop(head, StatusCode::SEE_OTHER, "/b", &first, Redirects::Follow, &masker).unwrap();
    assert_eq!(next.method, reqwest::Method::HEAD);
    let get = hop("http://h/a", reqwest::Method::GET, &[], None);
    let refused = next_hop(get, StatusCode::FOUND, "http://h:81/b", &first, Redirects::SameOrigin, &masker);
    assert!(refused.err().unwrap().contains("same_origin"));
}

#[test]
fn excerpts_are_one_line_and_short() {
    assert_eq!(one_line_excerpt(" a\n\tb  c "), "a b c");
    let long = "é".repeat(300);
    assert_eq!(one_line_excerpt(&long).chars().count(), ERROR_BODY_CHARS + 1);
}
