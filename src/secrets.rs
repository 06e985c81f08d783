//! Flyte task secrets, drop-in for flytepropeller's pod webhook (`secrets`
//! mutator) with the Kubernetes and Vault secret managers.
//!
//! Contract (issue #5, anchor-contracts §5): a pod labelled
//! `inject-flyte-secrets: "true"` asks for one secret per annotation whose
//! key starts with `flyte.secrets/s`; its value is a flyteidl `core.Secret`
//! in protobuf text format, base32 encoded with the alphabet
//! `abcdefghijklmnopqrstuvwxyz123456` and no padding ([`decode_secret`]).
//!
//! Kubernetes manager (default), in every container and init container,
//! first writer wins for an env var name, a volume name or a mount:
//! - `ENV_VAR`: `_FSEC_<GROUP>_<KEY>` (upper-cased as is, like upstream's
//!   `strings.ToUpper`) from `secretKeyRef {name: group, key, optional:
//!   true}`, the same source under `env_var` when given, and
//!   `FLYTE_SECRETS_ENV_PREFIX=_FSEC_`.
//! - `FILE` and `ANY`: one secret volume per group, items `key → lower(key)`,
//!   `optional: true`, mounted read-only at `/etc/flyte/secrets/<lower(group)>`;
//!   `FLYTE_SECRETS_DEFAULT_DIR`, `FLYTE_SECRETS_FILE_PREFIX=""`, and `env_var`
//!   holding the file's path when given.
//!
//! Vault manager: Vault Agent injector pod annotations (existing ones win,
//! as upstream's `UnionMaps` with the pod's annotations last), the two
//! `FLYTE_SECRETS_*` file env vars, and `env_var` with the file's path.
//!
//! Beyond the anchor:
//! - Where it admits a pod without its secrets (undecodable annotation,
//!   missing group or key, unknown mount requirement, a request its manager
//!   cannot serve), the pod is denied, naming the annotation and the problem.
//!   So is a group or key Kubernetes would refuse or silently not find, and
//!   two requests wanting one env var, file or Vault file for different
//!   secrets (upstream's first writer would hand a task the wrong value).
//! - The volume is named `flyte-secret-<group, at most 40 chars>-<8 hex of
//!   sha256(group)>`, a DNS label for any group (upstream's base32 of
//!   `group_version` is not one, and one group with two versions got two
//!   names for a single volume); one volume per group, whatever the version.
//!   On a later pass an existing volume of that name gets the missing items
//!   only (upstream appends duplicates).
//! - Vault ids are `flyte-<16 hex of sha256(group, group_version, key)>`
//!   instead of random UUIDs, so a second pass changes nothing; a key that is
//!   not a Go template identifier is read with `index` instead of `.<key>`,
//!   which the agent cannot parse.
//! - Unknown text-format fields are ignored with a warning (protobuf's
//!   parsers refuse them): a newer flyteidl field, as `env_var` once was,
//!   should not deny every pod that uses it.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::podedit::{env_value, Injection, Mount};
use crate::providers::{string_map, Findings};
use crate::settings::{is_env_name, SecretManager, SecretsSettings};

/// The pod label that asks for secrets (the webhook's objectSelector).
pub const LABEL: &str = "inject-flyte-secrets";
pub const LABEL_VALUE: &str = "true";
/// Every pod annotation whose key starts with this is a secret request.
pub const ANNOTATION_PREFIX: &str = "flyte.secrets/s";
/// flytepropeller's base32 alphabet (`encoding.Base32Encoder`), no padding.
pub const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz123456";
/// Where file secrets are mounted (`K8sSecretPathPrefix`, `VaultSecretPathPrefix`).
pub const SECRETS_DIR: &str = "/etc/flyte/secrets";
/// Prefix of the env vars of `ENV_VAR` secrets (`K8sDefaultEnvVarPrefix`).
pub const ENV_PREFIX: &str = "_FSEC_";

/// The env vars flytekit's `SecretsManager` reads its configuration from.
pub mod env {
    pub const DEFAULT_DIR: &str = "FLYTE_SECRETS_DEFAULT_DIR";
    pub const FILE_PREFIX: &str = "FLYTE_SECRETS_FILE_PREFIX";
    pub const ENV_PREFIX: &str = "FLYTE_SECRETS_ENV_PREFIX";
}

/// Vault Agent injector annotation keys.
pub mod vault {
    pub const AGENT_INJECT: &str = "vault.hashicorp.com/agent-inject";
    pub const SECRET_VOLUME_PATH: &str = "vault.hashicorp.com/secret-volume-path";
    pub const ROLE: &str = "vault.hashicorp.com/role";
    pub const PRE_POPULATE_ONLY: &str = "vault.hashicorp.com/agent-pre-populate-only";
    pub const INJECT_SECRET: &str = "vault.hashicorp.com/agent-inject-secret-";
    pub const INJECT_FILE: &str = "vault.hashicorp.com/agent-inject-file-";
    pub const INJECT_TEMPLATE: &str = "vault.hashicorp.com/agent-inject-template-";
}

/// `flyteidl.core.Secret.MountType`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MountRequirement {
    #[default]
    Any,
    EnvVar,
    File,
    /// A number outside the enum (proto3 enums are open).
    Unknown(i32),
}

impl std::fmt::Display for MountRequirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MountRequirement::Any => f.write_str("ANY"),
            MountRequirement::EnvVar => f.write_str("ENV_VAR"),
            MountRequirement::File => f.write_str("FILE"),
            MountRequirement::Unknown(n) => write!(f, "{n}"),
        }
    }
}

/// A decoded `flyteidl.core.Secret`; absent fields are empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Secret {
    pub group: String,
    pub group_version: String,
    pub key: String,
    pub mount_requirement: MountRequirement,
    pub env_var: String,
    /// Names of fields this flyteidl version does not know, in order.
    pub unknown_fields: Vec<String>,
}

/// Why an annotation value is not a secret request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// Not base32 in Flyte's alphabet.
    Base32(String),
    /// The decoded bytes are not UTF-8 text.
    NotUtf8,
    /// Not protobuf text format of a `flyteidl.core.Secret`.
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
}

impl std::fmt::Display for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretError::Base32(what) => write!(
                f,
                "is not base32 with Flyte's alphabet {ALPHABET:?} and no padding: {what}"
            ),
            SecretError::NotUtf8 => f.write_str("decodes to bytes that are not UTF-8 text"),
            SecretError::Syntax {
                line,
                column,
                message,
            } => write!(
                f,
                "decodes to an invalid flyteidl Secret (protobuf text format), line {line} column {column}: {message}"
            ),
        }
    }
}

impl std::error::Error for SecretError {}

