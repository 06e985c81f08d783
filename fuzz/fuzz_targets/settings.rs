//! `validate_settings` on arbitrary bytes: never panics, always answers `{valid, message}`.
//! Settings it accepts then drive `validate` on a pod whose ServiceAccount enables every provider:
//! accepted settings must never make `validate` fail (a 500 ignores the webhook's failurePolicy).

#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::settings(data));
