//! Kubernetes: a small API client (plain HTTPS through reqwest, bearer token, the
//! cluster CA), credentials (in-cluster service account or kubeconfig), the
//! `kubernetes` cron backend and `runner export kubernetes`.
//!
//! Why not kube-rs: the runner already has an HTTP stack with time limits, secret
//! masking, fixtures and recording; the few calls needed here (GET, merge patch, create,
//! server-side apply) are plain requests, and kube-rs would add a second HTTP stack
//! (hyper-util, tower, its own TLS setup) plus `k8s-openapi` to every build.

pub mod auth;
pub mod client;
pub mod cron;
pub mod export;
