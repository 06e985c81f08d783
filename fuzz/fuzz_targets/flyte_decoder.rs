//! Flyte's secret request decoder (base32 with Flyte's alphabet, then protobuf text) on arbitrary
//! strings: never panics; an error or a Secret.

#![no_main]

use libfuzzer_sys::fuzz_target;
use workload_identity_policy::secrets::decode_secret;

fuzz_target!(|text: &str| {
    let _ = std::hint::black_box(decode_secret(text));
});
