//! `render`: render a template file (a sibling of the workflow) with vars, to standard
//! output or to a file (a write: planned in a dry run).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json, json};

use crate::load::sibling;
use crate::model::step::RenderStep;
use crate::steps::api::{StepCall, StepResult};
use crate::steps::events::Event;

/// Read, check and render the template; print it or write it atomically.
pub(crate) fn run(call: &StepCall<'_>, render: &RenderStep) -> StepResult {
    let StepCall { engine, inv, step, context, .. } = *call;
    let template = sibling(&inv.unit.path, &render.template);
    let text = match crate::fsutil::read_text(&template, crate::fsutil::MAX_READ_BYTES) {
        Ok(t) => t,
        Err(e) => {
            return StepResult::failed(format!("cannot read {}: {e}", template.display()), Json::Null);
        }
    };
    let vars = match engine.render_map(&render.vars, context) {
        Ok(v) => v.unwrap_or(Json::Object(Map::new())),
        Err(e) => return StepResult::failed(format!("vars.{e}"), Json::Null),
    };
    let root = template.parent().map(Path::to_path_buf).unwrap_or_default();
    let rendered = match crate::render::render_checked(&template, &text, &root, &vars) {
        Ok(r) => r,
        Err(problems) => {
            let first = problems.first().map(|p| format!("{}:{}: {}", p.file.display(), p.line, p.message));
            return StepResult::failed(first.unwrap_or_else(|| "render failed".into()), Json::Null);
        }
    };
    let Some(out) = &render.out else {
        engine.emit(Event::Emit { stream: "stdout".into(), text: rendered.clone() });
        return StepResult::ok(Json::String(rendered));
    };
    let out = match engine.eval().render_text(out, context) {
        Ok(o) => PathBuf::from(o),
        Err(e) => return StepResult::failed(format!("out: {e}"), Json::Null),
    };
    let output = json!({"path": out.display().to_string(), "bytes": rendered.len()});
    if inv.plan && engine.plan().writes(step) {
        return engine.planned(step, &out.display().to_string(), json!({"write": output}));
    }
    match crate::fsutil::write_atomic(&out, rendered.as_bytes()) {
        Ok(()) => StepResult::ok(output),
        Err(e) => StepResult::failed(format!("cannot write {}: {e}", out.display()), output),
    }
}
