//! Which templates may run in-process: [`classify`] reads a template's compiled
//! instructions and calls it bounded only when it cannot grow beyond a small multiple
//! of its inputs (see the parent module's doc for the rule and why).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use minijinja::Value;
use minijinja::machinery::{Instruction, get_compiled_template};

use super::Mode;

/// Concatenations and additions a template may have and still run in-process.
const MAX_SUMS: usize = 4;
/// Operators one template may have before only a child may compile it.
pub(super) const MAX_OPERATORS: usize = 2_000;

/// Where a template may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// Bounded by construction: evaluate in-process.
    Bounded,
    /// Could grow without bound: evaluate in a child.
    Unbounded,
    /// Could grow without bound but calls a function only the running workflow has.
    NeedsRuntime,
}

/// Filters whose output is at most a small constant multiple of their inputs.
/// Selections (`select`, `selectattr`, ...) keep a part of their input; `map` is not
/// here (it applies any filter; see [`is_linear_filter`]), nor filters that pad
/// (`batch`, `slice`). Our collection helpers take key paths and return a part, a
/// reordering or counts of their input.
const LINEAR_FILTERS: &[&str] = &[
    "sort_by",
    "min_by",
    "max_by",
    "find_by",
    "index_by",
    "group_by",
    "count_by",
    "unique_by",
    "project",
    "normalize",
    "abs",
    "attr",
    "chain",
    "flatten",
    "groupby",
    "reject",
    "rejectattr",
    "select",
    "selectattr",
    "zip",
    "bool",
    "capitalize",
    "compact",
    "count",
    "d",
    "default",
    "dictsort",
    "dig",
    "e",
    "escape",
    "find_all",
    "first",
    "float",
    "fromjson",
    "int",
    "items",
    "label_names",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "max",
    "min",
    "one_line",
    "regex_find",
    "reverse",
    "round",
    "safe",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "to_int",
    "trim",
    "unique",
    "upper",
    "urlencode",
];

/// Functions whose result is bounded whatever their arguments (`range` refuses more
/// than 100,000 items).
const BOUNDED_FUNCTIONS: &[&str] = &["range", "dict", "namespace", "now_utc", "debug"];

/// Functions the running workflow adds; a child does not have them.
const RUNTIME_FUNCTIONS: &[&str] = &["get_lane", "select_level", "which"];

/// Whether `text` (a template, or an expression when `mode` says so) is bounded by
/// construction. Cheap for the common case (a character scan); otherwise compiled
/// once and remembered.
pub(super) fn classify(mode: Mode, text: &str) -> Class {
    if obviously_bounded(mode, text) {
        return Class::Bounded;
    }
    static SEEN: OnceLock<Mutex<HashMap<(bool, String), Class>>> = OnceLock::new();
    let key = (mode == Mode::Expression, text.to_string());
    let seen = SEEN.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(class) = seen.lock().ok().and_then(|map| map.get(&key).copied()) {
        return class;
    }
    let class = if !compiling_is_unbounded(mode, text) {
        classify_compiled(mode, text)
    } else if RUNTIME_FUNCTIONS.iter().any(|name| text.contains(name)) {
        Class::NeedsRuntime
    } else {
        Class::Unbounded
    };
    if let Ok(mut map) = seen.lock() {
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(key, class);
    }
    class
}

/// No statement tags and at most [`MAX_SUMS`] characters that could be a
/// concatenation, addition or filter, and none that could start a call or a
/// multiplication: nothing here can loop or multiply, whatever the instructions are.
/// Quotes are not followed (an apostrophe in the text around the tags is not a
/// string), so a `(` inside a string literal only costs a compilation.
fn obviously_bounded(mode: Mode, text: &str) -> bool {
    if mode != Mode::Expression && text.contains("{%") {
        return false;
    }
    let mut operators = 0usize;
    for c in text.chars() {
        match c {
            '~' | '+' | '|' => operators += 1,
            '*' | '(' | '%' => return false,
            _ => {}
        }
    }
    operators <= MAX_SUMS
}

/// Text that must not even be compiled in-process: minijinja folds constant
/// operations while compiling (`('x' * 100000000) ~ ('x' * 100000000) ~ ...` builds
/// its whole result then), and compiles an operator chain as a tree as deep as the
/// chain is long (100,000 `~` overflow the stack while compiling). Read from the
/// tokens, which the lexer makes without folding or recursion; text that does not
/// tokenize never reaches code generation.
fn compiling_is_unbounded(mode: Mode, text: &str) -> bool {
    compile_risk(mode, text).is_some()
}

/// Why compiling `text` in-process could blow up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Risk {
    /// A `*` or `**` that minijinja may fold while compiling.
    Folding,
    /// More than [`MAX_OPERATORS`] operators (a chain compiles recursively).
    Operators,
}

