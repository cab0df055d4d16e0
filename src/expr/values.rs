//! Evaluating templates and expressions against a scope, keeping types: a template
//! that is exactly one `{{ expr }}` yields the expression's value (list, map, bool,
//! number), anything else yields text.

use std::sync::RwLock;

use minijinja::value::Serde;
use minijinja::{Environment, Value};
use serde_json::Value as Json;

use crate::template;

/// A JSON value as a template value.
pub(crate) fn to_mj(value: &Json) -> Value {
    Value::from(Serde(value))
}

/// A template value as JSON (`none` and undefined become `null`).
pub(crate) fn to_json(value: &Value) -> Json {
    if value.is_undefined() || value.is_none() {
        return Json::Null;
    }
    serde_json::to_value(value).unwrap_or(Json::Null)
}

/// Characters left as they are in an interpolated URL value: RFC 3986 unreserved.
const COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encode a value for use as one URL path segment or query value.
pub(crate) fn encode_component(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, COMPONENT).to_string()
}

/// How a found value is described in messages.
pub(crate) fn describe(value: &Json) -> String {
    match value {
        Json::Null => "nothing (an empty value)".to_string(),
        Json::Bool(b) => format!("`{b}`"),
        Json::Number(n) => format!("the number `{n}`"),
        Json::String(s) => {
            let shown: String = s.chars().take(40).collect();
            let more = if s.chars().count() > 40 { "..." } else { "" };
            format!("the text `{shown}{more}`")
        }
        Json::Array(items) if items.is_empty() => "an empty list".to_string(),
        Json::Array(_) => "a list".to_string(),
        Json::Object(map) if map.is_empty() => "an empty map".to_string(),
        Json::Object(_) => "a map".to_string(),
    }
}

/// Compiles and caches templates, evaluates expressions.
#[derive(Debug)]
pub(crate) struct Evaluator {
    env: RwLock<Environment<'static>>,
    /// Same as `env`, but every `{{ value }}` is percent-encoded: for URLs.
    url_env: RwLock<Environment<'static>>,
    /// What is compiled into `env` and `url_env` (src/template/cache.rs).
    cache: template::cache::TemplateCache,
    url_cache: template::cache::TemplateCache,
}

impl Default for Evaluator {
    fn default() -> Self {
        Self::new(template::environment())
    }
}

impl Evaluator {
    /// An evaluator over `env`.
    pub(crate) fn new(env: Environment<'static>) -> Self {
        let mut url_env = env.clone();
        url_env.set_formatter(|out, _state, value| {
            let text = match template::display_override(value) {
                Some(text) => text.to_string(),
                None if value.is_undefined() => String::new(),
                None => value.to_string(),
            };
            out.write_str(&encode_component(&text)).map_err(minijinja::Error::from)
        });
        Evaluator {
            env: RwLock::new(env),
            url_env: RwLock::new(url_env),
            cache: template::cache::TemplateCache::default(),
            url_cache: template::cache::TemplateCache::default(),
        }
    }

    /// Add a global (a function such as `get_lane`).
    pub(crate) fn add_global(&self, name: &'static str, value: Value) {
        if let Ok(mut env) = self.env.write() {
            env.add_global(name, value.clone());
        }
        if let Ok(mut env) = self.url_env.write() {
            env.add_global(name, value);
        }
    }

    /// Render a URL or path template: each interpolated value is percent-encoded, so a
    /// `/`, `?`, `#` or `&` inside a value can never change the URL's shape.
    pub(crate) fn render_url(&self, text: &str, context: &Value) -> Result<String, String> {
        if !template::is_template(text) {
            return Ok(text.to_string());
        }
        if let Some(result) = template::bounds::isolated(template::bounds::Mode::Url, text, context) {
            return result.map(|rendered| rendered.as_str().unwrap_or_default().to_string());
        }
        self.url_cache.render(&self.url_env, text, context).map_err(|e| template::describe_error(&e))
    }

    /// Render a template string to text.
    pub(crate) fn render_text(&self, text: &str, context: &Value) -> Result<String, String> {
        if !template::is_template(text) {
            return Ok(text.to_string());
        }
        if let Some(result) = template::bounds::isolated(template::bounds::Mode::Text, text, context) {
            let rendered = result?.as_str().unwrap_or_default().to_string();
            template::check_output(&rendered)?;
            return Ok(rendered);
        }
        let rendered =
            self.cache.render(&self.env, text, context).map_err(|e| template::describe_error(&e))?;
        template::check_output(&rendered)?;
        Ok(rendered)
    }

