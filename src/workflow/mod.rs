//! The workflows every entry point calls (the subcommands, the pool keeper, the MCP server,
//! later the web server): a session's preparation and run, building a template, the warm
//! pool's control. Entry points parse, call these and print.

pub(crate) mod build;
pub(crate) mod child;
mod context;
pub(crate) mod execute;
pub(crate) mod pool;
pub(crate) mod prepare;

pub(crate) use context::{overrides, Context};
