//! Command-line definitions (clap). Only parsing lives here; see `cmd` for behaviour.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// runner: a declarative task runner for AI-agent fleets driven by the Dispatch
/// work-queue API. Workflows, lanes and prompts are YAML and templates, checked
/// before anything runs.
#[derive(Debug, Parser)]
#[command(name = "runner", version, about, long_about = None, propagate_version = true)]
#[command(after_long_help = EXAMPLES)]
pub(crate) struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Examples shown at the end of `runner --help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  Check every file under workflows/, cron-prompts/ and examples/:
    runner validate
  The workflows here, with their descriptions and inputs:
    runner list
  A workflow's description, inputs, secrets and environment:
    runner run workflows/heartbeat.yaml --help
  Run a workflow, or only show what its write steps would do:
    runner run examples/hello.yaml --input who=Ada
    runner run workflows/probe.yaml --input lane=local --dry-run
  In CI: offline tests with a JUnit report, problems as GitHub annotations:
    runner test --junit report.xml
    runner validate --output github
  Shell completion:
    runner completions bash > ~/.local/share/bash-completion/completions/runner

Exit codes: 0 ok; 1-63 the workflow's own (default failure 1); 64 usage;
65 invalid workflow or template; 66 missing input file; 70 internal error;
75 lock held.";

/// runner's commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check workflow, lane and prompt files against their schema and meaning; runs nothing.
    ///
    /// With no PATH, checks workflows/, cron-prompts/ and examples/ under the current
    /// directory. Exit 0 when everything is valid, 65 when anything is not, 66 when a
    /// PATH does not exist.
    Validate(ValidateArgs),
    /// Render a prompt template, or every prompt with --all.
    ///
    /// Values come from the prompt manifest next to the template (prompts.yaml), the
    /// lane registry it names (with --lane), --vars files, --set, and --env. An
    /// undefined placeholder is an error (exit 65) naming what is available.
    Render(RenderArgs),
    /// Run a workflow.
    ///
    /// Inputs are typed and checked before anything runs. With --dry-run, read steps
    /// run for real and write steps are only reported, with exactly what they would
    /// send. Progress goes to stderr; the workflow's own output (emit steps) to stdout.
    Run(RunArgs),
    /// Run workflow tests offline: *.test.yaml files with canned HTTP exchanges and
    /// command results. Prints one line per case and `N passed, N failed`; exit 1 when
    /// any case failed.
    Test(TestArgs),
    /// Work with roles files: `runner roles select` shows the level and model a piece
    /// of work gets, and which rule decided.
    #[command(subcommand)]
    Roles(RolesCommand),
    /// Print a Mermaid diagram of a lifecycle (states and transitions) or a workflow
    /// (steps, branches, loops, calls).
    Graph(GraphArgs),
    /// Print the JSON Schema of a file kind, or write all of them with --write.
    Schema(SchemaArgs),
    /// Run workflows on a schedule (a `kind: schedule` file), in the foreground.
    ///
    /// Each firing runs as its own `runner run` child process. Logs one line per start
    /// and end. On SIGTERM or SIGINT: stops firing, waits --stop-timeout for running
    /// children, then ends them and exits 143. With --next, prints the next fire times
    /// and runs nothing.
    Schedule(ScheduleArgs),
    /// List past runs from the run history, newest first.
    Runs(RunsArgs),
    /// Show one past run: its steps as a tree with start times, durations, errors and
    /// planned actions; or write it as an HTML timeline page with --html.
    Show(ShowArgs),
    /// Print a lifecycle or roles file as runner sees it: merged over the base it
    /// `extends` (and that base's base), after checking. Exit 65 on problems.
    ShowConfig(ShowConfigArgs),
    /// Convert another tool's configuration into runner files.
    #[command(subcommand)]
    Import(ImportCommand),
    /// List the workflows under DIR (default: workflows/ and examples/) with their
    /// descriptions and inputs.
    List(ListArgs),
    /// Print a shell completion script.
    ///
    /// E.g. `runner completions bash > ~/.local/share/bash-completion/completions/runner`,
    /// `runner completions zsh > ~/.zfunc/_runner`,
    /// `runner completions fish > ~/.config/fish/completions/runner.fish`.
    Completions(CompletionsArgs),
    /// Print runner's man page (roff), or write one page per command with --write.
    ///
    /// `runner man | man -l -` reads it; `runner man --write man` regenerates the
    /// committed pages.
    Man(ManArgs),
    /// Export a schedule for another scheduler.
    ///
    /// `runner export kubernetes` writes a schedule's CronJobs, the ConfigMap of the
    /// files they need and, when required, the ServiceAccount, Role and RoleBinding,
    /// as one YAML stream for `kubectl apply -f -`.
    #[command(subcommand)]
    Export(ExportCommand),
}

/// `runner export ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ExportCommand {
    /// A schedule file as Kubernetes manifests (YAML stream on stdout): a ConfigMap
    /// with the workflows, lane registries and prompts, one CronJob per entry, and the
    /// RBAC the `kubernetes` cron backend and `kubernetes` steps need. Secrets are
    /// referenced from a Secret (--secret-name), never read. Paths are taken relative
    /// to the current directory, which must hold every file.
    Kubernetes(ExportKubernetesArgs),
}

