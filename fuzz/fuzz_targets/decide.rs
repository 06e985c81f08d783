//! The whole decision on arbitrary input. Layout: one byte choosing the lookup's answer (error,
//! ServiceAccount with every provider, without annotations, with hostile values), then the request
//! JSON (an AdmissionRequest, or an AdmissionReview unwrapped as the host does), then optionally a
//! NUL byte and the settings JSON (default `{}`). The settings go through `validate_settings`, then
//! both go through `validate` as policy-server sends them. Must never panic.

#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::decide(data));