/// Flyte's base32 (`encoding.Base32Encoder`) as Go decodes it: case-sensitive,
/// no padding (`=` is not in the alphabet), `\r` and `\n` ignored
/// (`DecodeString` strips them), trailing bits not checked. Unlike Go, a
/// length no encoder produces (1, 3 or 6 symbols past a multiple of 8) is
/// refused rather than silently truncated. Hand-written rather than
/// `data_encoding`, whose generic decoder costs ~46 KB of wasm (the module
/// stays below 512 KiB); the tests check both agree.
fn base32_decode(value: &str) -> Result<Vec<u8>, SecretError> {
    let mut out = Vec::with_capacity(value.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    let mut symbols = 0usize;
    for (offset, byte) in value.bytes().enumerate() {
        if byte == b'\r' || byte == b'\n' {
            continue;
        }
        let Some(index) = ALPHABET.bytes().position(|a| a == byte) else {
            let what = match value.get(offset..).and_then(|s| s.chars().next()) {
                Some(c) => format!("{c:?} at offset {offset} is not in the alphabet"),
                None => format!("byte {byte:#04x} at offset {offset} is not in the alphabet"),
            };
            return Err(SecretError::Base32(what));
        };
        buffer = ((buffer << 5) | index as u32) & 0x1fff;
        bits += 5;
        symbols += 1;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    if matches!(symbols % 8, 1 | 3 | 6) {
        return Err(SecretError::Base32(format!(
            "its length ({symbols} symbols) is not one a base32 encoding has"
        )));
    }
    Ok(out)
}

/// The annotation value flytepropeller writes for `text`
/// (`encodeSecret`: base32 in Flyte's alphabet, padding stripped).
pub fn encode_text(text: &str) -> String {
    let alphabet = ALPHABET.as_bytes();
    let mut out = String::with_capacity(text.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for byte in text.bytes() {
        buffer = ((buffer << 8) | u32::from(byte)) & 0x1fff;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.extend(
                alphabet
                    .get(((buffer >> bits) & 31) as usize)
                    .map(|&b| char::from(b)),
            );
        }
    }
    if bits > 0 {
        out.extend(
            alphabet
                .get(((buffer << (5 - bits)) & 31) as usize)
                .map(|&b| char::from(b)),
        );
    }
    out
}

/// Decodes one `flyte.secrets/s<i>` annotation value. Never panics.
pub fn decode_secret(value: &str) -> Result<Secret, SecretError> {
    let text = String::from_utf8(base32_decode(value)?).map_err(|_| SecretError::NotUtf8)?;
    parse_text(&text)
}

/// Parses the protobuf text format of a `flyteidl.core.Secret`: fields in
/// any order, on one line or many, `#` comments, optional `,`/`;` after a
/// field, strings in `"` or `'` with C escapes, adjacent strings joined.
/// A scalar field needs its `:` and may appear once (as protobuf's parsers).
pub fn parse_text(text: &str) -> Result<Secret, SecretError> {
    let mut parser = Parser {
        chars: text.chars().collect(),
        at: 0,
    };
    let mut secret = Secret::default();
    let mut seen: Vec<&'static str> = Vec::new();
    loop {
        parser.skip_blank();
        if parser.peek().is_none() {
            return Ok(secret);
        }
        let start = parser.at;
        let name = parser.field_name()?;
        let known = KNOWN_FIELDS.iter().copied().find(|f| *f == name);
        let Some(field) = known else {
            parser.skip_field_value(&name, 0)?;
            secret.unknown_fields.push(name);
            parser.optional_separator();
            continue;
        };
        if seen.contains(&field) {
            return Err(parser.error_at(start, format!("field {field:?} is set twice")));
        }
        seen.push(field);
        parser.expect_colon(field)?;
        if field == "mount_requirement" {
            secret.mount_requirement = parser.enum_value()?;
        } else {
            let value = parser.string_value(field)?;
            match field {
                "group" => secret.group = value,
                "group_version" => secret.group_version = value,
                "key" => secret.key = value,
                _ => secret.env_var = value,
            }
        }
        parser.optional_separator();
    }
}

const KNOWN_FIELDS: [&str; 5] = [
    "group",
    "group_version",
    "key",
    "mount_requirement",
    "env_var",
];

/// Unknown message values nest at most this deep.
const MAX_DEPTH: usize = 32;

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn error_at(&self, at: usize, message: String) -> SecretError {
        let before = self.chars.get(..at).unwrap_or(&self.chars);
        let line = 1 + before.iter().filter(|c| **c == '\n').count();
        let column = 1 + before.iter().rev().take_while(|c| **c != '\n').count();
        SecretError::Syntax {
            line,
            column,
            message,
        }
    }

    fn error(&self, message: String) -> SecretError {
        self.error_at(self.at, message)
    }

    /// What is at the cursor, for messages.
    fn found(&self) -> String {
        match self.peek() {
            None => "the end".to_string(),
            Some(c) => format!("{c:?}"),
        }
    }

    /// Whitespace and `#` comments.
    fn skip_blank(&mut self) {
        while let Some(c) = self.peek() {
            if c == '#' {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.at += 1;
                }
            } else if matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{b}' | '\u{c}') {
                self.at += 1;
            } else {
                break;
            }
        }
    }

    fn optional_separator(&mut self) {
        self.skip_blank();
        if matches!(self.peek(), Some(',' | ';')) {
            self.at += 1;
        }
    }

    fn identifier(&mut self) -> Option<String> {
        let first = self.peek()?;
        if !(first.is_ascii_alphabetic() || first == '_') {
            return None;
        }
        let mut name = String::new();
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            name.push(c);
            self.at += 1;
        }
        Some(name)
    }

    /// `name` or an extension / Any name in brackets (`[a.b/c.D]`).
    fn field_name(&mut self) -> Result<String, SecretError> {
        if self.peek() == Some('[') {
            let mut name = String::from("[");
            self.at += 1;
            loop {
                self.skip_blank();
                match self.bump() {
                    Some(']') => break,
                    Some(c) if c.is_ascii_alphanumeric() || "_./".contains(c) => name.push(c),
                    _ => {
                        self.at = self.at.saturating_sub(1);
                        return Err(
                            self.error(format!("expected a field name, found {}", self.found()))
                        );
                    }
                }
            }
            name.push(']');
            return Ok(name);
        }
        self.identifier()
            .ok_or_else(|| self.error(format!("expected a field name, found {}", self.found())))
    }

    fn expect_colon(&mut self, field: &str) -> Result<(), SecretError> {
        self.skip_blank();
        if self.peek() == Some(':') {
            self.at += 1;
            self.skip_blank();
            Ok(())
        } else {
            Err(self.error(format!(
                "expected ':' after field {field:?}, found {}",
                self.found()
            )))
        }
    }

    /// One or more adjacent string literals, joined; UTF-8 as proto3 requires.
    fn string_value(&mut self, field: &str) -> Result<String, SecretError> {
        let start = self.at;
        if !matches!(self.peek(), Some('"' | '\'')) {
            return Err(self.error(format!(
                "field {field:?} expects a quoted string, found {}",
                self.found()
            )));
        }
        let mut bytes = Vec::new();
        while matches!(self.peek(), Some('"' | '\'')) {
            self.string_literal(&mut bytes)?;
            self.skip_blank();
        }
        String::from_utf8(bytes)
            .map_err(|_| self.error_at(start, format!("field {field:?} is not UTF-8 text")))
    }

    /// One quoted literal with C escapes, appended to `out` as bytes.
    fn string_literal(&mut self, out: &mut Vec<u8>) -> Result<(), SecretError> {
        let start = self.at;
        let Some(quote) = self.bump() else {
            return Err(self.error("expected a string".to_string()));
        };
        loop {
            let Some(c) = self.bump() else {
                return Err(self.error_at(start, "unterminated string".to_string()));
            };
            match c {
                '\n' => return Err(self.error_at(start, "unterminated string".to_string())),
                '\\' => self.escape(out)?,
                c if c == quote => return Ok(()),
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }

    /// The escape after a `\` (C's, as protobuf's text format has them).
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), SecretError> {
        let start = self.at.saturating_sub(1);
        let Some(c) = self.bump() else {
            return Err(self.error_at(start, "unterminated string".to_string()));
        };
        let simple = match c {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            '\'' => Some(b'\''),
            '"' => Some(b'"'),
            '?' => Some(b'?'),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            return Ok(());
        }
        match c {
            '0'..='7' => {
                let mut value = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            self.at += 1;
                        }
                        None => break,
                    }
                }
                let byte = u8::try_from(value).map_err(|_| {
                    self.error_at(start, format!("octal escape \\{value:o} is above \\377"))
                })?;
                out.push(byte);
            }
            'x' | 'X' => {
                let value = self.hex_digits(1, 2).ok_or_else(|| {
                    self.error_at(start, "\\x needs one or two hex digits".to_string())
                })?;
                out.push(u8::try_from(value).unwrap_or(u8::MAX));
            }
            'u' | 'U' => {
                let n = if c == 'u' { 4 } else { 8 };
                let value = self
                    .hex_digits(n, n)
                    .ok_or_else(|| self.error_at(start, format!("\\{c} needs {n} hex digits")))?;
                let ch = char::from_u32(value).ok_or_else(|| {
                    self.error_at(
                        start,
                        format!("\\{c}{value:x} is not a Unicode scalar value"),
                    )
                })?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            other => {
                return Err(self.error_at(start, format!("unknown escape \\{other}")));
            }
        }
        Ok(())
    }

    /// `min..=max` hex digits as a number.
    fn hex_digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let mut value: u32 = 0;
        let mut count = 0;
        while count < max {
            let Some(d) = self.peek().and_then(|d| d.to_digit(16)) else {
                break;
            };
            value = value.checked_mul(16)?.checked_add(d)?;
            self.at += 1;
            count += 1;
        }
        (count >= min).then_some(value)
    }

    /// `ANY`, `ENV_VAR`, `FILE`, or an int32 (decimal, `0x` hex, `0` octal).
    fn enum_value(&mut self) -> Result<MountRequirement, SecretError> {
        let start = self.at;
        if let Some(name) = self.identifier() {
            return match name.as_str() {
                "ANY" => Ok(MountRequirement::Any),
                "ENV_VAR" => Ok(MountRequirement::EnvVar),
                "FILE" => Ok(MountRequirement::File),
                _ => Err(self.error_at(
                    start,
                    format!("mount_requirement {name:?} is not ANY, ENV_VAR or FILE"),
                )),
            };
        }
        let negative = self.peek() == Some('-');
        if negative {
            self.at += 1;
            self.skip_blank();
        }
        let token = self.number_token();
        if token.is_empty() {
            return Err(self.error_at(
                start,
                format!(
                    "mount_requirement expects ANY, ENV_VAR, FILE or a number, found {}",
                    self.found()
                ),
            ));
        }
        let (digits, radix) = if let Some(hex) = token
            .strip_prefix("0x")
            .or_else(|| token.strip_prefix("0X"))
        {
            (hex, 16)
        } else if token.len() > 1 && token.starts_with('0') {
            (token.get(1..).unwrap_or(""), 8)
        } else {
            (token.as_str(), 10)
        };
        let magnitude = i64::from_str_radix(digits, radix)
            .ok()
            .filter(|_| !digits.starts_with(['+', '-']));
        let value = magnitude
            .map(|m| if negative { -m } else { m })
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| {
                self.error_at(
                    start,
                    format!(
                        "mount_requirement {}{token:?} is not an int32",
                        if negative { "-" } else { "" }
                    ),
                )
            })?;
        Ok(match value {
            0 => MountRequirement::Any,
            1 => MountRequirement::EnvVar,
            2 => MountRequirement::File,
            n => MountRequirement::Unknown(n),
        })
    }

    /// A number-like token: digits, letters, `.`, and a sign after an exponent.
    fn number_token(&mut self) -> String {
        let mut token = String::new();
        if !self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
            return token;
        }
        while let Some(c) = self.peek() {
            let sign_after_exponent = matches!(c, '+' | '-')
                && token.ends_with(['e', 'E'])
                && !token.starts_with("0x")
                && !token.starts_with("0X");
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || sign_after_exponent {
                token.push(c);
                self.at += 1;
            } else {
                break;
            }
        }
        token
    }

    /// Skips the value of a field this version does not know: `: scalar`,
    /// `: [list]`, or a message in `{}` / `<>` (its `:` optional).
    fn skip_field_value(&mut self, name: &str, depth: usize) -> Result<(), SecretError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!(
                "values are nested more than {MAX_DEPTH} levels deep"
            )));
        }
        self.skip_blank();
        let colon = self.peek() == Some(':');
        if colon {
            self.at += 1;
            self.skip_blank();
        }
        match self.peek() {
            Some('{' | '<') => self.skip_message(depth + 1),
            Some('[') if colon => {
                self.at += 1;
                self.skip_blank();
                if self.peek() == Some(']') {
                    self.at += 1;
                    return Ok(());
                }
                loop {
                    self.skip_blank();
                    if matches!(self.peek(), Some('{' | '<')) {
                        self.skip_message(depth + 1)?;
                    } else {
                        self.skip_scalar()?;
                    }
                    self.skip_blank();
                    match self.bump() {
                        Some(',') => continue,
                        Some(']') => return Ok(()),
                        _ => {
                            self.at = self.at.saturating_sub(1);
                            return Err(self.error(format!(
                                "expected ',' or ']' in the list of field {name:?}, found {}",
                                self.found()
                            )));
                        }
                    }
                }
            }
            _ if colon => self.skip_scalar(),
            _ => Err(self.error(format!(
                "expected ':' after field {name:?}, found {}",
                self.found()
            ))),
        }
    }

    /// `{ fields }` or `< fields >`.
    fn skip_message(&mut self, depth: usize) -> Result<(), SecretError> {
        let start = self.at;
        let close = match self.bump() {
            Some('{') => '}',
            Some('<') => '>',
            _ => return Err(self.error_at(start, "expected '{' or '<'".to_string())),
        };
        loop {
            self.skip_blank();
            match self.peek() {
                Some(c) if c == close => {
                    self.at += 1;
                    return Ok(());
                }
                None => {
                    return Err(self.error_at(start, format!("missing {close:?} for this message")))
                }
                Some(_) => {
                    let name = self.field_name()?;
                    self.skip_field_value(&name, depth)?;
                    self.optional_separator();
                }
            }
        }
    }

    /// A string (adjacent ones joined), identifier, or signed number.
    fn skip_scalar(&mut self) -> Result<(), SecretError> {
        match self.peek() {
            Some('"' | '\'') => {
                let mut sink = Vec::new();
                while matches!(self.peek(), Some('"' | '\'')) {
                    self.string_literal(&mut sink)?;
                    self.skip_blank();
                }
                Ok(())
            }
            Some('-') => {
                self.at += 1;
                self.skip_blank();
                if self.identifier().is_some() || !self.number_token().is_empty() {
                    Ok(())
                } else {
                    Err(self.error(format!("expected a number, found {}", self.found())))
                }
            }
            _ => {
                if self.identifier().is_some() || !self.number_token().is_empty() {
                    Ok(())
                } else {
                    Err(self.error(format!("expected a value, found {}", self.found())))
                }
            }
        }
    }
}

