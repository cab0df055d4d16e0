//! The names templates see while a workflow runs, as minijinja objects looked up
//! lazily: no step ever copies the whole context, so a workflow of thousands of
//! steps costs the same per step as one of ten.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use minijinja::Value;
use minijinja::value::{Enumerator, Object, ObjectRepr};

/// One level of names: the workflow's root level, a `for_each` iteration or a
/// `switch` branch. Lookups fall back to the parent.
#[derive(Debug, Default)]
pub(crate) struct Scope {
    parent: Option<Arc<Scope>>,
    names: Mutex<BTreeMap<String, Value>>,
    steps: Mutex<BTreeMap<String, Value>>,
}

impl Scope {
    /// A root scope.
    pub(crate) fn root() -> Arc<Scope> {
        Arc::new(Scope::default())
    }

    /// A child scope that sees everything this one sees.
    pub(crate) fn child(self: &Arc<Self>) -> Arc<Scope> {
        Arc::new(Scope { parent: Some(self.clone()), ..Scope::default() })
    }

    /// Define a name at this level (`inputs`, a loop variable, ...).
    pub(crate) fn set(&self, name: &str, value: Value) {
        if let Ok(mut names) = self.names.lock() {
            names.insert(name.to_string(), value);
        }
    }

    /// Record a step's result (`{output, status, error}`) at this level.
    pub(crate) fn set_step(&self, id: &str, result: Value) {
        if let Ok(mut steps) = self.steps.lock() {
            steps.insert(id.to_string(), result);
        }
    }

    /// A name, looking through parents.
    pub(crate) fn lookup(&self, name: &str) -> Option<Value> {
        if let Some(value) = self.names.lock().ok().and_then(|names| names.get(name).cloned()) {
            return Some(value);
        }
        self.parent.as_ref().and_then(|parent| parent.lookup(name))
    }

    /// A step result, looking through parents.
    pub(crate) fn step(&self, id: &str) -> Option<Value> {
        if let Some(value) = self.steps.lock().ok().and_then(|steps| steps.get(id).cloned()) {
            return Some(value);
        }
        self.parent.as_ref().and_then(|parent| parent.step(id))
    }

    fn step_ids(&self, into: &mut Vec<String>) {
        if let Some(parent) = &self.parent {
            parent.step_ids(into);
        }
        if let Ok(steps) = self.steps.lock() {
            into.extend(steps.keys().cloned());
        }
    }

    fn names(&self, into: &mut Vec<String>) {
        if let Some(parent) = &self.parent {
            parent.names(into);
        }
        if let Ok(names) = self.names.lock() {
            into.extend(names.keys().cloned());
        }
    }

    /// The context value templates render with.
    pub(crate) fn context(self: &Arc<Self>) -> Value {
        Value::from_object(ScopeView(self.clone()))
    }
}

#[derive(Debug)]
struct ScopeView(Arc<Scope>);

impl Object for ScopeView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        if key == "steps" {
            return Some(Value::from_object(StepsView(self.0.clone())));
        }
        self.0.lookup(key)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut names = Vec::new();
        self.0.names(&mut names);
        names.push("steps".into());
        names.sort();
        names.dedup();
        Enumerator::Values(names.into_iter().map(Value::from).collect())
    }
}

#[derive(Debug)]
struct StepsView(Arc<Scope>);

impl Object for StepsView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.step(key.as_str()?)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut ids = Vec::new();
        self.0.step_ids(&mut ids);
        ids.sort();
        ids.dedup();
        Enumerator::Values(ids.into_iter().map(Value::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_see_parents_and_shadow_them() {
        let root = Scope::root();
        root.set("inputs", crate::expr::values::to_mj(&serde_json::json!({"lane": "local"})));
        root.set_step("a", crate::expr::values::to_mj(&serde_json::json!({"output": 1})));
        let child = root.child();
        child.set("item", Value::from(5));
        child.set_step("a", crate::expr::values::to_mj(&serde_json::json!({"output": 2})));
        let env = crate::template::environment();
        let render = |scope: &Arc<Scope>, t: &str| env.render_str(t, scope.context()).unwrap_or_default();
        assert_eq!(render(&child, "{{ inputs.lane }} {{ item }} {{ steps.a.output }}"), "local 5 2");
        assert_eq!(render(&root, "{{ steps.a.output }}"), "1");
        assert!(env.render_str("{{ item }}", root.context()).is_err());
    }
}
