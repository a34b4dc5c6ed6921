//! `POST /webhooks/cxone` (ARCHITECTURE.md, Routes): verify, normalise, route, and record the
//! delivery with its outbox in one write (ARCHITECTURE.md, Outbox); and `POST /webhooks/studio`
//! ([`studio`]), the same for Studio's REST API action, which authenticates with a token
//! instead of a signature.
//!
//! [`prepare`] and [`studio::prepare`] are the pure parts (no I/O: parse, normalise, route,
//! plan the messages into an [`outbox::Outbox`]); [`Receiver::receive`] and
//! [`Receiver::receive_studio`] check the sender their own way and then share the write.

pub mod body;
pub mod config;
pub mod normalise;
pub mod outbox;
pub mod routing;
pub mod signature;
pub mod studio;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorCode};
use crate::idempotency::{DeliveryRecords, NewDelivery, Recorded, ReplayEntry};
use crate::jobs::{Job, JobKind};
use crate::secrets::{RefreshGate, SecretSource, Secrets};
use config::{Target, WebhookConfig};
use outbox::Outbox;
use signature::{Signed, Verified};

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

/// Who sent a webhook. Each sender's delivery ids live in a key space of their own, so
/// that a Studio id can never answer for (or block) a CXone one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Cxone,
    Studio,
}

impl Sender {
    /// The idempotency record's key. The prefixes differ in their first character, so no
    /// delivery id of one sender can produce a key of the other.
    pub fn key(self, delivery_id: &str) -> String {
        match self {
            Self::Cxone => format!("delivery#{delivery_id}"),
            Self::Studio => format!("studio-delivery#{delivery_id}"),
        }
    }

    /// The delivery id as the queues and signal jobs know it (FIFO ids, correlation ids).
    ///
    /// One-to-one across both senders: Studio ids get `studio:`, and a CXone id that itself
    /// starts with `studio:` or `cxone:` gets `cxone:`, so CXone's `studio:x` never meets
    /// Studio's `x`. `%` and `|` are percent-encoded, as a routed spawn signal carries its
    /// correlation id in a `|`-delimited list.
    pub(crate) fn scoped(self, delivery_id: &str) -> Cow<'_, str> {
        let id: Cow<'_, str> = if delivery_id.contains(['%', '|']) {
            Cow::Owned(delivery_id.replace('%', "%25").replace('|', "%7C"))
        } else {
            Cow::Borrowed(delivery_id)
        };
        match self {
            Self::Cxone if id.starts_with("studio:") || id.starts_with("cxone:") => {
                Cow::Owned(format!("cxone:{id}"))
            }
            Self::Cxone => id,
            Self::Studio => Cow::Owned(format!("studio:{id}")),
        }
    }

    fn system(self) -> &'static str {
        match self {
            Self::Cxone => "cxone-webhook",
            Self::Studio => "cxone-studio",
        }
    }
}

/// A checked, parsed and routed webhook, ready to be recorded with its outbox.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub sender: Sender,
    pub delivery_id: String,
    /// The signature that was verified; `None` for a sender that presents a token.
    pub verified: Option<Verified>,
    pub payload_hash: String,
    pub event: Value,
    /// The event's text, as the queues get it.
    pub event_text: String,
    /// The messages the routes make, by queue URL in the order the routes named them.
    pub outbox: Outbox,
}

impl Prepared {
    /// The messages as `event-relay` will send them.
    pub fn messages(
        &self,
    ) -> Result<Vec<(String, Vec<crate::queue::OutboundMessage>)>, outbox::OutboxError> {
        self.outbox.messages(&self.event_text)
    }
}

/// A usable delivery id: `given` trimmed, 1 to 256 printable ASCII characters. `source`
/// names where it came from, for the message.
fn valid_delivery_id<'a>(given: Option<&'a str>, source: &str) -> Result<&'a str, ApiError> {
    let id = given.map(str::trim).unwrap_or_default();
    let plain = id.bytes().all(|b| b.is_ascii_graphic());
    if id.is_empty() || id.len() > MAX_DELIVERY_ID_LEN || !plain {
        return Err(ApiError::new(
            ErrorCode::MissingDeliveryId,
            format!("{source} must be a printable id of 1 to {MAX_DELIVERY_ID_LEN} characters"),
        ));
    }
    Ok(id)
}

