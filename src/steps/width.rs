//! A `for_each` width: a fixed count, or a template evaluated when the loop starts
//! (so the fan-out can come from the workflow's inputs or the lane registry).

use minijinja::Value;
use serde_json::Value as Json;

use crate::expr::values::Evaluator;
use crate::model::step::Width;

/// How many items run at once: 1 without a width; a template's number is clamped to
/// 1..=[`Width::MAX`]; anything that is not a whole number is an error.
pub(crate) fn resolve(eval: &Evaluator, width: Option<&Width>, context: &Value) -> Result<usize, String> {
    let count = match width {
        None => 1,
        Some(Width::Count(count)) => u64::from(*count),
        Some(Width::Template(text)) => match eval.render_value(text, context)? {
            Json::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(n), _) => n,
                (None, Some(_)) => 1,
                _ => return Err(format!("expected a whole number, found {n}")),
            },
            Json::String(s) => {
                s.trim().parse::<u64>().map_err(|_| format!("expected a whole number, found `{s}`"))?
            }
            other => {
                return Err(format!(
                    "expected a whole number, found {}",
                    crate::expr::values::describe(&other)
                ));
            }
        },
    };
    Ok(count.clamp(1, u64::from(Width::MAX)) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::values::to_mj;
    use serde_json::json;

    #[test]
    fn widths_resolve_and_clamp() {
        let eval = Evaluator::default();
        let ctx = to_mj(&json!({"inputs": {"n": 0, "big": 1000, "text": "7"}, "lanes": [1, 2, 3]}));
        let template = |t: &str| Width::Template(t.into());
        assert_eq!(resolve(&eval, None, &ctx), Ok(1));
        assert_eq!(resolve(&eval, Some(&Width::Count(8)), &ctx), Ok(8));
        assert_eq!(resolve(&eval, Some(&template("{{ inputs.n or (lanes | length) }}")), &ctx), Ok(3));
        assert_eq!(resolve(&eval, Some(&template("{{ inputs.big }}")), &ctx), Ok(256));
        assert_eq!(resolve(&eval, Some(&template("{{ inputs.n }}")), &ctx), Ok(1));
        assert_eq!(resolve(&eval, Some(&template("{{ -5 }}")), &ctx), Ok(1));
        assert_eq!(resolve(&eval, Some(&template("{{ inputs.text }}")), &ctx), Ok(7));
        assert!(resolve(&eval, Some(&template("{{ 1.5 }}")), &ctx).unwrap_err().contains("whole number"));
        assert!(resolve(&eval, Some(&template("many")), &ctx).unwrap_err().contains("`many`"));
        assert!(resolve(&eval, Some(&template("{{ [1] }}")), &ctx).unwrap_err().contains("whole number"));
    }

    #[test]
    fn yaml_accepts_a_number_or_a_template() {
        let count: Width = serde_json::from_value(json!(8)).expect("count");
        assert_eq!(count, Width::Count(8));
        let text: Width = serde_json::from_value(json!("{{ inputs.n }}")).expect("template");
        assert_eq!(text.to_string(), "{{ inputs.n }}");
    }
}
