//! Policy settings: the types ([`types`]), the one decoder ([`decode`]) and the up-front
//! validation ([`validate`]).
//!
//! `validate_settings` runs this before the policy is ever asked to decide, so
//! everything here reports *every* problem at once, each prefixed with the
//! camelCase path the user wrote (`aws.tokenExpirationSeconds: ...`).

pub mod decode;
mod types;
pub mod validate;

pub use types::*;
pub use validate::{is_env_name, is_qualified_key};
