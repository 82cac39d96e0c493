//! The host's end of the guest's user-mode network (Linux): the host agent
//! is inside the guest's namespaces, so a helper forked before it enters them
//! stays on the host. The helper runs slirp4netns on the guest's network
//! namespace and binds the host ends of port forwards, handing each listening
//! socket to the agent (SCM_RIGHTS).

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use crate::net::{slirp_binary, CIDR, GUEST_IP, HOST_IP, IFACE};
use crate::sys;

/// The host side: a helper process in the host's namespaces.
pub struct Helper {
    ctl: UnixDatagram,
    /// Its end of slirp4netns's exit pipe: slirp4netns exits once the agent
    /// (the only writer) is gone, however it dies.
    _exit_w: OwnedFd,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let (r, w) = sys::pipe_cloexec().map_err(|e| format!("pipe: {e}"))?;
    Ok((OwnedFd::from(r), OwnedFd::from(w)))
}

fn clear_cloexec(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
}

impl Helper {
    /// Forks the helper; call before the agent enters the guest's namespaces.
    pub fn spawn() -> Result<Helper, String> {
        let slirp = slirp_binary()?;
        let (agent_end, helper_end) = seqpacket_pair()?;
        let (exit_r, exit_w) = pipe()?;
        match sys::fork().map_err(|e| format!("fork: {e}"))? {
            sys::Fork::Child => {
                drop(agent_end);
                drop(exit_w);
                // Nothing of the agent's: its status pipe must close when it does.
                sys::close_fds_except(&[helper_end.as_raw_fd(), exit_r.as_raw_fd()]);
                helper_main(&slirp, helper_end, exit_r)
            }
            sys::Fork::Parent(_) => Ok(Helper {
                ctl: agent_end,
                _exit_w: exit_w,
            }),
        }
    }

    fn send(&self, req: &str) -> Result<(), String> {
        self.ctl
            .send(req.as_bytes())
            .map_err(|e| format!("network helper: {e}"))?;
        Ok(())
    }

    fn reply(&self) -> Result<Option<OwnedFd>, String> {
        let (reply, fd) = recv_with_fd(&self.ctl).map_err(|e| format!("network helper: {e}"))?;
        match reply.strip_prefix("ok") {
            Some(_) => Ok(fd),
            None => Err(reply.strip_prefix("err ").unwrap_or(&reply).to_string()),
        }
    }

    fn ask(&self, req: &str) -> Result<Option<OwnedFd>, String> {
        self.send(req)?;
        self.reply()
    }

    /// Has slirp4netns attached to the namespaces of `agent` (already
    /// unshared); it starts while the agent builds the guest's filesystem.
    pub fn attach_begin(&self, agent: i32) -> Result<(), String> {
        self.send(&format!("slirp {agent}"))
    }

    /// Waits for slirp4netns, then configures the guest's interfaces.
    pub fn attach_end(&self) -> Result<(), String> {
        self.reply()?;
        configure()
    }

    /// A listening socket on the host at `addr`.
    pub fn listen(&self, addr: SocketAddr) -> Result<TcpListener, String> {
        let fd = self
            .ask(&format!("listen {addr}"))?
            .ok_or("network helper sent no socket")?;
        Ok(TcpListener::from(fd))
    }
}

