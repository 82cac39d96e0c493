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

#[cfg(test)]
mod tests {
    use super::*;

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
