//! The provisioning script: everything that builds a template, run in one `limactl shell`.

use std::fmt::Write;

use super::{quote, quote_words, GuestScript};

/// Installed in every template: what Claude Code and git inside the VM need.
pub const BASE_PACKAGES: &[&str] = &["ca-certificates", "curl", "git", "less", "procps", "unzip"];

/// How Claude Code gets into the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaudeInstall {
    /// Anthropic's installer script (a native binary in `~/.local/bin`).
    Official,
}

pub struct ProvisionInput<'a> {
    pub packages: &'a [&'a str],
    pub claude: ClaudeInstall,
    /// User setup scripts, in the order they run.
    pub scripts: &'a [GuestScript],
}

/// Fails fast (`set -e`, and each user script checked), numbering its steps so the output
/// shows where it is; a failing user script is named in the error.
pub fn provision(input: &ProvisionInput) -> String {
    let total = 2 + input.scripts.len();
    let mut s = String::from(
        "# claude-vm provisioning script (generated; runs once in the VM being built)\n\
         set -euo pipefail\n\
         export DEBIAN_FRONTEND=noninteractive\n\
         cd \"$HOME\"\n\
         cvm_step() { printf '==> [%s/%s] %s\\n' \"$1\" \"$2\" \"$3\"; }\n\
         cvm_fail() { printf 'claude-vm: %s\\n' \"$1\" >&2; exit 1; }\n",
    );
    let _ = writeln!(s, "cvm_step 1 {total} 'installing base packages'");
    s.push_str("sudo apt-get update -qq\n");
    let _ = writeln!(
        s,
        "sudo -E apt-get install -y -qq --no-install-recommends {}",
        quote_words(input.packages)
    );

    let _ = writeln!(s, "cvm_step 2 {total} 'installing Claude Code'");
    // Login shells of every later session find ~/.local/bin, whatever the image's .profile.
    s.push_str(
        "printf '%s\\n' 'case \":$PATH:\" in *\":$HOME/.local/bin:\"*) ;; *) PATH=\"$HOME/.local/bin:$PATH\" ;; esac' \
         | sudo tee /etc/profile.d/claude-vm-path.sh >/dev/null\n\
         export PATH=\"$HOME/.local/bin:$PATH\"\n",
    );
    match input.claude {
        ClaudeInstall::Official => s.push_str(
            "if command -v claude >/dev/null 2>&1; then\n  echo \"Claude Code is already installed: $(command -v claude)\"\nelse\n  \
             curl -fsSL https://claude.ai/install.sh | bash\nfi\n",
        ),
    }
    s.push_str("command -v claude >/dev/null 2>&1 || cvm_fail 'Claude Code did not install: claude is not on PATH'\n");

    for (i, script) in input.scripts.iter().enumerate() {
        let label = quote(&script.label);
        let _ = writeln!(
            s,
            "cvm_step {} {total} {}",
            i + 3,
            quote(&format!("running setup script {}", script.label))
        );
        let _ = writeln!(
            s,
            "bash {} || cvm_fail \"setup script \"{label}\" failed with status $?\"",
            quote(&script.guest_path)
        );
    }
    s.push_str("echo '==> template ready'\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::testing::run_bash;

    fn input(scripts: &[GuestScript]) -> String {
        provision(&ProvisionInput {
            packages: BASE_PACKAGES,
            claude: ClaudeInstall::Official,
            scripts,
        })
    }

    #[test]
    fn installs_base_packages_in_one_command_and_claude_only_if_missing() {
        let s = input(&[]);
        assert_eq!(s.matches("apt-get update").count(), 1);
        assert_eq!(s.matches("apt-get install").count(), 1);
        assert!(s.contains("install -y -qq --no-install-recommends ca-certificates curl git"));
        let check = s.find("if command -v claude").unwrap();
        assert!(check < s.find("claude.ai/install.sh").unwrap());
    }

    #[test]
    fn user_scripts_run_in_order_and_the_failing_one_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log");
        let mk = |name: &str, body: &str| {
            let p = tmp.path().join(name);
            std::fs::write(&p, body).unwrap();
            GuestScript {
                label: format!("./{name}"),
                guest_path: p.to_str().unwrap().into(),
            }
        };
        let a = mk("a.sh", &format!("echo a >> '{}'", log.display()));
        let b = mk("b b.sh", "exit 3");
        let c = mk("c.sh", &format!("echo c >> '{}'", log.display()));
        let script = input(&[a, b, c]);
        // Only the user-script part: the rest needs a VM.
        let part = &script[script.find("cvm_step 3").unwrap()..];
        let head = "set -euo pipefail\ncvm_step() { :; }\ncvm_fail() { printf 'claude-vm: %s\\n' \"$1\" >&2; exit 1; }\n";
        let (code, _, err) = run_bash(&format!("{head}{part}"), &[]);
        assert_eq!(code, 1);
        assert!(
            err.contains("setup script ./b b.sh failed with status 3"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "a\n");
    }

    #[test]
    fn steps_are_counted() {
        let g = GuestScript {
            label: "x".into(),
            guest_path: "/p".into(),
        };
        let s = input(&[g.clone(), g]);
        assert!(s.contains("cvm_step 1 4 'installing base packages'"));
        assert!(s.contains("cvm_step 4 4 'running setup script x'"));
    }
}
