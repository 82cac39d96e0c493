//! Bodies of the downloads `urls.rs` serves: installers as runnable
//! scripts that lay out what the real ones do (with the simulator or small
//! stand-in scripts in place of the real programs), and repository keys as
//! recognisable stand-in bytes.

use std::path::Path;

use crate::claude_install;

fn quoted(exe: &Path) -> String {
    String::from_utf8_lossy(&crate::gofmt::shell_quote(
        exe.as_os_str().as_encoded_bytes(),
    ))
    .into_owned()
}

/// `https://claude.ai/install.sh [stable|latest|VERSION]`: the native
/// layout, `~/.local/bin/claude -> ~/.local/share/claude/versions/VERSION`,
/// where the version is a link to the simulator (its fake Claude Code).
pub fn claude(exe: &Path) -> Vec<u8> {
    r#"#!/bin/bash
# Claude Code installer (Lima simulator stand-in for https://claude.ai/install.sh).
# curl -fsSL https://claude.ai/install.sh | bash -s [stable|latest|VERSION]
set -e
TARGET="$1"
if [[ -n "$TARGET" ]] && [[ ! "$TARGET" =~ ^(stable|latest|[0-9]+\.[0-9]+\.[0-9]+(-[^[:space:]]+)?)$ ]]; then
    echo "Usage: $0 [stable|latest|VERSION]" >&2
    exit 1
fi
case "$TARGET" in
    ""|stable|latest) VERSION=@LATEST@ ;;
    *) VERSION="$TARGET" ;;
esac
EXE=@EXE@
if [ -x @REAL@/claude ]; then
    # The simulator's download server holds one real release.
    REAL=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' @REAL@/package.json | head -n 1)
    case "$TARGET" in
        ""|stable|latest|"$REAL") VERSION=$REAL ;;
        *) echo "Failed to download Claude Code $TARGET (this simulator serves $REAL)" >&2; exit 1 ;;
    esac
    EXE=@REAL@/claude
fi
versions="$HOME/.local/share/claude/versions"
mkdir -p "$versions" "$HOME/.local/bin"
ln -sf "$EXE" "$versions/$VERSION"
ln -sfn "$versions/$VERSION" "$HOME/.local/bin/claude"
echo "✔ Claude Code successfully installed!"
echo ""
echo "  Version: $VERSION"
echo ""
echo "  Location: ~/.local/bin/claude"
"#
    .replace("@LATEST@", claude_install::LATEST)
    .replace("@EXE@", &quoted(exe))
    .replace("@REAL@", claude_install::REAL_DIR)
    .into_bytes()
}

/// `https://sh.rustup.rs`: rustup-init's options, then `cargo`, `rustc`,
/// `rustdoc` and `rustup` stand-ins (they answer `--version`) in
/// `$CARGO_HOME/bin` and rustup's `$CARGO_HOME/env`.
pub fn rustup(_exe: &Path) -> Vec<u8> {
    r#"#!/bin/sh
# rustup-init (Lima simulator stand-in for https://sh.rustup.rs).
# curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- [OPTIONS]
set -u
err() { printf 'error: %s\n' "$1" >&2; exit 1; }
info() { [ "$quiet" = yes ] || printf 'info: %s\n' "$1" >&2; }
usage_err() {
    printf "error: %s\n\nUsage: rustup-init[EXE] [OPTIONS]\n\nFor more information, try '--help'.\n" "$1" >&2
    exit 1
}
need_value() { [ "$2" -ge 2 ] || usage_err "a value is required for '$1' but none was supplied"; }
yes=no quiet=no modify_path=yes profile=default toolchain=stable
while [ $# -gt 0 ]; do
    case "$1" in
        -y) yes=yes ;;
        -q|--quiet) quiet=yes ;;
        -v|--verbose|--no-update-default-toolchain) ;;
        --no-modify-path) modify_path=no ;;
        --profile) need_value "$1" $#; profile="$2"; shift ;;
        --profile=*) profile="${1#--profile=}" ;;
        --default-toolchain) need_value "$1" $#; toolchain="$2"; shift ;;
        --default-toolchain=*) toolchain="${1#--default-toolchain=}" ;;
        --default-host|-c|--component|-t|--target) need_value "$1" $#; shift ;;
        --default-host=*|--component=*|--target=*) ;;
        -h|--help) echo "rustup-init (Lima simulator) [-y] [-q] [--default-toolchain T] [--profile minimal|default|complete] [--no-modify-path]"; exit 0 ;;
        -V|--version) echo "rustup-init 1.28.2 (Lima simulator)"; exit 0 ;;
        *) usage_err "unexpected argument '$1' found" ;;
    esac
    shift
