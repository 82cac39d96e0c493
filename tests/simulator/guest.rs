//! The guest: shell sessions, mounts, the host's names, the disk, signals, copy.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::*;

#[test]
fn shell_runs_like_an_ssh_session() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    let out = sim
        .sh(
            "vm",
            "echo \"$HOME|$USER|$LOGNAME|$SHELL|$LANG|$(hostname)|$(id -u)\"; env",
        )
        .ok();
    let first = out.stdout.lines().next().unwrap_or_default().to_string();
    let fields: Vec<&str> = first.split('|').collect();
    assert!(
        fields[0].starts_with("/home/") && fields[0].ends_with(".linux"),
        "{first}"
    );
    assert_eq!(fields[1], fields[2]);
    let uid = guest_uid().to_string();
    assert_eq!(
        &fields[3..],
        ["/bin/bash", "C.UTF-8", "lima-vm", uid.as_str()]
    );
    assert!(
        !out.stdout.contains("HOST_ONLY_VARIABLE"),
        "host environment leaked:\n{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("LIMA_HOME"),
        "host environment leaked:\n{}",
        out.stdout
    );
    assert_namespace_mode(&sim);

    // The exit status is the command's; a signal death reads as 255, like ssh.
    assert_eq!(sim.sh("vm", "exit 7").code, Some(7));
    assert_eq!(sim.sh("vm", "kill -9 $$").code, Some(255));
    // The host's current directory, when mounted, is the guest's too.
    assert_eq!(
        sim.run(&["shell", "vm", "pwd"]).ok().stdout.trim(),
        sim.project.to_str().expect("utf8")
    );
    assert_eq!(
        sim.run(&["shell", "--workdir", "/opt", "vm", "pwd"])
            .ok()
            .stdout,
        "/opt\n"
    );
    sim.run(&["shell", "--workdir", "/nonexistent", "vm", "pwd"])
        .code
        .filter(|c| *c == 1)
        .expect("cd failure exits 1");
    // Arguments arrive intact; flags after the instance belong to the command.
    let tricky = "it's \"$HOME\" \\ é";
    assert_eq!(
        sim.run(&["shell", "vm", "printf", "%s|", tricky, "--workdir"])
            .ok()
            .stdout,
        format!("{tricky}|--workdir|")
    );
    assert_eq!(
        sim.run(&["shell", "vm", "--", "echo", "A=1"]).ok().stdout,
        "A=1\n"
    );
    assert_eq!(
        sim.run(&["shell", "vm", "X=a b", "sh", "-c", "echo $X"])
            .ok()
            .stdout,
        "a b\n"
    );
    sim.sh("vm", "printf '#!/bin/sh\\necho custom-shell \"$@\"\\n' | sudo tee /usr/local/bin/myshell >/dev/null && sudo chmod +x /usr/local/bin/myshell").ok();
    assert_eq!(
        sim.run(&["shell", "--shell", "/usr/local/bin/myshell", "vm", "hi"])
            .ok()
            .stdout,
        "custom-shell -l -c hi\n"
    );
    let mut preserved = Sim::new();
    preserved.lima_home = sim.lima_home.clone();
    preserved.set_env("FORWARD_ME", "yes");
    let out = preserved
        .run(&[
            "shell",
            "--preserve-env",
            "vm",
            "sh",
            "-c",
            "echo $FORWARD_ME",
        ])
        .ok();
    assert_eq!(out.stdout, "yes\n");
    assert_eq!(
        sim.run(&["shell", "vm", "sh", "-c", "echo \"[$FORWARD_ME]\""])
            .ok()
            .stdout,
        "[]\n"
    );

    sim.run(&["edit", "vm"])
        .fails_with(1, "cannot edit a running instance");
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["edit", "vm", "--set", ".env.GREETING = \"hi there\""])
        .ok();
    sim.run(&["shell", "vm", "true"]).fails_with(
        1,
        "instance \\\"vm\\\" is stopped, run `limactl start vm` to start the instance",
    );
    sim.run(&["shell", "nope", "true"]).fails_with(
        1,
        "instance \\\"nope\\\" does not exist, run `limactl create nope` to create a new instance",
    );
    let out = sim
        .run(&["shell", "--start", "vm", "sh", "-c", "echo $GREETING"])
        .ok();
    assert_eq!(out.stdout, "hi there\n");
}