/// `runner export kubernetes`.
#[derive(Debug, Args)]
pub(crate) struct ExportKubernetesArgs {
    /// The schedule file.
    #[arg(default_value = "workflows/schedule.yaml")]
    pub file: PathBuf,
    /// Container image holding the `runner` binary, e.g. `ghcr.io/acme/runner:0.1.0`.
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// Namespace of every object.
    #[arg(long, short = 'n', value_name = "NS", default_value = "default")]
    pub namespace: String,
    /// Prefix of every object name.
    #[arg(long, value_name = "PREFIX", default_value = "runner-")]
    pub name_prefix: String,
    /// Extra label on every object and pod (repeatable).
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// The Secret whose keys (the declared secrets' env var names) become env vars.
    #[arg(long, value_name = "NAME", default_value = "runner-secrets")]
    pub secret_name: String,
    /// When to use colour in diagnostics.
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorChoice,
}

/// `runner show-config`.
#[derive(Debug, Args)]
pub(crate) struct ShowConfigArgs {
    /// A lifecycle or roles file.
    pub file: PathBuf,
    /// Output format: `yaml` (default) or `json`.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: ConfigFormat,
}

/// How `show-config` prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum ConfigFormat {
    /// YAML.
    #[default]
    Yaml,
    /// JSON.
    Json,
}

/// `runner import ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ImportCommand {
    /// Convert a DevClaw workflow.yaml (with DevClaw's built-in roles, levels and
    /// states under it) into a runner lifecycle, roles file and PR-check workflow.
    /// Everything that cannot be carried is reported with the key's line.
    Devclaw(ImportDevclawArgs),
}

/// `runner import devclaw`.
#[derive(Debug, Args)]
pub(crate) struct ImportDevclawArgs {
    /// DevClaw's workflow.yaml (workspace or project layer).
    pub workflow: PathBuf,
    /// Where to write lifecycle.yaml, roles.yaml and checks/pr-status.yaml.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Overwrite files that exist.
    #[arg(long)]
    pub force: bool,
}

/// `runner roles ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum RolesCommand {
    /// Choose the level (and model) for a piece of work, as a dispatch would.
    Select(SelectArgs),
}

