//! [`TargetSender`] over the targets' real transports: a signed HTTPS POST, and an
//! EventBridge `PutEvents` (ARCHITECTURE.md, Delivery targets).

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::Value;

use crate::secrets::SecretSource;
use crate::targets::deliver::{SendError, Sent, TargetSender};
use crate::targets::{Auth, BusTarget, HttpsTarget, TargetKind, TargetSpec};

/// Every target type over its real transport; built once at cold start. The HTTP client
/// is built on the first HTTPS delivery (its TLS setup loads the system's root
/// certificates, which would lengthen every drainer's cold start), then shared.
pub struct LiveSender<S> {
    http: tokio::sync::OnceCell<reqwest::Client>,
    events: aws_sdk_eventbridge::Client,
    secrets: S,
}

/// The HTTP client every HTTPS target shares; each request sets its target's timeout.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cxbridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

fn permanent(reason: impl Into<String>) -> SendError {
    SendError {
        retryable: false,
        http_status: None,
        reason: reason.into(),
        retry_after: None,
    }
}

fn retry(reason: impl Into<String>) -> SendError {
    SendError {
        retryable: true,
        ..permanent(reason)
    }
}

/// The first bytes of an answer, on one line.
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Whether a target's non-2xx answer is worth retrying: a 5xx, 408, 409, 425 and 429.
/// Any other 4xx says the receiver will not take this event, and retrying cannot change it.
pub fn retryable_status(status: u16) -> bool {
    status >= 500 || matches!(status, 408 | 409 | 425 | 429)
}

impl<S: SecretSource> LiveSender<S> {
    pub fn new(events: aws_sdk_eventbridge::Client, secrets: S) -> Self {
        Self {
            http: tokio::sync::OnceCell::new(),
            events,
            secrets,
        }
    }

    /// Builds the HTTP client now, so that the next HTTPS delivery's latency is its own.
    pub async fn ready(&self) -> Result<(), String> {
        self.client().await.map(|_| ()).map_err(|e| e.reason)
    }

    async fn client(&self) -> Result<&reqwest::Client, SendError> {
        self.http
            .get_or_try_init(|| async {
                tokio::task::spawn_blocking(http_client)
                    .await
                    .map_err(|e| retry(format!("cannot build the HTTP client: {e}")))?
                    .map_err(permanent)
            })
            .await
    }

    async fn https(
        &self,
        spec: &TargetSpec,
        target: &HttpsTarget,
        message_id: &str,
        event: &Value,
        now_ms: i64,
    ) -> Result<Sent, SendError> {
        let secrets = self
            .secrets
            .current()
            .await
            .map_err(|e| retry(format!("the secret: {e}")))?;
        let Some(creds) = secrets.targets.get(&spec.name) else {
            return Err(permanent(format!(
                "the secret has no targets.{} credentials",
                spec.name
            )));
        };
        let body = serde_json::to_vec(event).map_err(|e| permanent(e.to_string()))?;
        let timestamp = now_ms / 1000;
        let keys: Vec<&str> = creds
            .signing_secrets
            .iter()
            .map(ExposeSecret::expose_secret)
            .collect();
        let signature = crate::targets::sign::signature(&keys, message_id, timestamp, &body);
        if signature.is_empty() {
            return Err(permanent(format!(
                "targets.{} has no usable signing secret",
                spec.name
            )));
        }
        let mut request = self
            .client()
            .await?
            .post(&target.url)
            .timeout(target.timeout)
            .header("content-type", "application/json")
            .header("webhook-id", message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature);
        let missing = || permanent(format!("targets.{} lacks its auth credentials", spec.name));
        request = match &target.auth {
            Auth::None => request,
            Auth::Bearer => {
                let token = creds.token.as_ref().ok_or_else(missing)?;
                request.bearer_auth(token.expose_secret())
            }
            Auth::Basic => {
                let user = creds.username.as_ref().ok_or_else(missing)?;
                let password = creds.password.as_ref().ok_or_else(missing)?;
                request.basic_auth(user.expose_secret(), Some(password.expose_secret()))
            }
            Auth::ApiKey { header } => {
                let key = creds.api_key.as_ref().ok_or_else(missing)?;
                request.header(header.as_str(), key.expose_secret())
            }
        };
        for (name, value) in &target.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = match request.body(body).send().await {
            Ok(r) => r,
            // Nothing left: the request could not be built (a permanent mistake).
            Err(e) if e.is_builder() => return Err(permanent(format!("bad request: {e}"))),
            Err(e) if e.is_timeout() => {
                return Err(retry(format!(
                    "no answer within {} ms",
                    target.timeout.as_millis()
                )));
            }
            Err(e) => return Err(retry(format!("cannot reach the target: {e}"))),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let answer = response.bytes().await.unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(Sent {
                http_status: Some(status),
                excerpt: excerpt(&answer),
            });
        }
        Err(SendError {
            retryable: retryable_status(status),
            http_status: Some(status),
            reason: format!("HTTP {status}: {}", excerpt(&answer)),
            retry_after,
        })
    }

    async fn bus(&self, bus: &BusTarget, event: &Value) -> Result<Sent, SendError> {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&bus.bus)
            .source(&bus.source)
            .detail_type(&bus.detail_type)
            .detail(event.to_string())
            .build();
        let out = self
            .events
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| {
                let text = aws_sdk_eventbridge::error::DisplayErrorContext(&e).to_string();
                let code = e
                    .as_service_error()
                    .and_then(aws_sdk_eventbridge::error::ProvideErrorMetadata::code)
                    .unwrap_or_default()
                    .to_owned();
                // A missing bus or a refused request will not change by retrying.
                if matches!(
                    code.as_str(),
                    "ResourceNotFoundException" | "ValidationException" | "AccessDeniedException"
                ) {
                    permanent(format!("PutEvents: {text}"))
                } else {
                    retry(format!("PutEvents: {text}"))
                }
            })?;
        if out.failed_entry_count() > 0 {
            let entry = out.entries().first();
            let code = entry.and_then(|e| e.error_code()).unwrap_or("unknown");
            let message = entry.and_then(|e| e.error_message()).unwrap_or_default();
            let reason = format!("PutEvents refused the event: {code} {message}");
            return Err(
                if matches!(code, "InternalFailure" | "ThrottlingException") {
                    retry(reason)
                } else {
                    permanent(reason)
                },
            );
        }
        Ok(Sent {
            http_status: None,
            excerpt: out
                .entries()
                .first()
                .and_then(|e| e.event_id())
                .map(|id| format!("event id {id}"))
                .unwrap_or_default(),
        })
    }
}

impl<S: SecretSource> TargetSender for LiveSender<S> {
    async fn send(
        &self,
        spec: &TargetSpec,
        message_id: &str,
        event: &Value,
        now_ms: i64,
    ) -> Result<Sent, SendError> {
        match &spec.kind {
            TargetKind::Https(target) => self.https(spec, target, message_id, event, now_ms).await,
            TargetKind::EventBridge(bus) => self.bus(bus, event).await,
            TargetKind::Sqs { .. } => Err(permanent(
                "an sqs target is enqueued when the webhook is accepted, never as a job",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_and_throttling_are_retried_and_other_4xx_are_not() {
        for s in [500, 502, 503, 504, 408, 409, 425, 429] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 413, 422] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn an_excerpt_is_short_and_on_one_line() {
        assert_eq!(excerpt(b"ok\nthen"), "ok then");
        assert_eq!(excerpt(&[b'a'; 500]).len(), 200);
    }
}