#[test]
fn mounts_are_the_only_window_to_the_host() {
    let sim = Sim::new();
    let ro = sim.base().join("work/readonly");
    let nested = sim.project.join("nested-ro");
    fs::create_dir_all(&ro).expect("mkdir");
    fs::create_dir_all(&nested).expect("mkdir");
    fs::write(ro.join("data"), "ro data").expect("write");
    let mounts = serde_json::json!([
        {"location": sim.project, "mountPoint": "/workspace", "writable": true},
        {"location": ro, "mountPoint": "/mnt/ro"},
        {"location": nested, "mountPoint": "/workspace/nested-ro"},
        {"location": sim.base().join("work/created-at-boot"), "mountPoint": "/mnt/new", "writable": true},
    ]);
    sim.create("vm", &["--set", &format!(".mounts = {mounts}")]);
    sim.run(&["start", "vm"]).ok();
    assert!(
        sim.base().join("work/created-at-boot").is_dir(),
        "mount locations are created at boot"
    );
    let out = sim
        .sh(
            "vm",
            "cat /workspace/README /mnt/ro/data; echo new > /workspace/from-guest",
        )
        .ok();
    assert_eq!(out.stdout, "project filero data");
    assert_eq!(
        fs::read_to_string(sim.project.join("from-guest")).expect("written through"),
        "new\n"
    );
    assert_namespace_mode(&sim);

    // Read-only means EROFS, even for root, and nested mounts stack.
    let out = sim.sh(
        "vm",
        "touch /mnt/ro/x; sudo touch /mnt/ro/x; touch /workspace/nested-ro/x; sudo touch /workspace/nested-ro/x; id -u",
    );
    assert!(
        out.stderr.matches("Read-only file system").count() == 4,
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, format!("{}\n", guest_uid()));
    assert!(!ro.join("x").exists());
    // Nothing else of the host is there: not the project's siblings, not the host home.
    let probe = format!(
        "for p in {} {} {} {}; do test -e \"$p\" && echo \"visible: $p\"; done; true",
        sim.base().join("work/sibling.txt").display(),
        sim.project.display(),
        sim.home.join("host-secret.txt").display(),
        sim.lima_home.display()
    );
    assert_eq!(sim.sh("vm", &probe).ok().stdout, "");
    // The guest cannot undo its mounts.
    let out = sim.sh(
        "vm",
        "sudo mount -o remount,rw /mnt/ro 2>&1; sudo umount /mnt/ro 2>&1; cat /mnt/ro/data",
    );
    assert!(out.stdout.ends_with("ro data"), "{}", out.stdout);
}

#[test]
fn the_guest_names_the_host_as_lima_does() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    let host_hosts = fs::read("/etc/hosts").unwrap_or_default();
    let out = sim
        .sh(
            "vm",
            "getent hosts host.lima.internal; grep -c host.lima.internal /etc/hosts",
        )
        .ok();
    assert_namespace_mode(&sim);
    assert_eq!(out.stdout, "192.168.5.2     host.lima.internal\n1\n");
    // Once per boot, however often it boots, and never in the host's own file.
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["start", "vm"]).ok();
    let out = sim.sh("vm", "grep -c host.lima.internal /etc/hosts").ok();
    assert_eq!(out.stdout, "1\n");
    assert_eq!(fs::read("/etc/hosts").unwrap_or_default(), host_hosts);
}

#[test]
fn the_guest_disk_persists_and_tmp_is_per_boot() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    // System paths through sudo, as on Lima.
    sim.sh("vm", "echo t > /tmp/t; echo o | sudo tee /opt/o; echo e | sudo tee /etc/sim-test; echo u | sudo tee /usr/local/bin/u; echo h > ~/h; sudo rm -f /etc/environment").ok();
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["start", "vm"]).ok();
    let out = sim.sh("vm", "ls /tmp; cat /opt/o /etc/sim-test /usr/local/bin/u ~/h; test -e /etc/environment && echo still-there; true").ok();
    assert_eq!(out.stdout, "o\ne\nu\nh\n");
    // The host's /etc is untouched: the guest wrote to its own upper layer.
    assert!(!Path::new("/etc/sim-test").exists());
    assert!(sim.lima_home.join("vm/simdisk/upper/etc/sim-test").exists());
}

