//! CXone over HTTPS (ARCHITECTURE.md, CXone): the API client behind the signal and context
//! ports, the token endpoint, and the platform's discovery documents. Every answer and
//! every failure to get one is mapped to a [`CxoneError`] here, in [`read_answer`] and
//! [`transport`].

pub mod client;
pub mod discovery;
pub mod fetch;

use std::time::Duration;

use crate::cxone::error::{CxoneError, Endpoint, from_response, retry_after};

pub use client::{HttpCxoneClient, http_client};
pub use discovery::Discovery;
pub use fetch::TokenFetcher;

/// Reads a CXone answer to its end: the body of a 2xx, else the error [`from_response`]
/// gives, with a `Retry-After` dated against `now_ms`.
pub async fn read_answer(
    response: reqwest::Response,
    endpoint: Endpoint,
    timeout: Duration,
    now_ms: i64,
) -> Result<Vec<u8>, CxoneError> {
    let status = response.status().as_u16();
    let after = retry_after(response.headers(), now_ms);
    let body = response.bytes().await.map_err(|e| transport(&e, timeout))?;
    match from_response(endpoint, status, after, &body) {
        None => Ok(body.to_vec()),
        Some(err) => Err(err),
    }
}

/// The one mapping of a failure to get an answer at all: a timeout, or no connection.
/// The message leaves out the URL, which may carry a query.
pub fn transport(err: &reqwest::Error, timeout: Duration) -> CxoneError {
    if err.is_timeout() {
        return CxoneError::Timeout(timeout);
    }
    if err.is_builder() {
        // Refused before anything left (a URL the client cannot send, say): the same
        // request can never succeed, so it is permanent, not "CXone unavailable".
        return CxoneError::Invalid {
            status: None,
            detail: "the request to CXone could not be built".to_owned(),
        };
    }
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    if parts.is_empty() {
        CxoneError::Unavailable("cannot reach CXone".to_owned())
    } else {
        CxoneError::Unavailable(format!("cannot reach CXone: {}", parts.join(": ")))
    }
}
