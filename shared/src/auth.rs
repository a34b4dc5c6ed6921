//! Shared-secret checks for callers that cannot sign (API keys, Cognigy tokens, callback
//! tokens).

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Whether `candidate` equals one of `keys`, in time that does not depend on where they
/// differ or on which key matched: both sides are hashed to a fixed length, and every key
/// is compared.
pub fn matches_any(candidate: &str, keys: &[SecretString]) -> bool {
    let want = Sha256::digest(candidate.as_bytes());
    let mut found = 0u8;
    for key in keys {
        let have = Sha256::digest(key.expose_secret().as_bytes());
        let diff = want
            .iter()
            .zip(have.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        found |= u8::from(diff == 0 && !key.expose_secret().is_empty());
    }
    found == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_configured_key_matches_and_nothing_else() {
        let keys = [SecretString::from("k-one"), SecretString::from("k-two")];
        assert!(matches_any("k-two", &keys));
        assert!(!matches_any("k-three", &keys));
        assert!(!matches_any("", &keys));
        assert!(!matches_any("", &[SecretString::from("")]));
        assert!(!matches_any("k-one", &[]));
    }
}
