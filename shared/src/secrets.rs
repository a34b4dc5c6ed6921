//! The one JSON secret (ARCHITECTURE.md, Secret) and the port that serves it; the Secrets
//! Manager adapter is `adapters::secrets_manager`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde::Deserialize;

/// Every credential cxbridge uses. `Debug` shows `[REDACTED]` for each value.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secrets {
    #[serde(default)]
    pub cxone: CxoneCredentials,
    /// Webhook signing secrets, current first; more than one during a rotation.
    #[serde(default)]
    pub webhook_secrets: Vec<SecretString>,
    #[serde(default)]
    pub callback_secrets: Vec<SecretString>,
    #[serde(default)]
    pub cognigy_tokens: Vec<SecretString>,
    #[serde(default)]
    pub api_keys: Vec<SecretString>,
    /// Tokens that Studio scripts send to `POST /webhooks/studio` (`X-API-Key` or
    /// `Authorization: Bearer`); Studio cannot sign a request.
    #[serde(default)]
    pub studio_tokens: Vec<SecretString>,
    /// Credentials of the named outbound targets, by target name.
    #[serde(default)]
    pub targets: std::collections::BTreeMap<String, TargetCredentials>,
}

/// One target's credentials: its Standard Webhooks signing secrets (`whsec_…`, current
/// first; more than one during a rotation) and what its auth type needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetCredentials {
    #[serde(default)]
    pub signing_secrets: Vec<SecretString>,
    pub token: Option<SecretString>,
    pub username: Option<SecretString>,
    pub password: Option<SecretString>,
    pub api_key: Option<SecretString>,
}

/// Credentials for both CXone API profiles; a deployment fills in the pair it uses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CxoneCredentials {
    pub client_id: Option<SecretString>,
    pub client_secret: Option<SecretString>,
    pub access_key_id: Option<SecretString>,
    pub access_key_secret: Option<SecretString>,
}

/// Why the secret could not be had. Messages never include secret material.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {id} does not exist or has no AWSCURRENT version")]
    NotFound { id: String },
    #[error("secret {id} has no SecretString (binary secrets are not supported)")]
    NotAString { id: String },
    #[error("secret {id} is not the expected JSON document ({detail})")]
    Malformed { id: String, detail: String },
    #[error("secret {id} could not be read: {detail}")]
    Unavailable { id: String, detail: String },
}

impl SecretError {
    /// A read may succeed later; a missing or malformed secret needs an operator.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Port: where handlers get credentials from.
pub trait SecretSource: Send + Sync {
    /// The cached secret, read again once the cache is older than its TTL.
    fn current(&self) -> impl Future<Output = Result<Arc<Secrets>, SecretError>> + Send;
    /// Reads the secret now, whatever the cache holds (rotation pick-up).
    fn refresh(&self) -> impl Future<Output = Result<Arc<Secrets>, SecretError>> + Send;
}

impl<T: SecretSource> SecretSource for Arc<T> {
    fn current(&self) -> impl Future<Output = Result<Arc<Secrets>, SecretError>> + Send {
        self.as_ref().current()
    }

    fn refresh(&self) -> impl Future<Output = Result<Arc<Secrets>, SecretError>> + Send {
        self.as_ref().refresh()
    }
}

/// Allows a forced secret read at most once per interval, so that a flood of bad
/// signatures cannot hammer Secrets Manager.
#[derive(Debug)]
pub struct RefreshGate {
    interval: Duration,
    last: std::sync::Mutex<Option<Instant>>,
}

impl RefreshGate {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: std::sync::Mutex::new(None),
        }
    }

    /// Whether a forced read may happen now; if so, it counts as done.
    pub fn allow(&self) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        if last.is_some_and(|at| at.elapsed() < self.interval) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

/// Runs `check` against the cached secret. If it refuses the credential, the secret may
/// have been rotated since it was cached: it is re-read and checked once more, at most once
/// per the gate's interval (so a flood of bad credentials cannot hammer Secrets Manager).
/// `what` names the credentials for the 503 when the secret cannot be read.
pub async fn check_with_rotation<S: SecretSource, T>(
    source: &S,
    gate: &RefreshGate,
    what: &str,
    check: impl Fn(&Secrets) -> Result<T, crate::error::ApiError>,
) -> Result<T, crate::error::ApiError> {
    use crate::error::{ApiError, ErrorCode};
    let unavailable = |e: SecretError| {
        ApiError::new(
            ErrorCode::DependencyUnavailable,
            format!("{what} cannot be read; retry later"),
        )
        .with_cause(e)
    };
    let secrets = source.current().await.map_err(unavailable)?;
    match check(&secrets) {
        Err(err)
            if matches!(
                err.code,
                ErrorCode::SignatureMismatch | ErrorCode::Unauthorized
            ) && gate.allow() =>
        {
            let fresh = source.refresh().await.map_err(unavailable)?;
            check(&fresh)
        }
        other => other,
    }
}

/// Parses the secret document without letting a parser message quote secret values.
pub fn parse_secrets(id: &str, text: &str) -> Result<Secrets, SecretError> {
    serde_json::from_str(text).map_err(|e| SecretError::Malformed {
        id: id.to_owned(),
        detail: format!(
            "{} error at line {} column {}",
            match e.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "syntax",
                _ => "shape",
            },
            e.line(),
            e.column()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn the_documented_layout_parses() {
        let s = parse_secrets(
            "s",
            r#"{"cxone":{"clientId":"id","clientSecret":"cs","accessKeyId":"ak","accessKeySecret":"as"},
                "webhookSecrets":["current","previous"],"callbackSecrets":["cb"],
                "cognigyTokens":["cg"],"apiKeys":["k"],"studioTokens":["st","st-old"]}"#,
        )
        .unwrap();
        assert_eq!(s.webhook_secrets.len(), 2);
        assert_eq!(s.studio_tokens[1].expose_secret(), "st-old");
        assert_eq!(s.webhook_secrets[1].expose_secret(), "previous");
        assert_eq!(
            s.cxone.access_key_id.as_ref().map(|v| v.expose_secret()),
            Some("ak")
        );
    }

    #[test]
    fn debug_output_never_shows_a_value() {
        let s = parse_secrets(
            "s",
            r#"{"webhookSecrets":["hunter2"],"cxone":{"clientSecret":"topsecret"}}"#,
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("topsecret"), "{shown}");
    }

    #[test]
    fn a_malformed_secret_is_reported_without_quoting_it() {
        let err = parse_secrets("s", r#"{"webhookSecrets":"hunter2"}"#).unwrap_err();
        let shown = err.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("shape error at line 1"), "{shown}");
        assert!(!err.is_retryable());
    }
}
