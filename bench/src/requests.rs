//! Real requests for each function, as CXone, Cognigy, Studio and SQS send them.

use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use bytes::Bytes;
use cxbridge::jobs::{Job, JobKind};
use cxbridge_local::runtime_api::FunctionHost;
use cxbridge_local::samples;
use serde_json::{Value, json};

/// A signed webhook, kept whole so that it can be sent again byte for byte (a retry).
#[derive(Debug, Clone)]
pub struct Webhook {
    pub headers: Vec<(&'static str, String)>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Webhook {
    /// The `n`th chat webhook of `run`, signed now with `secret`.
    pub fn new(secret: &str, run: &str, n: usize) -> Result<Self> {
        let sample = samples::webhook("chat", run, n).ok_or_else(|| anyhow!("no chat sample"))?;
        let headers = samples::signed_headers(
            secret,
            cxbridge::clock::now_secs(),
            &sample.body,
            &format!("{run}-{n}"),
            &sample.event_type,
        );
        Ok(Self {
            headers,
            content_type: sample.content_type,
            body: sample.body,
        })
    }

    pub fn request(&self, client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        let mut request = client
            .post(url)
            .header("content-type", self.content_type)
            .body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        request
    }
}

/// What the functions need to be sent real work.
pub struct Requests {
    pub client: reqwest::Client,
    pub gateway: String,
    pub run: String,
    pub webhook_secret: String,
    pub callback_secret: String,
    pub cognigy_token: String,
    pub api_key: String,
    pub jobs_queue_arn: String,
    pub events_queue_url: String,
}

impl Requests {
    /// The idempotency key of the `n`th signal dispatch (and its callback and reconcile).
    fn key(&self, n: usize) -> String {
        format!("{}-sig-{n}", self.run)
    }

    /// Sends the `n`th real request to `function`; an error unless it was answered 2xx.
    pub async fn send(&self, function: &str, host: &Arc<FunctionHost>, n: usize) -> Result<()> {
        let url = |path: &str| format!("{}{path}", self.gateway);
        let request = match function {
            "webhook-receiver" => Webhook::new(&self.webhook_secret, &self.run, n)?
                .request(&self.client, &url("/webhooks/cxone")),
            "intent-router" => self
                .client
                .post(url("/cognigy/intents"))
                .bearer_auth(&self.cognigy_token)
                .json(&json!({
                    "conversationId": format!("{}-conv-{n}", self.run),
                    "intent": "billing", "confidence": 0.92,
                    "timestamp": cxbridge::clock::rfc3339(cxbridge::clock::now_ms())
                })),
            "signal-dispatcher" => self
                .client
                .post(url("/signals/order-update"))
                .header("x-api-key", &self.api_key)
                .header("idempotency-key", self.key(n))
                .json(&json!({
                    "data": {"customerId": format!("C-{n}"), "orderId": "O-77", "updateType": "shipped",
                             "priority": "high", "timestamp": "2026-11-22T09:00:00Z",
                             "address": {"city": "Leeds", "zip": "LS1 4AP"}},
                    "metadata": {"sourceSystem": "shop", "contactId": format!("contact-{n}")}
                })),
            "callback-verifier" => {
                let body = json!({"correlationId": self.key(n), "status": "completed",
                                  "outputs": {"tracking": format!("T-{n}")}})
                .to_string();
                let ts = cxbridge::clock::now_secs();
                let signature = cxbridge::webhook::signature::sign(
                    self.callback_secret.as_bytes(),
                    ts,
                    body.as_bytes(),
                );
                self.client
                    .post(url("/callbacks/studio"))
                    .header("content-type", "application/json")
                    .header("x-callback-timestamp", ts.to_string())
                    .header("x-callback-signature-256", signature)
                    .body(body)
            }
            "retry-drainer" => return self.drain(host, n).await,
            "event-relay" => return self.relay(host, n).await,
            other => bail!("no requests for {other}"),
        };
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("{function}: {status}: {body}");
        }
        // Read the whole answer, as a caller would.
        response.bytes().await?;
        Ok(())
    }

