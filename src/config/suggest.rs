//! "Did you mean ...?" for misspelled keys and names.

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`") and
/// suggests the closest expected field.
pub fn for_unknown_field(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    let (field, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    closest(field, expected.iter().copied()).map(|s| format!("did you mean `{s}`?"))
}

/// serde's type words in plain English: "expected u32" says "expected a whole number",
/// "sequence" says "a list", "map" says "a table".
pub fn plain_words(message: &str) -> String {
    let mut out = message.to_owned();
    for int in [
        "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize",
    ] {
        out = out.replace(&format!("expected {int}"), "expected a whole number");
    }
    for (serde, plain) in [
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a table"),
        ("expected struct ", "expected a table "),
        ("invalid type: sequence", "invalid type: a list"),
        ("invalid type: map", "invalid type: a table"),
        ("floating point", "decimal number"),
    ] {
        out = out.replace(serde, plain);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_use_plain_words() {
        for (serde, plain) in [
            (
                "invalid type: string \"four\", expected u32",
                "invalid type: string \"four\", expected a whole number",
            ),
            (
                "invalid value: integer `-1`, expected u64",
                "invalid value: integer `-1`, expected a whole number",
            ),
            (
                "invalid type: string \"x\", expected a sequence",
                "invalid type: string \"x\", expected a list",
            ),
            (
                "invalid type: sequence, expected a string",
                "invalid type: a list, expected a string",
            ),
            (
                "invalid type: floating point `2.5`, expected u32",
                "invalid type: decimal number `2.5`, expected a whole number",
            ),
        ] {
            assert_eq!(plain_words(serde), plain);
        }
    }

    #[test]
    fn suggests_near_misses_only() {
        assert_eq!(closest("dsk", ["disk", "memory", "cpus"]), Some("disk"));
        assert_eq!(
            closest("memroy", ["disk", "memory", "cpus"]),
            Some("memory")
        );
        assert_eq!(closest("zzz", ["disk", "memory", "cpus"]), None);
    }

    #[test]
    fn parses_serde_unknown_field_messages() {
        let msg = "unknown field `dsk`, expected one of `disk`, `memory`, `cpus`, `image`";
        assert_eq!(
            for_unknown_field(msg).as_deref(),
            Some("did you mean `disk`?")
        );
        let msg = "unknown field `claude_arg`, expected `claude_args`";
        assert_eq!(
            for_unknown_field(msg).as_deref(),
            Some("did you mean `claude_args`?")
        );
        assert_eq!(for_unknown_field("invalid type: string"), None);
    }
}
