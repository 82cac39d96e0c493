//! What the simulator's parts share: the call log, failures, files, Go's formats, injection, logging, output, system calls.

pub(crate) mod calllog;
pub(crate) mod fail;
pub(crate) mod fsutil;
pub(crate) mod gofmt;
pub(crate) mod inject;
pub(crate) mod logrus;
pub(crate) mod output;
pub(crate) mod sys;
