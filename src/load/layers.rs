//! Layered lifecycles and roles: a file that `extends` a base is merged over it by key
//! (the rules are in the schema descriptions of `extends`), then checked as one. Every
//! problem is reported in the layer that last wrote the value it is about.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::yaml::{Document, escape_pointer};
use super::{Loader, ReadError, display, normalize, sibling};
use crate::diagnostics::did_you_mean;
use crate::model::FileKind;

/// One file of a layered configuration.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    /// Its display name.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
    /// Its parsed text.
    pub document: Arc<Document>,
}

/// The files of a layered configuration, the extending (top) file first.
#[derive(Debug, Clone)]
pub(crate) struct Layers {
    /// Top first.
    pub files: Vec<Layer>,
}

impl Layers {
    /// One file, no layering.
    pub(crate) fn single(name: &str, path: &Path, document: Arc<Document>) -> Layers {
        Layers { files: vec![Layer { name: name.to_string(), path: path.to_path_buf(), document }] }
    }

    /// The layer that wrote the value at `pointer`: the topmost file that has it (or,
    /// failing that, its nearest ancestor).
    pub(crate) fn at(&self, pointer: &str) -> &Layer {
        let mut current = pointer;
        loop {
            if let Some(layer) = self.files.iter().find(|l| l.document.locations.contains_key(current)) {
                return layer;
            }
            match current.rfind('/') {
                Some(index) => current = &current[..index],
                None => break,
            }
        }
        &self.files[0]
    }

    /// Report a problem at the value of `pointer`, in the layer that wrote it.
    pub(crate) fn report(
        &self,
        loader: &mut Loader,
        pointer: &str,
        code: &'static str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let layer = self.at(pointer);
        loader.report(&layer.name, &layer.document, pointer, code, message, hint);
    }

    /// Report a problem at the key of `pointer`, in the layer that wrote it.
    pub(crate) fn report_key(
        &self,
        loader: &mut Loader,
        pointer: &str,
        code: &'static str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let layer = self.at(pointer);
        loader.report_key(&layer.name, &layer.document, pointer, code, message, hint);
    }
}

/// The roles file of the lifecycle that the file at `path` names as `lifecycle`, loaded
/// through that lifecycle's `roles:` line, so a roles path that cannot be read is
/// reported there (not at `path:0:0`). `None` when it did not load.
pub(crate) fn lifecycle_roles(
    loader: &mut Loader,
    path: &Path,
    lifecycle: &str,
    roles: &str,
) -> Option<Arc<crate::model::Roles>> {
    let lifecycle_path = sibling(path, lifecycle);
    let name = display(&lifecycle_path);
    let document = loader.document(&name)?;
    match loader.load_reference(
        &lifecycle_path,
        &name,
        &document,
        "/roles",
        roles,
        FileKind::Roles,
        "roles file",
        false,
    ) {
        Some(super::Loaded::Roles(roles)) => Some(roles),
        _ => None,
    }
}

/// Whether a parsed file layers over a base.
pub(crate) fn extends(document: &Document) -> bool {
    document.value.get("extends").is_some()
}

