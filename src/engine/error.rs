//! Why an invocation could not start its steps: a missing secret, a template of the
//! workflow's setup that does not render, or the concurrency lock. Each carries its
//! exit code and run status in one place instead of at every return.

use std::fmt;
use std::path::PathBuf;

use serde_json::Value as Json;

use super::events::RunStatus;
use super::run::RunResult;

/// A failure before the first step of an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SetupError {
    /// A declared secret's environment variable is unset or empty.
    MissingSecret {
        /// The secret's name in the workflow.
        name: String,
        /// The environment variable it reads.
        env: String,
    },
    /// A setup template (`vars.x`, `apis.x`, `concurrency.key`) did not render.
    Template {
        /// Where, e.g. `vars.repo`.
        field: String,
        /// The evaluation error.
        message: String,
    },
    /// The lock directory cannot be used.
    LockDirectory {
        /// The state directory.
        dir: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// Another run holds the key and the policy is `skip`.
    LockSkipped {
        /// The concurrency key.
        key: String,
    },
    /// Another run holds the key and the policy is `fail`.
    LockHeld {
        /// The concurrency key.
        key: String,
    },
    /// The policy is `wait` and the wait limit passed.
    LockGaveUp {
        /// The concurrency key.
        key: String,
        /// How long it waited.
        waited: std::time::Duration,
    },
    /// A signal came while waiting for the key.
    LockCancelled,
}

impl SetupError {
    /// The process exit code this failure ends the run with.
    pub(crate) fn code(&self) -> i32 {
        match self {
            SetupError::MissingSecret { .. } | SetupError::Template { .. } => crate::exit::CONFIG,
            SetupError::LockDirectory { .. } => crate::exit::SOFTWARE,
            SetupError::LockSkipped { .. } => crate::exit::OK,
            SetupError::LockHeld { .. } | SetupError::LockGaveUp { .. } => crate::exit::TEMPFAIL,
            SetupError::LockCancelled => crate::exit::INTERRUPTED,
        }
    }

    /// How the run is recorded.
    pub(crate) fn status(&self) -> RunStatus {
        match self {
            SetupError::LockSkipped { .. } => RunStatus::Skipped,
            SetupError::LockCancelled => RunStatus::Cancelled,
            _ => RunStatus::Failed,
        }
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::MissingSecret { name, env } => {
                write!(f, "secret `{name}` needs the environment variable {env} (it is unset or empty)")
            }
            SetupError::Template { field, message } => write!(f, "{field}: {message}"),
            SetupError::LockDirectory { dir, message } => {
                write!(f, "cannot use the lock directory {}: {message}", dir.display())
            }
            SetupError::LockSkipped { key } => {
                write!(f, "skipped: another run holds the concurrency key `{key}`")
            }
            SetupError::LockHeld { key } => write!(f, "another run holds the concurrency key `{key}`"),
            SetupError::LockGaveUp { key, waited } => write!(
                f,
                "gave up waiting for the concurrency key `{key}` after {}",
                crate::model::Duration(*waited)
            ),
            SetupError::LockCancelled => f.write_str("cancelled while waiting for the concurrency key"),
        }
    }
}

impl std::error::Error for SetupError {}

impl From<SetupError> for RunResult {
    fn from(error: SetupError) -> Self {
        RunResult {
            status: error.status(),
            exit_code: error.code(),
            outputs: Json::Null,
            error: Some(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_statuses_and_messages() {
        let held = SetupError::LockHeld { key: "k".into() };
        assert_eq!((held.code(), held.status()), (crate::exit::TEMPFAIL, RunStatus::Failed));
        assert_eq!(held.to_string(), "another run holds the concurrency key `k`");
        let skipped = RunResult::from(SetupError::LockSkipped { key: "k".into() });
        assert_eq!((skipped.exit_code, skipped.status), (0, RunStatus::Skipped));
        let secret = SetupError::MissingSecret { name: "token".into(), env: "TOKEN".into() };
        assert_eq!(secret.code(), crate::exit::CONFIG);
        assert_eq!(
            secret.to_string(),
            "secret `token` needs the environment variable TOKEN (it is unset or empty)"
        );
        assert_eq!(SetupError::LockCancelled.status(), RunStatus::Cancelled);
    }
}
