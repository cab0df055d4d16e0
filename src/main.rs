//! The `runner` binary: parse the command line, run, exit with the code.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `runner __supervise ...`: the small parent of one program (see `steps::supervise`).
    if args.get(1).is_some_and(|arg| arg == runner::steps::supervise::SUPERVISE_ARG) {
        std::process::exit(runner::steps::supervise::main(&args[2..]));
    }
    // `runner __template`: one template evaluation within limits (see `template::bounds`).
    if args.get(1).is_some_and(|arg| arg == runner::template::bounds::TEMPLATE_ARG) {
        std::process::exit(runner::template::bounds::main(|root| match root {
            Some(root) => runner::render::environment_for(root),
            None => runner::template::environment(),
        }));
    }
    if let Ok(me) = std::env::current_exe() {
        runner::template::bounds::enable(me.clone());
        runner::steps::supervise::enable(me);
    }
    std::process::exit(runner::cmd::main_with_args(args));
}
