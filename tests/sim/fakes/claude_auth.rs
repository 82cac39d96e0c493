//! `claude auth login|logout|status`. Login is Claude Code's OAuth flow on a
//! terminal: it prints the authorization URL and reads the code the user
//! pastes. Its prompt is an Ink app, which cannot run without a terminal on
//! stdin: the real CLI then fails at once with Ink's raw-mode error, and so
//! does the fake (it never waits). A successful login writes
//! `~/.claude/.credentials.json` (`$CLAUDE_CONFIG_DIR/.credentials.json`).

use std::io::BufRead;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::commander::{self, Opt};

const RAW_MODE_ERROR: &str = "Error: Raw mode is not supported on the current process.stdin, which Ink uses as input stream by default.\nRead about how to prevent this error on https://github.com/vadimdemedes/ink/#israwmodesupported";

const AUTHORIZE_URL: &str = "https://claude.ai/oauth/authorize?code=true&client_id=9d1c250a-e61b-44d9-88ed-5944d1962f5e&response_type=code&redirect_uri=https%3A%2F%2Fconsole.anthropic.com%2Foauth%2Fcode%2Fcallback&scope=org%3Acreate_api_key+user%3Aprofile+user%3Ainference&state=limasim";

pub fn credentials_file() -> PathBuf {
    match std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join(".credentials.json"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".claude")
            .join(".credentials.json"),
    }
}

// A stable stand-in token derived from the pasted code (FNV-1a).
fn token_for(code: &str) -> String {
    let hash = code.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    format!("{hash:016x}")
}

fn write_credentials(code: &str) -> Result<PathBuf, String> {
    let file = credentials_file();
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let token = token_for(code);
    let doc = json!({"claudeAiOauth": {
        "accessToken": format!("sk-ant-oat01-limasim-{token}"),
        "refreshToken": format!("sk-ant-ort01-limasim-{token}"),
        "expiresAt": now_ms + 8 * 3600 * 1000,
        "scopes": ["user:inference", "user:profile"],
        "subscriptionType": "max",
    }});
    let text = serde_json::to_string(&doc).map_err(|e| e.to_string())?;
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(file)
}

const LOGIN_OPTS: &[Opt] = &[
    Opt {
        short: None,
        long: "email",
        value: Some("email"),
    },
    Opt {
        short: None,
        long: "sso",
        value: None,
    },
    Opt {
        short: None,
        long: "console",
        value: None,
    },
    Opt {
        short: None,
        long: "claudeai",
        value: None,
    },
];

fn login(args: &[String]) -> Result<i32, String> {
    let p = commander::parse(args, LOGIN_OPTS)?;
    if let Some(extra) = p.operands.first() {
        return Err(format!(
            "error: too many arguments for 'login'. Expected 0 arguments but got 1: {extra}"
        ));
    }
    if p.flag("console") {
        return Err("claude auth login --console (an API key from the Console) is not supported by the simulator".into());
    }
    if !crate::sys::isatty(0) {
        crate::output::stderr(&format!("{RAW_MODE_ERROR}\n"));
        return Ok(1);
    }
    crate::output::stdout_lossy(&format!(
        "Opening browser to sign in…\nBrowser didn't open? Use the url below to sign in:\n\n{AUTHORIZE_URL}\n\nPaste code here if prompted > "
    ));
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line).unwrap_or(0);
    let code = line.trim();
    if read == 0 || code.is_empty() {
        crate::output::stdout_lossy("\n");
        return Err("Login cancelled: no authorization code was entered.".into());
    }
    write_credentials(code)?;
    crate::output::stdout_lossy("\nLogin successful.\n");
    Ok(0)
}

fn logout() -> Result<i32, String> {
    match std::fs::remove_file(credentials_file()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.to_string()),
    }
    crate::output::stdout_lossy("Successfully logged out from your Anthropic account.\n");
    Ok(0)
}

/// How the fake is logged in: stored credentials first, then the variables
/// Claude Code reads.
fn auth_method() -> Option<&'static str> {
    let stored = std::fs::read(credentials_file())
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|v| v["claudeAiOauth"]["accessToken"].is_string());
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if stored {
        Some("claude.ai")
    } else if set("CLAUDE_CODE_OAUTH_TOKEN") {
        Some("oauth_token")
    } else if set("ANTHROPIC_API_KEY") {
        Some("api_key")
    } else if set("ANTHROPIC_AUTH_TOKEN") {
        Some("auth_token")
    } else {
        None
    }
}

const STATUS_OPTS: &[Opt] = &[
    Opt {
        short: None,
        long: "json",
        value: None,
    },
    Opt {
        short: None,
        long: "text",
        value: None,
    },
];

fn status(args: &[String]) -> Result<i32, String> {
    let p = commander::parse(args, STATUS_OPTS)?;
    let method = auth_method();
    if p.flag("text") {
        let line = match method {
            Some(m) => format!("Logged in ({m})"),
            None => "Not logged in. Run claude auth login to authenticate.".to_string(),
        };
        crate::output::stdout_lossy(&format!("{line}\n"));
    } else {
        let doc = json!({
            "loggedIn": method.is_some(),
            "authMethod": method.unwrap_or("none"),
            "apiProvider": "firstParty",
        });
        crate::output::stdout_lossy(&format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        ));
    }
    Ok(if method.is_some() { 0 } else { 1 })
}

pub fn main(args: &[String]) -> i32 {
    let result = match args.split_first() {
        Some((sub, rest)) => match sub.as_str() {
            "login" => login(rest),
            "logout" => logout(),
            "status" => status(rest),
            other => Err(format!("error: unknown command '{other}'")),
        },
        None => Err("Usage: claude auth [options] [command]\n\nCommands:\n  login [options]\n  logout\n  status [options]".into()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            crate::output::stderr(&format!("{e}\n"));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_per_code() {
        assert_eq!(token_for("abc#def"), token_for("abc#def"));
        assert_ne!(token_for("abc#def"), token_for("abc#deg"));
        assert_eq!(token_for("x").len(), 16);
    }
}
