//! Shared by the integration tests: where the fixtures are, and the policy module built once per
//! test binary from the current sources (or `POLICY_WASM`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `fixtures/` (or `FIXTURES`): one folder per case.
pub fn fixtures() -> PathBuf {
    std::env::var_os("FIXTURES").map_or_else(|| workspace().join("fixtures"), PathBuf::from)
}

/// The policy module, built on first use.
pub fn wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        e2e_tests::policy_wasm(&workspace()).unwrap_or_else(|error| panic!("{error:#}"))
    })
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