/// True when the pod asks for secrets: the label, and secrets enabled.
pub fn wanted(settings: &SecretsSettings, pod: &Value) -> bool {
    settings.enabled && string_map(pod, "labels").get(LABEL) == Some(&LABEL_VALUE)
}

/// The pod's secret requests `(annotation key, value)`, by index
/// (`s2` before `s10`), then by key.
pub fn requests(pod: &Value) -> Vec<(&str, &str)> {
    let mut found: Vec<(&str, &str)> = string_map(pod, "annotations")
        .into_iter()
        .filter(|(k, _)| k.starts_with(ANNOTATION_PREFIX))
        .collect();
    found.sort_by_key(|(k, _)| {
        let index = k
            .strip_prefix(ANNOTATION_PREFIX)
            .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
            .map(|i| i.trim_start_matches('0'))
            .map(|i| (i.len(), i.to_string()));
        (index.is_none(), index, k.to_string())
    });
    found
}

/// The injections for a labelled pod's secret requests; every problem is
/// a denial or a warning in `findings`, prefixed with the pod's reference.
pub fn resolve(
    settings: &SecretsSettings,
    pod: &Value,
    pod_ref: &str,
    findings: &mut Findings,
) -> Vec<Injection> {
    let mut secrets = Vec::new();
    for (annotation, value) in requests(pod) {
        let deny = |findings: &mut Findings, what: String| {
            findings
                .denials
                .push(format!("annotation {annotation:?}: {what}"));
        };
        let secret = match decode_secret(value) {
            Ok(secret) => secret,
            Err(error) => {
                deny(findings, error.to_string());
                continue;
            }
        };
        for field in &secret.unknown_fields {
            findings.warnings.push(format!(
                "pod {pod_ref}: annotation {annotation:?}: unknown field {field:?} of the flyteidl Secret ignored"
            ));
        }
        let problems = check(settings.manager, &secret);
        if problems.is_empty() {
            secrets.push((annotation, secret));
        } else {
            deny(findings, problems.join(", "));
        }
    }
    if !findings.denials.is_empty() || secrets.is_empty() {
        return Vec::new();
    }
    match settings.manager {
        SecretManager::Kubernetes => kubernetes(&secrets, findings),
        SecretManager::Vault => {
            let injection = vault_injection(&settings.vault.role, &secrets, findings);
            if findings.denials.is_empty() {
                vec![injection]
            } else {
                Vec::new()
            }
        }
    }
}

