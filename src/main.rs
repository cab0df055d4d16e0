//! The `runner` binary: everything is in the library ([`runner::main_with_args`]).

fn main() {
    std::process::exit(runner::main_with_args(std::env::args_os().collect()));
}