done
case "$profile" in
    minimal|default|complete) ;;
    *) usage_err "invalid value '$profile' for '--profile <PROFILE>'" ;;
esac
if [ "$yes" = no ]; then
    [ -t 0 ] || [ -t 1 ] || err "Unable to run interactively. Run with -y to accept defaults, --help for additional options"
    err "the interactive installer is not supported by the Lima simulator: run with -y"
fi
case "$toolchain" in
    stable) rust=1.90.0 ;;
    beta) rust=1.91.0-beta.3 ;;
    nightly) rust=1.92.0-nightly ;;
    none) rust= ;;
    [0-9]*.[0-9]*) rust="$toolchain" ;;
    *) err "invalid toolchain name: '$toolchain'" ;;
esac
host="$(uname -m)-unknown-linux-gnu"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
mkdir -p "$cargo_home/bin" "$rustup_home" || exit 1
info "profile set to '$profile'"
info "default host triple is $host"
proxy() {
    if [ -n "$rust" ] || [ "$1" = rustup ]; then
        answer="echo \"$2\""
    else
        answer="echo \"error: rustup could not choose a version of $1 to run, because one wasn't specified explicitly, and no default is configured.\" >&2; exit 1"
    fi
    cat > "$cargo_home/bin/$1" <<EOF
#!/bin/sh
# $1 (Lima simulator stand-in, installed by the fake rustup-init)
case "\${1:-}" in
    --version|-V) $answer ;;
    *) echo "$1 (Lima simulator): only --version is supported" >&2; exit 1 ;;
esac
EOF
    chmod 755 "$cargo_home/bin/$1"
}
proxy rustc "rustc $rust (simulated)"
proxy rustdoc "rustdoc $rust (simulated)"
proxy cargo "cargo $rust (simulated)"
proxy rustup "rustup 1.28.2 (simulated)"
printf '[settings]\ndefault_toolchain = "%s"\nprofile = "%s"\n' "$toolchain" "$profile" > "$rustup_home/settings.toml"
if [ "$cargo_home" = "$HOME/.cargo" ]; then bin='$HOME/.cargo/bin'; else bin="$cargo_home/bin"; fi
cat > "$cargo_home/env" <<EOF
#!/bin/sh
# rustup shell setup
# affix colons on either side of \$PATH to simplify matching
case ":\${PATH}:" in
    *:"$bin":*)
        ;;
    *)
        # Prepending path in case a system-installed rustc needs to be overridden
        export PATH="$bin:\$PATH"
        ;;
esac
EOF
if [ "$modify_path" = yes ]; then
    for rc in "$HOME/.profile" "$HOME/.bashrc"; do
        if [ "$rc" = "$HOME/.profile" ] || [ -f "$rc" ]; then
            printf '. "%s/env"\n' "$cargo_home" >> "$rc"
        fi
    done
fi
if [ -n "$rust" ]; then
    info "default toolchain set to '$toolchain-$host'"
    [ "$quiet" = yes ] || printf '\n  %s-%s installed - rustc %s (simulated)\n\n' "$toolchain" "$host" "$rust"
fi
[ "$quiet" = yes ] || printf '\nRust is installed now. Great!\n'
"#
    .as_bytes()
    .to_vec()
}

fn armored(what: &str, base64: &[&str]) -> Vec<u8> {
    format!(
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\nComment: Lima simulator stand-in for {what}; not a real key\n\n{}\n=LIMA\n-----END PGP PUBLIC KEY BLOCK-----\n",
        base64.join("\n")
    )
    .into_bytes()
}

pub fn docker_key(_exe: &Path) -> Vec<u8> {
    armored(
        "the Docker apt repository key",
        &[
            "TGltYSBzaW11bGF0b3Igc3RhbmQtaW4gZm9yIHRoZSBEb2NrZXIgYXB0IHJlcG9z",
            "aXRvcnkga2V5OyBub3QgYSByZWFsIE9wZW5QR1Aga2V5Lg==",
        ],
    )
}

