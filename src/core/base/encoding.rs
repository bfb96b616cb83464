//! Byte encodings for tokens and hashes: base64url without padding (tokens travel in headers
//! and URLs), standard base64 with padding (webhook secrets and signatures, as Standard Webhooks
//! writes them), lowercase hex (hashes stored in D1) and the SHA-256 hex digest.

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(BASE64URL[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
        }
    }
    out
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648 section 4) with `=` padding.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() { BASE64[((n >> (18 - 6 * i)) & 0x3f) as usize] as char } else { '=' });
        }
    }
    out
}

/// Decodes base64 in either alphabet (standard or URL-safe), padded or not; `None` for anything
/// else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0u32);
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    // A lone trailing character carries fewer than 8 bits: not base64.
    (count < 6).then_some(out)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes.iter().flat_map(|b| [DIGITS[(b >> 4) as usize] as char, DIGITS[(b & 0xf) as usize] as char]).collect()
}

/// The SHA-256 of `bytes` in hex: how token hashes and request fingerprints are stored.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

/// A query-string value decoded: `%XX` escapes and `+` as a space. `None` when an escape is
/// broken or the bytes are not UTF-8: such a value cannot be what the client meant.
pub fn query_value(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The problem with a text field holding control characters, as its error detail says it.
pub const CONTROL_CHARACTERS: &str = "must not contain control characters (NUL, escape codes...)";

/// Whether `text` holds control characters a person never types into it: NUL, escape codes and
/// the like. Line breaks and tabs count only when the field is `multiline`. Such characters in
/// a title or description are an attack on whatever displays or stores it, not content.
pub fn has_control_chars(text: &str, multiline: bool) -> bool {
    text.chars().any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_found_and_line_breaks_allowed_only_in_multiline_fields() {
        use super::has_control_chars;
        assert!(has_control_chars("a\u{0}b", true));
        assert!(has_control_chars("\u{1b}[31mred", true));
        assert!(has_control_chars("\u{7f}", true));
        assert!(has_control_chars("two\nlines", false));
        assert!(!has_control_chars("two\nlines\tand a tab", true));
        assert!(!has_control_chars("Ünïcödé — fine", false));
    }

    #[test]
    fn query_values_are_percent_decoded_and_broken_escapes_refused() {
        use super::query_value;
        assert_eq!(query_value("2026-11-24T10%3A00%3A00%2B01%3A00").as_deref(), Some("2026-11-24T10:00:00+01:00"));
        assert_eq!(query_value("a+b").as_deref(), Some("a b"));
        assert_eq!(query_value("%zz"), None);
        assert_eq!(query_value("%4"), None);
        assert_eq!(query_value("%ff"), None);
    }

    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors_and_decodes_both_alphabets() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected, "{input}");
            assert_eq!(base64_decode(expected).as_deref(), Some(input.as_bytes()), "{expected}");
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xfe]), "+//+");
        assert_eq!(base64_decode("-__-"), Some(vec![0xfb, 0xff, 0xfe]));
        assert_eq!(base64_decode("Zm9v!"), None);
        assert_eq!(base64_decode("Z"), None);
    }

    #[test]
    fn base64url_matches_rfc_4648_test_vectors_without_padding() {
        let cases = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64url(input.as_bytes()), expected, "{input}");
        }
        assert_eq!(base64url(&[0xfb, 0xff, 0xfe]), "-__-");
        assert_eq!(base64url(&[0u8; 32]).len(), 43);
    }

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
    }
}
