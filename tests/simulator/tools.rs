//! Guest tools: the fakes, apt repositories and the tools' installers.

use std::io::Write;
use std::process::Stdio;

use serde_json::Value;

use crate::support::*;

#[test]
fn guest_tools_are_faked() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    let out = sim
        .sh(
            "vm",
            "curl -fsSL --proto '=https' --tlsv1.2 https://claude.ai/install.sh | bash",
        )
        .ok();
    assert!(
        out.stdout
            .starts_with("✔ Claude Code successfully installed!\n\n  Version: 2.0.0\n"),
        "{}",
        out.stdout
    );
    let out = sim.run(&["shell", "vm", "claude", "-p", "do it", "--sim-exit", "3"]);
    assert_eq!(out.code, Some(3));
    let report: Value = serde_json::from_str(out.stdout.trim()).expect("one JSON line");
    assert_eq!(report["fake"], "claude");
    assert_eq!(
        report["argv"],
        serde_json::json!(["-p", "do it", "--sim-exit", "3"])
    );
    assert_eq!(report["cwd"], sim.project.to_str().expect("utf8"));
    assert_eq!(report["uid"], guest_uid());
    assert_eq!(report["env"]["LANG"], "C.UTF-8");
    assert!(report["env"].get("HOST_ONLY_VARIABLE").is_none());
    assert_eq!(
        sim.run(&["shell", "vm", "claude", "--version"]).ok().stdout,
        "2.0.0 (Claude Code)\n"
    );

    let mut child = sim
        .cmd(&["shell", "vm", "claude", "--sim-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"the prompt")
        .expect("write");
    let out = Out::from(child.wait_with_output().expect("wait")).ok();
    let report: Value = serde_json::from_str(out.stdout.trim()).expect("JSON");
    assert_eq!(report["stdin"], "the prompt");

    let out = sim.sh("vm", "sudo -E DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 git ripgrep && sudo apt-get update -q >/dev/null && cat /var/lib/limasim/installed && wc -l < /var/lib/limasim/apt.log").ok();
    assert_eq!(out.stdout, "git\nripgrep\n2\n");
    assert_eq!(sim.sh("vm", "apt-get dist-upgrade").code, Some(100));
    let out = sim.sh("vm", "curl -fsSL https://packages.example.com/key.gpg");
    assert_eq!(out.code, Some(6));
    assert!(
        out.stderr
            .contains("curl: (6) Could not resolve host: packages.example.com"),
        "{}",
        out.stderr
    );
    assert_eq!(sim.sh("vm", "sudo whoami").ok().stdout, "root\n");
}

#[test]
fn apt_repositories_and_installers_of_the_tools() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    // docker-ce comes only from Docker's repository.
    let out = sim.sh("vm", "sudo apt-get install -y -qq docker-ce");
    assert_eq!(out.code, Some(100));
    assert!(
        out.stderr.contains("E: Unable to locate package docker-ce"),
        "{}",
        out.stderr
    );
    let docker_list = "echo \"deb [signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian $(. /etc/os-release && echo \"$VERSION_CODENAME\") stable\" | sudo tee /etc/apt/sources.list.d/docker.list >/dev/null";
    // A repository whose keyring is missing is not signed: update fails.
    let out = sim.sh("vm", &format!("{docker_list} && sudo apt-get update -qq"));
    assert_eq!(out.code, Some(100));
    assert!(
        out.stderr
            .contains("E: The repository 'https://download.docker.com/linux/debian"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("is not signed."), "{}", out.stderr);
    let out = sim
        .sh(
            "vm",
            "sudo install -m 0755 -d /etc/apt/keyrings \
             && sudo curl -fsSL https://download.docker.com/linux/debian/gpg -o /etc/apt/keyrings/docker.asc \
             && head -1 /etc/apt/keyrings/docker.asc \
             && sudo apt-get update -qq \
             && sudo -E DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-ce docker-ce-cli containerd.io \
             && cat /var/lib/limasim/installed",
        )
        .ok();
    assert_eq!(
        out.stdout,
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\ndocker-ce\ndocker-ce-cli\ncontainerd.io\n"
    );
    // The other keys the tools fetch.
    let out = sim
        .sh(
            "vm",
            "curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key | head -1 \
             && curl -fsSL https://cli.github.com/packages/githubcli-archive-keyring.gpg | od -An -tx1 -N1",
        )
        .ok();
    assert_eq!(out.stdout, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n 99\n");
    // rustup-init's flags, then cargo and rustc through ~/.cargo/env.
    let out = sim
        .sh(
            "vm",
            "curl --proto '=https' --tlsv1.2 -fsSL https://sh.rustup.rs | sh -s -- -y --profile minimal --no-modify-path >/dev/null \
             && . \"$HOME/.cargo/env\" && command -v cargo && cargo --version && rustc --version \
             && ! grep -q cargo ~/.profile",
        )
        .ok();
    let home = format!("/home/{}.linux", whoami());
    assert_eq!(
        out.stdout,
        format!("{home}/.cargo/bin/cargo\ncargo 1.90.0 (simulated)\nrustc 1.90.0 (simulated)\n")
    );
    assert!(
        out.stderr.contains("info: profile set to 'minimal'"),
        "{}",
        out.stderr
    );
    let out = sim.sh(
        "vm",
        "curl -fsSL https://sh.rustup.rs | sh -s -- --profile minimal",
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("Unable to run interactively. Run with -y"),
        "{}",
        out.stderr
    );
    // sudo -u keeps the target user's home; -E keeps the caller's environment.
    let out = sim
        .sh(
            "vm",
            "FOO=kept sudo -E sh -c 'echo $FOO $HOME'; sudo -u root sh -c 'echo $HOME'",
        )
        .ok();
    assert_eq!(out.stdout, format!("kept {home}\n/root\n"));
}
