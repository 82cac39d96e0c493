//! The CLI: version, unknown commands and flags, pflag-style parsing.

use crate::support::*;

#[test]
fn version_unknown_commands_and_flags() {
    let sim = Sim::new();
    assert_eq!(
        sim.run(&["--version"]).ok().stdout,
        "limactl version 2.0.3\n"
    );
    let mut custom = Sim::new();
    custom.set_env("LIMA_SIM_VERSION", "2.1.0");
    assert_eq!(
        custom.run(&["--version"]).ok().stdout,
        "limactl version 2.1.0\n"
    );

    let out = sim.run(&["strat"]).fails_with(1, "level=fatal");
    assert_eq!(
        out.fatal_msg(),
        "unknown command \"strat\" for \"limactl\"\n\nDid you mean this?\n\tstart\n"
    );
    let out = sim.run(&["list", "--foo"]).fails_with(1, "level=fatal");
    assert_eq!(out.fatal_msg(), "unknown flag: --foo");
    assert!(
        out.stderr.starts_with("time=\""),
        "logrus text format: {}",
        out.stderr
    );
    sim.run(&["shell", "-A", "x"])
        .fails_with(1, "unknown shorthand flag: 'A' in -A");
    sim.run(&["snapshot", "list"]).fails_with(
        1,
        "command \\\"snapshot\\\" is not supported by the simulator",
    );
    sim.run(&["create", "--network", "lima:shared", "template:debian-13"])
        .fails_with(1, "flag --network is not supported by the simulator");
    sim.run(&["shell", "--sync", ".", "x"])
        .fails_with(1, "flag --sync is not supported by the simulator");

    let out = sim.run(&["clone", "a"]).fails_with(1, "level=fatal");
    assert_eq!(
        out.fatal_msg(),
        "\"limactl clone\" accepts 2 arg(s), received 1.\nSee 'limactl clone --help'.\n\nUsage:  limactl clone OLDINST NEWINST [flags]\n\nClone an instance of Lima"
    );
    let out = sim.run(&["shell"]).fails_with(1, "level=fatal");
    assert!(out
        .fatal_msg()
        .starts_with("\"limactl shell\" requires at least 1 arg(s), only received 0."));
    sim.run(&["create", "--cpus", "two"]).fails_with(
        1,
        "invalid argument \\\"two\\\" for \\\"--cpus\\\" flag: strconv.ParseInt: parsing \\\"two\\\": invalid syntax",
    );
    sim.run(&["--tty=false", "--yes", "list"])
        .fails_with(1, "cannot use both --tty and --yes flags at the same time");
    sim.run(&["list", "--log-format", "xml"])
        .fails_with(1, "unsupported log-format: \\\"xml\\\"");
    let json = sim
        .run(&["--log-format", "json", "list", "nope"])
        .fails_with(1, "\"level\":\"fatal\"");
    assert!(
        json.stderr.contains(
            "{\"level\":\"warning\",\"msg\":\"No instance matching nope found.\",\"time\":"
        ),
        "{}",
        json.stderr
    );
}

#[test]
fn flags_parse_like_pflag() {
    let sim = Sim::new();
    // Flags may follow positional arguments (except for shell).
    sim.run(&[
        "create",
        "template:debian-13",
        "--tty=false",
        "--cpus=2",
        "--name",
        "vm",
    ])
    .ok();
    assert_eq!(sim.list_json("vm")["cpus"], 2);
    // A bool flag never consumes the next argument: "false" is an instance name here.
    let out = sim
        .run(&["list", "--json", "false"])
        .fails_with(1, "No instance matching false found.");
    assert_eq!(out.fatal_msg(), "unmatched instances");
    // --set and --mount are repeatable, and --mount is a comma-separated list.
    let (a, b) = (sim.base().join("a"), sim.base().join("b"));
    let mounts = format!("{},{}:w", a.display(), b.display());
    sim.run(&[
        "create",
        "--tty=false",
        "--name",
        "m",
        "--mount",
        &mounts,
        "--set",
        ".cpus = 1",
        "--set",
        ".cpus += 2",
        "template:debian-13",
    ])
    .ok();
    let info = sim.list_json("m");
    assert_eq!(info["cpus"], 3);
    let mounts = info["config"]["mounts"].as_array().expect("mounts").clone();
    assert_eq!(mounts.len(), 3, "{mounts:?}");
    assert_eq!(mounts[0]["location"], b.to_str().expect("utf8"));
    assert_eq!(mounts[0]["writable"], true);
    assert_eq!(mounts[1]["location"], a.to_str().expect("utf8"));
    assert_eq!(mounts[2]["location"], sim.home.to_str().expect("utf8"));
    assert_eq!(mounts[2]["writable"], false);
}
