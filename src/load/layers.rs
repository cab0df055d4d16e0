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
pub struct Layer {
    /// Its display name.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
    /// Its parsed text.
    pub document: Arc<Document>,
}

/// The files of a layered configuration, the extending (top) file first.
#[derive(Debug, Clone)]
pub struct Layers {
    /// Top first.
    pub files: Vec<Layer>,
}

impl Layers {
    /// One file, no layering.
    pub fn single(name: &str, path: &Path, document: Arc<Document>) -> Layers {
        Layers { files: vec![Layer { name: name.to_string(), path: path.to_path_buf(), document }] }
    }

    /// The layer that wrote the value at `pointer`: the topmost file that has it (or,
    /// failing that, its nearest ancestor).
    pub fn at(&self, pointer: &str) -> &Layer {
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
    pub fn report(
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
    pub fn report_key(
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

/// Whether a parsed file layers over a base.
pub fn extends(document: &Document) -> bool {
    document.value.get("extends").is_some()
}

/// The merged value of a file and its layers. For a file without `extends`, its own
/// value. `None` when a problem was reported.
pub fn resolve(
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
    // A base that cannot be read (a folder, a device) is reported at `extends:`.
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
        Ok(None) | Err(ReadError::Reported) => {
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
pub fn load_typed<T: serde::de::DeserializeOwned>(
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

/// `target` as a path relative to `dir` (both as given, shortened lexically).
pub fn relative_to(target: &Path, dir: &Path) -> String {
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