pub(super) fn compile_risk(mode: Mode, text: &str) -> Option<Risk> {
    use minijinja::machinery::{Token, tokenize};
    let Some(syntax) = crate::template::syntax() else { return Some(Risk::Folding) };
    let mut operators = 0usize;
    let mut folding = false;
    for token in tokenize(text, mode == Mode::Expression, syntax) {
        match token {
            Ok((Token::Mul | Token::Pow, _)) => folding = true,
            Ok((
                Token::Plus
                | Token::Minus
                | Token::Div
                | Token::FloorDiv
                | Token::Mod
                | Token::Tilde
                | Token::Pipe,
                _,
            )) => {
                operators += 1;
                if operators > MAX_OPERATORS {
                    return Some(Risk::Operators);
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    folding.then_some(Risk::Folding)
}

/// Whether a filter's output is linear in its input: one of [`LINEAR_FILTERS`], or a
/// filter that multiplies only by its arguments (`join`, `replace`, `indent`, `map`)
/// when every argument is a short constant (`join(', ')`, `replace('_', '-')`,
/// `map(attribute='id')`, `map('lower')`).
fn is_linear_filter(name: &str, args: Option<u16>, before: &[&Instruction<'_>]) -> bool {
    if LINEAR_FILTERS.contains(&name) || (name == "tojson" && args == Some(1)) {
        return true;
    }
    let Some(count) = args.map(usize::from).and_then(|n| n.checked_sub(1)) else { return false };
    if count == 0 || count > before.len() || !matches!(name, "join" | "replace" | "indent" | "map") {
        return false;
    }
    let short = |value: &Value| match value.as_str() {
        Some(text) => text.len() <= 64 && (name != "map" || LINEAR_FILTERS.contains(&text)),
        None => value.as_i64().is_some_and(|n| (0..=64).contains(&n)) || is_attribute_kwargs(value),
    };
    before[before.len() - count..].iter().all(|instruction| match instruction {
        Instruction::LoadConst(value) => short(value),
        _ => false,
    })
}

/// `attribute='x'` (and `default=...` with a short constant) as constant keyword
/// arguments: what `map(attribute='x')` passes.
fn is_attribute_kwargs(value: &Value) -> bool {
    let Ok(keys) = value.try_iter() else { return false };
    let keys: Vec<Value> = keys.collect();
    !keys.is_empty()
        && keys.iter().all(|key| {
            matches!(key.as_str(), Some("attribute" | "default"))
                && value.get_item(key).is_ok_and(|v| v.as_str().is_none_or(|s| s.len() <= 64))
        })
}

fn classify_compiled(mode: Mode, text: &str) -> Class {
    let env = crate::template::environment();
    let source = match mode {
        Mode::Expression => format!("{{{{ {text} }}}}"),
        Mode::Text | Mode::Url => text.to_string(),
    };
    // Text that does not compile fails the same way wherever it runs.
    let Ok(template) = env.template_from_str(&source) else { return Class::Bounded };
    let compiled = get_compiled_template(&template);
    let mut sums = 0usize;
    let mut unbounded = false;
    let mut runtime = false;
    let blocks = std::iter::once(&compiled.instructions).chain(compiled.blocks.values());
    for instructions in blocks {
        let mut index = 0u32;
        let mut seen: Vec<&Instruction<'_>> = Vec::new();
        // The loops `index` is inside: where each ends and the names its items are
        // bound to ([`linear_loop`]).
        let mut loops: Vec<(u32, Vec<&str>)> = Vec::new();
        // A function called since the last statement: it is part of the expression a
        // loop that starts now iterates over.
        let mut called = false;
        while let Some(instruction) = instructions.get(index) {
            while loops.last().is_some_and(|(end, _)| index >= *end) {
                loops.pop();
            }
            index += 1;
            if let Some((_, names)) = loops.last()
                && !allowed_in_loop(instruction, names)
            {
                unbounded = true;
            }
            match instruction {
                Instruction::PushLoop(flags) => match linear_loop(instructions, index, *flags, called) {
                    Some((end, names, body)) => {
                        loops.push((end, names));
                        index = body;
                    }
                    None => unbounded = true,
                },
                Instruction::Emit
                | Instruction::EmitRaw(_)
                | Instruction::StoreLocal(_)
                | Instruction::SetAttr(_)
                | Instruction::PopLoopFrame
                | Instruction::PopFrame
                | Instruction::EndCapture => called = false,
                _ => {}
            }
            match instruction {
                // A sum inside a loop joins parts of the pass's own item; one whose
                // right side is a constant adds only that constant. Neither can double
                // a value, so only the others count.
                Instruction::StringConcat | Instruction::Add
                    if loops.is_empty() && !matches!(seen.last(), Some(Instruction::LoadConst(_))) =>
                {
                    sums += 1;
                }
                Instruction::ApplyFilter(name, args, _) if !is_linear_filter(name, *args, &seen) => {
                    unbounded = true;
                }
                Instruction::CallFunction(name, _) => {
                    called = true;
                    if RUNTIME_FUNCTIONS.contains(name) {
                        runtime = true;
                    } else if !BOUNDED_FUNCTIONS.contains(name) {
                        unbounded = true;
                    }
                }
                Instruction::Mul
                | Instruction::Pow
                | Instruction::Rem
                | Instruction::CallMethod(..)
                | Instruction::CallObject(..)
                | Instruction::BuildMacro(..)
                | Instruction::CallBlock(..)
                | Instruction::Include(..)
                | Instruction::LoadBlocks
                | Instruction::FastSuper
                | Instruction::FastRecurse => unbounded = true,
                _ => {}
            }
            seen.push(instruction);
        }
    }
    match (unbounded || sums > MAX_SUMS, runtime) {
        (false, _) => Class::Bounded,
        (true, false) => Class::Unbounded,
        (true, true) => Class::NeedsRuntime,
    }
}

/// A `for` loop that cannot amplify its input, starting at the `PushLoop` whose next
/// instruction is at `at`: its end, the names its items are bound to and where its body
/// starts; `None` when it could amplify.
///
/// The rule: a loop's text is the sum of what each pass emits, so a loop stays within a
/// constant multiple of its input (times the template's own size, like a template
/// without loops) when every pass emits only constants and values derived from its own
/// item by linear filters. So the loop is not recursive, its iterable calls no
/// function (a `range(n)` runs up to 100,000 times whatever the input is), and its body
/// ([`allowed_in_loop`]) assigns nothing (no `set`, namespace attribute or `with`:
/// what a pass builds cannot feed the next), calls no function and looks up only its
/// own item names and `loop` — an outer variable emitted or iterated in every pass
/// (`{% for x in xs %}{{ xs }}`, `{% for a in xs %}{% for b in xs %}`) multiplies the
/// input by itself. A nested loop may iterate over its outer loop's item (the item's
/// parts, linear again) and its body is held to the same rule with its own names.
fn linear_loop<'a>(
    instructions: &'a minijinja::machinery::Instructions<'a>,
    at: u32,
    flags: u8,
    called: bool,
) -> Option<(u32, Vec<&'a str>, u32)> {
    // `recursive` loops call themselves (`loop(...)`).
    const RECURSIVE: u8 = 2;
    if flags & RECURSIVE != 0 || called {
        return None;
    }
    let Some(Instruction::Iterate(end)) = instructions.get(at) else { return None };
    let mut names = vec!["loop"];
    let mut body = at + 1;
    // A loop with an `if` filter duplicates the item before binding it.
    if let Some(Instruction::DupTop) = instructions.get(body) {
        body += 1;
    }
    while let Some(instruction) = instructions.get(body) {
        match instruction {
            Instruction::StoreLocal(name) => names.push(name),
            Instruction::UnpackList(_) | Instruction::UnpackLists(_) => {}
            _ => break,
        }
        body += 1;
    }
    (names.len() > 1 && body <= *end).then_some((*end, names, body))
}

/// Whether `instruction` may be in the body of a loop whose items are bound to `names`
/// (see [`linear_loop`]).
fn allowed_in_loop(instruction: &Instruction<'_>, names: &[&str]) -> bool {
    match instruction {
        Instruction::StoreLocal(_)
        | Instruction::SetAttr(_)
        | Instruction::PushWith
        | Instruction::CallFunction(..) => false,
        Instruction::Lookup(name) => names.contains(name),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_templates_stay_in_process() {
        for text in [
            "{{ steps.a.output.id }}",
            "{{ n + 1 }}",
            "prefix-{{ x | default('y') | upper }}",
            "{{ a ~ '/' ~ b }}",
            "{% if x %}{{ x | tojson }}{% else %}none{% endif %}",
            "{{ range(3) | list | length }}",
            "{{ xs | map(attribute='id') | join(', ') }}",
            "{{ inputs.lane | lower | replace('_', '-') }}",
            "{{ vars.repo | regex_find('^([^/]*)') or '' }}",
            "{{ xs | selectattr('state', 'eq', 'x') | map('lower') | list }}",
        ] {
            assert_eq!(classify(Mode::Text, text), Class::Bounded, "{text}");
        }
        assert_eq!(classify(Mode::Expression, "steps.a.status == 'ok' and n > 2"), Class::Bounded);
        assert_eq!(classify(Mode::Expression, "'(' ~ x ~ ')'"), Class::Bounded);
    }

    #[test]
    fn loops_that_emit_only_their_own_items_stay_in_process() {
        for text in [
            // The heartbeat's report lines and summary.
            "{%- for w in steps.body.output.warnings[:5] %}\n{{ '    - ' ~ (w | one_line) }}{%- endfor %}",
            "{%- for lane in steps.r.output.failed %} Cron toggle failed for {{ lane }}.{% endfor %}",
            "{% for x in xs %}{{ loop.index }}: {{ x.name | upper }}{% if not loop.last %}, {% endif %}{% endfor %}",
            "{% for k, v in m | items %}{{ k }}={{ v | tojson }}{% else %}none{% endfor %}",
            // A nested loop over the outer item's parts is linear too.
            "{% for pr in prs %}{{ pr.n }}{% for c in pr.checks %}{{ c.state }}{% endfor %}{% endfor %}",
            "{% for x in xs %}{% if x.ok %}{{ x.id }}{% continue %}{% endif %}{% break %}{% endfor %}",
            "{% for x in xs | selectattr('ok') %}{{ x.id }}{% endfor %}{{ n + 1 }}",
            // Sums of a pass's own item, and sums with a constant right side, do not
            // count towards the limit of sums.
            "{% for w in ws %}{{ '- ' ~ w ~ w ~ w ~ w ~ w ~ w }}{% endfor %}",
            "{{ 'a=' ~ a }}{{ 'b=' ~ b }}{{ 'c: ' ~ (c | length) ~ ' item(s)' }}{{ 'd=' ~ d ~ '.' }}{{ e ~ '!' }}",
        ] {
            assert_eq!(classify(Mode::Text, text), Class::Bounded, "{text}");
        }
    }

    #[test]
    fn loops_that_could_amplify_go_to_a_child() {
        for text in [
            // Assignment inside the body: each pass can feed the next.
            "{% set ns = namespace(s='x') %}{% for i in xs %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
            "{% for i in xs %}{% set y = i ~ i %}{{ y }}{% endfor %}",
            "{% for i in xs %}{% with y = i %}{{ y }}{% endwith %}{% endfor %}",
            // An outer value emitted or iterated in every pass: input times input.
            "{% for x in s %}{{ s }}{% endfor %}",
            "{% for a in xs %}{% for b in xs %}{{ a }}{{ b }}{% endfor %}{% endfor %}",
            "{% for a in xs %}{% for b in a %}{{ a }}{% endfor %}{% endfor %}",
            // A computed range, in the iterable or nested.
            "{% for i in range(n) %}{{ i }}{% endfor %}",
            "{% for i in xs %}{% for j in range(i) %}x{% endfor %}{% endfor %}",
            "{% for i in xs %}{{ range(i) | list }}{% endfor %}",
            // Recursion and calls.
            "{% for x in tree recursive %}{{ loop(x.children) }}{% endfor %}",
            "{% for x in xs %}{{ loop.cycle('a', 'b') }}{% endfor %}",
            // A filter that multiplies, inside a loop as outside.
            "{% for x in xs %}{{ x | join(sep) }}{% endfor %}",
            // A filtered loop whose condition reads an outer value stays conservative.
            "{% for x in xs if x.lane == lane %}{{ x.id }}{% endfor %}",
            // Sums of computed values still count outside loops, loops or not.
            "{% for w in ws %}{{ w }}{% endfor %}{{ a ~ a ~ a ~ a ~ a ~ a }}",
            "{{ a ~ a ~ 'x' ~ a ~ a ~ a ~ a }}",
        ] {
            assert_eq!(classify(Mode::Text, text), Class::Unbounded, "{text}");
        }
    }

    #[test]
    fn templates_that_can_grow_without_bound_go_to_a_child() {
        for text in [
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "{{ 'x' * 100000000 }}",
            "{{ xs | join(sep) }}",
            "{{ xs | join('-' ~ sep) }}",
            "{{ xs | map('indent', 10) | list }}",
            "{{ s | replace('', s) }}",
            "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}",
            "{{ a ~ a ~ a ~ a ~ a ~ a }}",
            "{{ s.upper() }}",
            "{% include 'x' %}",
        ] {
            assert_eq!(classify(Mode::Text, text), Class::Unbounded, "{text}");
        }
        assert_eq!(classify(Mode::Expression, "xs | map('indent', 10) | list"), Class::Unbounded);
        assert_eq!(
            classify(Mode::Text, "{% for l in lanes %}{{ get_lane(l.id) }}{% endfor %}"),
            Class::NeedsRuntime
        );
    }
}
