//! Flyte's base32: the encoding of `flyte.secrets/s<i>` annotation values
//! (flytepropeller's `encoding.Base32Encoder`: the alphabet below, no padding).

/// flytepropeller's base32 alphabet (`encoding.Base32Encoder`), no padding.
pub const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz123456";

/// Flyte's base32 (`encoding.Base32Encoder`) as Go decodes it: case-sensitive,
/// no padding (`=` is not in the alphabet), `\r` and `\n` ignored
/// (`DecodeString` strips them), trailing bits not checked. Unlike Go, a
/// length no encoder produces (1, 3 or 6 symbols past a multiple of 8) is
/// refused rather than silently truncated. Hand-written rather than
/// `data_encoding`: this decoder is a few dozen lines, where that crate's
/// generic one would add ~46 KB to the module; the tests check it against
/// `data_encoding`.
pub fn decode(value: &str) -> Result<Vec<u8>, String> {
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
            return Err(what);
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
        return Err(format!(
            "its length ({symbols} symbols) is not one a base32 encoding has"
        ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::decode_secret;
    use crate::secrets::test_support::DB_PASSWORD;
    use rstest::rstest;

    /// The vetted codec, as flytepropeller's Go `base32.NewEncoding(...).WithPadding(NoPadding)`.
    fn vetted() -> data_encoding::Encoding {
        let mut spec = data_encoding::Specification::new();
        spec.symbols.push_str(ALPHABET);
        spec.encoding().unwrap()
    }

    #[test]
    fn agrees_with_data_encoding() {
        let mut bytes = Vec::new();
        for n in 0..600u32 {
            bytes.push((n.wrapping_mul(2_654_435_761) >> 13) as u8);
            let encoded = vetted().encode(&bytes);
            assert_eq!(decode(&encoded).unwrap(), bytes);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                assert_eq!(encode_text(text), encoded);
            }
        }
        // The lengths no encoder produces are refused, as the vetted decoder does.
        for len in 0..40 {
            let value: String = "aaaaaaaa".chars().cycle().take(len).collect();
            let valid = !matches!(len % 8, 1 | 3 | 6);
            assert_eq!(decode(&value).is_ok(), valid, "{len}");
            assert_eq!(vetted().decode(value.as_bytes()).is_ok(), valid, "{len}");
        }
    }

    #[rstest]
    #[case::uppercase("M4ZG54LQ", "'M' at offset 0 is not in the alphabet")]
    #[case::padding("m4zg54lqhi======", "'=' at offset 10 is not in the alphabet")]
    #[case::digit_outside("m4zg54l7", "'7' at offset 7 is not in the alphabet")]
    #[case::length("m4zg54", "its length (6 symbols) is not one a base32 encoding has")]
    #[case::space(" m4zg54lq", "' ' at offset 0")]
    fn errors(#[case] value: &str, #[case] expected: &str) {
        let err = decode(value).unwrap_err();
        assert!(err.contains(expected), "{err}");
    }

    #[test]
    fn newlines_are_ignored() {
        let encoded = encode_text("group: \"db\" key: \"pw\"");
        let wrapped = format!("{}\n{}\r\n", &encoded[..7], &encoded[7..]);
        assert_eq!(decode(&wrapped), decode(&encoded));
    }

    #[test]
    fn encodes_as_flytepropeller() {
        let text = "group: \"db-credentials\"\nkey: \"password\"\nmount_requirement: ENV_VAR\nenv_var: \"DB_PASSWORD\"\n";
        assert_eq!(encode_text(text), DB_PASSWORD);
        // Newlines inside the value are ignored, as Go's decoder strips them.
        let wrapped = format!("{}\n{}\r\n", &DB_PASSWORD[..40], &DB_PASSWORD[40..]);
        assert_eq!(decode_secret(&wrapped), decode_secret(DB_PASSWORD));
    }
}