    /// Evaluate a bare expression.
    pub(crate) fn eval(&self, expression: &str, context: &Value) -> Result<Value, String> {
        if let Some(result) =
            template::bounds::isolated(template::bounds::Mode::Expression, expression, context)
        {
            return result.map(|value| to_mj(&value));
        }
        self.cache.eval(&self.env, expression, context).map_err(|e| template::describe_error(&e))
    }

    /// Evaluate a condition (`when`).
    pub(crate) fn truthy(&self, expression: &str, context: &Value) -> Result<bool, String> {
        self.eval(expression, context).map(|v| v.is_true())
    }

    /// Whether a template string is compiled already (no compilation at its first
    /// evaluation).
    #[cfg(test)]
    pub(crate) fn is_prepared(&self, text: &str) -> bool {
        match template::single_expression(text) {
            Some(expression) => self.cache.has_expression(expression),
            None => self.cache.has_template(text),
        }
    }

    /// Whether a bare expression is compiled already.
    #[cfg(test)]
    pub(crate) fn is_prepared_expression(&self, expression: &str) -> bool {
        self.cache.has_expression(expression)
    }

    /// Render a template string keeping the type of a lone `{{ expr }}`.
    pub(crate) fn render_value(&self, text: &str, context: &Value) -> Result<Json, String> {
        match template::single_expression(text) {
            Some(expression) => self.eval(expression, context).and_then(|v| {
                // Converting is recursive: refuse absurd nesting first.
                template::check_depth(&v).map_err(|e| template::describe_error(&e))?;
                Ok(to_json(&v))
            }),
            None => self.render_text(text, context).map(Json::String),
        }
    }

    /// Render every string inside a YAML value, keeping structure.
    pub(crate) fn render_dyn(&self, value: &Json, context: &Value) -> Result<Json, String> {
        Ok(match value {
            Json::String(text) => self.render_value(text, context)?,
            Json::Array(items) => Json::Array(
                items.iter().map(|item| self.render_dyn(item, context)).collect::<Result<_, _>>()?,
            ),
            Json::Object(map) => {
                let mut out = serde_json::Map::new();
                for (key, item) in map {
                    out.insert(key.clone(), self.render_dyn(item, context)?);
                }
                Json::Object(out)
            }
            other => other.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lone_expressions_keep_their_type() {
        let evaluator = Evaluator::default();
        let ctx = to_mj(&json!({"xs": [1, 2], "flag": true, "n": 3, "name": "a"}));
        assert_eq!(evaluator.render_value("{{ xs }}", &ctx), Ok(json!([1, 2])));
        assert_eq!(evaluator.render_value("{{ flag }}", &ctx), Ok(json!(true)));
        assert_eq!(evaluator.render_value("{{ n + 1 }}", &ctx), Ok(json!(4)));
        assert_eq!(evaluator.render_value("n={{ n }}", &ctx), Ok(json!("n=3")));
        assert_eq!(evaluator.render_value("plain", &ctx), Ok(json!("plain")));
        assert_eq!(
            evaluator.render_dyn(&json!({"a": ["{{ name }}", 1], "b": "{{ none }}"}), &ctx),
            Ok(json!({"a": ["a", 1], "b": null}))
        );
    }

    #[test]
    fn found_values_are_described() {
        assert_eq!(describe(&json!(null)), "nothing (an empty value)");
        assert_eq!(describe(&json!(3)), "the number `3`");
        assert_eq!(describe(&json!("x".repeat(41))), format!("the text `{}...`", "x".repeat(40)));
        assert_eq!(describe(&json!([])), "an empty list");
        assert_eq!(describe(&json!({"a": 1})), "a map");
    }

    #[test]
    fn url_values_are_percent_encoded() {
        let evaluator = Evaluator::default();
        let ctx = to_mj(&json!({"agent": "a/b?c=d#e f", "n": 3}));
        assert_eq!(
            evaluator.render_url("/api/agents/{{ agent }}/queue/{{ n }}", &ctx),
            Ok("/api/agents/a%2Fb%3Fc%3Dd%23e%20f/queue/3".into())
        );
    }

    #[test]
    fn templates_are_cached_and_errors_described() {
        let evaluator = Evaluator::default();
        let ctx = to_mj(&json!({"n": 1}));
        assert_eq!(evaluator.render_text("{{ n }}!", &ctx), Ok("1!".into()));
        assert_eq!(evaluator.render_text("{{ n }}!", &ctx), Ok("1!".into()));
        assert!(evaluator.render_text("{{ missing }}", &ctx).is_err());
        assert_eq!(evaluator.truthy("n == 1", &ctx), Ok(true));
    }
}
