//! The protobuf text format of a `flyteidl.core.Secret`, parsed as
//! protobuf's own parsers do (flytepropeller writes it with Go's
//! `proto.MarshalTextString`, flytekit with Python's `text_format`), except
//! that a field this flyteidl version does not know is skipped and named
//! instead of refused.

use super::base32::ALPHABET;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{decode_secret, encode_text};
    use rstest::rstest;

    fn secret(group: &str, key: &str, mount: MountRequirement) -> Secret {
        Secret {
            group: group.into(),
            key: key.into(),
            mount_requirement: mount,
            ..Secret::default()
        }
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
            Ok(secret("g", "k", MountRequirement::File))
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

    #[test]
    fn deep_nesting_is_an_error() {
        let deep = format!("x {}{}", "{ y ".repeat(100), "}".repeat(100));
        let err = parse_text(&deep).unwrap_err().to_string();
        assert!(err.contains("nested more than 32 levels"), "{err}");
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
}
