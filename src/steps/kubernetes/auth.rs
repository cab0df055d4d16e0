//! Where the Kubernetes API is and how to authenticate to it: the in-cluster service
//! account (token, CA and namespace files plus `KUBERNETES_SERVICE_HOST`/`_PORT`), else
//! a kubeconfig (`KUBECONFIG`, else `~/.kube/config`; its current context).
//!
//! Only bearer tokens are supported (a service-account token, or `token`/`tokenFile`
//! of a kubeconfig user). Client certificates and `exec`/auth-provider plugins are
//! refused with a clear error: they would need more code paths than a fleet on a
//! cluster needs. `insecure-skip-tls-verify` is refused unless the caller explicitly
//! allows it. The token never appears in `Debug` output or in any error.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default directory of the in-cluster service-account files.
pub(crate) const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Environment variable overriding [`SERVICE_ACCOUNT_DIR`] (tests, sidecars that mount
/// the token elsewhere). A relative path is taken from the workflow's directory, so a
/// `runner test` fixture can point at a directory next to the test file.
pub(crate) const SERVICE_ACCOUNT_DIR_ENV: &str = "RUNNER_K8S_SERVICE_ACCOUNT_DIR";

/// Environment variable allowing `insecure-skip-tls-verify: true` of a kubeconfig.
pub(crate) const ALLOW_INSECURE_ENV: &str = "RUNNER_K8S_ALLOW_INSECURE";

/// A cluster to talk to.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Cluster {
    /// `https://host:port`, without a trailing `/`.
    pub server: String,
    /// PEM bundle of the CA(s) the server certificate must chain to; `None` uses the
    /// system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Bearer token (secret).
    pub token: Option<String>,
    /// Skip server certificate checks (only when explicitly allowed).
    pub insecure: bool,
    /// The default namespace (service account's, or the context's).
    pub namespace: Option<String>,
    /// Where this came from, for messages: `in-cluster service account` or
    /// `kubeconfig /path (context c)`.
    pub source: String,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("insecure", &self.insecure)
            .field("namespace", &self.namespace)
            .field("source", &self.source)
            .finish()
    }
}

impl Cluster {
    /// Find the cluster: in-cluster when `KUBERNETES_SERVICE_HOST` is set, else the
    /// kubeconfig. `env` is the run's environment; `base` the workflow's directory.
    pub(crate) fn discover(env: &dyn Fn(&str) -> Option<String>, base: &Path) -> Result<Cluster, String> {
        if let Some(host) = env("KUBERNETES_SERVICE_HOST") {
            return in_cluster(&host, env, base);
        }
        let path = match env("KUBECONFIG") {
            Some(list) => {
                let first = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty());
                first.ok_or_else(|| "KUBECONFIG is set but names no file".to_string())?
            }
            None => match env("HOME") {
                Some(home) => Path::new(&home).join(".kube").join("config"),
                None => {
                    return Err("no Kubernetes credentials: KUBERNETES_SERVICE_HOST (in-cluster) and KUBECONFIG are unset and HOME is unknown".into());
                }
            },
        };
        let allow_insecure = env(ALLOW_INSECURE_ENV).is_some_and(|v| v == "1" || v == "true");
        from_kubeconfig(&path, allow_insecure)
    }
}

fn read_text(path: &Path, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

fn in_cluster(host: &str, env: &dyn Fn(&str) -> Option<String>, base: &Path) -> Result<Cluster, String> {
    let dir =
        env(SERVICE_ACCOUNT_DIR_ENV).map_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR), |d| base.join(d));
    let port = env("KUBERNETES_SERVICE_PORT").unwrap_or_else(|| "443".into());
    if port.parse::<u16>().is_err() {
        return Err(format!("KUBERNETES_SERVICE_PORT is not a port number: `{port}`"));
    }
    let host = host.trim();
    if host.is_empty() || host.contains(['/', '@', '?', '#', ' ']) {
        return Err("KUBERNETES_SERVICE_HOST is not a host name or address".into());
    }
    // An IPv6 address needs brackets in a URL.
    let host =
        if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() };
    let token = read_text(&dir.join("token"), "service-account token")?.trim().to_string();
    if token.is_empty() {
        return Err(format!("the service-account token {} is empty", dir.join("token").display()));
    }
    let ca = dir.join("ca.crt");
    let ca_pem =
        std::fs::read(&ca).map_err(|e| format!("cannot read the cluster CA {}: {e}", ca.display()))?;
    let namespace = std::fs::read_to_string(dir.join("namespace"))
        .ok()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    Ok(Cluster {
        server: format!("https://{host}:{port}"),
        ca_pem: Some(ca_pem),
        token: Some(token),
        insecure: false,
        namespace,
        source: "in-cluster service account".into(),
    })
}