/// `runner roles select`.
#[derive(Debug, Args)]
pub(crate) struct SelectArgs {
    /// The roles file.
    #[arg(long, default_value = "roles.yaml")]
    pub roles: PathBuf,
    /// The role that will do the work.
    #[arg(long)]
    pub role: String,
    /// The work item's title (free text; may start with `-`).
    #[arg(long, allow_hyphen_values = true)]
    pub title: String,
    /// The work item's body (free text; may start with `-`, e.g. `--body "- item"`).
    #[arg(long, conflicts_with = "body_file", allow_hyphen_values = true)]
    pub body: Option<String>,
    /// Read the body from a file (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// The item's labels, comma-separated (e.g. `developer:senior,bug`).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// `runner graph`.
#[derive(Debug, Args)]
pub(crate) struct GraphArgs {
    /// A lifecycle or workflow file.
    pub file: PathBuf,
}

/// `runner test`.
#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// Test files or directories (searched for *.test.yaml). Default: workflows/ and examples/.
    pub paths: Vec<PathBuf>,
    /// Run only cases whose name contains this text.
    #[arg(long, value_name = "TEXT")]
    pub case: Option<String>,
    /// `human`: one line per case and `N passed, N failed`. `json`: one JSON object
    /// with every case's result.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Also write the results as JUnit XML to FILE (written atomically), for CI
    /// test reports.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// When to use colour.
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorChoice,
}

/// `runner run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The workflow file.
    pub file: PathBuf,
    /// An input: KEY=VALUE. The value is converted to the input's declared type
    /// (lists and maps as JSON); `KEY=@FILE` reads it from a file, `KEY=@-` from stdin.
    #[arg(long = "input", short = 'i', value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// Run read steps, report write steps (HTTP writes, commands, cron toggles, files)
    /// without doing them.
    #[arg(long)]
    pub dry_run: bool,
    /// `human`: progress on stderr, emitted output on stdout. `json`: every event as a
    /// JSON line on stdout.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Also write a versioned JSON run report to FILE (written atomically).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print only emitted output and the final line.
    #[arg(long, short = 'q', conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also print step starts and planned actions in full.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Record every HTTP exchange and command result of this run into FILE, as a test
    /// file (secrets masked, auth headers dropped) that `--replay` or `runner test` can use.
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    pub record: Option<PathBuf>,
    /// Answer HTTP requests and commands from a recording (or any test file's first
    /// case) instead of the world; anything it lacks fails the step.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Directory for concurrency locks (default: $RUNNER_STATE_DIR, else
    /// $XDG_STATE_HOME/runner, else ~/.local/state/runner).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// When to use colour.
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorChoice,
    /// Do not store this run's report in the run history (`<state-dir>/runs/`).
    #[arg(long)]
    pub no_history: bool,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum OutputFormat {
    /// For people: snippets with carets, colour on a terminal.
    #[default]
    Human,
    /// For machines: JSON.
    Json,
}

/// When to use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum ColorChoice {
    /// Colour when printing to a terminal and NO_COLOR is unset.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// `runner validate`.
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Files or directories to check (directories are searched for *.yaml and *.yml).
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: ValidateOutput,
    /// When to use colour.
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorChoice,
    /// Check every file, without reading or writing the result cache (by default a
    /// file found valid is not checked again until a file its check read changes;
    /// see RUNNER_CACHE_DIR).
    #[arg(long)]
    pub no_cache: bool,
}

