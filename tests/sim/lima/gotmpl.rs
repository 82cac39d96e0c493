//! The part of Go's text/template that Lima's mount templates use:
//! `{{.Field}}` (with optional spaces and `-` trim markers).

fn is_field(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expands `{{.Key}}` from `vars`; a missing key prints `<no value>` as Go
/// does for maps. Anything beyond field access is reported as an error,
/// which Lima turns into a warning and keeps the text literally.
pub fn expand(text: &str, vars: &[(&str, String)]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let line = 1 + text[..text.len() - rest.len() + start]
            .matches('\n')
            .count();
        let mut before = &rest[..start];
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("template: :{line}: unclosed action"))?;
        let mut action = &after[..end];
        rest = &after[end + 2..];
        if let Some(a) = action.strip_prefix("- ") {
            before = before.trim_end();
            action = a;
        }
        let trim_after = action.ends_with(" -");
        if trim_after {
            action = &action[..action.len() - 2];
        }
        out.push_str(before);
        let action = action.trim();
        if action.starts_with("/*") && action.ends_with("*/") {
            // A comment.
        } else if let Some(key) = action.strip_prefix('.').filter(|k| is_field(k)) {
            match vars.iter().find(|(k, _)| *k == key) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str("<no value>"),
            }
        } else {
            return Err(format!(
                "template: :{line}: unsupported action {{{{{action}}}}} (the simulator expands only {{{{.Field}}}})"
            ));
        }
        if trim_after {
            rest = rest.trim_start();
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_fields() {
        let vars = [("Home", "/home/u".to_string()), ("Name", "vm".to_string())];
        assert_eq!(expand("{{.Home}}/x", &vars).unwrap(), "/home/u/x");
        assert_eq!(
            expand("{{ .Name }}-{{.Home}}", &vars).unwrap(),
            "vm-/home/u"
        );
        assert_eq!(expand("a {{- .Name -}} b", &vars).unwrap(), "avmb");
        assert_eq!(expand("{{.Nope}}", &vars).unwrap(), "<no value>");
        assert_eq!(expand("no templates", &vars).unwrap(), "no templates");
    }

    #[test]
    fn reports_bad_templates() {
        assert_eq!(
            expand("{{.Home", &[]).unwrap_err(),
            "template: :1: unclosed action"
        );
        assert!(expand("{{printf \"%s\" .Home}}", &[]).is_err());
    }
}