pub fn nodesource_key(_exe: &Path) -> Vec<u8> {
    armored(
        "the NodeSource apt repository key",
        &[
            "TGltYSBzaW11bGF0b3Igc3RhbmQtaW4gZm9yIHRoZSBOb2RlU291cmNlIGFwdCBy",
            "ZXBvc2l0b3J5IGtleTsgbm90IGEgcmVhbCBPcGVuUEdQIGtleS4=",
        ],
    )
}

/// A binary keyring, as GitHub serves it (an OpenPGP public-key packet tag).
pub fn github_keyring(_exe: &Path) -> Vec<u8> {
    let mut bytes = vec![0x99, 0x00, 0x46];
    bytes.extend_from_slice(
        b"Lima simulator stand-in for the GitHub CLI apt keyring; not a real key",
    );
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn run(interpreter: &str, script: &[u8], args: &[&str], home: &Path) -> std::process::Output {
        let file = home.join("installer");
        std::fs::write(&file, script).unwrap();
        Command::new(interpreter)
            .arg(&file)
            .args(args)
            .env_clear()
            .env("HOME", home)
            .env("PATH", "/usr/bin:/bin")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    #[test]
    fn claude_installer_takes_a_version() {
        let tmp = tempfile::tempdir().unwrap();
        let script = claude(Path::new("/.limasim/limactl"));
        let out = run("bash", &script, &["1.2.3"], tmp.path());
        assert!(out.status.success(), "{out:?}");
        let link = std::fs::read_link(tmp.path().join(".local/bin/claude")).unwrap();
        assert_eq!(link, tmp.path().join(".local/share/claude/versions/1.2.3"));
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("/.limasim/limactl")
        );
        let out = run("bash", &script, &["stable"], tmp.path());
        assert!(String::from_utf8_lossy(&out.stdout)
            .contains(&format!("Version: {}", claude_install::LATEST)));
        let out = run("bash", &script, &["v1.2"], tmp.path());
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("[stable|latest|VERSION]"));
    }

    #[test]
    fn rustup_takes_rustup_init_flags() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(".bashrc"), "# rc\n").unwrap();
        let script = rustup(Path::new("/x"));
        let out = run(
            "sh",
            &script,
            &["-y", "--profile", "minimal", "--no-modify-path"],
            tmp.path(),
        );
        assert!(out.status.success(), "{out:?}");
        let env = std::fs::read_to_string(tmp.path().join(".cargo/env")).unwrap();
        assert!(
            env.contains("export PATH=\"$HOME/.cargo/bin:$PATH\""),
            "{env}"
        );
        assert!(!tmp.path().join(".profile").exists(), "--no-modify-path");
        let v = Command::new(tmp.path().join(".cargo/bin/cargo"))
            .arg("--version")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&v.stdout),
            "cargo 1.90.0 (simulated)\n"
        );
        let out = run("sh", &script, &["-y", "-q"], tmp.path());
        assert!(out.status.success(), "{out:?}");
        assert!(std::fs::read_to_string(tmp.path().join(".profile"))
            .unwrap()
            .contains(".cargo/env"));
        assert!(std::fs::read_to_string(tmp.path().join(".bashrc"))
            .unwrap()
            .contains(".cargo/env"));
        let out = run("sh", &script, &["--profile", "minimal"], tmp.path());
        assert!(String::from_utf8_lossy(&out.stderr).contains("Unable to run interactively"));
        let out = run("sh", &script, &["-y", "--bogus"], tmp.path());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--bogus' found")
        );
        let out = run(
            "sh",
            &script,
            &["-y", "--default-toolchain", "none"],
            tmp.path(),
        );
        assert!(out.status.success());
        let v = Command::new(tmp.path().join(".cargo/bin/rustc"))
            .arg("--version")
            .output()
            .unwrap();
        assert_eq!(v.status.code(), Some(1));
    }

    #[test]
    fn keys_are_recognisable() {
        let k = String::from_utf8(docker_key(Path::new("/"))).unwrap();
        assert!(k.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----\n"));
        assert!(k.ends_with("-----END PGP PUBLIC KEY BLOCK-----\n"));
        assert_eq!(github_keyring(Path::new("/"))[0], 0x99);
    }
}
