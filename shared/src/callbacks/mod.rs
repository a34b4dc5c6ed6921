//! Completion callbacks (ARCHITECTURE.md, Routes): a Studio script reports how an execution
//! ended. The request proves its origin (an HMAC signature or a shared token), then the
//! execution record settles once; a repeat is answered as a duplicate and changes nothing.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use crate::config::CallbackAuth;
use crate::error::{ApiError, ErrorCode};
use crate::secrets::{RefreshGate, SecretSource, Secrets, check_with_rotation};
use crate::signals::store::{CallbackOutcome, ExecutionStatus, ExecutionStore};
use crate::signals::{MAX_KEY_LEN, is_usable_key};
use crate::webhook::signature::{self, CALLBACK_HEADERS, Signed};

/// What a callback request presents, taken from its headers and body.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallbackRequest<'a> {
    /// `X-Callback-Signature-256`.
    pub signature: Option<&'a str>,
    /// `X-Callback-Timestamp`.
    pub timestamp: Option<&'a str>,
    /// `X-Callback-Token`.
    pub token: Option<&'a str>,
    pub body: &'a [u8],
}

/// The body of a completion callback.
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    pub correlation_id: String,
    pub signal_execution_id: Option<String>,
    /// `completed` or `failed`.
    pub status: ExecutionStatus,
    pub outputs: Value,
    pub error: Option<String>,
}

/// The callback service: checks a callback's proof of origin, then records it.
pub struct CallbackService<S, E> {
    auth: CallbackAuth,
    tolerance: Duration,
    secrets: S,
    store: E,
    refresh: RefreshGate,
}

impl<S: SecretSource, E: ExecutionStore> CallbackService<S, E> {
    /// `refresh_interval` bounds how often a refused credential forces a fresh secret read.
    pub fn new(
        auth: CallbackAuth,
        tolerance: Duration,
        secrets: S,
        store: E,
        refresh_interval: Duration,
    ) -> Self {
        Self {
            auth,
            tolerance,
            secrets,
            store,
            refresh: RefreshGate::new(refresh_interval),
        }
    }

    /// Authenticates and records one callback; the answer is 200 with `recorded` or
    /// `duplicate`. Errors: the credential's 401 codes, `bad_request`/`malformed_body`,
    /// `execution_not_found`, and 503 when the secret or the store cannot be reached.
    pub async fn receive(
        &self,
        request: &CallbackRequest<'_>,
        now_ms: i64,
    ) -> Result<(StatusCode, Value), ApiError> {
        self.authenticate(request, now_ms.div_euclid(1000)).await?;
        let callback = parse_callback(request.body)?;
        let outcome = self
            .store
            .callback(
                &callback.correlation_id,
                callback.status,
                &callback.outputs,
                callback.error.as_deref(),
                callback.signal_execution_id.as_deref(),
                now_ms,
            )
            .await
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::DependencyUnavailable,
                    "the execution store is unavailable; retry later",
                )
                .with_cause(e)
            })?;
        let status = match outcome {
            CallbackOutcome::Recorded => "recorded",
            CallbackOutcome::Duplicate => "duplicate",
            CallbackOutcome::NotFound => {
                return Err(ApiError::new(
                    ErrorCode::ExecutionNotFound,
                    format!(
                        "no execution with correlation id {:?}",
                        callback.correlation_id
                    ),
                ));
            }
        };
        Ok((
            StatusCode::OK,
            json!({"status": status, "correlationId": callback.correlation_id}),
        ))
    }

    /// Checks the proof of origin. A refused credential re-reads the secret once (at most
    /// once per refresh interval), so rotated callback secrets work without a restart.
    async fn authenticate(&self, request: &CallbackRequest<'_>, now: i64) -> Result<(), ApiError> {
        let signed = Signed {
            headers: CALLBACK_HEADERS,
            signature: request.signature,
            timestamp: request.timestamp,
            body: request.body,
        };
        let tolerance = self.tolerance.as_secs();
        // A missing, malformed or stale signature is refused before the secret is read.
        if self.auth == CallbackAuth::Hmac {
            signature::precheck(&signed, now, tolerance)?;
        }
        let check = |secrets: &Secrets| match self.auth {
            CallbackAuth::Hmac => {
                signature::verify(&signed, &secrets.callback_secrets, now, tolerance)
                    .map(|_| ())
                    .map_err(ApiError::from)
            }
            CallbackAuth::Token => {
                let token = request.token.unwrap_or_default();
                if crate::auth::matches_any(token, &secrets.callback_secrets) {
                    Ok(())
                } else {
                    Err(ApiError::new(
                        ErrorCode::Unauthorized,
                        "a valid X-Callback-Token header is required",
                    ))
                }
            }
        };
        check_with_rotation(&self.secrets, &self.refresh, "the callback secrets", check).await
    }
}

/// Parses a callback body, listing what is wrong.
pub fn parse_callback(body: &[u8]) -> Result<Callback, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorCode::MalformedBody,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let mut problems = Vec::new();
    let correlation_id = value
        .get("correlationId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    match correlation_id {
        None => problems.push(json!({"field": "correlationId", "problem": "is missing"})),
        Some(id) if !is_usable_key(id) => problems.push(json!({"field": "correlationId", "problem": format!("must be 1 to {MAX_KEY_LEN} printable ASCII characters")})),
        Some(_) => {}
    }
    let status = value
        .get("status")
        .and_then(Value::as_str)
        .and_then(ExecutionStatus::parse)
        .filter(|s| matches!(s, ExecutionStatus::Completed | ExecutionStatus::Failed));
    if status.is_none() {
        problems.push(json!({"field": "status", "problem": "must be completed or failed"}));
    }
    let outputs = value.get("outputs").cloned().unwrap_or_else(|| json!({}));
    if !outputs.is_object() {
        problems.push(json!({"field": "outputs", "problem": "must be an object"}));
    }
    if !problems.is_empty() {
        return Err(
            ApiError::new(ErrorCode::BadRequest, "the callback is not valid")
                .with_detail("fields", json!(problems)),
        );
    }
    Ok(Callback {
        correlation_id: correlation_id.unwrap_or_default().to_owned(),
        signal_execution_id: value
            .get("signalExecutionId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        status: status.unwrap_or(ExecutionStatus::Failed),
        outputs,
        error: value.get("error").map(|e| match e {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
    })
}

#[cfg(test)]
mod tests;
