//! Who is calling: bearer tokens read from the `Authorization` header and checked in constant
//! time against the configured admin tokens.
//!
//! The shell reads the `ADMIN_TOKEN` secret and the header; this module decides. It never logs or
//! returns a token.

use crate::core::base::limits::{
    ADMIN_TOKENS_MAX, ADMIN_TOKEN_BYTES_MIN, AUTHORIZATION_HEADER_BYTES_MAX, TOKEN_BYTES_MAX,
};
use crate::core::edge::error::ApiError;

/// The admin tokens in force, parsed from the `ADMIN_TOKEN` secret: one token, or several
/// separated by commas or whitespace so that a new token can be added before the old one is
/// removed.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminTokens(Vec<Vec<u8>>);

impl std::fmt::Debug for AdminTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a token, not even in a test failure.
        write!(f, "AdminTokens({} configured)", self.0.len())
    }
}

impl AdminTokens {
    /// Parses the secret. Returns the usable tokens and a warning for each entry that was
    /// ignored (too short, too long, too many), phrased without the token itself.
    pub fn parse(secret: Option<&str>) -> (AdminTokens, Vec<String>) {
        let mut tokens = Vec::new();
        let mut warnings = Vec::new();
        let entries = secret.unwrap_or("").split(|c: char| c == ',' || c.is_whitespace());
        for (index, entry) in entries.filter(|e| !e.is_empty()).enumerate() {
            let position = index + 1;
            if entry.len() < ADMIN_TOKEN_BYTES_MIN {
                warnings.push(format!(
                    "ADMIN_TOKEN entry {position} is shorter than {ADMIN_TOKEN_BYTES_MIN} characters and is ignored"
                ));
            } else if entry.len() > TOKEN_BYTES_MAX {
                warnings.push(format!(
                    "ADMIN_TOKEN entry {position} is longer than {TOKEN_BYTES_MAX} characters and is ignored"
                ));
            } else if tokens.len() == ADMIN_TOKENS_MAX {
                warnings.push(format!(
                    "ADMIN_TOKEN lists more than {ADMIN_TOKENS_MAX} tokens; entry {position} is ignored"
                ));
            } else {
                tokens.push(entry.as_bytes().to_vec());
            }
        }
        if tokens.is_empty() {
            warnings.push("no usable ADMIN_TOKEN is configured: every admin request is refused".into());
        }
        (AdminTokens(tokens), warnings)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Random bytes in an agent token: 256 bits, unguessable even by an attacker who can try
/// tokens at line rate for years.
pub const AGENT_TOKEN_RANDOM_BYTES: usize = 32;

/// Prefix of agent tokens, so a leaked token is recognisable (and greppable) as switchyard's.
pub const AGENT_TOKEN_PREFIX: &str = "sya_";

/// A new agent token from random bytes the shell draws.
pub fn new_agent_token(random: [u8; AGENT_TOKEN_RANDOM_BYTES]) -> String {
    format!("{AGENT_TOKEN_PREFIX}{}", crate::core::base::encoding::base64url(&random))
}

/// What is stored for a token: its SHA-256, in hex. A leaked database does not leak tokens.
pub fn hash_token(token: &str) -> String {
    crate::core::base::encoding::sha256_hex(token.as_bytes())
}

/// A caller whose credentials were accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    /// A registered agent, by name, from its own token.
    Agent(String),
}

/// Reads `Authorization: Bearer <token>`. The scheme is case-insensitive (RFC 9110); the token
/// must be non-empty token68 characters.
pub fn bearer_token(header: Option<&str>) -> Result<&str, ApiError> {
    let unauthorized = |message: &str| ApiError::Unauthorized { message: message.to_string() };
    let header =
        header.ok_or_else(|| unauthorized("missing authorization header; send Authorization: Bearer <token>"))?;
    if header.len() > AUTHORIZATION_HEADER_BYTES_MAX {
        return Err(unauthorized("authorization header is too long"));
    }
    let (scheme, token) = header
        .trim()
        .split_once(' ')
        .ok_or_else(|| unauthorized("malformed authorization header; expected Bearer <token>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized("unsupported authorization scheme; expected Bearer <token>"));
    }
    let token = token.trim_start();
    let token68 = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
    if token.is_empty() || token.len() > TOKEN_BYTES_MAX || !token.bytes().all(token68) {
        return Err(unauthorized("malformed bearer token"));
    }
    Ok(token)
}

/// Accepts the request when its bearer token equals one of the admin tokens.
pub fn authenticate(header: Option<&str>, admin: &AdminTokens) -> Result<Principal, ApiError> {
    let token = bearer_token(header)?;
    if admin.accepts(token) {
        Ok(Principal::Admin)
    } else {
        Err(ApiError::Unauthorized { message: UNKNOWN_TOKEN.into() })
    }
}

/// The 401 message for a token that is no admin token, agent token or live session.
pub const UNKNOWN_TOKEN: &str = "unknown bearer token";

impl AdminTokens {
    /// Whether `token` is one of the admin tokens. Compares against every token, without
    /// stopping at a match, so that timing says nothing about which matched or how many there are.
    pub fn accepts(&self, token: &str) -> bool {
        let mut matched = false;
        for candidate in &self.0 {
            matched |= constant_time_eq(token.as_bytes(), candidate);
        }
        matched
    }

    /// Whether `hash` (SHA-256 hex) is the hash of one of the admin tokens, compared the same
    /// way: a session made from an admin token lives only while that token is configured.
    pub fn accepts_hash(&self, hash: &str) -> bool {
        let mut matched = false;
        for candidate in &self.0 {
            let candidate = crate::core::base::encoding::sha256_hex(candidate);
            matched |= constant_time_eq(hash.as_bytes(), candidate.as_bytes());
        }
        matched
    }
}

/// Compares `given` (from the caller) with `secret` in time that depends only on the secret's
/// length, never on where the two differ or on the caller's length.
pub fn constant_time_eq(given: &[u8], secret: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != secret.len());
    for (i, s) in secret.iter().enumerate() {
        // A shorter `given` is compared cyclically so the loop still touches every secret byte.
        let g = if given.is_empty() { 0 } else { given[i % given.len()] };
        difference |= g ^ s;
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-token";

    fn tokens(secret: &str) -> AdminTokens {
        AdminTokens::parse(Some(secret)).0
    }

    fn check(header: Option<&str>, expected: Result<Principal, &str>) {
        let got = authenticate(header, &tokens(TOKEN)).map_err(|e| e.message());
        match (&got, &expected) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert!(a.contains(b), "{header:?}: {a:?} should contain {b:?}"),
            _ => panic!("{header:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn bearer_headers_are_accepted_or_refused_with_a_reason() {
        check(Some("Bearer 0123456789abcdef-token"), Ok(Principal::Admin));
        check(Some("bearer 0123456789abcdef-token"), Ok(Principal::Admin));
        check(Some("BEARER   0123456789abcdef-token"), Ok(Principal::Admin));
        check(None, Err("missing authorization header"));
        check(Some(""), Err("malformed authorization header"));
        check(Some("Bearer"), Err("malformed authorization header"));
        check(Some("Bearer "), Err("malformed authorization header"));
        check(Some("Bearer  \t"), Err("malformed authorization header"));
        check(Some("Basic dXNlcjpwYXNz"), Err("unsupported authorization scheme"));
        check(Some("Bearer 0123456789abcdef-tokeN"), Err("unknown bearer token"));
        check(Some("Bearer 0123456789abcdef-token-and-more"), Err("unknown bearer token"));
        check(Some("Bearer 0123456789abcdef"), Err("unknown bearer token"));
        check(Some("Bearer tok\u{0}en"), Err("malformed bearer token"));
        check(Some("Bearer a b"), Err("malformed bearer token"));
        check(Some(&format!("Bearer {}", "a".repeat(600))), Err("authorization header is too long"));
        check(Some(&format!("Bearer {}", "a".repeat(300))), Err("malformed bearer token"));
    }

    #[test]
    fn several_admin_tokens_are_accepted_for_rotation() {
        let admin = tokens("old-token-0123456789, new-token-0123456789");
        assert_eq!(admin.len(), 2);
        assert_eq!(authenticate(Some("Bearer old-token-0123456789"), &admin), Ok(Principal::Admin));
        assert_eq!(authenticate(Some("Bearer new-token-0123456789"), &admin), Ok(Principal::Admin));
    }

    #[test]
    fn an_admin_tokens_hash_is_accepted_only_while_the_token_is_configured() {
        let admin = tokens("old-token-0123456789, new-token-0123456789");
        assert!(admin.accepts_hash(&hash_token("old-token-0123456789")));
        let rotated = tokens("new-token-0123456789");
        assert!(!rotated.accepts_hash(&hash_token("old-token-0123456789")));
        assert!(rotated.accepts_hash(&hash_token("new-token-0123456789")));
        assert!(!rotated.accepts_hash("not a hash"));
    }

    #[test]
    fn short_long_and_surplus_admin_tokens_are_ignored_with_a_warning_that_hides_them() {
        let secret = format!(
            "short, {}, {}",
            "x".repeat(300),
            (0..10).map(|i| format!("token-number-{i:04}")).collect::<Vec<_>>().join(",")
        );
        let (admin, warnings) = AdminTokens::parse(Some(&secret));
        assert_eq!(admin.len(), ADMIN_TOKENS_MAX);
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings.iter().all(|w| !w.contains("short") || w.contains("shorter")), "{warnings:?}");
        assert!(warnings.iter().all(|w| !w.contains("xxxx")));
    }

    #[test]
    fn with_no_admin_token_configured_nobody_is_admin() {
        let (admin, warnings) = AdminTokens::parse(None);
        assert!(admin.is_empty());
        assert_eq!(warnings.len(), 1);
        assert!(authenticate(Some("Bearer anything-at-all-0123"), &admin).is_err());
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        assert_eq!(format!("{:?}", tokens(TOKEN)), "AdminTokens(1 configured)");
    }

    #[test]
    fn agent_tokens_are_prefixed_base64url_and_stored_as_sha256() {
        let token = new_agent_token([0; AGENT_TOKEN_RANDOM_BYTES]);
        assert_eq!(token, format!("sya_{}", "A".repeat(43)));
        assert!(token.len() <= TOKEN_BYTES_MAX);
        assert!(bearer_token(Some(&format!("Bearer {token}"))).is_ok(), "usable as a bearer token");
        assert_eq!(hash_token("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn constant_time_eq_agrees_with_plain_equality() {
        let cases: [(&[u8], &[u8]); 7] = [
            (b"", b""),
            (b"a", b"a"),
            (b"a", b"b"),
            (b"abc", b"abcabc"),
            (b"abcabc", b"abc"),
            (b"", b"abc"),
            (b"secret", b"secret"),
        ];
        for (given, secret) in cases {
            assert_eq!(constant_time_eq(given, secret), given == secret, "{given:?} vs {secret:?}");
        }
    }
}
