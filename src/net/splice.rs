//! Copying between two TCP sockets. On Linux the bytes move socket → pipe → socket inside the
//! kernel (splice(2)), so a tunnel costs no copies through the proxy's memory; elsewhere a
//! plain read/write loop.

use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpStream;

/// Both directions until both end; `up` counts a → b, `down` b → a.
pub async fn pump(a: &TcpStream, b: &TcpStream, up: &AtomicU64, down: &AtomicU64) {
    pump_with(a, b, up, down, cfg!(target_os = "linux")).await
}

async fn pump_with(a: &TcpStream, b: &TcpStream, up: &AtomicU64, down: &AtomicU64, kernel: bool) {
    tokio::join!(one_way(a, b, up, kernel), one_way(b, a, down, kernel));
}

/// One direction until it ends, then a half-close of `to`; `count` counts the bytes.
pub async fn copy(from: &TcpStream, to: &TcpStream, count: &AtomicU64) {
    one_way(from, to, count, cfg!(target_os = "linux")).await
}

async fn one_way(from: &TcpStream, to: &TcpStream, count: &AtomicU64, kernel: bool) {
    #[cfg(target_os = "linux")]
    if kernel {
        if let Ok(pipe) = linux::Pipe::new() {
            let _ = linux::splice_loop(&pipe, from, to, count).await;
            half_close(to);
            return;
        }
    }
    let _ = kernel;
    copy_loop(from, to, count).await;
    half_close(to);
}

/// Ends our sending side, as the other end did (the peer sees EOF; reading goes on).
fn half_close(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket descriptor owned by `s` for the duration of the call.
    unsafe {
        libc::shutdown(s.as_raw_fd(), libc::SHUT_WR);
    }
}

async fn copy_loop(from: &TcpStream, to: &TcpStream, count: &AtomicU64) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if from.readable().await.is_err() {
            return;
        }
        let n = match from.try_read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        };
        let mut sent = 0;
        while sent < n {
            if to.writable().await.is_err() {
                return;
            }
            match to.try_write(&buf[sent..n]) {
                Ok(m) => sent += m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use tokio::io::Interest;

    const CHUNK: usize = 1 << 20;

    pub struct Pipe {
        read: OwnedFd,
        write: OwnedFd,
    }

    impl Pipe {
        pub fn new() -> io::Result<Pipe> {
            let mut fds = [0 as RawFd; 2];
            // SAFETY: pipe2 writes two descriptors into the array we own.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: both descriptors were just created and are owned by nobody else.
            let pipe = unsafe {
                Pipe {
                    read: OwnedFd::from_raw_fd(fds[0]),
                    write: OwnedFd::from_raw_fd(fds[1]),
                }
            };
            // A larger pipe moves more per call; the default (64 KiB) is fine if refused.
            // SAFETY: fcntl on a descriptor we own.
            unsafe {
                libc::fcntl(
                    pipe.write.as_raw_fd(),
                    libc::F_SETPIPE_SZ,
                    CHUNK as libc::c_int,
                );
            }
            Ok(pipe)
        }
    }

    fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
        // SAFETY: splice between descriptors that stay open for the call; no offsets.
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    pub async fn splice_loop(
        pipe: &Pipe,
        from: &TcpStream,
        to: &TcpStream,
        count: &AtomicU64,
    ) -> io::Result<()> {
        let (pr, pw) = (pipe.read.as_raw_fd(), pipe.write.as_raw_fd());
        // Bytes in the pipe; what went out is counted when the pipe empties, and by the
        // guard's drop when the copy ends or is cancelled (the proxy stopping).
        let mut held = 0usize;
        let mut moved = Moved { count, n: 0 };
        let mut eof = false;
        loop {
            if held == 0 {
                if eof {
                    return Ok(());
                }
                moved.flush();
                // The pipe is empty here, so a WouldBlock can only be the socket's: waiting
                // for the socket to be readable is right.
                match from
                    .async_io(Interest::READABLE, || splice(from.as_raw_fd(), pw, CHUNK))
                    .await
                {
                    Ok(0) => return Ok(()),
                    Ok(n) => held = n,
                    Err(e) => return Err(e),
                }
            } else if !eof {
                // More in while the pipe has room, without waiting: a WouldBlock here may be
                // the full pipe's, so it must not clear the socket's readiness.
                match splice(from.as_raw_fd(), pw, CHUNK) {
                    Ok(0) => eof = true,
                    Ok(n) => held += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            // The pipe holds data, so a WouldBlock can only be the socket's.
            match to
                .async_io(Interest::WRITABLE, || splice(pr, to.as_raw_fd(), held))
                .await
            {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => {
                    held -= m;
                    moved.n += m as u64;
                }
                Err(e) => return Err(e),
            }
        }
    }

    struct Moved<'a> {
        count: &'a AtomicU64,
        n: u64,
    }

    impl Moved<'_> {
        fn flush(&mut self) {
            if self.n > 0 {
                self.count
                    .fetch_add(std::mem::take(&mut self.n), Ordering::Relaxed);
            }
        }
    }

    impl Drop for Moved<'_> {
        fn drop(&mut self) {
            self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let addr = listener.local_addr().expect("addr");
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.expect("connect"), b.expect("accept").0)
    }

    /// client → [a | pump | b] → server, the server answers with the bytes reversed.
    async fn round_trip(kernel: bool) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (mut client, a) = pair(&listener).await;
        let (b, mut server) = pair(&listener).await;
        let sent: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
        let expect: Vec<u8> = sent.iter().rev().copied().collect();
        let serve = async {
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.expect("server read");
            got.reverse();
            server.write_all(&got).await.expect("server write");
            server.shutdown().await.expect("shutdown");
        };
        let talk = async {
            client.write_all(&sent).await.expect("write");
            client.shutdown().await.expect("half-close");
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.expect("read");
            back
        };
        let (_, _, back) = tokio::join!(pump_with(&a, &b, &up, &down, kernel), serve, talk);
        assert!(
            back == expect,
            "bytes changed on the way (kernel: {kernel})"
        );
        assert_eq!(up.load(Ordering::Relaxed), sent.len() as u64);
        assert_eq!(down.load(Ordering::Relaxed), sent.len() as u64);
    }

    #[tokio::test]
    async fn both_copy_paths_are_byte_exact_and_keep_half_closes() {
        round_trip(true).await;
        round_trip(false).await;
    }
}