fn delivery_id<'a>(inbound: &Inbound<'a>) -> Result<&'a str, ApiError> {
    valid_delivery_id(inbound.delivery_id, signature::DELIVERY_ID_HEADER)
}

fn payload_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Verifies the signature over the raw bytes with every active secret.
pub fn verify(
    inbound: &Inbound<'_>,
    secrets: &[SecretString],
    now_s: i64,
    tolerance: Duration,
) -> Result<Verified, ApiError> {
    let signed = Signed {
        headers: signature::WEBHOOK_HEADERS,
        signature: inbound.signature,
        timestamp: inbound.timestamp,
        body: inbound.body,
    };
    signature::verify(&signed, secrets, now_s, tolerance.as_secs()).map_err(ApiError::from)
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
    let (event_text, outbox) = plan(config, Sender::Cxone, &event, delivery_id, now_ms)?;
    Ok(Prepared {
        sender: Sender::Cxone,
        delivery_id: delivery_id.to_owned(),
        verified: Some(verified),
        payload_hash: payload_hash(inbound.body),
        event,
        event_text,
        outbox,
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

/// A FIFO group or deduplication id (at most 128 characters of a limited set): the SHA-256
/// of the value in hex.
fn short_id(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// An SQS message attribute value: printable, at most 256 characters, none that SQS
/// refuses.
fn attribute_value(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '\u{fffe}' | '\u{ffff}'))
        .take(256)
        .collect()
}

/// Refuses a routed event that no queue could take, before anything is recorded: a 5xx
/// would have the sender retry it for ever.
fn check_fits(outbox: &Outbox, event_len: usize) -> Result<(), ApiError> {
    let largest = outbox.largest(event_len);
    if largest > crate::queue::MAX_MESSAGE_BYTES {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the normalised event is {largest} bytes, over the queue's limit of {} bytes (control characters grow sixfold when escaped as JSON); send a smaller body",
                crate::queue::MAX_MESSAGE_BYTES
            ),
        ));
    }
    Ok(())
}

/// A routed signal sends CXone a request on the event's contact: an interaction id that
/// cannot be placed in CXone's URL path is refused now, as nothing could ever send it.
fn check_signal_contact(event: &Value) -> Result<(), ApiError> {
    match event.get("interactionId").and_then(Value::as_str) {
        Some(id) if !crate::ids::is_path_id(id) => Err(ApiError::new(
            ErrorCode::InvalidPayload,
            "the event is routed to a signal, and its interaction id cannot address a CXone contact",
        )
        .with_detail(
            "fields",
            json!([{"field": "interactionId", "problem": crate::ids::PATH_ID_RULE}]),
        )),
        _ => Ok(()),
    }
}

/// A delivery job's payload as the webhook route writes it. `event` is written as `null`,
/// and [`outbox::with_event`] puts the event's text in its place when it is sent.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryPayload<'a> {
    target: &'a str,
    delivery_id: &'a str,
    route: &'a str,
    event: Option<()>,
}

