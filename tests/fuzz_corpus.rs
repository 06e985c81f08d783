//! Replays the fuzz corpus (`fuzz/corpus/<target>/`, committed, minimised by `make fuzz`) through
//! the fuzz targets' own checks on stable, with no libFuzzer: every input a campaign kept stays a
//! regression test. A failing input is named by its file.

#[path = "../fuzz/fuzz_targets/common.rs"]
mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.is_file())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{}: no corpus", dir.display());
    let mut failures = Vec::new();
    for path in &inputs {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {message}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {target} inputs fail:\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
    inputs.len()
}

#[test]
fn decide_corpus() {
    eprintln!("decide: {} inputs", replay("decide", common::decide));
}

#[test]
fn settings_corpus() {
    eprintln!("settings: {} inputs", replay("settings", common::settings));
}

#[test]
fn flyte_decoder_corpus() {
    eprintln!(
        "flyte_decoder: {} inputs",
        replay("flyte_decoder", common::flyte_decoder)
    );
}

/// The replay is not vacuous: a check that panics on an input is reported with its file.
#[test]
fn a_failing_input_is_reported() {
    let result = catch_unwind(|| replay("flyte_decoder", |_| panic!("boom")));
    let message = result
        .err()
        .and_then(|p| p.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(message.contains("flyte_decoder inputs fail"), "{message}");
    assert!(message.contains("boom"), "{message}");
}
