//! Creating instances: lima.yaml, `list`, invalid configs, socket path lengths.

use std::fs;
use std::io::Write;
use std::process::Stdio;

use serde_json::Value;

use crate::support::*;

#[test]
fn create_writes_lima_yaml_and_list_reports_it() {
    let sim = Sim::new();
    let out = sim
        .run(&[
            "create",
            "--tty=false",
            "--memory",
            "2.5",
            "--disk",
            "20",
            "--set",
            ".env.FOO = \"bar\"",
            "template:debian-13",
        ])
        .ok();
    assert!(
        out.stderr
            .contains("Run `limactl start debian-13` to start the instance."),
        "{}",
        out.stderr
    );
    let dir = sim.lima_home.join("debian-13");
    let yaml: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("lima.yaml")).expect("lima.yaml"))
            .expect("JSON text");
    assert_eq!(yaml["mounts"], serde_json::json!([{"location": "~"}]));
    assert_eq!(yaml["memory"], "2.5GiB");
    assert_eq!(yaml["disk"], "20GiB");
    assert_eq!(yaml["cpus"], 4);
    assert_eq!(yaml["vmType"], "qemu");
    assert_eq!(yaml["ssh"]["forwardAgent"], false);
    assert_eq!(yaml["env"]["FOO"], "bar");
    assert!(yaml["user"]["home"]
        .as_str()
        .expect("home")
        .ends_with(".linux"));

    let info = sim.list_json("debian-13");
    assert_eq!(info["name"], "debian-13");
    assert_eq!(info["hostname"], "lima-debian-13");
    assert_eq!(info["status"], "Stopped");
    assert_eq!(info["dir"], dir.to_str().expect("utf8"));
    assert_eq!(info["memory"], 5_i64 << 29);
    assert_eq!(info["disk"], 20_i64 << 30);
    assert_eq!(info["protected"], false);
    assert_eq!(info["limaVersion"], "v2.0.3");
    assert_eq!(
        info["config"]["mounts"][0]["location"],
        sim.home.to_str().expect("utf8")
    );
    assert_eq!(
        info["config"]["mounts"][0]["mountPoint"],
        sim.home.to_str().expect("utf8")
    );
    assert_eq!(info["config"]["mountType"], "reverse-sshfs");

    sim.run(&["create", "--tty=false", "template:debian-13"])
        .fails_with(1, "instance \\\"debian-13\\\" already exists");
    sim.run(&["create", "--tty=false", "template:nope"])
        .fails_with(1, "template \\\"nope.yaml\\\" not found");
    sim.run(&["create", "--tty=false", "--name", "bad name", "template:debian-13"])
        .fails_with(1, "instance name \\\"bad name\\\" is not a valid identifier: identifier \\\"bad name\\\" must match");
    let legacy = sim
        .run(&["create", "--tty=false", "template://ubuntu-24.04"])
        .ok();
    assert!(
        legacy
            .stderr
            .contains("should be written \\\"template:ubuntu-24.04\\\" since Lima v2.0"),
        "{}",
        legacy.stderr
    );
    let file = sim.base().join("My-VM.yaml");
    fs::write(&file, fs::read(dir.join("lima.yaml")).expect("read")).expect("write");
    sim.run(&["create", "--tty=false", file.to_str().expect("utf8")])
        .ok();
    let mut stdin_create = sim.cmd(&["create", "--tty=false", "--name", "fromstdin", "-"]);
    let mut child = stdin_create
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&fs::read(&file).expect("read"))
        .expect("write stdin");
    Out::from(child.wait_with_output().expect("wait")).ok();
    let names = sim.run(&["list", "-q"]).ok().stdout;
    assert_eq!(names, "debian-13\nfromstdin\nmy-vm\nubuntu-24.04\n");
    let table = sim.run(&["list"]).ok().stdout;
    assert!(table.starts_with("NAME    "), "{table}");
    assert!(
        table.contains("debian-13       Stopped    127.0.0.1:0    4       2.5GiB    20GiB     "),
        "{table}"
    );
}

#[test]
fn invalid_configs_leave_nothing_behind() {
    let sim = Sim::new();
    let cases: &[(&[&str], &str)] = &[
        (&["--set", ".mounts = [{\"location\": \"/srv/x\", \"mountPoint\": \"/etc\"}]"], "field `mounts[0].mountPoint` must not be a system path such as /etc or /usr"),
        (&["--set", ".mounts = [{\"location\": \"relative\"}]"], "field `mounts[0].location` must be an absolute path, got \\\"relative\\\""),
        (&["--set", ".mounts = [{\"location\": \"/srv/x\", \"mountPoint\": \"~/x\"}]"], "must not start with \\\"~\\\""),
        (&["--vm-type", "vz"], "vmType \\\"vz\\\" is not a registered driver"),
        (&["--mount-type", "9p"], "mount type \\\"9p\\\" is explicitly unsupported"),
        (&["--set", ".memory = \"lots\""], "field `memory` has an invalid value: invalid size: 'lots'"),
        (&["--set", ".cpus = \"two\""], "cannot unmarshal string into int"),
        (&["--set", ".cpus ="], "invalid yq expression"),
        (&["--cpus", "-1"], "error while processing flag \\\"cpus\\\": invalid value for number of cpus, must be >= 0"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["create", "--tty=false", "--name", "bad"];
        args.extend_from_slice(extra);
        args.push("template:debian-13");
        sim.run(&args).fails_with(1, needle);
        assert!(
            !sim.lima_home.join("bad").exists(),
            "{extra:?} left an instance directory"
        );
    }
    // A missing mount location is only a warning, as in Lima.
    let out = sim
        .run(&[
            "create",
            "--tty=false",
            "--name",
            "warn",
            "--set",
            ".mounts = [{\"location\": \"/nonexistent/dir\"}]",
            "template:debian-13",
        ])
        .ok();
    assert!(
        out.stderr.contains(
            "level=warning msg=\"field `mounts[0].location` refers to a non-existent directory"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn socket_path_length_is_checked() {
    // $LIMA_HOME/NAME/ssh.sock.1234567890123456 must stay under UNIX_PATH_MAX (108).
    let sim = Sim::with_lima_home("l");
    let room = 108
        - sim.lima_home.to_str().expect("utf8").len()
        - "/".len()
        - "/ssh.sock.1234567890123456".len();
    let ok_name = "n".repeat(room - 1);
    let long_name = "n".repeat(room);
    sim.create(&ok_name, &[]);
    let out = sim
        .run(&[
            "create",
            "--tty=false",
            "--name",
            &long_name,
            "template:debian-13",
        ])
        .fails_with(1, "too long");
    let expected = format!(
        "instance name \"{long_name}\" too long: \"{}/{long_name}/ssh.sock.1234567890123456\" must be less than UNIX_PATH_MAX=108 characters, but is 108",
        sim.lima_home.display()
    );
    assert_eq!(out.fatal_msg(), expected);
    sim.run(&["clone", &ok_name, &long_name])
        .fails_with(1, "too long");
    assert!(!sim.lima_home.join(&long_name).exists());
}
