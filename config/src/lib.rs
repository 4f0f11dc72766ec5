//! hafront's configuration: the YAML schema with its defaults, loading with
//! file:line:column errors, and validation of cross-references.

mod schema;

pub use schema::*;
