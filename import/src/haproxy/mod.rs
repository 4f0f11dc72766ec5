//! HAProxy configurations.

pub(crate) mod parse;
pub(crate) mod translate;
