//! `POST /webhooks/cxone` (design §3.1): verify, de-duplicate, normalise, route, enqueue.
//!
//! [`prepare`] is the pure part (no I/O: verify, parse, normalise, route, plan the
//! messages); [`Receiver::receive`] adds the records and the queues around it.

pub mod body;
pub mod config;
pub mod normalise;
pub mod routing;
pub mod signature;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorCode};
use crate::idempotency::{Claim, IdempotencyStore, ReplayCheck, ReplayGuard};
use crate::jobs::{Job, JobKind};
use crate::queue::{MessageQueue, OutboundMessage};
use crate::secrets::SecretSource;
use config::{Target, WebhookConfig};
use signature::{SignatureError, Signed, Verified};

/// Longest delivery id accepted.
const MAX_DELIVERY_ID_LEN: usize = 256;

/// What the function saw of a webhook request.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub content_type: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub delivery_id: Option<&'a str>,
    pub body: &'a [u8],
}

/// A verified, parsed and routed webhook, ready to be recorded and enqueued.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub delivery_id: String,
    pub verified: Verified,
    pub payload_hash: String,
    pub event: Value,
    /// Messages by queue URL, in the order the routes named them.
    pub messages: Vec<(String, Vec<OutboundMessage>)>,
}

fn signature_error(err: &SignatureError) -> ApiError {
    ApiError::new(err.code(), err.to_string())
}

fn delivery_id<'a>(inbound: &Inbound<'a>) -> Result<&'a str, ApiError> {
    let id = inbound.delivery_id.map(str::trim).unwrap_or_default();
    let plain = id.bytes().all(|b| b.is_ascii_graphic());
    if id.is_empty() || id.len() > MAX_DELIVERY_ID_LEN || !plain {
        return Err(ApiError::new(
            ErrorCode::MissingDeliveryId,
            format!(
                "{} must be a printable id of 1 to {MAX_DELIVERY_ID_LEN} characters",
                signature::DELIVERY_ID_HEADER
            ),
        ));
    }
    Ok(id)
}

/// Verifies the signature over the raw bytes with every active secret.
pub fn verify(
    inbound: &Inbound<'_>,
    secrets: &[SecretString],
    now_s: i64,
    tolerance: Duration,
) -> Result<Verified, ApiError> {
    let signed = Signed {
        signature: inbound.signature,
        timestamp: inbound.timestamp,
        body: inbound.body,
    };
    signature::verify(&signed, secrets, now_s, tolerance.as_secs()).map_err(|e| signature_error(&e))
}

/// Everything after verification that needs no I/O.
pub fn prepare(
    config: &WebhookConfig,
    inbound: &Inbound<'_>,
    verified: Verified,
    now_ms: i64,
) -> Result<Prepared, ApiError> {
    let format = body::format_of(inbound.content_type)?;
    let delivery_id = delivery_id(inbound)?;
    let parsed = body::parse(format, inbound.body)?;
    let event = normalise::normalise(config, format, &parsed, delivery_id, inbound.event_type);
    let messages = plan(config, &event, delivery_id, now_ms);
    Ok(Prepared {
        delivery_id: delivery_id.to_owned(),
        verified,
        payload_hash: hex::encode(Sha256::digest(inbound.body)),
        event,
        messages,
    })
}

/// The whole request path without I/O, as one function (benchmarks and unit tests).
pub fn process(
    config: &WebhookConfig,
    inbound: &Inbound<'_>,
    secrets: &[SecretString],
    now_ms: i64,
    tolerance: Duration,
) -> Result<Prepared, ApiError> {
    body::format_of(inbound.content_type)?;
    let verified = verify(inbound, secrets, now_ms / 1000, tolerance)?;
    prepare(config, inbound, verified, now_ms)
}

fn plan(
    config: &WebhookConfig,
    event: &Value,
    delivery_id: &str,
    now_ms: i64,
) -> Vec<(String, Vec<OutboundMessage>)> {
    let mut by_queue: Vec<(String, Vec<OutboundMessage>)> = Vec::new();
    let group = event
        .get("interactionId")
        .and_then(Value::as_str)
        .unwrap_or(delivery_id)
        .to_owned();
    let event_type = event
        .get("eventType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    for (index, (route, target)) in routing::route(&config.routes, event)
        .into_iter()
        .enumerate()
    {
        let (queue, body) = match target {
            Target::Queue(url) => (url.clone(), event.to_string()),
            Target::Signal { name, mapping } => {
                let data: BTreeMap<&str, Value> = mapping
                    .iter()
                    .map(|(var, field)| {
                        (
                            var.as_str(),
                            normalise::event_field(event, field)
                                .cloned()
                                .unwrap_or(Value::Null),
                        )
                    })
                    .collect();
                let correlation_id = format!("{delivery_id}:{name}");
                let job = Job {
                    id: correlation_id.clone(),
                    kind: JobKind::Signal,
                    correlation_id: correlation_id.clone(),
                    attempt: 0,
                    first_attempt_at: crate::clock::rfc3339(now_ms),
                    payload: json!({
                        "signal": name,
                        "data": data,
                        "metadata": {
                            "correlationId": correlation_id,
                            "sourceSystem": "cxone-webhook",
                            "deliveryId": delivery_id,
                            "contactId": event.get("interactionId"),
                        },
                    }),
                    last_error: None,
                };
                (
                    config.jobs_queue_url.clone(),
                    serde_json::to_string(&job).unwrap_or_default(),
                )
            }
        };
        let message = OutboundMessage {
            body,
            attributes: vec![
                ("deliveryId".to_owned(), delivery_id.to_owned()),
                ("route".to_owned(), route.to_owned()),
                ("eventType".to_owned(), event_type.clone()),
            ]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect(),
            dedup_id: format!("{delivery_id}:{index}"),
            group_id: group.clone(),
        };
        match by_queue.iter_mut().find(|(q, _)| *q == queue) {
            Some((_, list)) => list.push(message),
            None => by_queue.push((queue, vec![message])),
        }
    }
    by_queue
}

/// The receiver with its ports: a function builds one at cold start.
pub struct Receiver<S, I, Q> {
    pub config: WebhookConfig,
    pub secrets: S,
    pub store: I,
    pub queue: Q,
    pub tolerance: Duration,
    pub refresh_min_interval: Duration,
    last_forced_refresh: Mutex<Option<Instant>>,
}

/// A webhook's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 202: every target is durably enqueued.
    Accepted(Value),
    /// 200: already accepted earlier.
    Duplicate(Value),
}

