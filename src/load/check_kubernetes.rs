//! Meaning checks of the `kubernetes` step: the manifest names a literal `apiVersion`
//! and `kind`, a literal namespace is a DNS label, a literal name is a valid object
//! name, `apply` has a name, and every template inside is checked like any other.

use serde_json::Value;

use super::{Checker, Scope};
use crate::model::kubernetes::{KubernetesAction, KubernetesStep};
use crate::model::kubernetes::{is_dns_label, is_dns_subdomain};
use crate::template;

impl Checker<'_> {
    pub(super) fn check_kubernetes(&mut self, step: &KubernetesStep, pointer: &str, scope: &Scope) {
        let manifest_pointer = format!("{pointer}/manifest");
        self.check_dyn(&step.manifest, &manifest_pointer, scope);
        if let Some(namespace) = &step.namespace {
            self.check_template(namespace, &format!("{pointer}/namespace"), scope);
            self.check_namespace(namespace, &format!("{pointer}/namespace"));
        }
        let Value::Object(manifest) = &step.manifest else {
            self.report(
                &manifest_pointer,
                "kubernetes",
                "`manifest`: expected a map with apiVersion, kind and metadata".into(),
                None,
            );
            return;
        };
        for (key, example) in [("apiVersion", "batch/v1"), ("kind", "Job")] {
            match manifest.get(key) {
                Some(Value::String(text)) if !text.trim().is_empty() && !template::is_template(text) => {}
                Some(Value::String(text)) if template::is_template(text) => self.report(
                    &format!("{manifest_pointer}/{key}"),
                    "kubernetes",
                    format!("`manifest.{key}` must be literal, not a template (it decides the API path and the RBAC `runner export` writes)"),
                    None,
                ),
                Some(_) => self.report(
                    &format!("{manifest_pointer}/{key}"),
                    "kubernetes",
                    format!("`manifest.{key}`: expected a text such as `{example}`"),
                    None,
                ),
                None => self.report(
                    &manifest_pointer,
                    "kubernetes",
                    format!("a kubernetes manifest needs `{key}`"),
                    Some(format!("add `{key}: {example}` to the manifest")),
                ),
            }
        }
        let metadata = manifest.get("metadata").and_then(Value::as_object);
        if let Some(Value::String(namespace)) = metadata.and_then(|m| m.get("namespace")) {
            self.check_namespace(namespace, &format!("{manifest_pointer}/metadata/namespace"));
        }
        let name = metadata.and_then(|m| m.get("name"));
        if let Some(Value::String(name)) = name
            && !template::is_template(name)
            && !is_dns_subdomain(name)
        {
            self.report(
                &format!("{manifest_pointer}/metadata/name"),
                "kubernetes",
                format!("`{name}` is not a valid object name: lower case letters, digits, `-` and `.`"),
                None,
            );
        }
        if step.action == KubernetesAction::Apply && name.is_none() {
            self.report(
                &manifest_pointer,
                "kubernetes",
                "a server-side apply needs `metadata.name`".into(),
                None,
            );
        }
    }

    fn check_namespace(&mut self, namespace: &str, pointer: &str) {
        if template::is_template(namespace) || is_dns_label(namespace) {
            return;
        }
        let lower = namespace.to_ascii_lowercase().replace(['_', '.', ' '], "-");
        let hint = if is_dns_label(&lower) { Some(format!("did you mean `{lower}`?")) } else { None };
        self.report(
            pointer,
            "kubernetes",
            format!(
                "namespace `{namespace}` is not a DNS label: lower case letters, digits and `-`, starting and ending with a letter or digit, at most 63"
            ),
            hint,
        );
    }
}