/// What the manager cannot serve in this secret, empty when it can.
fn check(manager: SecretManager, secret: &Secret) -> Vec<String> {
    let mut problems = Vec::new();
    let group = &secret.group;
    let key = &secret.key;
    if group.is_empty() {
        problems.push("the secret has no group".to_string());
    }
    if key.is_empty() {
        problems.push(format!(
            "the secret has no key (both group and key are required{})",
            if group.is_empty() {
                String::new()
            } else {
                format!("; group is {group:?}")
            }
        ));
    }
    if let MountRequirement::Unknown(n) = secret.mount_requirement {
        problems.push(format!(
            "mount_requirement {n} is not ANY (0), ENV_VAR (1) or FILE (2)"
        ));
    }
    if !secret.env_var.is_empty() && !is_env_name(&secret.env_var) {
        problems.push(format!(
            "env_var {:?} is not a valid environment variable name",
            secret.env_var
        ));
    }
    match manager {
        SecretManager::Kubernetes => {
            if !group.is_empty() && !is_dns_subdomain(group) {
                problems.push(format!(
                    "group {group:?} is not a Kubernetes Secret name (lowercase letters, digits, '-' and '.', at most 253)"
                ));
            }
            if !key.is_empty() && !is_secret_key(key) {
                problems.push(format!(
                    "key {key:?} is not a Kubernetes Secret key (letters, digits, '-', '_' and '.', not \".\" or \"..\")"
                ));
            }
        }
        SecretManager::Vault => {
            if secret.mount_requirement == MountRequirement::EnvVar {
                problems.push(
                    "mount_requirement ENV_VAR is not supported by the Vault secret manager (use FILE or ANY)"
                        .to_string(),
                );
            }
            for (field, value) in [("group", group), ("key", key)] {
                if value
                    .chars()
                    .any(|c| c == '"' || c == '\\' || c.is_control())
                {
                    problems.push(format!(
                        "{field} {value:?} cannot be quoted in a Vault Agent template (it has '\"', '\\' or a control character)"
                    ));
                }
            }
        }
    }
    problems
}

/// Kubernetes' DNS-1123 subdomain (Secret names).
fn is_dns_subdomain(value: &str) -> bool {
    value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Kubernetes' Secret data key (`IsConfigMapKey`).
fn is_secret_key(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        && value != "."
        && value != ".."
        && !value.starts_with("..")
}

/// `flyte-secret-<readable group>-<8 hex of sha256(group)>`: a DNS label
/// (at most 62 characters) for any group, the same on every pass.
pub fn volume_name(group: &str) -> String {
    let digest = Sha256::digest(group.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let readable: String = group
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let readable = readable.trim_matches('-');
    if readable.is_empty() {
        format!("flyte-secret-{hash}")
    } else {
        format!("flyte-secret-{readable}-{hash}")
    }
}

/// `/etc/flyte/secrets/<lower(group)>` (ASCII: Unicode case tables cost
/// ~38 KB of wasm, and Kubernetes Secret names are ASCII).
pub fn mount_path(group: &str) -> String {
    format!("{SECRETS_DIR}/{}", group.to_ascii_lowercase())
}

/// `_FSEC_<GROUP>_<KEY>`, upper-cased as upstream (`strings.ToUpper`; the
/// Kubernetes manager only accepts ASCII groups and keys).
pub fn env_name(group: &str, key: &str) -> String {
    format!("{ENV_PREFIX}{group}_{key}").to_ascii_uppercase()
}

/// Each env var its own group (first writer wins per name), without
/// repeating a name within one injection.
fn push_env(groups: &mut Vec<Vec<Value>>, entry: Value) {
    let name = entry.get("name").cloned();
    if !groups
        .iter()
        .any(|g| g.iter().any(|e| e.get("name") == name.as_ref()))
    {
        groups.push(vec![entry]);
    }
}

/// What each request claims, by name: an env var (or a Vault file) that two
/// requests want with different contents would silently give a task the
/// other secret's value (upstream: first writer wins), so it is a denial.
#[derive(Default)]
struct Claims<'a>(BTreeMap<String, (&'a str, Value)>);

impl<'a> Claims<'a> {
    fn claim(
        &mut self,
        annotation: &'a str,
        what: &str,
        name: &str,
        value: Value,
        findings: &mut Findings,
    ) {
        match self.0.get(name) {
            Some((other, taken)) if *taken != value => findings.denials.push(format!(
                "annotation {annotation:?}: {what} {name:?} is also asked for by annotation {other:?}, for another secret"
            )),
            Some(_) => {}
            None => {
                self.0.insert(name.to_string(), (annotation, value));
            }
        }
    }
}

/// The file secrets of one group: its injection and the volume's items.
struct GroupFiles<'a> {
    injection: usize,
    /// `(key, lower(key))`, in request order.
    items: Vec<(&'a str, String)>,
}

/// One injection per `ENV_VAR` secret and one per group of file secrets,
/// in the order the requests come.
fn kubernetes(secrets: &[(&str, Secret)], findings: &mut Findings) -> Vec<Injection> {
    let mut injections: Vec<Injection> = Vec::new();
    let mut claims = Claims::default();
    let mut groups: BTreeMap<&str, GroupFiles> = BTreeMap::new();
    for (annotation, secret) in secrets {
        let (group, key) = (secret.group.as_str(), secret.key.as_str());
        if secret.mount_requirement == MountRequirement::EnvVar {
            let source = json!({"secretKeyRef": {"name": group, "key": key, "optional": true}});
            let mut env = Vec::new();
            let mut names = vec![env_name(group, key)];
            if !secret.env_var.is_empty() {
                names.push(secret.env_var.clone());
            }
            for name in names {
                claims.claim(annotation, "env var", &name, source.clone(), findings);
                push_env(&mut env, json!({"name": name, "valueFrom": source}));
            }
            push_env(&mut env, env_value(env::ENV_PREFIX, ENV_PREFIX));
            injections.push(Injection {
                env_groups: env,
                ..flyte_injection(group)
            });
            continue;
        }
        let path = key.to_ascii_lowercase();
        let files = groups.entry(group).or_insert_with(|| {
            let mut env = Vec::new();
            push_env(&mut env, env_value(env::DEFAULT_DIR, SECRETS_DIR));
            push_env(&mut env, env_value(env::FILE_PREFIX, ""));
            injections.push(Injection {
                mounts: vec![Mount {
                    volume: volume_name(group),
                    path: mount_path(group),
                }],
                env_groups: env,
                ..flyte_injection(group)
            });
            GroupFiles {
                injection: injections.len() - 1,
                items: Vec::new(),
            }
        });
        let same_file = files
            .items
            .iter()
            .find(|(_, p)| *p == path)
            .map(|(k, _)| *k);
        match same_file {
            Some(other) if other != key => findings.denials.push(format!(
                "annotation {annotation:?}: key {key:?} of group {group:?} would be the same file as key {other:?} ({}/{path})",
                mount_path(group)
            )),
            Some(_) => {}
            None => files.items.push((key, path.clone())),
        }
        if !secret.env_var.is_empty() {
            let file = format!("{}/{path}", mount_path(group));
            claims.claim(
                annotation,
                "env var",
                &secret.env_var,
                json!(file),
                findings,
            );
            if let Some(injection) = injections.get_mut(files.injection) {
                push_env(&mut injection.env_groups, env_value(&secret.env_var, &file));
            }
        }
    }
    if !findings.denials.is_empty() {
        return Vec::new();
    }
    for (group, files) in groups {
        if let Some(injection) = injections.get_mut(files.injection) {
            let items: Vec<Value> = files
                .items
                .iter()
                .map(|(key, path)| json!({"key": key, "path": path}))
                .collect();
            injection.volumes.push(json!({
                "name": volume_name(group),
                "secret": {"secretName": group, "items": items, "optional": true},
            }));
        }
    }
    injections
}