/// The merged value of a file and its layers. For a file without `extends`, its own
/// value. `None` when a problem was reported.
pub(crate) fn resolve(
    loader: &mut Loader,
    path: &Path,
    name: &str,
    document: &Arc<Document>,
    kind: FileKind,
) -> Option<(Value, Layers)> {
    let top = Layers::single(name, path, document.clone());
    let Some(relative) = document.value.get("extends") else {
        return Some((document.value.clone(), top));
    };
    let Some(relative) = relative.as_str() else {
        loader.report(name, document, "/extends", "type", "`extends`: expected a file path", None);
        return None;
    };
    let base_path = sibling(path, relative);
    if loader.in_progress(&base_path) {
        loader.report(
            name,
            document,
            "/extends",
            "extends",
            format!("`{}` extends itself (through {})", display(&base_path), loader.chain().join(" -> ")),
            None,
        );
        return None;
    }
    let what = if kind == FileKind::Lifecycle { "lifecycle" } else { "roles file" };
    // A base that cannot be read is reported at this `extends:` line.
    let at = document.locate("/extends").value;
    match loader.load_from(&base_path, Some((name, at))) {
        Ok(Some(loaded)) if loaded.kind() == kind => {}
        Ok(Some(other)) => {
            loader.report(
                name,
                document,
                "/extends",
                "kind",
                format!("`{}` is a {} file, not a {what}", display(&base_path), other.kind().name()),
                None,
            );
            return None;
        }
        Err(ReadError::Reported) => return None,
        Ok(None) => {
            loader.report(
                name,
                document,
                "/extends",
                "reference",
                format!("base {what} `{}` has problems (reported in that file)", display(&base_path)),
                None,
            );
            return None;
        }
        Err(ReadError::Missing) => {
            loader.report(
                name,
                document,
                "/extends",
                "missing-file",
                format!("base {what} `{}` does not exist", display(&base_path)),
                Some("the path is relative to this file".into()),
            );
            return None;
        }
    }
    // The base loaded cleanly, so its own chain is known and valid.
    let base_document = loader.document(&display(&base_path))?;
    let (base_value, base_layers) = resolve(loader, &base_path, &display(&base_path), &base_document, kind)?;
    let Value::Object(mut merged) = base_value else { return None };
    let Value::Object(over) = &document.value else { return None };
    let before = loader.diagnostics.len();
    let base_name = display(&base_path);
    for (key, value) in over {
        match (kind, key.as_str()) {
            (_, "extends") => {}
            (FileKind::Lifecycle, "states") => {
                merge_entries(
                    loader,
                    name,
                    document,
                    &base_name,
                    "state",
                    "/states",
                    &mut merged,
                    value,
                    &["type", "label"],
                );
            }
            (FileKind::Lifecycle, "policies") => {
                merge_entries(
                    loader,
                    name,
                    document,
                    &base_name,
                    "policy",
                    "/policies",
                    &mut merged,
                    value,
                    &["values", "default"],
                );
            }
            (FileKind::Roles, "roles") => {
                merge_entries(
                    loader,
                    name,
                    document,
                    &base_name,
                    "role",
                    "/roles",
                    &mut merged,
                    value,
                    &["levels", "default_level", "completion"],
                );
            }
            (FileKind::Roles, "role_aliases") => {
                let target = merged.entry("role_aliases").or_insert_with(|| Value::Object(Map::new()));
                merge_map(target, value);
            }
            _ => {
                merged.insert(key.clone(), value.clone());
            }
        }
    }
    merged.remove("extends");
    if loader.diagnostics.len() != before {
        return None;
    }
    let mut layers = top;
    layers.files.extend(base_layers.files);
    // Paths inside the merged result are relative to the top file.
    let mut merged = Value::Object(merged);
    let mut pointers: Vec<String> = vec!["/roles".into()];
    if let Some(Value::Object(states)) = merged.get("states") {
        for state in states.keys() {
            pointers.push(format!("/states/{}/check/workflow", escape_pointer(state)));
        }
    }
    for pointer in pointers {
        let from = layers.at(&pointer).path.clone();
        if from == path {
            continue;
        }
        if let Some(Value::String(relative)) = merged.pointer_mut(&pointer) {
            let target = sibling(&from, relative);
            *relative = relative_to(&target, path.parent().unwrap_or(Path::new("")));
        }
    }
    Some((merged, layers))
}

/// Resolve a file's layers and check the merged result against the schema of `kind`;
/// then the typed model. `None` when a problem was reported.
pub(crate) fn load_typed<T: serde::de::DeserializeOwned>(
    loader: &mut Loader,
    path: &Path,
    name: &str,
    document: &Arc<Document>,
    kind: FileKind,
) -> Option<(T, Layers)> {
    let (value, layers) = resolve(loader, path, name, document, kind)?;
    if layers.files.len() > 1 {
        let problems = super::schema_check::checker(kind).check(&value);
        if !problems.is_empty() {
            for problem in problems {
                let layer = layers.at(&problem.pointer).clone();
                let location = layer.document.locate(&problem.pointer);
                let range =
                    if problem.on_key { location.key.unwrap_or(location.value) } else { location.value };
                loader.push_at(
                    &layer.name,
                    &layer.document,
                    range,
                    location,
                    problem.code,
                    format!("{} (in the merged result)", problem.message),
                    problem.hint,
                );
            }
            return None;
        }
    }
    match serde_json::from_value::<T>(value) {
        Ok(model) => Some((model, layers)),
        Err(e) => {
            loader.report(name, document, "", "schema", e.to_string(), None);
            None
        }
    }
}

