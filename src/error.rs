//! runner's error type. A command returns `Result<(), Error>`; `cmd::run` is the
//! one place that prints the error and turns it into the process exit code
//! ([`Error::code`], values in [`crate::exit`]).

use crate::exit;

/// Why a command did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    /// Bad command-line usage (exit 64).
    #[error("{0}")]
    Usage(String),
    /// An invalid file, value or template (exit 65).
    #[error("{0}")]
    Invalid(String),
    /// A named input file or directory does not exist (exit 66).
    #[error("{0}")]
    NoInput(String),
    /// runner itself failed, e.g. writing its output (exit 70).
    #[error("{0}")]
    Internal(String),
    /// The command could not do its work (exit 1).
    #[error("{0}")]
    Failed(String),
    /// Problems in files, already rendered as diagnostics (printed as they are),
    /// with the exit code they lead to (usually 65).
    #[error("{text}")]
    Problems {
        /// The rendered diagnostics and summary line.
        text: String,
        /// The exit code.
        code: i32,
    },
    /// The command has said everything already; only the exit code is left (a
    /// workflow's own code, failed test cases, drift found by `--check`).
    #[error("exit code {0}")]
    Exit(i32),
}

impl Error {
    /// Diagnostics already rendered, exit 65.
    pub(crate) fn problems(text: String) -> Self {
        Error::Problems { text, code: exit::DATAERR }
    }

    /// `Ok` for exit code 0, else an [`Error::Exit`] with the code.
    pub(crate) fn status(code: i32) -> Result<(), Error> {
        if code == exit::OK { Ok(()) } else { Err(Error::Exit(code)) }
    }

    /// The process exit code.
    pub(crate) fn code(&self) -> i32 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Invalid(_) => exit::DATAERR,
            Error::NoInput(_) => exit::NOINPUT,
            Error::Internal(_) => exit::SOFTWARE,
            Error::Failed(_) => exit::FAILURE,
            Error::Problems { code, .. } => *code,
            Error::Exit(code) => *code,
        }
    }

    /// What goes to stderr: `runner: <message>` and a line break for a message,
    /// rendered problems as they are, nothing for a bare exit code.
    pub(crate) fn report(&self) -> String {
        match self {
            Error::Usage(message)
            | Error::Invalid(message)
            | Error::NoInput(message)
            | Error::Internal(message)
            | Error::Failed(message) => format!("runner: {message}\n"),
            Error::Problems { text, .. } => text.clone(),
            Error::Exit(_) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_exit_table() {
        assert_eq!(Error::Usage("x".into()).code(), 64);
        assert_eq!(Error::Invalid("x".into()).code(), 65);
        assert_eq!(Error::NoInput("x".into()).code(), 66);
        assert_eq!(Error::Internal("x".into()).code(), 70);
        assert_eq!(Error::Failed("x".into()).code(), 1);
        assert_eq!(Error::problems("p\n".into()).code(), 65);
        assert_eq!(Error::Exit(3).code(), 3);
        assert_eq!(Error::status(0), Ok(()));
        assert_eq!(Error::status(2), Err(Error::Exit(2)));
    }

    #[test]
    fn reports_are_one_runner_line_or_the_rendered_text() {
        assert_eq!(Error::NoInput("no such file: a.yaml".into()).report(), "runner: no such file: a.yaml\n");
        assert_eq!(Error::problems("error: 1 problem\n".into()).report(), "error: 1 problem\n");
        assert_eq!(Error::Exit(1).report(), "");
    }
}
