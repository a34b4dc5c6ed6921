//! The X-Nexus webhook signature: `X-Nexus-Signature-256: sha256=<hex HMAC-SHA256(secret,
//! "{timestamp}.{raw body}")>` with `X-Nexus-Timestamp: <unix seconds>`.
//!
//! Verification works on the raw bytes before anything parses them, tries every active
//! secret (rotation), bounds the timestamp both ways and compares in constant time.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::error::ErrorCode;

pub const SIGNATURE_HEADER: &str = "x-nexus-signature-256";
pub const TIMESTAMP_HEADER: &str = "x-nexus-timestamp";
pub const EVENT_TYPE_HEADER: &str = "x-nexus-event-type";
pub const DELIVERY_ID_HEADER: &str = "x-nexus-delivery-id";

/// Where a signed request carries its signature and timestamp: the webhook's X-Nexus
/// headers, or the Studio completion callback's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderNames {
    pub signature: &'static str,
    pub timestamp: &'static str,
}

/// CXone's signed webhooks.
pub const WEBHOOK_HEADERS: HeaderNames = HeaderNames {
    signature: SIGNATURE_HEADER,
    timestamp: TIMESTAMP_HEADER,
};

/// Studio's completion callbacks (`POST /callbacks/studio`), same scheme.
pub const CALLBACK_HEADERS: HeaderNames = HeaderNames {
    signature: "x-callback-signature-256",
    timestamp: "x-callback-timestamp",
};

const SCHEME: &str = "sha256=";

type HmacSha256 = Hmac<Sha256>;

/// Why a signed request was refused. Every variant is a 401 with its own code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("the signature must be sha256= followed by 64 hex digits")]
    BadFormat,
    #[error("the timestamp is not a whole number of seconds")]
    NotANumber,
    #[error("the timestamp is more than {0} s old")]
    TooOld(u64),
    #[error("the timestamp is more than {0} s in the future")]
    InFuture(u64),
    #[error("the signature does not match the body")]
    Mismatch,
}

impl SignatureError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::MissingHeader(_) => ErrorCode::MissingSignatureHeader,
            Self::BadFormat => ErrorCode::MalformedSignature,
            Self::NotANumber => ErrorCode::TimestampNotNumeric,
            Self::TooOld(_) => ErrorCode::TimestampTooOld,
            Self::InFuture(_) => ErrorCode::TimestampInFuture,
            Self::Mismatch => ErrorCode::SignatureMismatch,
        }
    }
}

impl From<SignatureError> for crate::error::ApiError {
    fn from(err: SignatureError) -> Self {
        Self::new(err.code(), err.to_string())
    }
}

/// A request that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub timestamp: i64,
    /// The 32 signature bytes, which identify this exact signed request (replay guard).
    pub signature: [u8; 32],
    /// Which secret matched: 0 is the current one.
    pub secret_index: usize,
}

/// The parts of a request that the signature covers or carries.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    /// The headers the values came from, for the error messages.
    pub headers: HeaderNames,
    pub signature: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub body: &'a [u8],
}

/// Checks the headers' shape and the timestamp window without touching a secret; returns
/// the parsed timestamp and signature bytes.
pub fn precheck(
    req: &Signed<'_>,
    now: i64,
    tolerance_secs: u64,
) -> Result<(i64, [u8; 32]), SignatureError> {
    let signature = req
        .signature
        .ok_or(SignatureError::MissingHeader(req.headers.signature))?;
    let timestamp = req
        .timestamp
        .ok_or(SignatureError::MissingHeader(req.headers.timestamp))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::NotANumber)?;
    let hex_part = signature
        .trim()
        .strip_prefix(SCHEME)
        .ok_or(SignatureError::BadFormat)?;
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| SignatureError::BadFormat)?;
    let tolerance = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
    if now.saturating_sub(ts) > tolerance {
        return Err(SignatureError::TooOld(tolerance_secs));
    }
    if ts.saturating_sub(now) > tolerance {
        return Err(SignatureError::InFuture(tolerance_secs));
    }
    Ok((ts, bytes))
}

/// Verifies `req` against each of `secrets` in turn.
pub fn verify(
    req: &Signed<'_>,
    secrets: &[SecretString],
    now: i64,
    tolerance_secs: u64,
) -> Result<Verified, SignatureError> {
    let (timestamp, signature) = precheck(req, now, tolerance_secs)?;
    let ts_text = req.timestamp.unwrap_or_default().trim();
    for (secret_index, secret) in secrets.iter().enumerate() {
        let Ok(mut mac) = HmacSha256::new_from_slice(secret.expose_secret().as_bytes()) else {
            continue;
        };
        mac.update(ts_text.as_bytes());
        mac.update(b".");
        mac.update(req.body);
        // `verify_slice` compares in constant time.
        if mac.verify_slice(&signature).is_ok() {
            return Ok(Verified {
                timestamp,
                signature,
                secret_index,
            });
        }
    }
    Err(SignatureError::Mismatch)
}