/// The parts of a kubeconfig that are read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct KubeConfig {
    #[serde(default)]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Vec<Named<ContextDef>>,
    #[serde(default)]
    clusters: Vec<Named<ClusterDef>>,
    #[serde(default)]
    users: Vec<Named<UserDef>>,
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "context", alias = "cluster", alias = "user")]
    value: T,
}

#[derive(Debug, Deserialize)]
struct ContextDef {
    cluster: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterDef {
    server: String,
    #[serde(default)]
    certificate_authority: Option<String>,
    #[serde(default)]
    certificate_authority_data: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct UserDef {
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "tokenFile")]
    token_file: Option<String>,
    #[serde(default)]
    client_certificate: Option<String>,
    #[serde(default)]
    client_certificate_data: Option<String>,
    #[serde(default)]
    exec: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    auth_provider: Option<serde::de::IgnoredAny>,
}

impl fmt::Debug for UserDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserDef")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// Read a kubeconfig and take its current context.
pub(crate) fn from_kubeconfig(path: &Path, allow_insecure: bool) -> Result<Cluster, String> {
    let shown = path.display();
    let text = read_text(path, "kubeconfig")?;
    // The parse error may quote the file; it is not shown (a token could be in it).
    let config: KubeConfig = serde_saphyr::from_str(&text).map_err(|_| {
        format!("the kubeconfig {shown} is not a valid kubeconfig (YAML with clusters, users, contexts)")
    })?;
    let Some(context_name) = config.current_context.filter(|c| !c.is_empty()) else {
        return Err(format!("the kubeconfig {shown} has no current-context"));
    };
    let Some(context) = config.contexts.iter().find(|c| c.name == context_name) else {
        return Err(format!("the kubeconfig {shown} has no context `{context_name}` (its current-context)"));
    };
    let context = &context.value;
    let Some(cluster) = config.clusters.iter().find(|c| c.name == context.cluster) else {
        return Err(format!(
            "the kubeconfig {shown} has no cluster `{}` (of context `{context_name}`)",
            context.cluster
        ));
    };
    let cluster = &cluster.value;
    let user = match &context.user {
        Some(name) => match config.users.iter().find(|u| &u.name == name) {
            Some(user) => Some(&user.value),
            None => {
                return Err(format!(
                    "the kubeconfig {shown} has no user `{name}` (of context `{context_name}`)"
                ));
            }
        },
        None => None,
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let ca_pem = match (&cluster.certificate_authority_data, &cluster.certificate_authority) {
        (Some(data), _) => Some(decode_base64(data.trim()).ok_or_else(|| {
            format!(
                "the kubeconfig {shown}: certificate-authority-data of cluster `{}` is not base64",
                context.cluster
            )
        })?),
        (None, Some(file)) => {
            let file = base.join(file);
            Some(
                std::fs::read(&file)
                    .map_err(|e| format!("cannot read the cluster CA {}: {e}", file.display()))?,
            )
        }
        (None, None) => None,
    };
    if cluster.insecure_skip_tls_verify && !allow_insecure {
        return Err(format!(
            "the kubeconfig {shown} sets insecure-skip-tls-verify for cluster `{}`; refused unless {ALLOW_INSECURE_ENV}=1",
            context.cluster
        ));
    }
    let token = match user {
        None => None,
        Some(user) => {
            if user.client_certificate.is_some() || user.client_certificate_data.is_some() {
                return Err(format!(
                    "the kubeconfig {shown}: user of context `{context_name}` uses a client certificate; runner supports bearer tokens only (token or tokenFile)"
                ));
            }
            if user.exec.is_some() || user.auth_provider.is_some() {
                return Err(format!(
                    "the kubeconfig {shown}: user of context `{context_name}` uses an exec or auth-provider plugin; runner supports bearer tokens only (token or tokenFile)"
                ));
            }
            match (&user.token, &user.token_file) {
                (Some(token), _) => Some(token.trim().to_string()),
                (None, Some(file)) => Some(read_text(&base.join(file), "token file")?.trim().to_string()),
                (None, None) => None,
            }
        }
    }
    .filter(|t| !t.is_empty());
    let server = cluster.server.trim().trim_end_matches('/').to_string();
    if !server.starts_with("https://") {
        return Err(format!(
            "the kubeconfig {shown}: cluster `{}` has server `{server}`; only https:// is supported (a token must not travel in clear text)",
            context.cluster
        ));
    }
    Ok(Cluster {
        server,
        ca_pem,
        token,
        insecure: cluster.insecure_skip_tls_verify,
        namespace: context.namespace.clone().filter(|n| !n.is_empty()),
        source: format!("kubeconfig {shown} (context `{context_name}`)"),
    })
}

/// Standard base64 (padding optional); `None` when it is not base64.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\n' | b'\r' | b' ' => continue,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn in_cluster_reads_the_service_account_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("token"), "tok-123456\n").expect("write");
        std::fs::write(dir.path().join("ca.crt"), "PEM").expect("write");
        std::fs::write(dir.path().join("namespace"), "fleet\n").expect("write");
        let sa = dir.path().display().to_string();
        let cluster = Cluster::discover(
            &env(&[
                ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
                ("KUBERNETES_SERVICE_PORT", "6443"),
                (SERVICE_ACCOUNT_DIR_ENV, &sa),
            ]),
            Path::new("/"),
        )
        .expect("in-cluster");
        assert_eq!(cluster.server, "https://10.0.0.1:6443");
        assert_eq!(cluster.token.as_deref(), Some("tok-123456"));
        assert_eq!(cluster.namespace.as_deref(), Some("fleet"));
        assert!(!format!("{cluster:?}").contains("tok-123456"));
        let v6 = Cluster::discover(
            &env(&[("KUBERNETES_SERVICE_HOST", "fd00::1"), (SERVICE_ACCOUNT_DIR_ENV, &sa)]),
            Path::new("/"),
        )
        .expect("v6");
        assert_eq!(v6.server, "https://[fd00::1]:443");
        let missing = Cluster::discover(
            &env(&[("KUBERNETES_SERVICE_HOST", "h"), (SERVICE_ACCOUNT_DIR_ENV, "/nope")]),
            Path::new("/"),
        )
        .unwrap_err();
        assert!(missing.contains("service-account token /nope/token"), "{missing}");
    }

    #[test]
    fn kubeconfig_current_context_with_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: b\ncontexts:\n- name: a\n  context: {cluster: c1, user: u1}\n- name: b\n  context: {cluster: c2, user: u2, namespace: ns2}\nclusters:\n- name: c1\n  cluster: {server: 'https://one:6443'}\n- name: c2\n  cluster:\n    server: https://two:6443/\n    certificate-authority-data: UEVN\nusers:\n- name: u1\n  user: {token: t1}\n- name: u2\n  user: {token: secret-two}\n",
        )
        .expect("write");
        let kubeconfig = path.display().to_string();
        let cluster =
            Cluster::discover(&env(&[("KUBECONFIG", &kubeconfig)]), Path::new("/")).expect("kubeconfig");
        assert_eq!(cluster.server, "https://two:6443");
        assert_eq!(cluster.ca_pem.as_deref(), Some(b"PEM".as_slice()));
        assert_eq!(cluster.token.as_deref(), Some("secret-two"));
        assert_eq!(cluster.namespace.as_deref(), Some("ns2"));
    }

    #[test]
    fn kubeconfig_refusals_are_clear_and_never_quote_the_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config");
        let write = |text: &str| std::fs::write(&path, text).expect("write");
        let base = "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n";
        write(&format!(
            "{base}clusters:\n- name: c\n  cluster: {{server: 'https://h', insecure-skip-tls-verify: true}}\nusers:\n- name: u\n  user: {{token: s3cr3t-token}}\n"
        ));
        let error = from_kubeconfig(&path, false).unwrap_err();
        assert!(error.contains("insecure-skip-tls-verify") && error.contains(ALLOW_INSECURE_ENV), "{error}");
        assert!(from_kubeconfig(&path, true).expect("allowed").insecure);
        write(&format!(
            "{base}clusters:\n- name: c\n  cluster: {{server: 'http://h'}}\nusers:\n- name: u\n  user: {{token: s3cr3t-token}}\n"
        ));
        assert!(from_kubeconfig(&path, false).unwrap_err().contains("only https://"));
        write(&format!(
            "{base}clusters:\n- name: c\n  cluster: {{server: 'https://h'}}\nusers:\n- name: u\n  user: {{client-certificate-data: QQ==}}\n"
        ));
        assert!(from_kubeconfig(&path, false).unwrap_err().contains("bearer tokens only"));
        write("current-context: x\ncontexts: []\ntoken: s3cr3t-token: [\n");
        let error = from_kubeconfig(&path, false).unwrap_err();
        assert!(!error.contains("s3cr3t"), "{error}");
        write("contexts: []\n");
        assert!(from_kubeconfig(&path, false).unwrap_err().contains("no current-context"));
    }

    #[test]
    fn base64_decodes() {
        assert_eq!(decode_base64("aGVsbG8=").as_deref(), Some(b"hello".as_slice()));
        assert_eq!(decode_base64("aGVs\nbG8").as_deref(), Some(b"hello".as_slice()));
        assert_eq!(decode_base64("a*b"), None);
    }
}
