//! Instances as `limactl list --format json` reports them: one JSON object per line.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub dir: String,
    #[serde(default)]
    pub cpus: Option<u64>,
    /// Bytes.
    #[serde(default)]
    pub memory: Option<u64>,
    /// Bytes.
    #[serde(default)]
    pub disk: Option<u64>,
    #[serde(default)]
    pub config: serde_json::Value,
    #[serde(default)]
    pub arch: String,
    #[serde(default)]
    pub vm_type: String,
}

#[cfg(test)]
impl Instance {
    pub fn is_running(&self) -> bool {
        self.status == "Running"
    }
}

/// Parses JSON lines; blank lines are skipped, anything else that is not an instance is an
/// error naming the line.
pub fn parse_list(stdout: &str) -> Result<Vec<Instance>, String> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{e} in line `{}`", truncate(l, 120))))
        .collect()
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_not_an_array() {
        let out = concat!(
            r#"{"name":"a","status":"Running","dir":"/l/a","cpus":4,"memory":8589934592,"disk":21474836480,"config":{"mounts":[]},"protected":false}"#,
            "\n\n",
            r#"{"name":"b","status":"Stopped"}"#,
            "\n"
        );
        let list = parse_list(out).unwrap();
        assert_eq!(list.len(), 2);
        assert!(list[0].is_running());
        assert_eq!(list[0].memory, Some(8 << 30));
        assert_eq!(list[1].name, "b");
        assert!(!list[1].is_running());
        assert!(parse_list("").unwrap().is_empty());
        assert!(parse_list("[{\"name\":\"a\"}]")
            .unwrap_err()
            .contains("line"));
    }
}
