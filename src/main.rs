//! The `runner` binary: parse the command line, run, exit with the code.

fn main() {
    std::process::exit(runner::cmd::main_with_args(std::env::args_os()));
}