/// The event's text for the queues, and the outbox of every message its routes make.
fn plan(
    config: &WebhookConfig,
    sender: Sender,
    event: &Value,
    delivery_id: &str,
    now_ms: i64,
) -> Result<(String, Outbox), ApiError> {
    let mut outbox = Outbox::default();
    let event_text = crate::queue::sqs_json(event);
    let scoped = sender.scoped(delivery_id);
    let group = event
        .get("interactionId")
        .and_then(Value::as_str)
        .unwrap_or(&scoped)
        .to_owned();
    let event_type = event
        .get("eventType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    // The attributes every message of this event carries, sanitised once.
    let (delivery_attribute, type_attribute) =
        (attribute_value(delivery_id), attribute_value(&event_type));
    for (index, (route, target)) in routing::route(&config.routes, event)
        .into_iter()
        .enumerate()
    {
        let (queue, body) = match target {
            Target::Queue(url) => (url.clone(), outbox::Body::Event),
            Target::Signal { name, mapping } => {
                check_signal_contact(event)?;
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
                let correlation_id = format!("{scoped}:{name}");
                let payload = json!({
                    "signal": name,
                    "data": data,
                    "metadata": {
                        "correlationId": correlation_id,
                        "sourceSystem": sender.system(),
                        "deliveryId": delivery_id,
                        "contactId": event.get("interactionId"),
                    },
                });
                let job = Job::new(
                    JobKind::Signal,
                    correlation_id.clone(),
                    correlation_id,
                    payload,
                    now_ms,
                );
                (
                    config.jobs_queue_url.clone(),
                    outbox::Body::Text(crate::queue::sqs_json(&job)),
                )
            }
            Target::Deliver(target) => {
                // One job per (delivery, target): each is retried, parked and
                // dead-lettered on its own, and runs once.
                let id = format!("{scoped}@{target}");
                let payload = DeliveryPayload {
                    target,
                    delivery_id,
                    route,
                    event: None,
                };
                let job = Job::new(JobKind::Delivery, id.clone(), id, payload, now_ms);
                (
                    config.jobs_queue_url.clone(),
                    outbox::Body::Job(crate::queue::sqs_json(&job)),
                )
            }
        };
        let fifo = queue.ends_with(".fifo");
        let message = outbox::Message {
            body,
            attributes: vec![
                ("deliveryId".to_owned(), delivery_attribute.clone()),
                ("route".to_owned(), attribute_value(route)),
                ("eventType".to_owned(), type_attribute.clone()),
            ]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect(),
            // Only FIFO queues read these; a standard queue is not sent them.
            dedup_id: if fifo {
                short_id(&format!("{scoped}:{index}"))
            } else {
                String::new()
            },
            group_id: if fifo {
                short_id(&group)
            } else {
                String::new()
            },
        };
        outbox.push(queue, message);
    }
    check_fits(&outbox, event_text.len())?;
    Ok((event_text, outbox))
}

/// The receiver with its ports: a function builds one at cold start.
pub struct Receiver<S, R> {
    pub config: WebhookConfig,
    pub secrets: S,
    pub records: R,
    pub tolerance: Duration,
    pub refresh_min_interval: Duration,
    /// Rate-limits the forced secret reads after a failed check, whichever route failed:
    /// one read refreshes every credential.
    refresh: RefreshGate,
}

/// A webhook's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 202: the event and every message its routes make are durably recorded.
    Accepted(Value),
    /// 200: already accepted earlier.
    Duplicate(Value),
}

