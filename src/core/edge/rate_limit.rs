//! Rate limiting: which counters a request is charged to. A request counts against its client
//! address, and a request carrying a bearer token also against that token, valid or not, so
//! that a flood of guesses is stopped before any token is looked up. (The shell skips the
//! address for a token it knows without a lookup: that caller is bounded by its token's own
//! counter.)
//!
//! The counting itself is Cloudflare's rate-limiting binding (two of them, configured in
//! wrangler.jsonc); this module only names the keys. Keys never contain a token: a token is
//! charged under its hash.

use crate::core::base::encoding::sha256_hex;

/// The counter for a client address (`CF-Connecting-IP`, which Cloudflare sets; `unknown`
/// when a request has none, as some local tools send).
pub fn address_key(connecting_ip: Option<&str>) -> String {
    let ip = connecting_ip.map(str::trim).filter(|ip| !ip.is_empty() && ip.len() <= 64).unwrap_or("unknown");
    format!("address:{ip}")
}

/// The counter for a bearer token: the first 128 bits of its SHA-256, enough to keep tokens
/// apart and short as a key.
pub fn credential_key(token: &str) -> String {
    format!("credential:{}", &sha256_hex(token.as_bytes())[..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_charged_to_its_address_and_to_a_hash_of_its_token() {
        assert_eq!(address_key(Some("203.0.113.7")), "address:203.0.113.7");
        assert_eq!(address_key(None), "address:unknown");
        assert_eq!(address_key(Some("  ")), "address:unknown");
        assert_eq!(address_key(Some(&"9".repeat(100))), "address:unknown");
        let key = credential_key("sya_secret-token");
        assert!(key.starts_with("credential:") && key.len() == "credential:".len() + 32);
        assert!(!key.contains("secret"));
        assert_ne!(key, credential_key("sya_secret-tokeN"));
    }
}
