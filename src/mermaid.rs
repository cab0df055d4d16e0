//! Mermaid text that Mermaid's own parser accepts, whatever a workflow's names,
//! conditions or texts contain.
//!
//! Every label `runner graph` writes is a double-quoted Mermaid string. Inside one,
//! Mermaid's lexer ends the string at the next `"`, decodes `#name;` / `#123;` entity
//! codes, and treats a string that starts with a backtick as Markdown. So the text is
//! written with those characters as entity codes, and line breaks as spaces; `<` and
//! `>` are codes too so that HTML labels show them instead of reading them as tags.

/// `text` as a double-quoted Mermaid label (quotes included).
pub(crate) fn mermaid_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    out.push_str(&mermaid_text(text));
    out.push('"');
    out
}

/// `text` with every character Mermaid would read as syntax inside a quoted label
/// replaced by its entity code (no quotes added): for state-diagram transition texts,
/// which run to the end of the line and may not be quoted.
pub(crate) fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '`' => out.push_str("#96;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            ';' => out.push_str("#59;"),
            ':' => out.push_str("#58;"),
            '|' => out.push_str("#124;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A Mermaid node or state id made of `key`: ASCII letters, digits and `_` only.
pub(crate) fn mermaid_id(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

#[cfg(test)]
pub(crate) mod grammar {
    //! A checker for the subset of Mermaid's flowchart and state-diagram grammar that
    //! `runner graph` writes: the fallback for machines without Node, where the real
    //! parser (tests/mermaid/) cannot run. It follows Mermaid's lexer rules for what
    //! ends a quoted string and what a node id may be.

    /// Whether `s` is a whole quoted label Mermaid reads as one string: `"…"` with no
    /// `"` inside, no leading backtick, and only complete `#…;` entity codes.
    pub(crate) fn is_label(s: &str) -> bool {
        let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
            return false;
        };
        !inner.contains('"') && !inner.starts_with('`') && entities_closed(inner) && !inner.contains('\n')
    }

    /// Every `#` starts an entity code `#name;` or `#123;`.
    pub(crate) fn entities_closed(text: &str) -> bool {
        let mut rest = text;
        while let Some(at) = rest.find('#') {
            let after = &rest[at + 1..];
            let Some(end) = after.find(';') else { return false };
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                return false;
            }
            rest = &after[end + 1..];
        }
        true
    }

    pub(crate) fn is_id(s: &str) -> bool {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !matches!(s, "end" | "subgraph" | "graph" | "flowchart" | "style" | "class" | "click")
    }

    /// Checks one flowchart as `runner graph` writes it; the error names the line.
    pub(crate) fn check_flowchart(text: &str) -> Result<(), String> {
        let mut lines = text.lines();
        if lines.next() != Some("flowchart TD") {
            return Err("first line is not `flowchart TD`".into());
        }
        let mut depth = 0usize;
        for (n, raw) in lines.enumerate() {
            let line = raw.trim();
            let bad = || format!("line {}: {raw:?}", n + 2);
            if line == "end" {
                depth = depth.checked_sub(1).ok_or_else(bad)?;
            } else if let Some(rest) = line.strip_prefix("subgraph ") {
                depth += 1;
                let (id, title) = rest.split_once('[').map_or((rest, None), |(i, t)| (i, Some(t)));
                if !is_id(id) || title.is_some_and(|t| !t.strip_suffix(']').is_some_and(is_label)) {
                    return Err(bad());
                }
            } else if let Some((from, rest)) = line.split_once(" -->") {
                let rest = rest.trim_start();
                let to = match rest.strip_prefix('|') {
                    Some(labelled) => {
                        let (label, to) = labelled.split_once("| ").ok_or_else(bad)?;
                        if !is_label(label) {
                            return Err(bad());
                        }
                        to
                    }
                    None => rest,
                };
                if !is_id(from) || !is_id(to) {
                    return Err(bad());
                }
            } else {
                let open = line.find(['[', '(', '{']).ok_or_else(bad)?;
                let (id, shape) = line.split_at(open);
                let inner = ["[[", "((", "([", "[", "{"]
                    .iter()
                    .zip(["]]", "))", "])", "]", "}"])
                    .find_map(|(o, c)| shape.strip_prefix(o).and_then(|s| s.strip_suffix(c)))
                    .ok_or_else(bad)?;
                if !is_id(id) || !is_label(inner) {
                    return Err(bad());
                }
            }
        }
        if depth != 0 {
            return Err("a subgraph is not closed".into());
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::grammar::*;
    use super::*;

    #[test]
    fn labels_hide_every_delimiter() {
        let nasty = "(steps.groom.output.body | dig('type')) == \"groom\"; a:b #x `md` <b>\nnext";
        let label = mermaid_label(nasty);
        assert!(is_label(&label), "{label}");
        assert_eq!(
            label,
            "\"(steps.groom.output.body #124; dig('type')) == #quot;groom#quot;#59; a#58;b #35;x #96;md#96; #lt;b#gt; next\""
        );
        assert!(is_label(&mermaid_label("`starts with a backtick")));
        assert!(is_label(&mermaid_label("")));
        assert!(!is_label("\"a \" b\""));
        assert!(!is_label("\"#quot\""));
        assert!(!is_label("\"`md`\""));
    }

    #[test]
    fn ids_are_plain() {
        assert_eq!(mermaid_id("in-review"), "in_review");
        assert!(is_id(&mermaid_id("a.b c")));
    }

    #[test]
    fn the_checker_rejects_what_mermaid_rejects() {
        assert!(check_flowchart("flowchart TD\n    a[\"x\"]\n    a -->|\"y\"| b\n").is_ok());
        assert!(check_flowchart("flowchart TD\n    a -->|x | y| b\n").is_err());
        assert!(check_flowchart("flowchart TD\n    subgraph s[\"t\"]\n").is_err());
        assert!(check_flowchart("flowchart TD\n    a[\"x\"y\"]\n").is_err());
    }
}
