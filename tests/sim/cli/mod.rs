//! limactl's command line: cobra's commands, pflag's flags, the invocation context.

pub(crate) mod cobra;
pub(crate) mod commands;
pub(crate) mod ctx;
pub(crate) mod flags;