#[test]
fn signals_end_the_session_like_ssh() {
    let mut sim = Sim::new();
    sim.create("vm", &["--mount-none", "--set", &sim.tagged()]);
    sim.run(&["start", "vm"]).ok();
    let marker = sim.lima_home.join("vm/simdisk/opt/started");
    let mut child = sim
        .cmd(&[
            "shell",
            "vm",
            "bash",
            "-c",
            "sudo touch /opt/started; exec -a claude /.limasim/limactl --sim-sleep 30",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    assert!(
        wait_until(Duration::from_secs(5), || marker.exists()),
        "guest command did not start"
    );
    let guest = guest_pids(&sim, "--sim-sleep");
    assert_eq!(guest.len(), 1, "{guest:?}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_child(&mut child, Duration::from_secs(5)).expect("sim exits");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGTERM),
        "the sim dies of the same signal"
    );
    assert!(
        wait_until(Duration::from_secs(5), || pid_gone(guest[0])),
        "the guest command outlived the session"
    );
    let last = sim.calls().pop().expect("records");
    assert_eq!(
        last["event"], "start",
        "no end record for a killed invocation"
    );

    // Stopping the instance ends running sessions with 255.
    let mut child = sim
        .cmd(&["shell", "vm", "sleep", "30"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    assert!(wait_until(Duration::from_secs(5), || !guest_pids(
        &sim, "sleep 30"
    )
    .is_empty()));
    let sleeper = guest_pids(&sim, "sleep 30");
    sim.run(&["stop", "vm"]).ok();
    let status =
        wait_child(&mut child, Duration::from_secs(5)).expect("shell ends when the VM stops");
    assert_eq!(status.code(), Some(255));
    assert!(sleeper.iter().all(|p| pid_gone(*p)));

    // A delay is interruptible: SIGTERM ends the command at once, no effect.
    sim.set_env("LIMA_SIM_DELAY", "start=5");
    let mut child = sim
        .cmd(&["start", "vm"])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_child(&mut child, Duration::from_secs(2)).expect("interrupted");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert_eq!(sim.list_json("vm")["status"], "Stopped");
}

#[test]
fn copy_between_host_and_guest() {
    let sim = Sim::new();
    sim.create("vm", &["--mount-none"]);
    sim.run(&["start", "vm"]).ok();
    let src = sim.base().join("to-guest.txt");
    fs::write(&src, "hello guest").expect("write");
    sim.run(&["copy", src.to_str().expect("utf8"), "vm:/opt/"])
        .ok();
    sim.run(&["cp", src.to_str().expect("utf8"), "vm:in-home.txt"])
        .ok();
    assert_eq!(
        sim.sh("vm", "cat /opt/to-guest.txt ~/in-home.txt")
            .ok()
            .stdout,
        "hello guesthello guest"
    );
    let back = sim.base().join("back.txt");
    sim.run(&["copy", "vm:/opt/to-guest.txt", back.to_str().expect("utf8")])
        .ok();
    assert_eq!(
        fs::read_to_string(&back).expect("copied back"),
        "hello guest"
    );
    sim.run(&["copy", "ghost:/x", "."])
        .fails_with(1, "instance \\\"ghost\\\" does not exist");
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["copy", "vm:/x", "."])
        .fails_with(1, "instance \\\"vm\\\" is stopped");
}

/// As root (the privileged namespace mode) the guest is Lima's: its own user as cloud-init
/// makes it, Debian's sudo, and host files shown as the user's through idmapped mounts.
#[test]
fn the_guest_user_is_limas_with_real_sudo_and_idmapped_mounts() {
    let fallback = std::env::var_os("LIMA_SIM_ISOLATION").is_some_and(|v| v == "fallback");
    if !cfg!(target_os = "linux") || fallback || unsafe { libc::geteuid() } != 0 {
        eprintln!("needs the simulator's namespace mode as root; not run");
        return;
    }
    let sim = Sim::new();
    let ro = sim.base().join("work/ro");
    fs::create_dir_all(&ro).expect("mkdir");
    fs::write(ro.join("data"), "ro data").expect("write");
    let mounts = serde_json::json!([
        {"location": sim.project, "mountPoint": "/workspace", "writable": true},
        {"location": ro, "mountPoint": "/mnt/ro"},
    ]);
    sim.create("vm", &["--set", &format!(".mounts = {mounts}")]);
    sim.run(&["start", "vm"]).ok();
    let log = fs::read_to_string(sim.lima_home.join("vm/ha.stderr.log")).expect("ha log");
    assert!(log.contains("the guest user is lima (uid 1000)"), "{log}");
    let out = sim
        .sh(
            "vm",
            "id -un; id -u; id -g; echo $USER $LOGNAME $HOME; getent passwd lima; \
             sudo -n grep -x 'lima ALL=(ALL) NOPASSWD:ALL' /etc/sudoers.d/90-cloud-init-users; \
             stat -c '%a %U' /etc/sudoers.d/90-cloud-init-users; \
             sudo -n getent shadow lima | cut -d: -f2; stat -c %U ~ ~/.profile /run/user/1000; \
             command -v sudo; sudo -n id -u; stat -c %U /workspace /workspace/README /mnt/ro/data; \
             echo new > /workspace/by-user; cat /proc/self/status | grep -E '^Cap(Eff|Bnd)'",
        )
        .ok();
    assert_namespace_mode(&sim);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        &lines[..17],
        [
            "lima",
            "1000",
            "1000",
            "lima lima /home/lima.linux",
            "lima:x:1000:1000:root:/home/lima.linux:/bin/bash",
            "lima ALL=(ALL) NOPASSWD:ALL",
            "440 root",
            "!",
            "lima",
            "lima",
            "lima",
            "/usr/bin/sudo",
            "0",
            "lima",
            "lima",
            "lima",
            "CapEff:\t0000000000000000",
        ],
        "{}{}",
        out.stdout,
        out.stderr
    );
    // Even root in the guest never gets CAP_SYS_ADMIN back (bit 21 of the bounding set).
    let bnd = lines[17].strip_prefix("CapBnd:\t").expect("CapBnd");
    let bnd = u64::from_str_radix(bnd, 16).expect("hex");
    assert_eq!(bnd & (1 << 21), 0, "{bnd:x}");
    // A file the user made through a writable mount is the host caller's, as with Lima.
    use std::os::unix::fs::MetadataExt;
    let made = fs::metadata(sim.project.join("by-user")).expect("written through");
    assert_eq!((made.uid(), made.gid()), (0, 0));
    // Without sudo, root-only work fails as the real tools fail; read-only stays EROFS for root.
    let out = sim.sh("vm", "apt-get install -y jq");
    assert_eq!(out.code, Some(100), "{}", out.stderr);
    assert!(out.stderr.contains("are you root?"), "{}", out.stderr);
    let out = sim.sh(
        "vm",
        "sudo -n apt-get install -y -qq nodejs && npm install -g @anthropic-ai/claude-code",
    );
    assert_eq!(out.code, Some(243), "{}", out.stderr);
    assert!(
        out.stderr.contains("npm error code EACCES"),
        "{}",
        out.stderr
    );
    sim.sh(
        "vm",
        "sudo -n npm install -g @anthropic-ai/claude-code >/dev/null && claude --version",
    )
    .ok();
    let out = sim.sh("vm", "sudo -n touch /mnt/ro/x; touch /mnt/ro/x; echo x | sudo -n tee /etc/x >/dev/null && stat -c %U /etc/x");
    assert_eq!(
        out.stderr.matches("Read-only file system").count(),
        2,
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "root\n");
    // The host's own user database is untouched.
    let host_passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    assert!(!host_passwd.lines().any(|l| l.starts_with("lima:x:1000:")));
}