impl<S, R> Receiver<S, R>
where
    S: SecretSource,
    R: DeliveryRecords,
{
    pub fn new(
        config: WebhookConfig,
        secrets: S,
        records: R,
        tolerance: Duration,
        refresh_min_interval: Duration,
    ) -> Self {
        Self {
            config,
            secrets,
            records,
            tolerance,
            refresh_min_interval,
            refresh: RefreshGate::new(refresh_min_interval),
        }
    }

    async fn check_with_rotation<T>(
        &self,
        what: &str,
        check: impl Fn(&Secrets) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        crate::secrets::check_with_rotation(&self.secrets, &self.refresh, what, check).await
    }

    async fn verify(&self, inbound: &Inbound<'_>, now_s: i64) -> Result<Verified, ApiError> {
        // Malformed or stale headers are refused without touching Secrets Manager.
        let signed = Signed {
            headers: signature::WEBHOOK_HEADERS,
            signature: inbound.signature,
            timestamp: inbound.timestamp,
            body: inbound.body,
        };
        signature::precheck(&signed, now_s, self.tolerance.as_secs()).map_err(ApiError::from)?;
        self.check_with_rotation("the webhook secrets", |secrets| {
            verify(inbound, &secrets.webhook_secrets, now_s, self.tolerance)
        })
        .await
    }

    /// Checks a Studio request's token in constant time against `studioTokens`. Without a
    /// token nothing is read.
    async fn authenticate_studio(
        &self,
        inbound: &studio::StudioInbound<'_>,
    ) -> Result<(), ApiError> {
        let token = studio::credential(inbound).ok_or_else(studio::unauthorized)?;
        self.check_with_rotation("the Studio tokens", |secrets| {
            if crate::auth::matches_any(token, &secrets.studio_tokens) {
                Ok(())
            } else {
                Err(studio::unauthorized())
            }
        })
        .await
    }

    /// `POST /webhooks/cxone`: verification, then the one write, with the signature's
    /// replay entry.
    pub async fn receive(&self, inbound: &Inbound<'_>, now_ms: i64) -> Result<Outcome, ApiError> {
        body::format_of(inbound.content_type)?;
        let now_s = now_ms / 1000;
        let verified = self.verify(inbound, now_s).await?;
        let prepared = prepare(&self.config, inbound, verified, now_ms)?;
        self.record(&prepared, now_ms).await
    }

    /// `POST /webhooks/studio`: the token, then the one write. There is no signature, so
    /// no replay guard: the delivery id's record is the protection.
    pub async fn receive_studio(
        &self,
        inbound: &studio::StudioInbound<'_>,
        now_ms: i64,
    ) -> Result<Outcome, ApiError> {
        studio::format_of(inbound.content_type)?;
        self.authenticate_studio(inbound).await?;
        let prepared = studio::prepare(&self.config, inbound, now_ms)?;
        self.record(&prepared, now_ms).await
    }

    /// Records the delivery with its outbox, and the signed request's replay entry, in one
    /// write (ARCHITECTURE.md, Outbox). Once it is recorded the work is durable: the
    /// table's stream takes the messages to the queues. A duplicate, a conflict or a replay
    /// is told by the same write.
    async fn record(&self, prepared: &Prepared, now_ms: i64) -> Result<Outcome, ApiError> {
        let id = &prepared.delivery_id;
        let key = prepared.sender.key(id);
        let signature = prepared
            .verified
            .as_ref()
            .map(|v| (hex::encode(v.signature), v.timestamp));
        let replay = signature
            .as_ref()
            .map(|(signature, timestamp)| ReplayEntry {
                signature,
                delivery_id: id,
                expires_at_s: timestamp
                    .saturating_add(i64::try_from(self.tolerance.as_secs()).unwrap_or(0)),
            });
        let response = json!({"status": "accepted", "deliveryId": id});
        let outbox = prepared.outbox.to_text();
        let recorded = self
            .records
            .record(&NewDelivery {
                key: &key,
                payload_hash: &prepared.payload_hash,
                response: &response,
                event: &prepared.event_text,
                outbox: &outbox,
                replay,
                now_ms,
            })
            .await
            .map_err(|e| ApiError::unavailable("the idempotency store", e))?;
        match recorded {
            Recorded::New => Ok(Outcome::Accepted(response)),
            Recorded::Duplicate(_) => Ok(Outcome::Duplicate(
                json!({"status": "duplicate", "deliveryId": id}),
            )),
            Recorded::InProgress => Err(ApiError::in_progress(format!(
                "delivery {id} is being processed; retry later"
            ))),
            Recorded::Conflict => Err(ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                format!("delivery {id} was already received with a different body"),
            )),
            Recorded::Replayed => Err(ApiError::new(
                ErrorCode::Replayed,
                "this signed request was already delivered under another delivery id",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_job_carries_the_event_text_as_serde_would_write_it_whatever_its_names() {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Expected<'a> {
            target: &'a str,
            delivery_id: &'a str,
            route: &'a str,
            event: Box<serde_json::value::RawValue>,
        }
        let event = r#"{"eventType":"x","note":"\"event\":null","k":[1,{"event":null}]}"#;
        for route in [
            "plain",
            r#"r","event":null,"x"#,
            "back\\slash\\",
            "\u{fffe}",
        ] {
            let payload = DeliveryPayload {
                target: "audit",
                delivery_id: "d-1",
                route,
                event: None,
            };
            let job = Job::new(
                JobKind::Delivery,
                "d-1@audit".into(),
                "d-1@audit".into(),
                payload,
                0,
            );
            let spliced = outbox::with_event(&crate::queue::sqs_json(&job), event).unwrap();
            let expected = Expected {
                target: "audit",
                delivery_id: "d-1",
                route,
                event: serde_json::value::RawValue::from_string(event.to_owned()).unwrap(),
            };
            let job = Job::new(
                JobKind::Delivery,
                "d-1@audit".into(),
                "d-1@audit".into(),
                expected,
                0,
            );
            assert_eq!(spliced, crate::queue::sqs_json(&job), "{route}");
            let read: Value = serde_json::from_str(&spliced).unwrap();
            assert_eq!(read["payload"]["route"], route);
            assert_eq!(read["payload"]["event"]["note"], "\"event\":null");
        }
    }
    use crate::queue::OutboundMessage;
    use crate::secrets::{Secrets, parse_secrets};
    use crate::testing::{FakeSecrets, FakeStore};
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use studio::StudioInbound;

    impl FakeSecrets {
        fn new(webhook: &[&str]) -> Self {
            Self::with(doc(webhook))
        }
    }

    fn doc(webhook: &[&str]) -> Secrets {
        studio_doc(webhook, &["st-current"])
    }

    fn studio_doc(webhook: &[&str], studio: &[&str]) -> Secrets {
        parse_secrets(
            "t",
            &json!({"webhookSecrets": webhook, "studioTokens": studio}).to_string(),
        )
        .unwrap()
    }

    const NOW_MS: i64 = 1_800_000_000_000;

    fn receiver(routes: Option<&str>) -> Receiver<FakeSecrets, FakeStore> {
        Receiver::new(
            WebhookConfig::parse(routes, "http://q/events", "http://q/jobs").unwrap(),
            FakeSecrets::new(&["current", "previous"]),
            FakeStore::default(),
            Duration::from_secs(300),
            Duration::from_secs(30),
        )
    }

    /// The messages recorded in `key`'s outbox, as the relay will send them, by queue.
    fn recorded(r: &Receiver<FakeSecrets, FakeStore>, key: &str) -> Vec<(String, OutboundMessage)> {
        let deliveries = r.records.deliveries.lock().unwrap();
        let d = deliveries.get(key).expect("the delivery is recorded");
        Outbox::parse(&d.outbox)
            .unwrap()
            .messages(&d.event)
            .unwrap()
            .into_iter()
            .flat_map(|(q, list)| list.into_iter().map(move |m| (q.clone(), m)))
            .collect()
    }

    struct Request {
        body: Vec<u8>,
        signature: String,
        timestamp: String,
        delivery: String,
    }

    impl Request {
        fn new(secret: &str, body: &str, delivery: &str) -> Self {
            Self {
                body: body.as_bytes().to_vec(),
                signature: signature::sign(secret.as_bytes(), NOW_MS / 1000, body.as_bytes()),
                timestamp: (NOW_MS / 1000).to_string(),
                delivery: delivery.into(),
            }
        }
        fn inbound(&self) -> Inbound<'_> {
            Inbound {
                content_type: Some("application/json"),
                signature: Some(&self.signature),
                timestamp: Some(&self.timestamp),
                event_type: Some("interaction.created"),
                delivery_id: Some(&self.delivery),
                body: &self.body,
            }
        }
    }

    const CHAT: &str = r#"{"eventType":"interaction.created","data":{"id":"c-1","channelType":"chat","customer":{"email":"a@example.com"},"queue":{"name":"VIP"}}}"#;

    /// The request path without I/O, with the default configuration and secret `current`,
    /// on `body` of `content_type` signed with `current`.
    fn process_default(
        content_type: &str,
        body: &str,
        delivery: &str,
    ) -> Result<Prepared, ApiError> {
        let config = WebhookConfig::parse(None, "http://q/events", "http://q/jobs").unwrap();
        let req = Request::new("current", body, delivery);
        let inbound = Inbound {
            content_type: Some(content_type),
            ..req.inbound()
        };
        let secrets = [SecretString::from("current")];
        process(
            &config,
            &inbound,
            &secrets,
            NOW_MS,
            Duration::from_secs(300),
        )
    }

    #[tokio::test]
    async fn an_accepted_webhook_is_enqueued_once_and_its_redelivery_is_a_duplicate() {
        let r = receiver(None);
        let req = Request::new("current", CHAT, "d-1");
        let first = r.receive(&req.inbound(), NOW_MS).await.unwrap();
        assert_eq!(
            first,
            Outcome::Accepted(json!({"status": "accepted", "deliveryId": "d-1"}))
        );
        let again = r.receive(&req.inbound(), NOW_MS).await.unwrap();
        assert!(matches!(again, Outcome::Duplicate(_)));
        assert_eq!(r.records.deliveries.lock().unwrap().len(), 1);
        let sent = recorded(&r, "delivery#d-1");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, "http://q/events");
        let event: Value = serde_json::from_str(&sent[0].1.body).unwrap();
        assert_eq!(event["interactionId"], "c-1");
    }

    #[tokio::test]
    async fn each_named_target_gets_one_delivery_job_carrying_the_event_as_enqueued() {
        let r = receiver(Some(
            r#"{"targets": [{"name": "audit", "type": "https", "url": "https://audit.example.com/in"},
                            {"name": "bus", "type": "eventbridge", "bus": "default"}],
                "routes": [{"name": "all", "targets": [{"queue": "events"}, {"target": "audit"}, {"target": "bus"}]}]}"#,
        ));
        let req = Request::new("current", CHAT, "d-9");
        r.receive(&req.inbound(), NOW_MS).await.unwrap();
        let sent = recorded(&r, "delivery#d-9");
        let on = |queue: &str| -> Vec<Value> {
            sent.iter()
                .filter(|(q, _)| q == queue)
                .map(|(_, m)| serde_json::from_str(&m.body).unwrap())
                .collect()
        };
        let events = on("http://q/events");
        let jobs: Vec<Job> = on("http://q/jobs")
            .into_iter()
            .map(|j| serde_json::from_value(j).unwrap())
            .collect();
        assert_eq!(events.len(), 1);
        assert_eq!(jobs.len(), 2);
        for (job, target) in jobs.iter().zip(["audit", "bus"]) {
            assert_eq!(job.kind, JobKind::Delivery);
            assert_eq!(job.id, format!("d-9@{target}"));
            assert_eq!(job.correlation_id, job.id);
            assert_eq!((job.attempt, job.version), (0, crate::jobs::JOB_VERSION));
            assert_eq!(job.first_attempt_at, crate::clock::rfc3339(NOW_MS));
            assert_eq!(
                job.payload,
                json!({"target": target, "deliveryId": "d-9", "route": "all", "event": events[0]})
            );
        }
    }

    #[tokio::test]
    async fn a_store_failure_is_503_and_nothing_is_recorded_for_the_retry() {
        let r = receiver(None);
        let req = Request::new("current", CHAT, "d-2");
        r.records.down.store(true, Ordering::SeqCst);
        let err = r.receive(&req.inbound(), NOW_MS).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::DependencyUnavailable);
        assert!(r.records.deliveries.lock().unwrap().is_empty());
        assert!(r.records.replays.lock().unwrap().is_empty());
        r.records.down.store(false, Ordering::SeqCst);
        assert!(matches!(
            r.receive(&req.inbound(), NOW_MS).await.unwrap(),
            Outcome::Accepted(_)
        ));
    }

    #[tokio::test]
    async fn a_signature_seen_under_another_delivery_id_is_refused_and_nothing_is_recorded() {
        let r = receiver(None);
        let req = Request::new("current", CHAT, "d-first");
        r.receive(&req.inbound(), NOW_MS).await.unwrap();
        let replay = Request {
            delivery: "d-other".into(),
            ..Request::new("current", CHAT, "d-first")
        };
        let err = r
            .receive(&replay.inbound(), NOW_MS + 1000)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Replayed);
        assert!(
            !r.records
                .deliveries
                .lock()
                .unwrap()
                .contains_key("delivery#d-other")
        );
        // The same signed request under its own id is a redelivery: a duplicate.
        assert!(matches!(
            r.receive(&req.inbound(), NOW_MS + 2000).await.unwrap(),
            Outcome::Duplicate(_)
        ));
        // Another body under the first id is a conflict.
        let other = Request::new("current", &CHAT.replace("c-1", "c-2"), "d-first");
        let err = r.receive(&other.inbound(), NOW_MS).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::IdempotencyKeyReused);
    }

    #[tokio::test]
    async fn a_signal_route_puts_a_signal_job_on_the_jobs_queue_beside_the_event() {
        let r = receiver(Some(
            r#"{"routes": [
                {"name": "vip", "priority": 1, "when": [{"field": "context.queue", "equals": "VIP"}],
                 "targets": [{"signal": "order-update", "mapping": {"customerId": "customer.identifier", "missing": "context.nothing"}}]},
                {"name": "all", "priority": 2, "targets": [{"queue": "events"}]}
            ]}"#,
        ));
        let req = Request::new("current", CHAT, "d-3");
        r.receive(&req.inbound(), NOW_MS).await.unwrap();
        let sent = recorded(&r, "delivery#d-3");
        assert_eq!(
            sent.iter().map(|(q, _)| q.as_str()).collect::<Vec<_>>(),
            ["http://q/jobs", "http://q/events"]
        );
        let job: Job = serde_json::from_str(&sent[0].1.body).unwrap();
        assert_eq!(job.kind, JobKind::Signal);
        assert_eq!(job.attempt, 0);
        assert_eq!(job.correlation_id, "d-3:order-update");
        assert_eq!(job.payload["signal"], "order-update");
        assert_eq!(
            job.payload["data"],
            json!({"customerId": "a@example.com", "missing": null})
        );
        assert_eq!(job.payload["metadata"]["contactId"], "c-1");
    }

    #[tokio::test]
    async fn a_mismatch_rereads_the_secret_at_most_once_per_interval() {
        let r = receiver(None);
        *r.secrets.stored.lock().unwrap() = Arc::new(doc(&["rotated", "current"]));
        let rotated = Request::new("rotated", CHAT, "d-4");
        assert!(r.receive(&rotated.inbound(), NOW_MS).await.is_ok());
        assert_eq!(r.secrets.refreshes.load(Ordering::SeqCst), 1);

        let retired = Request::new("previous", CHAT, "d-5");
        let err = r.receive(&retired.inbound(), NOW_MS).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::SignatureMismatch);
        let err = r.receive(&retired.inbound(), NOW_MS).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::SignatureMismatch);
        assert_eq!(
            r.secrets.refreshes.load(Ordering::SeqCst),
            1,
            "rate-limited"
        );
    }

    #[tokio::test]
    async fn stale_timestamps_never_trigger_a_secret_read() {
        let r = receiver(None);
        let mut req = Request::new("current", CHAT, "d-6");
        req.timestamp = (NOW_MS / 1000 - 1000).to_string();
        let err = r.receive(&req.inbound(), NOW_MS).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::TimestampTooOld);
        assert_eq!(r.secrets.refreshes.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_pure_path_refuses_bad_input_before_any_io() {
        let json = "application/json";
        let err = process_default(json, "{not json", "d-7").unwrap_err();
        assert_eq!(err.code, ErrorCode::MalformedBody);
        let prepared = process_default(json, CHAT, "d-8").unwrap();
        assert_eq!(prepared.event["customer"]["identifier"], "a@example.com");
        assert_eq!(prepared.messages().unwrap().len(), 1);
    }

    #[test]
    fn an_event_that_outgrows_the_queue_limit_is_refused_before_any_io() {
        // 60 KB of control characters: each becomes six bytes (\u0001) in the event.
        let xml = format!(
            "<ContactEvent><ContactId>5012</ContactId><Note>{}</Note></ContactEvent>",
            "\u{1}".repeat(60_000)
        );
        let err = process_default("application/xml", &xml, "d-big").unwrap_err();
        assert_eq!(err.code, ErrorCode::PayloadTooLarge);
        assert!(err.message.contains("262144"), "{}", err.message);

        // Half as many fit, and go as one message.
        let xml = xml.replacen(&"\u{1}".repeat(30_000), "", 1);
        let prepared = process_default("application/xml", &xml, "d-fits").unwrap();
        assert_eq!(prepared.messages().unwrap()[0].1.len(), 1);
    }

    #[tokio::test]
    async fn characters_sqs_refuses_reach_the_queue_escaped_and_read_back_the_same() {
        let r = receiver(None);
        let body = r#"{"eventType":"interaction.created","data":{"id":"c-9","channelType":"fax","note":"a\uffffb\ufffe"}}"#;
        let req = Request::new("current", body, "d-ffff");
        r.receive(&req.inbound(), NOW_MS).await.unwrap();
        let sent = recorded(&r, "delivery#d-ffff");
        let text = &sent[0].1.body;
        assert!(!text.contains(['\u{fffe}', '\u{ffff}']), "{text}");
        let event: Value = serde_json::from_str(text).unwrap();
        assert_eq!(event["context"]["data"]["note"], "a\u{ffff}b\u{fffe}");
    }

    const STUDIO_FORM: &[u8] =
        b"ContactID=5012&ANI=%2B15550100&SkillName=Billing&eventType=contact.routed";

    fn studio_request<'a>(token: &'a str, delivery: &'a str) -> StudioInbound<'a> {
        StudioInbound {
            content_type: Some("application/x-www-form-urlencoded"),
            api_key: Some(token.as_bytes()),
            delivery_id: Some(delivery.as_bytes()),
            body: STUDIO_FORM,
            ..StudioInbound::default()
        }
    }

    #[tokio::test]
    async fn a_studio_request_is_enqueued_once_under_a_key_of_its_own() {
        let r = receiver(None);
        let req = studio_request("st-current", "d-1");
        let first = r.receive_studio(&req, NOW_MS).await.unwrap();
        assert_eq!(
            first,
            Outcome::Accepted(json!({"status": "accepted", "deliveryId": "d-1"}))
        );
        assert_eq!(
            r.receive_studio(&req, NOW_MS).await.unwrap(),
            Outcome::Duplicate(json!({"status": "duplicate", "deliveryId": "d-1"}))
        );
        // A CXone delivery with the same id is another delivery.
        let cxone = Request::new("current", CHAT, "d-1");
        assert!(matches!(
            r.receive(&cxone.inbound(), NOW_MS).await.unwrap(),
            Outcome::Accepted(_)
        ));
        let keys: Vec<String> = {
            let mut k: Vec<String> = r
                .records
                .deliveries
                .lock()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            k.sort();
            k
        };
        assert_eq!(keys, ["delivery#d-1", "studio-delivery#d-1"]);
        let sent = recorded(&r, "studio-delivery#d-1");
        assert_eq!(sent.len(), 1);
        let event: Value = serde_json::from_str(&sent[0].1.body).unwrap();
        assert_eq!(event["channel"], "studio");
        assert_eq!(event["interactionId"], "5012");
        assert!(
            r.records.replays.lock().unwrap().len() == 1,
            "only the signed request went through the replay guard"
        );
    }

    #[tokio::test]
    async fn the_same_studio_delivery_id_with_another_body_is_a_conflict_and_a_store_failure_a_503()
    {
        let r = receiver(None);
        r.records.down.store(true, Ordering::SeqCst);
        let req = studio_request("st-current", "d-2");
        let err = r.receive_studio(&req, NOW_MS).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::DependencyUnavailable);
        assert!(
            r.records.deliveries.lock().unwrap().is_empty(),
            "nothing recorded"
        );
        r.records.down.store(false, Ordering::SeqCst);
        assert!(matches!(
            r.receive_studio(&req, NOW_MS).await.unwrap(),
            Outcome::Accepted(_)
        ));
        let other = StudioInbound {
            body: b"ContactID=5013",
            ..req
        };
        let err = r.receive_studio(&other, NOW_MS).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::IdempotencyKeyReused);
    }

    #[tokio::test]
    async fn a_studio_request_without_a_token_is_refused_without_reading_the_secret() {
        let r = receiver(None);
        let req = StudioInbound {
            api_key: None,
            ..studio_request("", "d-3")
        };
        let err = r.receive_studio(&req, NOW_MS).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Unauthorized);
        assert_eq!(r.secrets.refreshes.load(Ordering::SeqCst), 0);
        assert!(r.records.deliveries.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_rotated_studio_token_is_picked_up_with_one_rate_limited_read() {
        let r = receiver(None);
        *r.secrets.stored.lock().unwrap() =
            Arc::new(studio_doc(&["current"], &["st-next", "st-current"]));
        let bearer = StudioInbound {
            api_key: None,
            authorization: Some(b"Bearer st-next"),
            ..studio_request("", "d-4")
        };
        assert!(r.receive_studio(&bearer, NOW_MS).await.is_ok());
        assert_eq!(r.secrets.refreshes.load(Ordering::SeqCst), 1);
        for _ in 0..3 {
            let err = r
                .receive_studio(&studio_request("wrong", "d-5"), NOW_MS)
                .await
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::Unauthorized);
            assert!(!err.message.contains("wrong"));
        }
        assert_eq!(
            r.secrets.refreshes.load(Ordering::SeqCst),
            1,
            "rate-limited"
        );
        assert!(r.records.deliveries.lock().unwrap().len() == 1);
    }
}
