//! Isolation modes: the fallback without namespaces, unprivileged users.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

#[test]
fn fallback_mode_runs_without_namespaces() {
    let mut sim = Sim::new();
    sim.set_env("LIMA_SIM_ISOLATION", "fallback");
    sim.create("vm", &["--mount-none", "--set", &sim.tagged()]);
    sim.run(&["start", "vm"]).ok();
    let out = sim
        .sh(
            "vm",
            "echo $HOME; curl -fsSL https://claude.ai/install.sh | bash >/dev/null",
        )
        .ok();
    assert_eq!(
        out.stdout.trim(),
        sim.lima_home
            .join("vm/simdisk/home")
            .join(format!("{}.linux", whoami()))
            .to_str()
            .expect("utf8")
    );
    assert_eq!(sim.isolation(), "fallback");
    let report = sim.run(&["shell", "vm", "claude", "hello"]).ok();
    let report: Value = serde_json::from_str(report.stdout.trim()).expect("JSON");
    assert_eq!(report["argv"], serde_json::json!(["hello"]));
    // Stop still ends the sessions it can find.
    let mut child = sim
        .cmd(&["shell", "vm", "sleep", "30"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    assert!(wait_until(Duration::from_secs(5), || !guest_pids(
        &sim, "sleep 30"
    )
    .is_empty()));
    sim.run(&["stop", "vm"]).ok();
    assert_eq!(
        wait_child(&mut child, Duration::from_secs(5)).and_then(|s| s.code()),
        Some(255)
    );
}

#[test]
fn unprivileged_users_get_namespace_mode_too() {
    // As root, repeat the basic flow as "nobody"; otherwise the whole suite
    // already runs unprivileged.
    // SAFETY: geteuid has no side effects.
    if unsafe { libc::geteuid() } != 0 {
        return unprivileged_flow(Sim::new(), None);
    }
    let sim = Sim::new();
    for dir in [
        sim.base().to_path_buf(),
        sim.lima_home.clone(),
        sim.home.clone(),
        sim.project.clone(),
        sim.base().join("work"),
    ] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    unprivileged_flow(sim, Some(65534));
}

fn unprivileged_flow(sim: Sim, uid: Option<u32>) {
    let run = |args: &[&str]| -> Out {
        let mut c = sim.cmd(args);
        if let Some(uid) = uid {
            use std::os::unix::process::CommandExt;
            c.uid(uid).gid(uid);
        }
        c.output().expect("run").into()
    };
    let set = format!(
        ".mounts = [{}]",
        serde_json::json!({"location": sim.project, "writable": true})
    );
    run(&[
        "create",
        "--tty=false",
        "--name",
        "vm",
        "--set",
        &set,
        "template:debian-13",
    ])
    .ok();
    run(&["start", "vm"]).ok();
    let out = run(&[
        "shell",
        "vm",
        "bash",
        "-c",
        "id -u; echo x > /etc/guest-only; touch made-here; test -e /work || echo no-work",
    ])
    .ok();
    assert_eq!(out.stdout, "0\nno-work\n");
    assert_namespace_mode(&sim);
    // A reverse socket forward works from inside a user namespace too.
    let host_sock = sim.base().join("echo.sock");
    echo_server(&host_sock);
    fs::set_permissions(&host_sock, fs::Permissions::from_mode(0o666)).expect("chmod");
    let rule = serde_json::json!([{"guestSocket": "/run/user/{{.UID}}/echo.sock", "hostSocket": host_sock, "reverse": true}]);
    run(&["stop", "vm"]).ok();
    run(&[
        "edit",
        "--tty=false",
        "--set",
        &format!(".portForwards = {rule}"),
        "vm",
    ])
    .ok();
    run(&["start", "vm"]).ok();
    let client = "python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect(\"/run/user/0/echo.sock\"); s.sendall(b\"hi\"); s.shutdown(socket.SHUT_WR); print(s.recv(99).decode())'";
    assert_eq!(
        run(&["shell", "vm", "bash", "-c", client]).ok().stdout,
        "echo:hi\n"
    );
    assert!(sim.project.join("made-here").exists());
    run(&["stop", "vm"]).ok();
    run(&["clone", "vm", "vm2", "--start"]).ok();
    assert_eq!(
        run(&["shell", "vm2", "cat", "/etc/guest-only"]).ok().stdout,
        "x\n"
    );
    run(&["delete", "-f", "vm", "vm2"]).ok();
}
