//! Claude Code's first-run answers: a small python3 program (python3 is a base package of
//! every template) that merges claude-vm's keys into the JSON files Claude Code keeps.

/// The program's text (`claude_state.py` beside this file).
pub const CLAUDE_STATE_PROGRAM: &str = include_str!("claude_state.py");
/// Its file name, in the setup bundle and in a session's hand-over directory.
pub const CLAUDE_STATE_FILE: &str = "claude-state.py";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::path::Path;
    use std::process::Command;

    fn run(home: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
        let prog = home.join(CLAUDE_STATE_FILE);
        std::fs::write(&prog, CLAUDE_STATE_PROGRAM).unwrap();
        let out = Command::new("python3")
            .arg(&prog)
            .args(args)
            .env_clear()
            .env("HOME", home)
            .env("PATH", "/usr/bin:/bin")
            .envs(env.iter().copied())
            .output()
            .expect("python3 runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn read(p: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    #[test]
    fn the_template_answers_onboarding_and_the_bypass_warning_keeping_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path();
        let login = json!({"oauthAccount": {"emailAddress": "a@b"}, "numStartups": 3});
        std::fs::write(home.join(".claude.json"), login.to_string()).unwrap();
        let (ok, err) = run(home, &["template", "2.1.332"], &[]);
        assert!(ok, "{err}");
        let c = read(&home.join(".claude.json"));
        assert_eq!(c["hasCompletedOnboarding"], true);
        assert_eq!(c["lastOnboardingVersion"], "2.1.332");
        assert_eq!(c["bypassPermissionsModeAccepted"], true);
        assert_eq!(
            c["oauthAccount"], login["oauthAccount"],
            "the login is kept"
        );
        assert_eq!(c["numStartups"], 3);
        let s = read(&home.join(".claude/settings.json"));
        assert_eq!(s, json!({"skipDangerousModePermissionPrompt": true}));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join(".claude/settings.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_session_trusts_its_directories_and_approves_the_forwarded_key() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path();
        let before = json!({
            "projects": {"/src/app": {"allowedTools": ["Bash"], "hasTrustDialogAccepted": false}},
            "customApiKeyResponses": {"approved": ["old"], "rejected": ["0123456789abcdefWXYZ"]}
        });
        std::fs::write(home.join(".claude.json"), before.to_string()).unwrap();
        let key = "sk-ant-api03-secret-0123456789abcdefWXYZ";
        let (ok, err) = run(
            home,
            &["session", "/src/app", "/src/main repo"],
            &[("ANTHROPIC_API_KEY", key)],
        );
        assert!(ok, "{err}");
        let c = read(&home.join(".claude.json"));
        assert_eq!(c["projects"]["/src/app"]["hasTrustDialogAccepted"], true);
        assert_eq!(c["projects"]["/src/app"]["allowedTools"], json!(["Bash"]));
        let fresh = &c["projects"]["/src/main repo"];
        assert_eq!(fresh["hasTrustDialogAccepted"], true);
        assert_eq!(
            fresh["allowedTools"],
            json!([]),
            "a new entry has Claude Code's defaults"
        );
        assert_eq!(
            c["customApiKeyResponses"],
            json!({"approved": ["old", "0123456789abcdefWXYZ"], "rejected": []})
        );
        assert!(
            !std::fs::read_to_string(home.join(".claude.json"))
                .unwrap()
                .contains("secret"),
            "only the key's last 20 characters are written"
        );
        // Twice is the same as once.
        assert!(
            run(
                home,
                &["session", "/src/app"],
                &[("ANTHROPIC_API_KEY", key)]
            )
            .0
        );
        let again = read(&home.join(".claude.json"));
        assert_eq!(again["customApiKeyResponses"], c["customApiKeyResponses"]);
    }

    #[test]
    fn claude_config_dir_is_honoured_and_a_broken_file_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path();
        let dir = home.join("cfg");
        let dir_s = dir.to_str().unwrap();
        assert!(run(home, &["session", "/p"], &[("CLAUDE_CONFIG_DIR", dir_s)]).0);
        assert_eq!(
            read(&dir.join(".claude.json"))["projects"]["/p"]["hasTrustDialogAccepted"],
            true
        );
        assert!(!home.join(".claude.json").exists());

        std::fs::write(home.join(".claude.json"), "{not json").unwrap();
        let (ok, err) = run(home, &["session", "/p"], &[]);
        assert!(!ok);
        assert!(err.contains("cannot read"), "{err}");
        assert_eq!(
            std::fs::read_to_string(home.join(".claude.json")).unwrap(),
            "{not json"
        );
        let leftovers: Vec<_> = std::fs::read_dir(home)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".claude-vm-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
