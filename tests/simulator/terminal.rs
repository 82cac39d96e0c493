//! A terminal on the host gets a guest terminal in raw mode, like `ssh -t`.

use std::process::Stdio;
use std::time::Duration;

use crate::support::*;
use crate::tty;

/// A pseudo-terminal for the simulator's stdin and stdout, read on a thread.
struct Pty {
    master: std::fs::File,
    slave: std::os::fd::OwnedFd,
    output: tty::Recording,
}

impl Pty {
    fn open() -> Pty {
        let tty::Pair { master, slave } = tty::open();
        let output = tty::Recording::start(&master);
        Pty {
            master,
            slave,
            output,
        }
    }

    fn text(&self) -> String {
        self.output.text()
    }

    fn type_keys(&self, bytes: &[u8]) {
        use std::io::Write;
        (&self.master)
            .write_all(bytes)
            .expect("type on the terminal");
    }

    /// Canonical mode with signal keys: what a shell leaves a terminal in.
    fn cooked(&self) -> bool {
        tty::has_lflags(&self.slave, libc::ICANON | libc::ISIG)
    }
}

#[test]
fn a_terminal_gets_a_guest_terminal_in_raw_mode_like_ssh_t() {
    let sim = Sim::new();
    sim.create("vm", &["--mount-none"]);
    sim.run(&["start", "vm"]).ok();
    let script = r#"if [ -t 0 ] && [ -t 1 ]; then echo "guest-tty TERM=$TERM"; else echo no-tty; fi
trap 'echo got-INT; exit 3' INT
echo ready
while :; do sleep 0.1; done"#;

    let pty = Pty::open();
    let mut child = sim
        .cmd(&["shell", "vm", "sh", "-c", script])
        .env("TERM", "xterm-test")
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    assert!(
        wait_until(Duration::from_secs(10), || pty.text().contains("ready")),
        "{}",
        pty.text()
    );
    assert!(
        pty.text().contains("guest-tty TERM=xterm-test"),
        "{}",
        pty.text()
    );
    assert!(
        !pty.cooked(),
        "the local terminal is raw while the session runs"
    );
    // Ctrl-C is a keystroke: the guest's terminal makes it SIGINT for the guest command;
    // the simulator itself is not interrupted and reports the command's status.
    pty.type_keys(b"\x03");
    let status = wait_child(&mut child, Duration::from_secs(10)).expect("session ends");
    assert_eq!(status.code(), Some(3), "{}", pty.text());
    assert!(pty.text().contains("got-INT"), "{}", pty.text());
    assert!(pty.cooked(), "the terminal's mode is restored");

    // Without a terminal: no guest terminal, no TERM.
    let out = sim
        .cmd(&[
            "shell",
            "vm",
            "sh",
            "-c",
            "[ -t 0 ] && echo tty || echo no-tty; echo \"TERM=${TERM-unset}\"",
        ])
        .env("TERM", "xterm-test")
        .output()
        .expect("run");
    let out = Out::from(out).ok();
    assert_eq!(out.stdout, "no-tty\nTERM=unset\n");
}
