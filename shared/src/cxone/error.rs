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
    /// A store the client depends on (the shared token, the rate budget) failed: not
    /// CXone's fault, and not a spent budget.
    #[error("{0}")]
    Store(String),
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
            Self::RateLimited { .. } | Self::Unavailable(_) | Self::Store(_) | Self::Timeout(_)
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

/// Which kind of CXone endpoint answered, since a 404 means different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// OIDC discovery, `cxone-configuration` and the token endpoint: a 404 there is
    /// CXone's problem (or a wrong issuer), and may pass.
    Auth,
    /// The API itself: a 404 means CXone does not know what was named (a contact that
    /// ended, a script or signal definition that does not exist).
    Api,
}

/// The one mapping from a CXone answer to an error: `None` for any 2xx (the platform's
/// success status is unconfirmed, so every 2xx counts), else the error its status means.
pub fn from_response(
    endpoint: Endpoint,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Option<CxoneError> {
    let detail = || excerpt(body);
    Some(match status {
        200..=299 => return None,
        401 => CxoneError::Unauthorized(detail()),
        403 => CxoneError::Forbidden(detail()),
        404 if endpoint == Endpoint::Auth => {
            CxoneError::Unavailable(format!("the CXone endpoint answered 404: {}", detail()))
        }
        404 => CxoneError::NotFound(detail()),
        429 => CxoneError::RateLimited {
            retry_after,
            local: false,
        },
        500..=599 => CxoneError::Unavailable(format!("status {status}: {}", detail())),
        _ => CxoneError::Invalid {
            status: Some(status),
            detail: detail(),
        },
    })
}

/// The longest wait a `Retry-After` is taken at: SQS cannot delay a message longer.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(900);

/// `Retry-After` as delay-seconds or as an HTTP date (RFC 9110 §10.2.3), capped at 900 s.
/// A date in the past means now; a value that is neither form is ignored.
pub fn retry_after(headers: &http::HeaderMap, now_ms: i64) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            let at_ms = at
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| i64::try_from(d.as_millis()).ok())?;
            Duration::from_millis(u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0))
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// At most this much of a response body goes into an error message.
pub(crate) const DETAIL_LIMIT: usize = 300;

/// A short, printable excerpt of a response body for an error message.
pub fn excerpt(body: &[u8]) -> String {
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

    fn headers(retry_after: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, retry_after.parse().unwrap());
        h
    }

    #[test]
    fn every_2xx_is_success_and_each_status_maps_to_its_error() {
        for status in [200, 202, 204] {
            assert_eq!(from_response(Endpoint::Api, status, None, b""), None);
        }
        let map = |endpoint, status| from_response(endpoint, status, None, b"x").unwrap();
        assert!(matches!(map(Endpoint::Api, 404), CxoneError::NotFound(_)));
        assert!(matches!(
            map(Endpoint::Auth, 404),
            CxoneError::Unavailable(_)
        ));
        assert!(matches!(
            map(Endpoint::Api, 401),
            CxoneError::Unauthorized(_)
        ));
        assert!(matches!(map(Endpoint::Api, 403), CxoneError::Forbidden(_)));
        assert!(matches!(
            map(Endpoint::Api, 503),
            CxoneError::Unavailable(_)
        ));
        assert!(matches!(
            map(Endpoint::Api, 422),
            CxoneError::Invalid {
                status: Some(422),
                ..
            }
        ));
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date_against_the_given_clock() {
        // 2026-11-22T09:20:00Z
        let now = 1_795_339_200_000;
        assert_eq!(
            retry_after(&headers("7"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers("Sun, 22 Nov 2026 09:20:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&headers("Sun, 22 Nov 2026 09:00:00 GMT"), now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(
            retry_after(&headers("86400"), now),
            Some(Duration::from_secs(900))
        );
        assert_eq!(retry_after(&headers("soon"), now), None);
        let err = from_response(Endpoint::Api, 429, retry_after(&headers("3"), now), b"").unwrap();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert!(err.is_retryable());
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
