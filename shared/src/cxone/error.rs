//! What can go wrong talking to CXone, each marked retryable or permanent.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CxoneError {
    #[error("CXone refused the credentials (401): {0}")]
    Unauthorized(String),
    #[error("CXone forbids this call (403): {0}")]
    Forbidden(String),
    #[error("CXone does not know it (404): {0}")]
    NotFound(String),
    #[error("{}", rate_limited(retry_after, *local))]
    RateLimited {
        retry_after: Option<Duration>,
        /// The outbound budget refused the call before it was sent.
        local: bool,
    },
    #[error("{}", invalid(*status, detail))]
    Invalid { status: Option<u16>, detail: String },
    #[error("CXone is unavailable: {0}")]
    Unavailable(String),
    #[error("CXone did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("CXone sent a response that cannot be used: {0}")]
    BadResponse(String),
}

fn rate_limited(retry_after: &Option<Duration>, local: bool) -> String {
    let who = if local {
        "the outbound CXone budget is spent"
    } else {
        "CXone rate-limited the call (429)"
    };
    match retry_after {
        Some(d) => format!("{who}; retry after {} ms", d.as_millis()),
        None => who.to_owned(),
    }
}

fn invalid(status: Option<u16>, detail: &str) -> String {
    match status {
        Some(s) => format!("CXone rejected the request ({s}): {detail}"),
        None => format!("the request cannot be sent to CXone: {detail}"),
    }
}

impl CxoneError {
    /// Whether the same call may succeed later. Permanent errors go to the DLQ.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Unavailable(_) | Self::Timeout(_)
        )
    }

    /// How long to wait before retrying, when CXone or the budget said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// At most this much of a response body goes into an error message.
pub(crate) const DETAIL_LIMIT: usize = 300;

/// A short, printable excerpt of a response body for an error message.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(DETAIL_LIMIT)
        .collect();
    if text.chars().count() > DETAIL_LIMIT {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("(no body)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_errors_are_retryable() {
        assert!(CxoneError::Unavailable("x".into()).is_retryable());
        assert!(CxoneError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(
            CxoneError::RateLimited {
                retry_after: None,
                local: false
            }
            .is_retryable()
        );
        for permanent in [
            CxoneError::Unauthorized("x".into()),
            CxoneError::Forbidden("x".into()),
            CxoneError::NotFound("x".into()),
            CxoneError::Invalid {
                status: Some(400),
                detail: "x".into(),
            },
            CxoneError::BadResponse("x".into()),
        ] {
            assert!(!permanent.is_retryable(), "{permanent}");
        }
    }

    #[test]
    fn messages_say_what_happened() {
        let e = CxoneError::RateLimited {
            retry_after: Some(Duration::from_millis(1500)),
            local: true,
        };
        assert_eq!(
            e.to_string(),
            "the outbound CXone budget is spent; retry after 1500 ms"
        );
        let e = CxoneError::Invalid {
            status: None,
            detail: "at most nine parameters".into(),
        };
        assert_eq!(
            e.to_string(),
            "the request cannot be sent to CXone: at most nine parameters"
        );
        assert_eq!(excerpt(b""), "(no body)");
        assert_eq!(excerpt(&[b'a'; 400]).chars().count(), DETAIL_LIMIT + 1);
    }
}