    /// The `n`th chat webhook to webhook-receiver, signed with the wrong secret; an error
    /// unless it was refused with 401.
    pub async fn send_rejected(&self, n: usize) -> Result<()> {
        let wrong = format!("{}-not", self.webhook_secret);
        let url = format!("{}/webhooks/cxone", self.gateway);
        let response = Webhook::new(&wrong, &self.run, n)?
            .request(&self.client, &url)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.as_u16() != 401 {
            bail!("webhook-receiver answered a wrong signature with {status}: {body}");
        }
        Ok(())
    }

    /// A stream batch of one delivery record whose outbox puts its event on `events`,
    /// invoked as the table's stream mapping invokes event-relay (whose mapping is
    /// disabled meanwhile).
    async fn relay(&self, host: &Arc<FunctionHost>, n: usize) -> Result<()> {
        use cxbridge::webhook::outbox::{Body, Message, Outbox};
        let id = format!("{}-relay-{n}", self.run);
        let mut outbox = Outbox::default();
        outbox.push(
            self.events_queue_url.clone(),
            Message {
                body: Body::Event,
                attributes: vec![("deliveryId".into(), id.clone())],
                dedup_id: String::new(),
                group_id: String::new(),
            },
        );
        let event = json!({"deliveryId": id, "eventType": "interaction.created",
                           "interactionId": format!("c-{n}"), "channel": "chat"});
        let key = format!("delivery#{id}");
        let record = json!({"Records": [{
            "eventID": format!("{}-ev-{n}", self.run),
            "eventName": "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "Keys": {"pk": {"S": key}},
                "NewImage": {
                    "pk": {"S": key},
                    "status": {"S": "completed"},
                    "event": {"S": event.to_string()},
                    "outbox": {"S": outbox.to_text()},
                },
                "SequenceNumber": format!("{}", 9_000_000_000u64 + n as u64),
                "SizeBytes": 512,
                "StreamViewType": "NEW_IMAGE",
            },
        }]});
        let output = host
            .invoke(Bytes::from(record.to_string()))
            .await
            .map_err(|e| anyhow!("event-relay: {e}"))?;
        let answer: Value = serde_json::from_slice(&output)?;
        match answer["batchItemFailures"].as_array() {
            Some(failures) if failures.is_empty() => Ok(()),
            _ => bail!("event-relay: {answer}"),
        }
    }

    /// An SQS batch of one `reconcile` job for the `n`th dispatch, invoked as the event
    /// source mapping invokes retry-drainer.
    async fn drain(&self, host: &Arc<FunctionHost>, n: usize) -> Result<()> {
        let key = self.key(n);
        let now_ms = cxbridge::clock::now_ms();
        let job = serde_json::to_string(&Job {
            version: cxbridge::jobs::JOB_VERSION,
            id: format!("{key}:reconcile"),
            kind: JobKind::Reconcile,
            correlation_id: key,
            attempt: 0,
            first_attempt_at: cxbridge::clock::rfc3339(now_ms),
            last_attempt_at: None,
            payload: json!({"dispatchedAt": now_ms - 600_000}),
            last_error: None,
            redriven: false,
        })?;
        let now = now_ms.to_string();
        let event = json!({"Records": [{
            "messageId": format!("{}-msg-{n}", self.run),
            "receiptHandle": format!("{}-rh-{n}", self.run),
            "body": job,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": now,
                           "SenderId": "123456789012", "ApproximateFirstReceiveTimestamp": now},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": self.jobs_queue_arn,
            "awsRegion": "us-east-1"
        }]});
        let output = host
            .invoke(Bytes::from(event.to_string()))
            .await
            .map_err(|e| anyhow!("retry-drainer: {e}"))?;
        let answer: Value = serde_json::from_slice(&output)?;
        match answer["batchItemFailures"].as_array() {
            Some(failures) if failures.is_empty() => Ok(()),
            _ => bail!("retry-drainer: {answer}"),
        }
    }
}
