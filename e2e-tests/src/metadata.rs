//! The metadata `kwctl annotate` embeds in a module: a custom section named
//! `io.kubewarden.metadata` holding camelCase JSON (rules, mutating, contextAwareResources, ...).

use anyhow::{Context, Result};
use serde_json::Value;
use wasmparser::{Parser, Payload};

/// The custom section's name.
pub const SECTION: &str = "io.kubewarden.metadata";

/// The module's metadata, or `None` when it is not annotated.
pub fn read(wasm: &[u8]) -> Result<Option<Value>> {
    // A text-format module (tests compile WAT) has no sections to read.
    if !wasm.starts_with(b"\0asm") {
        return Ok(None);
    }
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::CustomSection(section) = payload.context("cannot parse the wasm module")? {
            if section.name() == SECTION {
                let metadata = serde_json::from_slice(section.data())
                    .with_context(|| format!("the {SECTION} section is not JSON"))?;
                return Ok(Some(metadata));
            }
        }
    }
    Ok(None)
}

/// `contextAwareResources` as `apiVersion/kind` strings, or `None` when the module is not annotated.
pub fn context_aware_resources(wasm: &[u8]) -> Result<Option<Vec<String>>> {
    let Some(metadata) = read(wasm)? else {
        return Ok(None);
    };
    let resources = metadata
        .get("contextAwareResources")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|r| {
                    let field = |f: &str| r.get(f).and_then(Value::as_str).unwrap_or_default();
                    format!("{}/{}", field("apiVersion"), field("kind"))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(resources))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal module with one custom section.
    fn module_with(name: &str, data: &[u8]) -> Vec<u8> {
        let mut section = vec![u8::try_from(name.len()).unwrap()];
        section.extend_from_slice(name.as_bytes());
        section.extend_from_slice(data);
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.push(0); // custom section id
        wasm.push(u8::try_from(section.len()).unwrap());
        wasm.extend(section);
        wasm
    }

    #[test]
    fn reads_the_annotation() {
        let json = br#"{"contextAwareResources":[{"apiVersion":"v1","kind":"ServiceAccount"}]}"#;
        let wasm = module_with(SECTION, json);
        assert_eq!(
            context_aware_resources(&wasm).unwrap(),
            Some(vec!["v1/ServiceAccount".to_string()])
        );
        let other = module_with("name", b"x");
        assert_eq!(context_aware_resources(&other).unwrap(), None);
        assert!(read(&module_with(SECTION, b"{")).is_err());
    }
}