// Seqpacket, not datagram: the helper must see EOF when the agent is gone.
fn seqpacket_pair() -> Result<(UnixDatagram, UnixDatagram), String> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid two-element array.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(format!("socketpair: {}", io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here.
    unsafe {
        Ok((
            UnixDatagram::from_raw_fd(fds[0]),
            UnixDatagram::from_raw_fd(fds[1]),
        ))
    }
}

fn send_with_fd(sock: &UnixDatagram, msg: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: msg.as_ptr() as *mut libc::c_void,
        iov_len: msg.len(),
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    if let Some(fd) = fd {
        hdr.msg_control = cbuf.as_mut_ptr().cast();
        hdr.msg_controllen = space as _;
        // SAFETY: the control buffer has room for one descriptor.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&hdr);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        }
    }
    // SAFETY: hdr is fully initialized.
    if unsafe { libc::sendmsg(sock.as_raw_fd(), &hdr, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn recv_with_fd(sock: &UnixDatagram) -> io::Result<(String, Option<OwnedFd>)> {
    let mut buf = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as in send_with_fd.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: plain data, pointers outlive the call.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = cbuf.as_mut_ptr().cast();
    hdr.msg_controllen = space as _;
    // SAFETY: hdr describes live buffers.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut hdr, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
    }
    let mut fd = None;
    // SAFETY: walking the control messages the kernel filled in.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&hdr);
        if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            let raw = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
            fd = Some(OwnedFd::from_raw_fd(raw));
        }
    }
    Ok((String::from_utf8_lossy(&buf[..n as usize]).into_owned(), fd))
}

// The helper: serves the agent until it is gone, then ends slirp4netns (by
// its pid) and exits.
fn helper_main(slirp: &Path, ctl: UnixDatagram, exit_r: OwnedFd) -> ! {
    let mut slirp_pid: Option<i32> = None;
    loop {
        let Ok((req, _)) = recv_with_fd(&ctl) else {
            break;
        };
        let reply = |text: &str, fd: Option<RawFd>| {
            let _ = send_with_fd(&ctl, text.as_bytes(), fd);
        };
        if let Some(pid) = req.strip_prefix("slirp ") {
            match start_slirp(slirp, pid, &exit_r) {
                Ok(child) => {
                    slirp_pid = Some(child);
                    reply("ok", None);
                }
                Err(e) => reply(&format!("err {e}"), None),
            }
        } else if let Some(addr) = req.strip_prefix("listen ") {
            match addr
                .parse::<SocketAddr>()
                .map_err(|e| e.to_string())
                .and_then(|a| TcpListener::bind(a).map_err(|e| e.to_string()))
            {
                Ok(l) => reply("ok", Some(l.as_raw_fd())),
                Err(e) => reply(&format!("err {e}"), None),
            }
        } else {
            reply("err unknown request", None);
        }
    }
    if let Some(pid) = slirp_pid {
        let _ = sys::kill(pid, libc::SIGTERM);
        let _ = sys::waitpid(pid);
    }
    sys::exit_now(0)
}

// slirp4netns opens /dev/net/tun as the caller; udev makes it 0666, some
// minimal systems leave it 0600.
fn check_tun() -> Result<(), String> {
    let tun = c"/dev/net/tun";
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::access(tun.as_ptr(), libc::R_OK | libc::W_OK) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    Err(format!(
        "the guest's user-mode network needs /dev/net/tun, which uid {} cannot open ({err}; \
         distributions make it mode 0666: chmod 0666 /dev/net/tun), or set {}=host to share \
         the host's network",
        sys::getuid(),
        crate::net::NETWORK_ENV
    ))
}

fn start_slirp(slirp: &Path, pid: &str, exit_r: &OwnedFd) -> Result<i32, String> {
    check_tun()?;
    let (mut ready_r, ready_w) = sys::pipe_cloexec().map_err(|e| format!("pipe: {e}"))?;
    let argv: Vec<Vec<u8>> = [
        slirp.to_string_lossy().into_owned(),
        format!("--cidr={CIDR}"),
        format!("--ready-fd={}", ready_w.as_raw_fd()),
        format!("--exit-fd={}", exit_r.as_raw_fd()),
        pid.to_string(),
        IFACE.to_string(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    let env: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            kv
        })
        .collect();
    let path = slirp.as_os_str().as_encoded_bytes().to_vec();
    match sys::fork().map_err(|e| format!("fork: {e}"))? {
        sys::Fork::Child => {
            clear_cloexec(ready_w.as_raw_fd());
            clear_cloexec(exit_r.as_raw_fd());
            let err = sys::execve(&path, &argv, &env);
            let _ = io::Write::write_all(
                &mut io::stderr(),
                format!("exec {}: {err}\n", slirp.display()).as_bytes(),
            );
            sys::exit_now(127)
        }
        sys::Fork::Parent(child) => {
            drop(ready_w);
            let mut byte = [0u8; 1];
            match ready_r.read(&mut byte) {
                Ok(1) => Ok(child),
                _ => {
                    let _ = sys::kill(child, libc::SIGKILL);
                    let _ = sys::waitpid(child);
                    Err(
                        "slirp4netns failed to attach to the guest's network namespace \
                         (see its messages above)"
                            .to_string(),
                    )
                }
            }
        }
    }
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req
}

fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ioctl<T>(sock: &OwnedFd, req: libc::c_ulong, arg: &mut T, what: &str) -> Result<(), String> {
    // SAFETY: arg is the structure the request expects.
    if unsafe { libc::ioctl(sock.as_raw_fd(), req as _, arg as *mut T) } != 0 {
        return Err(format!("{what}: {}", io::Error::last_os_error()));
    }
    Ok(())
}

fn set_up(sock: &OwnedFd, name: &str) -> Result<(), String> {
    let mut req = ifreq(name);
    ioctl(
        sock,
        libc::SIOCGIFFLAGS,
        &mut req,
        &format!("get flags of {name}"),
    )?;
    // SAFETY: the flags member is the one SIOCGIFFLAGS filled in.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(
        sock,
        libc::SIOCSIFFLAGS,
        &mut req,
        &format!("bring {name} up"),
    )
}

// Inside the guest's namespace: lo up, eth0 192.168.5.15/24 up, default
// route via the gateway (what Lima's cloud-init network config does).
fn configure() -> Result<(), String> {
    // SAFETY: socket has no memory effects.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(format!("socket: {}", io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    set_up(&sock, "lo")?;
    let mut req = ifreq(IFACE);
    req.ifr_ifru.ifru_addr = sockaddr(GUEST_IP);
    ioctl(
        &sock,
        libc::SIOCSIFADDR,
        &mut req,
        "set the guest's address",
    )?;
    let mut req = ifreq(IFACE);
    req.ifr_ifru.ifru_netmask = sockaddr(Ipv4Addr::new(255, 255, 255, 0));
    ioctl(
        &sock,
        libc::SIOCSIFNETMASK,
        &mut req,
        "set the guest's netmask",
    )?;
    set_up(&sock, IFACE)?;
    // SAFETY: rtentry is plain data.
    let mut route: libc::rtentry = unsafe { std::mem::zeroed() };
    route.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_gateway = sockaddr(HOST_IP);
    route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    ioctl(&sock, libc::SIOCADDRT, &mut route, "add the default route")
}