/// The `X-Nexus-Signature-256` value for `body` signed at `timestamp` with `secret`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("{SCHEME}{}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn secrets(values: &[&str]) -> Vec<SecretString> {
        values
            .iter()
            .map(|v| SecretString::from(v.to_string()))
            .collect()
    }

    fn signed<'a>(signature: &'a str, timestamp: &'a str, body: &'a [u8]) -> Signed<'a> {
        Signed {
            headers: WEBHOOK_HEADERS,
            signature: Some(signature),
            timestamp: Some(timestamp),
            body,
        }
    }

    #[test]
    fn a_request_signed_with_the_current_or_the_previous_secret_verifies_naming_which() {
        let rotation = secrets(&["current", "previous"]);
        for (index, secret) in ["current", "previous"].into_iter().enumerate() {
            let sig = sign(secret.as_bytes(), NOW, b"{}");
            let ok = verify(&signed(&sig, &NOW.to_string(), b"{}"), &rotation, NOW, 300).unwrap();
            assert_eq!((ok.secret_index, ok.timestamp), (index, NOW), "{secret}");
        }
    }

    #[test]
    fn a_tampered_body_does_not_verify() {
        let sig = sign(b"current", NOW, b"{\"a\":1}");
        let err = verify(
            &signed(&sig, &NOW.to_string(), b"{\"a\":2}"),
            &secrets(&["current"]),
            NOW,
            300,
        )
        .unwrap_err();
        assert_eq!(err, SignatureError::Mismatch);
        assert_eq!(err.code().as_str(), "signature_mismatch");
    }

    #[test]
    fn the_window_is_enforced_both_ways_and_inclusive_at_its_edge() {
        let s = secrets(&["k"]);
        for (ts, expected) in [
            (NOW - 300, None),
            (NOW + 300, None),
            (NOW - 301, Some(SignatureError::TooOld(300))),
            (NOW + 301, Some(SignatureError::InFuture(300))),
        ] {
            let sig = sign(b"k", ts, b"x");
            let got = verify(&signed(&sig, &ts.to_string(), b"x"), &s, NOW, 300).err();
            assert_eq!(got, expected, "ts offset {}", ts - NOW);
        }
    }

    #[test]
    fn malformed_headers_have_their_own_errors() {
        let s = secrets(&["k"]);
        let good = sign(b"k", NOW, b"x");
        let ts = NOW.to_string();
        let cases: Vec<(Signed<'_>, SignatureError)> = vec![
            (
                Signed {
                    headers: WEBHOOK_HEADERS,
                    signature: None,
                    timestamp: Some(&ts),
                    body: b"x",
                },
                SignatureError::MissingHeader(SIGNATURE_HEADER),
            ),
            (
                Signed {
                    headers: WEBHOOK_HEADERS,
                    signature: Some(&good),
                    timestamp: None,
                    body: b"x",
                },
                SignatureError::MissingHeader(TIMESTAMP_HEADER),
            ),
            (signed(&good, "soon", b"x"), SignatureError::NotANumber),
            (signed(&good, "1.5e9", b"x"), SignatureError::NotANumber),
            (signed(&good[7..], &ts, b"x"), SignatureError::BadFormat),
            (signed("sha256=zz", &ts, b"x"), SignatureError::BadFormat),
            (signed("sha1=abcd", &ts, b"x"), SignatureError::BadFormat),
        ];
        for (req, expected) in cases {
            assert_eq!(verify(&req, &s, NOW, 300).unwrap_err(), expected);
        }
    }

    #[test]
    fn a_missing_header_is_named_as_the_scheme_names_it() {
        let missing = Signed {
            headers: CALLBACK_HEADERS,
            signature: None,
            timestamp: Some("1"),
            body: b"x",
        };
        let err = verify(&missing, &secrets(&["k"]), NOW, 300).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the x-callback-signature-256 header is missing"
        );
        let missing = Signed {
            signature: Some("sha256=00"),
            timestamp: None,
            ..missing
        };
        assert_eq!(
            verify(&missing, &secrets(&["k"]), NOW, 300)
                .unwrap_err()
                .to_string(),
            "the x-callback-timestamp header is missing"
        );
    }

    #[test]
    fn no_secrets_means_nothing_verifies() {
        let sig = sign(b"k", NOW, b"x");
        assert_eq!(
            verify(&signed(&sig, &NOW.to_string(), b"x"), &[], NOW, 300).unwrap_err(),
            SignatureError::Mismatch
        );
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let s = secrets(&["k"]);
        let sig = sign(b"k", 0, b"x");
        assert!(matches!(
            verify(&signed(&sig, &i64::MIN.to_string(), b"x"), &s, NOW, 300),
            Err(SignatureError::TooOld(_))
        ));
        assert!(matches!(
            verify(
                &signed(&sig, &i64::MAX.to_string(), b"x"),
                &s,
                NOW,
                u64::MAX
            ),
            Err(SignatureError::Mismatch)
        ));
    }
}
