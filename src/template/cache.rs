//! Compiled templates and expressions, kept by their text so each is compiled once
//! per environment instead of once per evaluation.
//!
//! A run evaluates the same few hundred template strings again and again (every
//! lane's probe runs the whole preflight); compiling them was most of the CPU a
//! heartbeat spent. Compiled code lives inside the minijinja [`Environment`] (which
//! owns it), keyed by the text; this cache remembers which texts are there.
//!
//! An expression is kept as the template `{% set <name> = (EXPR) %}` and its value
//! read back from the template's state, so it needs no borrowed handle. An expression
//! that does not compile that way (or a cache that is full) is compiled directly, as
//! before, so its error text is the expression's own.

use std::collections::HashSet;
use std::sync::RwLock;

use minijinja::{Environment, Error, ErrorKind, Value};

/// The most texts one cache keeps (templates come from workflow files, so a run has a
/// few thousand at most; past this, texts are compiled each time, nothing breaks).
pub(crate) const MAX_ENTRIES: usize = 50_000;

/// The variable an expression's value is stored in. Not a valid workflow name, so it
/// cannot clash with a context variable.
const VALUE: &str = "__runner_expression_value";

/// The prefix of an expression's template name, so an expression and a template
/// with the same text never share an entry.
const EXPRESSION: &str = "\u{1}expression\u{1}";

/// Which texts are compiled into an environment.
#[derive(Debug, Default)]
pub(crate) struct TemplateCache {
    known: RwLock<HashSet<String>>,
}

impl TemplateCache {
    /// Render `text` with `context`, compiling it into `env` the first time.
    pub(crate) fn render(
        &self,
        env: &RwLock<Environment<'static>>,
        text: &str,
        context: &Value,
    ) -> Result<String, Error> {
        if self.ensure(env, text, || text.to_string())? {
            let env = read(env)?;
            return env.get_template(text)?.render(context);
        }
        read(env)?.render_str(text, context)
    }

    /// Evaluate the bare expression `expression` with `context`, compiling it into `env`
    /// the first time.
    pub(crate) fn eval(
        &self,
        env: &RwLock<Environment<'static>>,
        expression: &str,
        context: &Value,
    ) -> Result<Value, Error> {
        let name = format!("{EXPRESSION}{expression}");
        if !self.contains(&name) {
            // It must be one whole expression on its own: `x ) (` would otherwise
            // become the call `(x ) ()` inside the wrapper.
            read(env)?.compile_expression(expression)?;
        }
        let cached =
            self.ensure(env, &name, || format!("{{% set {VALUE} = ({expression}) %}}")).unwrap_or(false);
        let env = read(env)?;
        if cached {
            let captured = env.get_template(&name)?.render_captured(context)?;
            return Ok(captured.state().lookup(VALUE).unwrap_or(Value::UNDEFINED));
        }
        env.compile_expression(expression)?.eval(context)
    }

    /// Whether the template `text` is compiled already.
    #[cfg(test)]
    pub(crate) fn has_template(&self, text: &str) -> bool {
        self.contains(text)
    }

    /// Whether the bare expression `expression` is compiled already.
    #[cfg(test)]
    pub(crate) fn has_expression(&self, expression: &str) -> bool {
        self.contains(&format!("{EXPRESSION}{expression}"))
    }

    fn contains(&self, name: &str) -> bool {
        self.known.read().is_ok_and(|known| known.contains(name))
    }

    /// Whether `name` is (now) compiled into `env`; false when the cache is full.
    fn ensure(
        &self,
        env: &RwLock<Environment<'static>>,
        name: &str,
        source: impl FnOnce() -> String,
    ) -> Result<bool, Error> {
        let known = self.known.read().map_err(|_| poisoned())?;
        if known.contains(name) {
            return Ok(true);
        }
        if known.len() >= MAX_ENTRIES {
            return Ok(false);
        }
        drop(known);
        let mut env = env.write().map_err(|_| poisoned())?;
        let mut known = self.known.write().map_err(|_| poisoned())?;
        if !known.contains(name) {
            env.add_template_owned(name.to_string(), source())?;
            known.insert(name.to_string());
        }
        Ok(true)
    }
}

/// What checking found in one template text: the variables it reads and the filters
/// and tests it uses that the environment lacks.
pub(crate) type Analysis = (std::collections::BTreeSet<String>, Vec<super::UnknownName>);

/// Whether a checked text is a bare expression (`if:`, `for_each:`) or a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Checked {
    /// A `{{ }}` template.
    Template,
    /// A bare expression.
    Expression,
}

/// The [`Analysis`] of `text` made with the standard environment
/// ([`super::environment`]), computed by `analyse` the first time a text is seen in
/// this process and remembered (up to [`MAX_ENTRIES`] texts): `runner validate`
/// checks the same texts in many files (every copy of a shared step, every lane's
/// probe), and compiling them was an eighth of its CPU. An error is not remembered
/// (the next caller computes it again and reports it where it is).
pub(crate) fn analysed(
    kind: Checked,
    text: &str,
    analyse: impl FnOnce() -> Result<Analysis, Error>,
) -> Result<Analysis, Error> {
    type Seen = std::collections::HashMap<(Checked, String), Analysis, foldhash::fast::RandomState>;
    static SEEN: std::sync::OnceLock<std::sync::Mutex<Seen>> = std::sync::OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    let key = (kind, text.to_string());
    if let Some(found) = seen.lock().ok().and_then(|seen| seen.get(&key).cloned()) {
        return Ok(found);
    }
    let analysis = analyse()?;
    if let Ok(mut seen) = seen.lock()
        && seen.len() < MAX_ENTRIES
    {
        seen.insert(key, analysis.clone());
    }
    Ok(analysis)
}

