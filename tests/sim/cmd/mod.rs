//! One file per limactl command.

pub(crate) mod cmd_clone;
pub(crate) mod cmd_copy;
pub(crate) mod cmd_create;
pub(crate) mod cmd_list;
pub(crate) mod cmd_shell;
pub(crate) mod cmd_stop;
