//! Lima's own logic: lima.yaml, templates, validation, names, the store, port forwards, yq.

pub(crate) mod config;
pub(crate) mod editflags;
pub(crate) mod gotmpl;
pub(crate) mod host;
pub(crate) mod names;
pub(crate) mod portfwd;
pub(crate) mod schema;
pub(crate) mod store;
pub(crate) mod templates;
pub(crate) mod validate;
pub(crate) mod yq;
