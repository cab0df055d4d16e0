//! `runner schema`: print or write the JSON Schemas generated from the types.

use crate::cli::SchemaArgs;
use crate::cmd::Out;
use crate::exit;
use crate::model::FileKind;

/// Run `runner schema`.
pub fn run(args: &SchemaArgs, out: &mut Out) -> i32 {
    if let Some(dir) = &args.write {
        for kind in FileKind::ALL {
            let path = dir.join(kind.schema_file());
            if let Err(e) = crate::fsutil::write_atomic(&path, kind.schema_text().as_bytes()) {
                out.err(&format!("runner: cannot write {}: {e}\n", path.display()));
                return exit::SOFTWARE;
            }
            out.out(&format!("wrote {}\n", path.display()));
        }
        let path = dir.join(RUN_REPORT_FILE);
        if let Err(e) = crate::fsutil::write_atomic(&path, run_report_text().as_bytes()) {
            out.err(&format!("runner: cannot write {}: {e}\n", path.display()));
            return exit::SOFTWARE;
        }
        out.out(&format!("wrote {}\n", path.display()));
        return exit::OK;
    }
    match &args.kind {
        None => {
            let mut text = String::from("file kinds (runner schema KIND prints one):\n");
            for kind in FileKind::ALL {
                text.push_str(&format!("  {:<10} {}\n", kind.name(), kind.schema_file()));
            }
            text.push_str(&format!(
                "  {:<10} {RUN_REPORT_FILE} (the format of `runner run --report`)\n",
                "run-report"
            ));
            out.out(&text);
            exit::OK
        }
        Some(name) if name == "run-report" => {
            out.out(&run_report_text());
            exit::OK
        }
        Some(name) => match FileKind::from_name(name) {
            Some(kind) => {
                out.out(&kind.schema_text());
                exit::OK
            }
            None => {
                let mut names: Vec<&str> = FileKind::ALL.iter().map(|k| k.name()).collect();
                names.push("run-report");
                out.err(&format!(
                    "runner: unknown file kind `{name}`; expected one of {}\n",
                    crate::diagnostics::one_of(&names)
                ));
                exit::USAGE
            }
        },
    }
}

/// The committed file name of the run report schema.
pub const RUN_REPORT_FILE: &str = "run-report.schema.json";

/// The run report schema as committed.
pub fn run_report_text() -> String {
    let mut text = serde_json::to_string_pretty(&crate::report::run_report::schema()).unwrap_or_default();
    text.push('\n');
    text
}
