//! The `kubernetes` step: create or server-side-apply one templated object.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::{Dyn, Template};

/// `type: kubernetes`: create or server-side-apply one object (a `Job`, a `ConfigMap`,
/// any custom resource by `apiVersion`/`kind`) in a namespace, authenticated as the
/// in-cluster service account or the kubeconfig's current context. Its output is
/// `{name, namespace, uid, kind, api_version, action, status_code, created, condition}`.
/// `--dry-run` shows the exact manifest and request instead (effect `write`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KubernetesStep {
    /// The object; every string inside is a template. It needs literal `apiVersion` and
    /// `kind`, and `metadata.name` (or `metadata.generateName` for `action: create`).
    /// Numbers and booleans in `metadata.labels`/`metadata.annotations` are sent as
    /// strings (Kubernetes requires string values there).
    pub manifest: Dyn,
    /// `create` (POST; an existing object of that name is a failure, 409 AlreadyExists)
    /// or `apply` (server-side apply, PATCH with `application/apply-patch+yaml`;
    /// creates or updates). Default `create`.
    #[serde(default)]
    pub action: KubernetesAction,
    /// Namespace (template): the manifest's `metadata.namespace`, else this, else the
    /// service account's / context's namespace, else `default`. A literal value must be
    /// a DNS label (lower case letters, digits, `-`, at most 63); `runner validate`
    /// checks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Template>,
    /// The resource (plural, lower case) when it is not the kind's regular plural,
    /// e.g. for a custom resource `kind: Proxy` served as `proxies`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z][a-z0-9]*$"))]
    pub resource: Option<String>,
    /// Field manager of a server-side apply (default `runner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub field_manager: Option<String>,
    /// Server-side apply takes over fields owned by another manager (`force=true`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// Wait until the object reports a condition (polled every 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<KubernetesWait>,
}

/// What a `kubernetes` step does with its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum KubernetesAction {
    /// Create it (POST); 409 when it exists.
    #[default]
    Create,
    /// Server-side apply (PATCH, `application/apply-patch+yaml`): create or update.
    Apply,
}

/// Wait for a condition of the created object.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KubernetesWait {
    /// The condition type that must become `"True"` in `status.conditions`, e.g.
    /// `Complete` for a Job, `Ready` for many custom resources.
    #[schemars(length(min = 1))]
    pub condition: String,
    /// Condition types that end the wait as a failure when `"True"` (default
    /// `[Failed]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_conditions: Option<Vec<String>>,
    /// How long to wait in total (the step fails afterwards).
    pub timeout: Duration,
}

/// Whether a namespace (or other name) is a DNS label.
pub(crate) fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(|b| *b != b'-')
        && bytes.last().is_some_and(|b| *b != b'-')
}

/// Whether a name is a DNS subdomain (the rule for most object names).
pub(crate) fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_label)
}