/// Merge an overlay's keyed entries (states, policies, roles) into the base.
#[allow(clippy::too_many_arguments)]
fn merge_entries(
    loader: &mut Loader,
    name: &str,
    document: &Document,
    base_name: &str,
    what: &str,
    at: &str,
    merged: &mut Map<String, Value>,
    overlay: &Value,
    required: &[&str],
) {
    let Value::Object(overlay) = overlay else {
        merged.insert(at.trim_start_matches('/').to_string(), overlay.clone());
        return;
    };
    let base = merged.entry(at.trim_start_matches('/')).or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(base) = base else { return };
    let known: Vec<String> = base.keys().cloned().collect();
    for (key, value) in overlay {
        let pointer = format!("{at}/{}", escape_pointer(key));
        let missing = |loader: &mut Loader, why: String| {
            loader.report_key(
                name,
                document,
                &pointer,
                "extends",
                format!("{what} `{key}` is not in the base `{base_name}`: {why}"),
                did_you_mean(key, known.iter().map(String::as_str))
                    .or_else(|| Some(format!("a new {what} needs {}", required.join(", ")))),
            );
        };
        match (base.get_mut(key), value) {
            (Some(existing), Value::Bool(false)) => {
                if what == "role" {
                    if let Value::Object(role) = existing {
                        role.insert("enabled".into(), Value::Bool(false));
                    }
                } else {
                    base.shift_remove(key);
                }
            }
            (None, Value::Bool(false)) => missing(loader, "there is nothing to remove".into()),
            (Some(Value::Object(existing)), Value::Object(patch)) => {
                for (field, field_value) in patch {
                    match field.as_str() {
                        "on" | "levels" | "aliases" | "completion" => {
                            let target =
                                existing.entry(field.clone()).or_insert_with(|| Value::Object(Map::new()));
                            merge_map(target, field_value);
                        }
                        _ if field_value == &Value::Bool(false) && field != "enabled" && field != "entry" => {
                            existing.shift_remove(field);
                        }
                        _ => {
                            existing.insert(field.clone(), field_value.clone());
                        }
                    }
                }
            }
            (None, Value::Object(new)) => {
                let absent: Vec<&str> = required.iter().copied().filter(|f| !new.contains_key(*f)).collect();
                if absent.is_empty() {
                    base.insert(key.clone(), value.clone());
                } else {
                    missing(
                        loader,
                        format!(
                            "there is nothing to override, and as a new {what} it would need {}",
                            absent.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(" and ")
                        ),
                    );
                }
            }
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Merge a map per key; `false` removes a key.
fn merge_map(target: &mut Value, overlay: &Value) {
    match (target, overlay) {
        (Value::Object(target), Value::Object(overlay)) => {
            for (key, value) in overlay {
                if value == &Value::Bool(false) {
                    target.shift_remove(key);
                } else {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
        (target, overlay) => *target = overlay.clone(),
    }
}

/// Make a published lifecycle or roles schema accept overlay files too, as editors and
/// third-party validators see each file on its own: a file with `extends` is checked
/// against the overlay variant (`if`/`then`/`else`, draft 7 and later), which asks only
/// for `kind` and `extends`, lets each state, policy and role be partial or `false`
/// (removed, or for a role switched off), and lets a field of one, an event of `on` and
/// an entry of `levels`/`aliases`/`completion` be `false` (removed), as [`resolve`]
/// merges them. A file without `extends` is checked as complete, as before. Other
/// kinds are left alone.
pub(crate) fn add_overlay_variant(schema: &mut Value, kind: FileKind) {
    let entries: &[(&str, &str)] = match kind {
        FileKind::Lifecycle => &[("states", "State"), ("policies", "Policy")],
        FileKind::Roles => &[("roles", "Role")],
        _ => return,
    };
    let Value::Object(root) = schema else { return };
    let required = root.remove("required").unwrap_or_else(|| Value::Array(Vec::new()));
    let mut complete = Map::new();
    let mut overlay = Map::new();
    for (property, def) in entries {
        let Some(Value::Object(field)) = root.get_mut("properties").and_then(|p| p.get_mut(*property)) else {
            continue;
        };
        // The entries' schema moves into the branches; the property keeps its type and
        // description (for hover and completion).
        let Some(each) = field.remove("additionalProperties") else { continue };
        complete.insert(
            (*property).to_string(),
            json_object([("type", Value::String("object".into())), ("additionalProperties", each)]),
        );
        let partial = json_ref(&format!("{def}Overlay"));
        overlay.insert(
            (*property).to_string(),
            json_object([
                ("type", Value::String("object".into())),
                ("additionalProperties", or_false(partial)),
            ]),
        );
        let Some(Value::Object(defs)) = root.get_mut("$defs") else { continue };
        let Some(Value::Object(full)) = defs.get(*def).cloned() else { continue };
        defs.insert(format!("{def}Overlay"), Value::Object(partial_def(full, def)));
    }
    let overlay_required = vec![Value::String("kind".into()), Value::String("extends".into())];
    // Each branch names the properties it requires (strict validators ask for that);
    // their schemas stay in the top-level `properties`.
    for name in overlay_required.iter().chain(required.as_array().into_iter().flatten()) {
        if let Value::String(name) = name {
            overlay.entry(name.clone()).or_insert(Value::Bool(true));
            complete.entry(name.clone()).or_insert(Value::Bool(true));
        }
    }
    let mut extends = Map::new();
    extends.insert("extends".into(), Value::Bool(true));
    // The branches' properties carry the top-level descriptions (for hover text and
    // for tools that want every property described).
    let top = root.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
    for branch in [&mut extends, &mut overlay, &mut complete] {
        for (name, schema) in branch.iter_mut() {
            let Some(top) = top.get(name) else { continue };
            if *schema == Value::Bool(true) {
                *schema = Value::Object(Map::new());
            }
            if let Value::Object(map) = schema {
                for key in ["description", "markdownDescription"] {
                    if let Some(text) = top.get(key) {
                        map.entry(key).or_insert_with(|| text.clone());
                    }
                }
            }
        }
    }
    let extends = Value::Object(extends);
    root.insert(
        "if".into(),
        json_object([
            ("properties", extends),
            ("required", Value::Array(vec![Value::String("extends".into())])),
        ]),
    );
    root.insert(
        "then".into(),
        json_object([("required", Value::Array(overlay_required)), ("properties", Value::Object(overlay))]),
    );
    root.insert(
        "else".into(),
        json_object([("required", required), ("properties", Value::Object(complete))]),
    );
}

/// The overlay form of a state, policy or role definition: nothing required, every
/// field (but the switches `enabled` and `entry`) may be `false`, and so may every
/// entry of its per-key maps, which may also be empty.
fn partial_def(mut def: Map<String, Value>, name: &str) -> Map<String, Value> {
    def.remove("required");
    let description = format!(
        "A {} of an overlay file: only the fields that change (`false` removes one).",
        name.to_lowercase()
    );
    def.insert("description".into(), Value::String(description.clone()));
    def.insert("markdownDescription".into(), Value::String(description));
    if let Some(Value::Object(properties)) = def.get_mut("properties") {
        for (field, schema) in properties.iter_mut() {
            if matches!(field.as_str(), "on" | "levels" | "aliases" | "completion")
                && let Value::Object(map) = schema
            {
                map.remove("minProperties");
                if let Some(each) = map.remove("additionalProperties") {
                    map.insert("additionalProperties".into(), or_false(each));
                }
            }
            if !matches!(field.as_str(), "enabled" | "entry") {
                *schema = or_false(schema.take());
            }
        }
    }
    def
}

/// `schema`, or `false`; the description stays on the outside for hover text.
fn or_false(mut schema: Value) -> Value {
    let mut wrapper = Map::new();
    if let Value::Object(map) = &mut schema {
        for key in ["description", "markdownDescription"] {
            if let Some(text) = map.remove(key) {
                wrapper.insert(key.into(), text);
            }
        }
    }
    let removed = json_object([("type", Value::String("boolean".into())), ("const", Value::Bool(false))]);
    wrapper.insert("anyOf".into(), Value::Array(vec![removed, schema]));
    Value::Object(wrapper)
}

fn json_ref(def: &str) -> Value {
    json_object([("$ref", Value::String(format!("#/$defs/{def}")))])
}

fn json_object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Object(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// `target` as a path relative to `dir` (both as given, shortened lexically).
pub(crate) fn relative_to(target: &Path, dir: &Path) -> String {
    let target = normalize(target);
    let dir = normalize(dir);
    let t: Vec<Component> = target.components().collect();
    let d: Vec<Component> = if dir == Path::new(".") { Vec::new() } else { dir.components().collect() };
    let common = t.iter().zip(&d).take_while(|(a, b)| a == b).count();
    if d[common..].iter().any(|c| !matches!(c, Component::Normal(_))) {
        return display(&target);
    }
    let mut out = PathBuf::new();
    for _ in common..d.len() {
        out.push("..");
    }
    for component in &t[common..] {
        out.push(component.as_os_str());
    }
    display(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_between_layers() {
        assert_eq!(
            relative_to(Path::new("ex/roles.yaml"), Path::new("ex/projects/fast")),
            "../../roles.yaml"
        );
        assert_eq!(relative_to(Path::new("ex/roles.yaml"), Path::new("ex")), "roles.yaml");
        assert_eq!(relative_to(Path::new("roles.yaml"), Path::new("")), "roles.yaml");
        assert_eq!(relative_to(Path::new("/a/b/c.yaml"), Path::new("/a/d")), "../b/c.yaml");
    }

    #[test]
    fn maps_merge_per_key_and_false_removes() {
        let mut base = serde_json::json!({"a": 1, "b": 2});
        merge_map(&mut base, &serde_json::json!({"b": false, "c": 3}));
        assert_eq!(base, serde_json::json!({"a": 1, "c": 3}));
    }
}