fn flyte_injection(group: &str) -> Injection {
    Injection {
        gives: format!("secret group {group:?}"),
        ..Injection::new("Flyte")
    }
}

/// `flyte-<16 hex of sha256(group, group_version, key)>`: upstream's
/// random UUID made deterministic.
pub fn vault_id(secret: &Secret) -> String {
    let mut hasher = Sha256::new();
    for part in [&secret.group, &secret.group_version, &secret.key] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("flyte-{hex}")
}

/// The Vault Agent template that extracts the key (upstream's text; `db`
/// has none, anything but `kv1` reads KV v2 as upstream's default
/// `kvVersion: 2`).
pub fn vault_template(secret: &Secret) -> Option<String> {
    let query = match secret.group_version.as_str() {
        "db" => return None,
        "kv1" => ".Data",
        _ => ".Data.data",
    };
    let key = &secret.key;
    let group = &secret.group;
    let identifier = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    Some(if identifier {
        format!("{{{{- with secret \"{group}\" -}}}}{{{{ {query}.{key} }}}}{{{{- end -}}}}")
    } else {
        format!(
            "{{{{- with secret \"{group}\" -}}}}{{{{ index {query} \"{key}\" }}}}{{{{- end -}}}}"
        )
    })
}

fn vault_injection<'a>(
    role: &str,
    secrets: &'a [(&'a str, Secret)],
    findings: &mut Findings,
) -> Injection {
    let mut claims = Claims::default();
    let mut annotations = vec![
        (vault::AGENT_INJECT.to_string(), "true".to_string()),
        (
            vault::SECRET_VOLUME_PATH.to_string(),
            SECRETS_DIR.to_string(),
        ),
        (vault::ROLE.to_string(), role.to_string()),
        (vault::PRE_POPULATE_ONLY.to_string(), "true".to_string()),
    ];
    let mut env = Vec::new();
    push_env(&mut env, env_value(env::DEFAULT_DIR, SECRETS_DIR));
    push_env(&mut env, env_value(env::FILE_PREFIX, ""));
    for (annotation, secret) in secrets {
        let id = vault_id(secret);
        let file = format!("{}/{}", secret.group, secret.key);
        claims.claim(annotation, "Vault Agent file", &file, json!(id), findings);
        let mut add = |prefix: &str, value: String| {
            let key = format!("{prefix}{id}");
            if !annotations.iter().any(|(k, _)| *k == key) {
                annotations.push((key, value));
            }
        };
        add(vault::INJECT_SECRET, secret.group.clone());
        add(vault::INJECT_FILE, file.clone());
        if let Some(template) = vault_template(secret) {
            add(vault::INJECT_TEMPLATE, template);
        }
        if !secret.env_var.is_empty() {
            let path = format!("{SECRETS_DIR}/{file}");
            claims.claim(
                annotation,
                "env var",
                &secret.env_var,
                json!(path),
                findings,
            );
            push_env(&mut env, env_value(&secret.env_var, &path));
        }
    }
    Injection {
        env_groups: env,
        default_annotations: annotations,
        gives: "secrets".to_string(),
        ..Injection::new("Flyte Vault")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podedit;
    use rstest::rstest;

    /// flytekit's own encoding of the seed's examples: `text_format.MessageToString`
    /// of the flyteidl Secret, then base32 in Flyte's alphabet without padding
    /// (computed with python protobuf; Go's `proto.MarshalTextString` prints the same).
    const DB_PASSWORD: &str = "m4zg54lqhiqcezdcfvrxezlemvxhi1lbnrzsectlmv3tuibcobqxg32xn4zgiiqknvxxk2tul4zgk3lvnfzgk2lfnz1duicfjzlf5vsbkifgk2twl42gc3r1eareiqs6kbavgu1xj4jeiiqk";
    const TLS_KEY: &str = "m4zg54lqhiqce2lzfvrwk3tuomrau12fpe4caitunrzs312fperau2lpovxhix2smvyxk1lsmvwwk2tuhiqemskmiufgk2twl42gc3r1earfitctl4fukwk6kbavisbcbi";

    fn secret(group: &str, key: &str, mount: MountRequirement, env_var: &str) -> Secret {
        Secret {
            group: group.into(),
            key: key.into(),
            mount_requirement: mount,
            env_var: env_var.into(),
            ..Secret::default()
        }
    }

    #[rstest]
    #[case::env_var_example(
        DB_PASSWORD,
        secret("db-credentials", "password", MountRequirement::EnvVar, "DB_PASSWORD")
    )]
    #[case::file_example(
        TLS_KEY,
        secret("my-certs", "tls.key", MountRequirement::File, "TLS_KEY_PATH")
    )]
    fn decodes_flytekits_encoding(#[case] value: &str, #[case] expected: Secret) {
        assert_eq!(decode_secret(value), Ok(expected));
    }

    #[test]
    fn encodes_as_flytepropeller() {
        let text = "group: \"db-credentials\"\nkey: \"password\"\nmount_requirement: ENV_VAR\nenv_var: \"DB_PASSWORD\"\n";
        assert_eq!(encode_text(text), DB_PASSWORD);
        // Newlines inside the value are ignored, as Go's decoder strips them.
        let wrapped = format!("{}\n{}\r\n", &DB_PASSWORD[..40], &DB_PASSWORD[40..]);
        assert_eq!(decode_secret(&wrapped), decode_secret(DB_PASSWORD));
    }

    #[rstest]
    #[case::one_line(r#"group: "g" key: "k" mount_requirement: FILE"#)]
    #[case::any_order_and_spacing("  mount_requirement :FILE\n\n\tkey:\"k\"   group  :  \"g\"  ")]
    #[case::separators(r#"group: "g", key: "k"; mount_requirement: FILE,"#)]
    #[case::comments("# requested by flytekit\ngroup: \"g\" # the Secret\nkey: 'k'\nmount_requirement: 2 # FILE\n")]
    #[case::single_quotes("group: 'g' key: 'k' mount_requirement: FILE")]
    #[case::concatenation(r#"group: "" 'g' key: "k" "" mount_requirement: 0x2"#)]
    #[case::octal_number("group: 'g' key: 'k' mount_requirement: 02")]
    fn text_format_is_parsed_leniently(#[case] text: &str) {
        assert_eq!(
            parse_text(text),
            Ok(secret("g", "k", MountRequirement::File, ""))
        );
    }

    #[rstest]
    #[case::newline_tab(r#"key: "a\nb\tc""#, "a\nb\tc")]
    #[case::quotes(r#"key: "\"x\" \'y\'""#, "\"x\" 'y'")]
    #[case::single_quoted_double(r#"key: 'say "hi"'"#, "say \"hi\"")]
    #[case::backslash(r#"key: "a\\b""#, "a\\b")]
    #[case::octal(r#"key: "\101\60\7""#, "A0\u{7}")]
    #[case::hex(r#"key: "\x41\x4a\x7""#, "AJ\u{7}")]
    #[case::utf8_bytes(r#"key: "\303\251""#, "é")]
    #[case::unicode(r#"key: "\u00e9\U0001F600""#, "é😀")]
    #[case::raw_utf8(r#"key: "é""#, "é")]
    #[case::others(r#"key: "\a\b\f\v\r\?""#, "\u{7}\u{8}\u{c}\u{b}\r?")]
    fn escapes(#[case] text: &str, #[case] key: &str) {
        assert_eq!(parse_text(text).map(|s| s.key), Ok(key.to_string()));
    }

    #[rstest]
    #[case::default_any("group: 'g'", MountRequirement::Any)]
    #[case::any_name("mount_requirement: ANY", MountRequirement::Any)]
    #[case::env_var_number("mount_requirement: 1", MountRequirement::EnvVar)]
    #[case::unknown_number("mount_requirement: 7", MountRequirement::Unknown(7))]
    #[case::negative("mount_requirement: -1", MountRequirement::Unknown(-1))]
    fn mount_requirements(#[case] text: &str, #[case] expected: MountRequirement) {
        assert_eq!(parse_text(text).map(|s| s.mount_requirement), Ok(expected));
    }

    #[test]
    fn unknown_fields_are_skipped_and_named() {
        let text = r#"group: "g" future: 1.5e-3 flags: [A, -2, "x" 'y'] nested { a: 1 b < c: "}" > } [ext.v1/Thing]: {} other: [] key: "k""#;
        let parsed = parse_text(text).unwrap();
        assert_eq!((parsed.group.as_str(), parsed.key.as_str()), ("g", "k"));
        assert_eq!(
            parsed.unknown_fields,
            ["future", "flags", "nested", "[ext.v1/Thing]", "other"]
        );
    }

    #[rstest]
    #[case::missing_colon(
        "group \"g\"",
        "line 1 column 7: expected ':' after field \"group\", found '\"'"
    )]
    #[case::twice(
        "group: 'a'\ngroup: 'b'",
        "line 2 column 1: field \"group\" is set twice"
    )]
    #[case::unterminated("key: \"abc", "line 1 column 6: unterminated string")]
    #[case::newline_in_string("key: \"a\nb\"", "line 1 column 6: unterminated string")]
    #[case::unknown_escape(r#"key: "\q""#, "line 1 column 7: unknown escape \\q")]
    #[case::octal_too_big(r#"key: "\777""#, "octal escape \\777 is above \\377")]
    #[case::bad_hex(r#"key: "\xg""#, "\\x needs one or two hex digits")]
    #[case::surrogate(r#"key: "\ud800""#, "\\ud800 is not a Unicode scalar value")]
    #[case::invalid_utf8(r#"key: "\377""#, "field \"key\" is not UTF-8 text")]
    #[case::unknown_enum(
        "mount_requirement: SECRET",
        "mount_requirement \"SECRET\" is not ANY, ENV_VAR or FILE"
    )]
    #[case::enum_as_string(
        "mount_requirement: \"FILE\"",
        "mount_requirement expects ANY, ENV_VAR, FILE or a number, found '\"'"
    )]
    #[case::enum_out_of_range("mount_requirement: 4294967296", "is not an int32")]
    #[case::number_for_string("group: 12", "field \"group\" expects a quoted string, found '1'")]
    #[case::stray_brace("group: 'g' }", "expected a field name, found '}'")]
    #[case::unclosed_message("x { a: 1", "missing '}' for this message")]
    #[case::list_for_string("group: ['a']", "field \"group\" expects a quoted string, found '['")]
    fn syntax_errors(#[case] text: &str, #[case] expected: &str) {
        let err = parse_text(text).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }

    #[rstest]
    #[case::uppercase("M4ZG54LQ", "'M' at offset 0 is not in the alphabet")]
    #[case::padding("m4zg54lqhi======", "'=' at offset 10 is not in the alphabet")]
    #[case::digit_outside("m4zg54l7", "'7' at offset 7 is not in the alphabet")]
    #[case::length("m4zg54", "its length (6 symbols) is not one a base32 encoding has")]
    #[case::space(" m4zg54lq", "' ' at offset 0")]
    fn base32_errors(#[case] value: &str, #[case] expected: &str) {
        let err = decode_secret(value).unwrap_err().to_string();
        assert!(
            err.starts_with("is not base32 with Flyte's alphabet") && err.contains(expected),
            "{err}"
        );
    }

    #[test]
    fn not_utf8_and_deep_nesting_are_errors() {
        assert_eq!(
            decode_secret(&encode_bytes(&[0xff, 0xfe])),
            Err(SecretError::NotUtf8)
        );
        let deep = format!("x {}{}", "{ y ".repeat(100), "}".repeat(100));
        let err = parse_text(&deep).unwrap_err().to_string();
        assert!(err.contains("nested more than 32 levels"), "{err}");
    }

    /// The vetted codec, as flytepropeller's Go `base32.NewEncoding(...).WithPadding(NoPadding)`.
    fn vetted() -> data_encoding::Encoding {
        let mut spec = data_encoding::Specification::new();
        spec.symbols.push_str(ALPHABET);
        spec.encoding().unwrap()
    }

    fn encode_bytes(bytes: &[u8]) -> String {
        vetted().encode(bytes)
    }

    #[test]
    fn base32_agrees_with_data_encoding() {
        let mut bytes = Vec::new();
        for n in 0..600u32 {
            bytes.push((n.wrapping_mul(2_654_435_761) >> 13) as u8);
            let encoded = vetted().encode(&bytes);
            assert_eq!(base32_decode(&encoded).unwrap(), bytes);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                assert_eq!(encode_text(text), encoded);
            }
        }
        // The lengths no encoder produces are refused, as the vetted decoder does.
        for len in 0..40 {
            let value: String = "aaaaaaaa".chars().cycle().take(len).collect();
            let valid = !matches!(len % 8, 1 | 3 | 6);
            assert_eq!(base32_decode(&value).is_ok(), valid, "{len}");
            assert_eq!(vetted().decode(value.as_bytes()).is_ok(), valid, "{len}");
        }
    }

    /// A cheap deterministic fuzz: arbitrary text from the parser's
    /// interesting characters, and its base32, never panic.
    #[test]
    fn never_panics_on_arbitrary_input() {
        let pieces = [
            "group",
            "key",
            "mount_requirement",
            "env_var",
            ":",
            " ",
            "\n",
            "\"",
            "'",
            "\\",
            "\\x",
            "\\7",
            "\\u",
            "{",
            "}",
            "<",
            ">",
            "[",
            "]",
            ",",
            ";",
            "#",
            "-",
            "0x",
            "9",
            "é",
            "\u{0}",
            "FILE",
            "e",
            "+",
            ".",
            "/",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut text = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(pieces[(state % pieces.len() as u64) as usize]);
            }
            let _ = parse_text(&text);
            let _ = decode_secret(&text);
            let _ = decode_secret(&encode_text(&text));
        }
    }

    #[test]
    fn volume_names_are_dns_labels_for_any_group() {
        let long = "a".repeat(200) + ".prod";
        for group in ["db-credentials", long.as_str(), "x.y", "-", "Weird_Group"] {
            let name = volume_name(group);
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{name}"
            );
            assert!(
                !name.ends_with('-') && name.starts_with("flyte-secret-"),
                "{name}"
            );
            assert_eq!(name, volume_name(group));
        }
        assert!(volume_name("db-credentials").starts_with("flyte-secret-db-credentials-"));
        assert_ne!(volume_name("a.b"), volume_name("a-b"));
    }

    #[rstest]
    #[case::kv1(
        "kv1",
        "password",
        Some(r#"{{- with secret "secret/db" -}}{{ .Data.password }}{{- end -}}"#)
    )]
    #[case::kv2(
        "kv2",
        "password",
        Some(r#"{{- with secret "secret/db" -}}{{ .Data.data.password }}{{- end -}}"#)
    )]
    #[case::default_is_kv2(
        "",
        "password",
        Some(r#"{{- with secret "secret/db" -}}{{ .Data.data.password }}{{- end -}}"#)
    )]
    #[case::db("db", "password", None)]
    #[case::non_identifier_key(
        "kv2",
        "tls.key",
        Some(r#"{{- with secret "secret/db" -}}{{ index .Data.data "tls.key" }}{{- end -}}"#)
    )]
    fn vault_templates(#[case] version: &str, #[case] key: &str, #[case] expected: Option<&str>) {
        let s = Secret {
            group: "secret/db".into(),
            group_version: version.into(),
            key: key.into(),
            ..Secret::default()
        };
        assert_eq!(vault_template(&s).as_deref(), expected);
    }

    #[test]
    fn vault_ids_are_stable_and_distinct() {
        let a = secret("g", "k", MountRequirement::File, "");
        let any = secret("g", "k", MountRequirement::Any, "X");
        let b = Secret {
            group_version: "kv1".into(),
            ..a.clone()
        };
        assert_eq!(vault_id(&a), vault_id(&any));
        assert_ne!(vault_id(&a), vault_id(&b));
        assert_eq!(vault_id(&a).len(), "flyte-".len() + 16);
        assert!(crate::settings::is_qualified_key(&format!(
            "{}{}",
            vault::INJECT_TEMPLATE,
            vault_id(&a)
        )));
    }

    fn pod(annotations: Value) -> Value {
        json!({
            "metadata": {"name": "t-0", "labels": {"inject-flyte-secrets": "true"}, "annotations": annotations},
            "spec": {
                "initContainers": [{"name": "init"}],
                "containers": [{"name": "main", "env": [{"name": "DB_PASSWORD", "value": "mine"}]}]
            }
        })
    }

    fn settings(raw: &str) -> SecretsSettings {
        crate::settings::Settings::from_json(raw.as_bytes())
            .unwrap()
            .secrets
    }

    fn run(settings: &SecretsSettings, pod: &mut Value) -> (bool, Findings) {
        let mut findings = Findings::default();
        let injections = resolve(settings, pod, "ns/t-0", &mut findings);
        let changed = podedit::apply(pod, &injections, "ns/t-0", &mut findings.warnings).unwrap();
        (changed, findings)
    }

    fn encode(text: &str) -> Value {
        Value::String(encode_text(text))
    }

    #[test]
    fn requests_come_by_index() {
        let p = pod(
            json!({"flyte.secrets/s10": "c", "flyte.secrets/s2": "b", "flyte.secrets/sx": "d", "flyte.secrets/s0": "a", "other": "z"}),
        );
        let keys: Vec<&str> = requests(&p).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "flyte.secrets/s0",
                "flyte.secrets/s2",
                "flyte.secrets/s10",
                "flyte.secrets/sx"
            ]
        );
    }

    #[test]
    fn kubernetes_env_var_secret() {
        let mut p = pod(json!({"flyte.secrets/s0": DB_PASSWORD}));
        let (changed, findings) = run(&SecretsSettings::default(), &mut p);
        assert!(changed && findings == Findings::default(), "{findings:?}");
        let source = json!({"secretKeyRef": {"name": "db-credentials", "key": "password", "optional": true}});
        assert_eq!(
            p["spec"]["initContainers"][0]["env"],
            json!([
                {"name": "_FSEC_DB-CREDENTIALS_PASSWORD", "valueFrom": source},
                {"name": "DB_PASSWORD", "valueFrom": source},
                {"name": "FLYTE_SECRETS_ENV_PREFIX", "value": "_FSEC_"},
            ])
        );
        // The user's DB_PASSWORD is kept (first writer wins).
        assert_eq!(
            p["spec"]["containers"][0]["env"][0],
            json!({"name": "DB_PASSWORD", "value": "mine"})
        );
        assert_eq!(p["spec"].get("volumes"), None);
        let again = p.clone();
        assert!(!run(&SecretsSettings::default(), &mut p).0);
        assert_eq!(p, again);
    }

    #[test]
    fn kubernetes_file_secrets_of_one_group_share_a_volume() {
        let mut p = pod(json!({
            "flyte.secrets/s0": encode("group: 'db' key: 'Password' mount_requirement: FILE env_var: 'PW_FILE'"),
            "flyte.secrets/s1": encode("group: 'db' key: 'user'"),
            "flyte.secrets/s2": encode("group: 'db' key: 'user' mount_requirement: FILE"),
        }));
        let (changed, findings) = run(&SecretsSettings::default(), &mut p);
        assert!(changed && findings == Findings::default(), "{findings:?}");
        let name = volume_name("db");
        assert_eq!(
            p["spec"]["volumes"],
            json!([{"name": name, "secret": {"secretName": "db", "optional": true, "items": [
                {"key": "Password", "path": "password"}, {"key": "user", "path": "user"}]}}])
        );
        for c in [&p["spec"]["initContainers"][0], &p["spec"]["containers"][0]] {
            assert_eq!(
                c["volumeMounts"],
                json!([{"name": name, "mountPath": "/etc/flyte/secrets/db", "readOnly": true}])
            );
        }
        assert_eq!(
            p["spec"]["initContainers"][0]["env"],
            json!([
                {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/etc/flyte/secrets"},
                {"name": "FLYTE_SECRETS_FILE_PREFIX", "value": ""},
                {"name": "PW_FILE", "value": "/etc/flyte/secrets/db/password"},
            ])
        );
        let again = p.clone();
        assert!(!run(&SecretsSettings::default(), &mut p).0);
        assert_eq!(p, again);
    }

    #[test]
    fn missing_items_are_merged_into_an_existing_volume() {
        let mut p = pod(
            json!({"flyte.secrets/s0": encode("group: 'db' key: 'a'"), "flyte.secrets/s1": encode("group: 'db' key: 'b'")}),
        );
        p["spec"]["volumes"] = json!([{"name": volume_name("db"), "secret": {"secretName": "db", "items": [{"key": "a", "path": "a", "mode": 256}]}}]);
        run(&SecretsSettings::default(), &mut p);
        assert_eq!(
            p["spec"]["volumes"],
            json!([{"name": volume_name("db"), "secret": {"secretName": "db", "items": [
                {"key": "a", "path": "a", "mode": 256}, {"key": "b", "path": "b"}]}}])
        );
    }

    #[rstest]
    #[case::no_key(
        "group: 'db'",
        "the secret has no key (both group and key are required; group is \"db\")"
    )]
    #[case::no_group("key: 'k'", "the secret has no group")]
    #[case::unknown_mount(
        "group: 'db' key: 'k' mount_requirement: 5",
        "mount_requirement 5 is not ANY (0), ENV_VAR (1) or FILE (2)"
    )]
    #[case::bad_group(
        "group: 'DB_Creds' key: 'k'",
        "group \"DB_Creds\" is not a Kubernetes Secret name"
    )]
    #[case::bad_key(
        "group: 'db' key: '../x'",
        "key \"../x\" is not a Kubernetes Secret key"
    )]
    #[case::bad_env_var(
        "group: 'db' key: 'k' env_var: '1X'",
        "env_var \"1X\" is not a valid environment variable name"
    )]
    fn kubernetes_denials(#[case] text: &str, #[case] expected: &str) {
        let mut p = pod(json!({"flyte.secrets/s3": encode(text)}));
        let before = p.clone();
        let (changed, findings) = run(&SecretsSettings::default(), &mut p);
        assert!(!changed && p == before);
        assert_eq!(findings.denials.len(), 1, "{findings:?}");
        let denial = &findings.denials[0];
        assert!(
            denial.starts_with(&format!("annotation \"flyte.secrets/s3\": {expected}")),
            "{denial}"
        );
    }

    #[test]
    fn two_keys_for_one_file_are_denied() {
        let mut p = pod(
            json!({"flyte.secrets/s0": encode("group: 'db' key: 'Key'"), "flyte.secrets/s1": encode("group: 'db' key: 'key'")}),
        );
        let (_, findings) = run(&SecretsSettings::default(), &mut p);
        assert_eq!(
            findings.denials,
            ["annotation \"flyte.secrets/s1\": key \"key\" of group \"db\" would be the same file as key \"Key\" (/etc/flyte/secrets/db/key)"]
        );
    }

    #[test]
    fn vault_annotations_are_added_when_absent() {
        let vault = settings(r#"{"secrets":{"manager":"vault","vault":{"role":"etl"}}}"#);
        let mut p = pod(json!({
            "flyte.secrets/s0": encode("group: 'secret/db' group_version: 'kv1' key: 'password' env_var: 'PW'"),
            "vault.hashicorp.com/role": "mine",
        }));
        let (changed, findings) = run(&vault, &mut p);
        assert!(changed && findings == Findings::default(), "{findings:?}");
        let s = secret("secret/db", "password", MountRequirement::Any, "PW");
        let id = vault_id(&Secret {
            group_version: "kv1".into(),
            ..s
        });
        let annotations = &p["metadata"]["annotations"];
        assert_eq!(annotations["vault.hashicorp.com/role"], "mine");
        assert_eq!(annotations["vault.hashicorp.com/agent-inject"], "true");
        assert_eq!(
            annotations["vault.hashicorp.com/agent-pre-populate-only"],
            "true"
        );
        assert_eq!(
            annotations["vault.hashicorp.com/secret-volume-path"],
            "/etc/flyte/secrets"
        );
        assert_eq!(
            annotations[format!("vault.hashicorp.com/agent-inject-secret-{id}")],
            "secret/db"
        );
        assert_eq!(
            annotations[format!("vault.hashicorp.com/agent-inject-file-{id}")],
            "secret/db/password"
        );
        assert_eq!(
            annotations[format!("vault.hashicorp.com/agent-inject-template-{id}")],
            r#"{{- with secret "secret/db" -}}{{ .Data.password }}{{- end -}}"#
        );
        assert_eq!(
            p["spec"]["initContainers"][0]["env"][2],
            json!({"name": "PW", "value": "/etc/flyte/secrets/secret/db/password"})
        );
        let again = p.clone();
        assert!(!run(&vault, &mut p).0);
        assert_eq!(p, again);
    }

    #[rstest]
    #[case::case_only(
        "group: 'db' key: 'password' mount_requirement: ENV_VAR",
        "group: 'db' key: 'PASSWORD' mount_requirement: ENV_VAR",
        "annotation \"flyte.secrets/s1\": env var \"_FSEC_DB_PASSWORD\" is also asked for by annotation \"flyte.secrets/s0\", for another secret"
    )]
    #[case::one_env_var_two_secrets(
        "group: 'db' key: 'a' mount_requirement: ENV_VAR env_var: 'X'",
        "group: 'db' key: 'b' env_var: 'X'",
        "annotation \"flyte.secrets/s1\": env var \"X\" is also asked for by annotation \"flyte.secrets/s0\", for another secret"
    )]
    fn one_name_for_two_secrets_is_denied(
        #[case] first: &str,
        #[case] second: &str,
        #[case] expected: &str,
    ) {
        let mut p =
            pod(json!({"flyte.secrets/s0": encode(first), "flyte.secrets/s1": encode(second)}));
        let (changed, findings) = run(&SecretsSettings::default(), &mut p);
        assert!(!changed);
        assert_eq!(findings.denials, [expected]);
        // The same request twice is no conflict.
        let mut p =
            pod(json!({"flyte.secrets/s0": encode(first), "flyte.secrets/s1": encode(first)}));
        assert_eq!(
            run(&SecretsSettings::default(), &mut p).1,
            Findings::default()
        );
    }

    #[test]
    fn vault_one_file_for_two_versions_is_denied() {
        let vault = settings(r#"{"secrets":{"manager":"vault"}}"#);
        let mut p = pod(json!({
            "flyte.secrets/s0": encode("group: 'secret/db' group_version: 'kv1' key: 'pw'"),
            "flyte.secrets/s1": encode("group: 'secret/db' group_version: 'kv2' key: 'pw'"),
        }));
        let (changed, findings) = run(&vault, &mut p);
        assert!(!changed);
        assert_eq!(
            findings.denials,
            ["annotation \"flyte.secrets/s1\": Vault Agent file \"secret/db/pw\" is also asked for by annotation \"flyte.secrets/s0\", for another secret"]
        );
    }

    #[test]
    fn vault_refuses_env_var_secrets() {
        let vault = settings(r#"{"secrets":{"manager":"vault"}}"#);
        let mut p = pod(json!({"flyte.secrets/s0": DB_PASSWORD}));
        let (_, findings) = run(&vault, &mut p);
        assert_eq!(
            findings.denials,
            ["annotation \"flyte.secrets/s0\": mount_requirement ENV_VAR is not supported by the Vault secret manager (use FILE or ANY)"]
        );
    }

    #[test]
    fn unknown_fields_warn() {
        let mut p = pod(
            json!({"flyte.secrets/s0": encode("group: 'db' key: 'k' mount_requirement: ENV_VAR labels { a: 'b' }")}),
        );
        let (changed, findings) = run(&SecretsSettings::default(), &mut p);
        assert!(changed && findings.denials.is_empty());
        assert_eq!(
            findings.warnings,
            ["pod ns/t-0: annotation \"flyte.secrets/s0\": unknown field \"labels\" of the flyteidl Secret ignored"]
        );
    }

    #[rstest]
    #[case::default("{}", true, SecretManager::Kubernetes, "flyte")]
    #[case::k8s_alias(
        r#"{"secrets":{"manager":"k8s"}}"#,
        true,
        SecretManager::Kubernetes,
        "flyte"
    )]
    #[case::vault(
        r#"{"secrets":{"enabled":false,"manager":"vault","vault":{"role":"r"}}}"#,
        false,
        SecretManager::Vault,
        "r"
    )]
    fn secrets_settings(
        #[case] raw: &str,
        #[case] enabled: bool,
        #[case] manager: SecretManager,
        #[case] role: &str,
    ) {
        let s = settings(raw);
        assert_eq!(
            (s.enabled, s.manager, s.vault.role.as_str()),
            (enabled, manager, role)
        );
    }

    #[rstest]
    #[case::unknown_field(
        r#"{"secrets":{"kvVersion":2}}"#,
        "unknown field `secrets.kvVersion`, expected one of `enabled`, `manager`, `vault`"
    )]
    #[case::unknown_vault_field(
        r#"{"secrets":{"vault":{"kv":2}}}"#,
        "unknown field `secrets.vault.kv`, expected `role`"
    )]
    #[case::bad_manager(
        r#"{"secrets":{"manager":"aws"}}"#,
        "secrets.manager: unknown variant `aws`, expected one of `k8s`, `kubernetes`, `vault`"
    )]
    #[case::empty_role(
        r#"{"secrets":{"vault":{"role":""}}}"#,
        "secrets.vault.role: must not be empty"
    )]
    fn invalid_secrets_settings(#[case] raw: &str, #[case] expected: &str) {
        let err = crate::settings::Settings::from_json(raw.as_bytes()).unwrap_err();
        assert_eq!(err, expected);
    }
}
