//! The simulated guest: its agent, disk, exec, forwards, network, namespaces, terminal.

pub(crate) mod agent;
pub(crate) mod disk;
pub(crate) mod exec;
pub(crate) mod forward;
pub(crate) mod net;
#[cfg(target_os = "linux")]
pub(crate) mod ns;
pub(crate) mod pty;
#[cfg(target_os = "linux")]
pub(crate) mod relay;
pub(crate) mod script;
#[cfg(target_os = "linux")]
pub(crate) mod slirp;
#[cfg(target_os = "linux")]
pub(crate) mod user;