fn read<'a>(
    env: &'a RwLock<Environment<'static>>,
) -> Result<std::sync::RwLockReadGuard<'a, Environment<'static>>, Error> {
    env.read().map_err(|_| poisoned())
}

fn poisoned() -> Error {
    Error::new(ErrorKind::InvalidOperation, "template cache poisoned")
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn env() -> RwLock<Environment<'static>> {
        RwLock::new(crate::template::environment())
    }

    #[test]
    fn expressions_keep_their_value_and_type() {
        let (env, cache) = (env(), TemplateCache::default());
        let ctx = minijinja::Value::from(minijinja::value::Serde(
            serde_json::json!({"xs": [3, 1, 2], "m": {"a": 1}, "s": "%} x"}),
        ));
        let eval = |e: &str| cache.eval(&env, e, &ctx).map(|v| serde_json::to_value(&v).ok());
        assert_eq!(eval("xs | sort | list").ok().flatten(), Some(serde_json::json!([1, 2, 3])));
        assert_eq!(eval("m.a + 1").ok().flatten(), Some(serde_json::json!(2)));
        assert_eq!(
            eval("{'k': {'n': [m]}}").ok().flatten(),
            Some(serde_json::json!({"k": {"n": [{"a": 1}]}}))
        );
        // A string holding the block's end marker, and a conditional without `else`.
        assert_eq!(eval("s ~ '%}'").ok().flatten(), Some(serde_json::json!("%} x%}")));
        assert!(cache.eval(&env, "none", &ctx).is_ok_and(|v| v.is_none()));
        assert!(cache.eval(&env, "1 if false", &ctx).is_ok_and(|v| v.is_undefined()));
        assert!(cache.eval(&env, "nope is defined", &ctx).is_ok_and(|v| !v.is_true()));
        // Compiled once: the second evaluation finds it.
        assert_eq!(eval("xs | sort | list").ok().flatten(), Some(serde_json::json!([1, 2, 3])));
        assert_eq!(cache.known.read().map(|k| k.len()).unwrap_or(0), 7);
    }

    #[test]
    fn errors_are_the_expressions_own() {
        let (env, cache) = (env(), TemplateCache::default());
        let direct = |e: &str| {
            crate::template::environment()
                .compile_expression(e)
                .and_then(|x| x.eval(context! {}))
                .map_err(|e| crate::template::describe_error(&e))
        };
        for bad in ["1 +", "x ) (", "1) + (2", "nope.attr", "[1] | frobnicate"] {
            let cached = cache.eval(&env, bad, &context! {}).map_err(|e| crate::template::describe_error(&e));
            assert!(cached.is_err(), "{bad}");
            assert_eq!(
                cached.err().map(|e| e.split(':').next().map(str::to_string)),
                direct(bad).err().map(|e| e.split(':').next().map(str::to_string)),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_analysis_is_made_once_per_text_and_kind_and_errors_are_not_kept() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let calls = &calls;
        let analyse = |text: &'static str| {
            move || {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                crate::template::template_variables_and_unknown_names(&crate::template::environment(), text)
            }
        };
        let text = "{{ cache_test_unique.a | frobnicate_cache_test }}";
        let first = analysed(Checked::Template, text, analyse(text));
        let again = analysed(Checked::Template, text, analyse(text));
        assert!(first.is_ok());
        assert_eq!(first.as_ref().ok(), again.as_ref().ok());
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
        let (variables, unknown) = first.unwrap_or_default();
        assert!(variables.contains("cache_test_unique.a"), "{variables:?}");
        assert_eq!(unknown.len(), 1);
        // Another kind is another entry; an error is computed again each time.
        let _ = analysed(Checked::Expression, text, analyse(text));
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);
        let broken = "{{ cache_test_broken ";
        assert!(analysed(Checked::Template, broken, analyse(broken)).is_err());
        assert!(analysed(Checked::Template, broken, analyse(broken)).is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 4);
    }

    #[test]
    fn templates_render_and_are_compiled_once() {
        let (env, cache) = (env(), TemplateCache::default());
        let ctx = context! { n => 2 };
        assert_eq!(cache.render(&env, "n={{ n }}", &ctx).ok().as_deref(), Some("n=2"));
        assert_eq!(cache.render(&env, "n={{ n }}", &ctx).ok().as_deref(), Some("n=2"));
        assert!(cache.render(&env, "{{ n", &ctx).is_err());
        assert_eq!(cache.known.read().map(|k| k.len()).unwrap_or(0), 1);
        // An expression and a template with the same text are different entries.
        assert!(cache.eval(&env, "n", &ctx).is_ok_and(|v| v == Value::from(2)));
        assert_eq!(cache.render(&env, "n", &ctx).ok().as_deref(), Some("n"));
    }
}