impl<S, I, Q> Receiver<S, I, Q>
where
    S: SecretSource,
    I: IdempotencyStore + ReplayGuard,
    Q: MessageQueue,
{
    pub fn new(
        config: WebhookConfig,
        secrets: S,
        store: I,
        queue: Q,
        tolerance: Duration,
        refresh_min_interval: Duration,
    ) -> Self {
        Self {
            config,
            secrets,
            store,
            queue,
            tolerance,
            refresh_min_interval,
            last_forced_refresh: Mutex::new(None),
        }
    }

    /// Whether a failed verification may re-read the secret now (at most once per
    /// `refresh_min_interval`, so a flood of bad signatures cannot hammer Secrets Manager).
    fn may_force_refresh(&self) -> bool {
        let Ok(mut last) = self.last_forced_refresh.lock() else {
            return false;
        };
        if last.is_some_and(|at| at.elapsed() < self.refresh_min_interval) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    async fn verify(&self, inbound: &Inbound<'_>, now_s: i64) -> Result<Verified, ApiError> {
        let unavailable = |e: crate::secrets::SecretError| {
            ApiError::new(
                ErrorCode::DependencyUnavailable,
                "the webhook secrets cannot be read; retry later",
            )
            .with_cause(e)
        };
        let secrets = self.secrets.current().await.map_err(unavailable)?;
        match verify(inbound, &secrets.webhook_secrets, now_s, self.tolerance) {
            Err(err) if err.code == ErrorCode::SignatureMismatch && self.may_force_refresh() => {
                // The secret may have been rotated since it was cached.
                let fresh = self.secrets.refresh().await.map_err(unavailable)?;
                verify(inbound, &fresh.webhook_secrets, now_s, self.tolerance)
            }
            other => other,
        }
    }

    /// Runs one webhook through verification, the replay guard, idempotency and the queues.
    pub async fn receive(
        &self,
        inbound: &Inbound<'_>,
        now_ms: i64,
        in_progress_until_ms: i64,
    ) -> Result<Outcome, ApiError> {
        body::format_of(inbound.content_type)?;
        let now_s = now_ms / 1000;
        let verified = self.verify(inbound, now_s).await?;
        let prepared = prepare(&self.config, inbound, verified, now_ms)?;
        let id = &prepared.delivery_id;
        let unavailable = |what: &str, cause: Box<dyn std::error::Error + Send + Sync>| {
            ApiError::new(
                ErrorCode::DependencyUnavailable,
                format!("{what} is unavailable; retry later"),
            )
            .with_cause(cause)
        };

        let expires = prepared
            .verified
            .timestamp
            .saturating_add(i64::try_from(self.tolerance.as_secs()).unwrap_or(0));
        let replay = self
            .store
            .remember(
                &hex::encode(prepared.verified.signature),
                id,
                now_s,
                expires,
            )
            .await
            .map_err(|e| unavailable("the idempotency store", e.into()))?;
        if replay == ReplayCheck::Replayed {
            return Err(ApiError::new(
                ErrorCode::Replayed,
                "this signed request was already delivered under another delivery id",
            ));
        }

        let key = format!("delivery#{id}");
        let claim = self
            .store
            .claim(&key, &prepared.payload_hash, now_ms, in_progress_until_ms)
            .await
            .map_err(|e| unavailable("the idempotency store", e.into()))?;
        match claim {
            Claim::Acquired => {}
            Claim::Completed(_) => {
                return Ok(Outcome::Duplicate(
                    json!({"status": "duplicate", "deliveryId": id}),
                ));
            }
            Claim::InProgress => {
                return Err(ApiError::new(
                    ErrorCode::InProgress,
                    format!("delivery {id} is being processed; retry later"),
                ));
            }
            Claim::Conflict => {
                return Err(ApiError::new(
                    ErrorCode::IdempotencyKeyReused,
                    format!("delivery {id} was already received with a different body"),
                ));
            }
        }

        for (queue, messages) in &prepared.messages {
            if let Err(err) = self.queue.send_all(queue, messages).await {
                // Let the sender's retry succeed at once instead of waiting out the claim.
                if let Err(release) = self.store.release(&key, &prepared.payload_hash).await {
                    tracing::warn!(delivery_id = %id, error = %release, "could not release the idempotency record");
                }
                return Err(unavailable("the event queue", err.into()));
            }
        }

        let response = json!({"status": "accepted", "deliveryId": id});
        if let Err(err) = self
            .store
            .complete(&key, &prepared.payload_hash, &response, now_ms)
            .await
        {
            // The work is durably queued; a redelivery after the in-progress expiry would be
            // processed again, which consumers tolerate (at-least-once).
            tracing::warn!(delivery_id = %id, error = %err, "could not record the completed delivery");
        }
        Ok(Outcome::Accepted(response))
    }
}
