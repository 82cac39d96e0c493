//! A terminal on the host gets a guest terminal in raw mode, like `ssh -t`.

use std::process::Stdio;
use std::time::Duration;

use crate::support::*;

/// A pseudo-terminal for the simulator's stdin and stdout, read on a thread.
struct Pty {
    master: std::os::fd::OwnedFd,
    slave: std::os::fd::OwnedFd,
    output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Pty {
    fn open() -> Pty {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let (mut m, mut s) = (-1, -1);
        // SAFETY: openpty writes two fds; the other arguments may be null.
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, 0);
        for fd in [m, s] {
            // SAFETY: a flag on our own descriptors.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        // SAFETY: fresh descriptors owned by nobody else.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let reader = master.try_clone().unwrap();
        let out = std::sync::Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            loop {
                // SAFETY: reading into a valid buffer.
                let n =
                    unsafe { libc::read(reader.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    break;
                }
                out.lock().unwrap().extend_from_slice(&buf[..n as usize]);
            }
        });
        Pty {
            master,
            slave,
            output,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    fn type_keys(&self, bytes: &[u8]) {
        use std::os::fd::AsRawFd;
        // SAFETY: writing a valid buffer to our descriptor.
        let n = unsafe { libc::write(self.master.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        assert_eq!(n, bytes.len() as isize);
    }

    /// Canonical mode with signal keys: what a shell leaves a terminal in.
    fn cooked(&self) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: termios is plain data filled in by tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: a valid descriptor and out-pointer.
        assert_eq!(
            unsafe { libc::tcgetattr(self.slave.as_raw_fd(), &mut t) },
            0
        );
        t.c_lflag & (libc::ICANON | libc::ISIG) == (libc::ICANON | libc::ISIG)
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
