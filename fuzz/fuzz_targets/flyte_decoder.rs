//! Flyte's secret request decoder (base32 with Flyte's alphabet, then protobuf text) on arbitrary
//! strings: never panics; an error or a Secret.

#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::flyte_decoder(data));