/// `runner render`.
#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// The template to render (omit with --all).
    #[arg(required_unless_present = "all")]
    pub template: Option<PathBuf>,
    /// Render for this lane of the registry: the template sees it as `lane`.
    #[arg(long)]
    pub lane: Option<String>,
    /// The lane registry (default: the one the prompt manifest names).
    #[arg(long)]
    pub lanes: Option<PathBuf>,
    /// The prompt manifest (default: prompts.yaml next to the template, or
    /// cron-prompts/prompts.yaml with --all).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Set a value: KEY=VALUE (text). Repeatable; wins over vars files.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// A YAML file with a map of values. Repeatable; later files win.
    #[arg(long = "vars", value_name = "FILE")]
    pub vars: Vec<PathBuf>,
    /// Take the value of the environment variable NAME as the value NAME. Repeatable.
    #[arg(long = "env", value_name = "NAME")]
    pub env: Vec<String>,
    /// Write to this file (atomically) instead of stdout.
    #[arg(long, conflicts_with = "all")]
    pub out: Option<PathBuf>,
    /// Render every prompt of the manifest and every lane's worker prompt into --out-dir.
    #[arg(long, requires = "out_dir", conflicts_with = "lane")]
    pub all: bool,
    /// Directory for --all.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Compare with the existing output file(s) instead of writing; exit 1 and show a
    /// diff for each file that differs.
    #[arg(long)]
    pub check: bool,
    /// Print the placeholders the template uses, one per line.
    #[arg(long, conflicts_with_all = ["all", "out", "check"])]
    pub list: bool,
    /// When to use colour in diagnostics.
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorChoice,
}

/// `runner schema`.
#[derive(Debug, Args)]
pub(crate) struct SchemaArgs {
    /// The file kind: workflow, lanes, prompts, test, lifecycle, roles, schedule, or run-report
    /// (the `--report` format).
    /// Without it, lists the kinds.
    pub kind: Option<String>,
    /// Write every kind's schema into this directory (e.g. `schemas`).
    #[arg(long, value_name = "DIR", conflicts_with = "kind")]
    pub write: Option<PathBuf>,
}

/// `runner schedule`.
#[derive(Debug, Args)]
pub(crate) struct ScheduleArgs {
    /// The schedule file.
    #[arg(default_value = "workflows/schedule.yaml")]
    pub file: PathBuf,
    /// Print the next N fire times of every entry (default 5) and run nothing.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "5")]
    pub next: Option<usize>,
    /// With --next: count from this time (RFC 3339, e.g. `2026-10-25T00:00:00Z`)
    /// instead of now.
    #[arg(long, value_name = "TIME", requires = "next")]
    pub from: Option<String>,
    /// After SIGTERM or SIGINT, how long to wait for running children before ending them.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub stop_timeout: String,
    /// `human`: one line per event on stderr. `json`: one JSON object per line on stdout.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
    /// State directory: last fire times, locks and the run history (default:
    /// $RUNNER_STATE_DIR, else $XDG_STATE_HOME/runner, else ~/.local/state/runner).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// When to use colour in diagnostics.
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorChoice,
}

/// `runner runs`.
#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    /// Only runs of this workflow (its name).
    #[arg(long, short = 'w', value_name = "NAME")]
    pub workflow: Option<String>,
    /// Only runs that ended so: ok, failed, cancelled or skipped.
    #[arg(long, short = 's', value_name = "STATUS")]
    pub status: Option<String>,
    /// Only runs started since: a duration ago (`24h`, `7d`) or a time (RFC 3339).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Show at most this many runs.
    #[arg(long, short = 'n', value_name = "N")]
    pub limit: Option<usize>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
    /// State directory holding `runs/` (default as for `runner run`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `runner show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// A run id (or a unique prefix of one, see `runner runs`), or the path of a report
    /// file.
    pub run: String,
    /// Write a self-contained HTML page with the run's timeline to FILE instead.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Output format (`json` prints the stored report).
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
    /// State directory holding `runs/` (default as for `runner run`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// How `runner validate` prints problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum ValidateOutput {
    /// For people: snippets with carets, colour on a terminal.
    #[default]
    Human,
    /// For machines: a JSON list of problems.
    Json,
    /// GitHub Actions workflow commands: `::error file=…,line=…,col=…::message`, shown
    /// as annotations on the pull request.
    Github,
}

/// `runner list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Directories (or files) to list. Default: workflows/ and examples/.
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// `runner completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `runner man`.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write runner.1 and one runner-COMMAND.1 per command into DIR instead of
    /// printing runner.1.
    #[arg(long, value_name = "DIR")]
    pub write: Option<PathBuf>,
}
