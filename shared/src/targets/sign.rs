//! Standard Webhooks signatures for HTTPS deliveries: `webhook-id`, `webhook-timestamp`
//! (Unix seconds) and `webhook-signature`, a space-separated list of `v1,<base64>` where
//! each is HMAC-SHA256 over `{id}.{timestamp}.{body}` with one active secret. A secret is
//! `whsec_` and the base64 of its key, as Standard Webhooks libraries take it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// The key bytes of a `whsec_…` secret, when it is one (24–64 bytes of key).
pub fn signing_key(secret: &str) -> Option<Vec<u8>> {
    let key = STANDARD.decode(secret.strip_prefix(PREFIX)?).ok()?;
    (24..=64).contains(&key.len()).then_some(key)
}

/// The `webhook-signature` value: one `v1,` signature per usable secret, current first,
/// so that a receiver holding either side of a rotation verifies it.
pub fn signature(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|s| signing_key(s))
        .filter_map(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            Some(format!(
                "v1,{}",
                STANDARD.encode(mac.finalize().into_bytes())
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A stable message id for one (delivery, target) pair: the same on every retry, so that
/// a receiver can drop a repeat.
pub fn message_id(job_id: &str) -> String {
    use sha2::Digest as _;
    let digest = Sha256::digest(job_id.as_bytes());
    format!("msg_{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn the_signature_matches_the_specification_example() {
        // Standard Webhooks' published example.
        let sig = signature(
            &[SECRET],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_active_secret_signs_and_a_bad_one_is_skipped() {
        let other = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=";
        let sig = signature(&[SECRET, "plain", other], "msg_1", 1, b"{}");
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn keys_must_be_whsec_base64_of_24_to_64_bytes() {
        assert!(signing_key(SECRET).is_some());
        assert!(signing_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
        assert!(signing_key("whsec_c2hvcnQ=").is_none());
        assert!(signing_key("whsec_!!!").is_none());
    }

    #[test]
    fn a_message_id_is_stable_per_pair() {
        assert_eq!(message_id("d1@audit"), message_id("d1@audit"));
        assert_ne!(message_id("d1@audit"), message_id("d1@crm"));
        assert_eq!(message_id("x").len(), 36);
    }
}
