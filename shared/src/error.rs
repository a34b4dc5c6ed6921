//! The one mapping from errors to HTTP: a stable code, a status and a message safe to show.
//!
//! Body shape (ARCHITECTURE.md, Routes): `{"error": {"code": "signature_mismatch", "message": "…"}}`.
//! The cause chain of an internal error is logged, never returned.

use http::StatusCode;
use serde::{Serialize, Serializer};

/// Every error code a client can see. Codes are part of the API: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    MalformedBody,
    MissingDeliveryId,
    Unauthorized,
    MissingSignatureHeader,
    MalformedSignature,
    TimestampNotNumeric,
    TimestampTooOld,
    TimestampInFuture,
    SignatureMismatch,
    Replayed,
    InProgress,
    IdempotencyKeyReused,
    InvalidPayload,
    SignalNotFound,
    ExecutionNotFound,
    CxoneRejected,
    CxoneNotFound,
    CxoneRefused,
    ContactNotActive,
    InteractionNotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    NotImplemented,
    DependencyUnavailable,
    Internal,
}

impl ErrorCode {
    /// The stable string sent to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::MalformedBody => "malformed_body",
            Self::MissingDeliveryId => "missing_delivery_id",
            Self::Unauthorized => "unauthorized",
            Self::MissingSignatureHeader => "missing_signature_header",
            Self::MalformedSignature => "malformed_signature",
            Self::TimestampNotNumeric => "timestamp_not_numeric",
            Self::TimestampTooOld => "timestamp_too_old",
            Self::TimestampInFuture => "timestamp_in_future",
            Self::SignatureMismatch => "signature_mismatch",
            Self::Replayed => "replayed",
            Self::InProgress => "in_progress",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::InvalidPayload => "invalid_payload",
            Self::SignalNotFound => "signal_not_found",
            Self::ExecutionNotFound => "execution_not_found",
            Self::CxoneRejected => "cxone_rejected",
            Self::CxoneNotFound => "cxone_not_found",
            Self::CxoneRefused => "cxone_refused",
            Self::ContactNotActive => "contact_not_active",
            Self::InteractionNotFound => "interaction_not_found",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::NotImplemented => "not_implemented",
            Self::DependencyUnavailable => "dependency_unavailable",
            Self::Internal => "internal_error",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest | Self::MalformedBody | Self::MissingDeliveryId => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthorized
            | Self::MissingSignatureHeader
            | Self::MalformedSignature
            | Self::TimestampNotNumeric
            | Self::TimestampTooOld
            | Self::TimestampInFuture
            | Self::SignatureMismatch => StatusCode::UNAUTHORIZED,
            Self::Replayed | Self::IdempotencyKeyReused => StatusCode::CONFLICT,
            Self::SignalNotFound
            | Self::ExecutionNotFound
            | Self::CxoneNotFound
            | Self::ContactNotActive
            | Self::InteractionNotFound => StatusCode::NOT_FOUND,
            Self::InvalidPayload | Self::CxoneRejected => StatusCode::UNPROCESSABLE_ENTITY,
            Self::CxoneRefused => StatusCode::FAILED_DEPENDENCY,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            // In progress is a 503: CXone and Cognigy retry 5xx and never 4xx, so a retry
            // that arrives while the first copy runs must not be answered with a 4xx.
            Self::DependencyUnavailable | Self::InProgress => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the caller may succeed by sending the same request again.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::DependencyUnavailable | Self::Internal | Self::InProgress
        )
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `Retry-After` of an in-progress answer: long enough for most first copies to end.
pub const IN_PROGRESS_RETRY_AFTER_SECS: u64 = 1;

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error on its way to the HTTP edge: what the client is told, plus the internal cause
/// that only the log sees.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra members of the error object, such as `fields` for `invalid_payload`.
    pub details: Option<(&'static str, serde_json::Value)>,
    /// Seconds for a `Retry-After` header: the caller should send the request again then.
    pub retry_after: Option<u64>,
    cause: Option<Cause>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
            cause: None,
        }
    }

    /// Another request is doing this work now: 503 with `Retry-After`, an answer every
    /// HTTP client retries, so that a retry is never the reason work is lost. The retry
    /// gets the first request's answer once it is done, or does the work itself if the
    /// first request failed and let its claim go.
    pub fn in_progress(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InProgress, message).with_retry_after(IN_PROGRESS_RETRY_AFTER_SECS)
    }

    /// Adds a member to the error object (`{"error": {"code", "message", name: value}}`).
    pub fn with_detail(mut self, name: &'static str, value: serde_json::Value) -> Self {
        self.details = Some((name, value));
        self
    }

    /// Asks the caller to retry after `secs` seconds (`Retry-After`).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Attaches the internal cause, which is logged but never sent.
    pub fn with_cause(mut self, cause: impl Into<Cause>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// 503: `what` (a dependency) failed; the caller's retry may succeed.
    pub fn unavailable(what: &str, cause: impl Into<Cause>) -> Self {
        Self::new(
            ErrorCode::DependencyUnavailable,
            format!("{what} is unavailable; retry later"),
        )
        .with_cause(cause)
    }

    pub fn not_implemented(what: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::NotImplemented,
            format!("{what} is not implemented yet"),
        )
    }

    pub fn internal(cause: impl Into<Cause>) -> Self {
        Self::new(ErrorCode::Internal, "internal error").with_cause(cause)
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The full cause chain, for the log line.
    pub fn cause_chain(&self) -> Option<String> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = match &self.cause {
            Some(c) => Some(c.as_ref()),
            None => return None,
        };
        let mut parts = Vec::new();
        while let Some(err) = source {
            parts.push(err.to_string());
            source = err.source();
        }
        Some(parts.join(": "))
    }

    /// The stable JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut body =
            serde_json::json!({"error": {"code": self.code.as_str(), "message": self.message}});
        if let Some((name, value)) = &self.details {
            body["error"][*name] = value.clone();
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_ref()
            .map(|c| c.as_ref() as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_carries_the_code_and_message_only() {
        let err = ApiError::internal(std::io::Error::other("db password rejected"));
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = err.body().to_string();
        assert_eq!(
            body,
            r#"{"error":{"code":"internal_error","message":"internal error"}}"#
        );
        assert_eq!(err.cause_chain().as_deref(), Some("db password rejected"));
    }

    #[test]
    fn not_implemented_names_what_is_missing() {
        let err = ApiError::not_implemented("POST /webhooks/cxone");
        assert_eq!(err.status(), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(err.body()["error"]["code"], "not_implemented");
        assert_eq!(
            err.body()["error"]["message"],
            "POST /webhooks/cxone is not implemented yet"
        );
    }

    #[test]
    fn codes_serialise_as_their_stable_strings() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::MalformedBody,
            ErrorCode::PayloadTooLarge,
            ErrorCode::DependencyUnavailable,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        assert_eq!(ErrorCode::Internal.as_str(), "internal_error");
    }

    #[test]
    fn only_dependency_and_internal_failures_are_retryable() {
        assert!(ErrorCode::DependencyUnavailable.is_retryable());
        assert!(!ErrorCode::MalformedBody.is_retryable());
    }
}
