use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use cxbridge_e2e::{
    TestStack, WebhookRequest, eventually, options, queue_depth, receive_all, sdk, start, unique,
};
use cxbridge_local::samples;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn sample(channel: &str) -> samples::SampleWebhook {
    samples::webhook(channel, &unique("r"), 1).unwrap()
}

fn signed(secret: &str, s: &samples::SampleWebhook, delivery_id: &str) -> WebhookRequest {
    WebhookRequest::signed(secret, s.content_type, &s.body, delivery_id, &s.event_type)
}

/// CXone's retry of a delivery: signed afresh, a second later than now, so its signature
/// differs from the first attempt's.
fn resigned(secret: &str, s: &samples::SampleWebhook, delivery_id: &str) -> WebhookRequest {
    let later = cxbridge::clock::now_secs() + 1;
    WebhookRequest::signed_at(
        secret,
        s.content_type,
        &s.body,
        delivery_id,
        &s.event_type,
        later,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_event_on_each_channel_is_accepted_and_lands_once_on_events_normalised() {
    let stack = start(options()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let client = reqwest::Client::new();
    let events = &stack.resources.queues["events"].url;
    let secret = &stack.resources.secrets.webhook;

    for channel in samples::CHANNELS {
        let s = sample(channel);
        let delivery = unique("d-");
        let (status, body) = signed(secret, &s, &delivery)
            .send(&client, &stack.gateway_url)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{channel}: {body}");
        assert_eq!(body, json!({"status": "accepted", "deliveryId": delivery}));

        stack.relayed().await;
        let landed = receive_all(&sqs, events).await;
        assert_eq!(landed.len(), 1, "{channel}: exactly one event");
        for m in &landed {
            sqs.delete_message()
                .queue_url(events)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        let event: Value = serde_json::from_str(landed[0].body().unwrap()).unwrap();
        assert_eq!(event["deliveryId"], delivery.as_str());
        assert_eq!(event["eventType"], s.event_type.as_str());
        let attrs = landed[0].message_attributes().unwrap();
        assert_eq!(attrs["deliveryId"].string_value(), Some(delivery.as_str()));
        match channel {
            "xml" => {
                assert_eq!(event["channel"], Value::Null);
                assert_eq!(event["interactionId"], Value::Null);
                assert_eq!(
                    event["context"]["xml"]["ContactEvent"]["ContactId"],
                    s.interaction_id.as_str()
                );
                assert_eq!(
                    event["context"]["xml"]["ContactEvent"]["Skill"]["@id"],
                    "4001"
                );
            }
            _ => {
                assert_eq!(event["channel"], channel);
                assert_eq!(event["interactionId"], s.interaction_id.as_str());
                assert!(
                    event["occurredAt"]
                        .as_str()
                        .is_some_and(|t| t.ends_with('Z')),
                    "{event}"
                );
                assert_eq!(event["context"]["direction"], "inbound");
                let customer_type = if channel == "chat" { "email" } else { "phone" };
                assert_eq!(event["customer"]["type"], customer_type, "{event}");
                assert!(
                    event["customer"]["identifier"]
                        .as_str()
                        .is_some_and(|i| !i.is_empty())
                );
                if channel != "voice" {
                    assert!(
                        event["context"]["message"]
                            .as_str()
                            .is_some_and(|m| !m.is_empty())
                    );
                }
            }
        }
    }
    stack.relayed().await;
    assert_eq!(
        queue_depth(&sqs, &stack.resources.queues["jobs"].url).await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivery_is_a_duplicate_and_a_replay_under_a_new_id_is_refused() {
    let stack = start(options()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let client = reqwest::Client::new();
    let events = &stack.resources.queues["events"].url;
    let secret = &stack.resources.secrets.webhook;
    let s = sample("chat");
    let delivery = unique("d-");

    let first = signed(secret, &s, &delivery);
    assert_eq!(
        first.send(&client, &stack.gateway_url).await.0,
        StatusCode::ACCEPTED
    );
    stack.relayed().await;
    assert_eq!(receive_all(&sqs, events).await.len(), 1);

    // CXone's retry: same delivery id, signed afresh (the timestamp moves on).
    let again = resigned(secret, &s, &delivery);
    assert_ne!(again.headers, first.headers, "a fresh signature");
    let (status, body) = again.send(&client, &stack.gateway_url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "duplicate", "deliveryId": delivery}));

    // The identical bytes and headers once more: still a duplicate, not a replay.
    let (status, _) = first.send(&client, &stack.gateway_url).await;
    assert_eq!(status, StatusCode::OK);

    // A captured request re-sent under a new delivery id.
    let replay = WebhookRequest {
        content_type: first.content_type.clone(),
        body: first.body.clone(),
        headers: first.headers.clone(),
    }
    .set("x-nexus-delivery-id", &unique("other-"));
    let (status, body) = replay.send(&client, &stack.gateway_url).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "replayed");

    stack.relayed().await;
    assert_eq!(
        queue_depth(&sqs, events).await,
        1,
        "only the first delivery was enqueued"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_delivery_id_with_another_body_is_a_conflict() {
    let stack = start(options()).await;
    let client = reqwest::Client::new();
    let secret = &stack.resources.secrets.webhook;
    let delivery = unique("d-");
    let a = sample("sms");
    let b = sample("sms");
    assert_eq!(
        signed(secret, &a, &delivery)
            .send(&client, &stack.gateway_url)
            .await
            .0,
        StatusCode::ACCEPTED
    );
    let (status, body) = signed(secret, &b, &delivery)
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
}

/// The sample a bad-input test spoils, and how it signs a request.
struct BadInput {
    secret: String,
    sample: samples::SampleWebhook,
    now: i64,
}

const JSON: &str = "application/json";

impl BadInput {
    fn new(stack: &TestStack) -> Self {
        Self {
            secret: stack.resources.secrets.webhook.clone(),
            sample: sample("voice"),
            now: cxbridge::clock::now_secs(),
        }
    }

    /// `body` of `content_type`, signed now under a new delivery id.
    fn ok(&self, body: &[u8], content_type: &str) -> WebhookRequest {
        WebhookRequest::signed(
            &self.secret,
            content_type,
            body,
            &unique("d-"),
            "interaction.created",
        )
    }

    /// The sample signed at `timestamp`.
    fn at(&self, timestamp: i64) -> WebhookRequest {
        let body = &self.sample.body;
        WebhookRequest::signed_at(&self.secret, JSON, body, &unique("d-"), "x", timestamp)
    }

    fn good_signature(&self) -> String {
        cxbridge::webhook::signature::sign(self.secret.as_bytes(), self.now, &self.sample.body)
    }

    /// The sample with one bit flipped after signing.
    fn tampered(&self) -> Vec<u8> {
        let mut body = self.sample.body.clone();
        body[10] ^= 1;
        body
    }
}

/// Sends each case and checks its status and code, that its answer names no secret, and
/// that nothing reached a queue; then that the logs hold no secret.
async fn each_refused(stack: &TestStack, cases: Vec<(&str, WebhookRequest, StatusCode, &str)>) {
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let client = reqwest::Client::new();
    let secret = &stack.resources.secrets.webhook;
    for (name, request, status, code) in cases {
        let (got, body) = request.send(&client, &stack.gateway_url).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
        assert!(
            !body.to_string().contains(secret),
            "{name}: the secret leaked"
        );
        stack.relayed().await;
        for queue in ["events", "jobs"] {
            assert_eq!(
                queue_depth(&sqs, &stack.resources.queues[queue].url).await,
                0,
                "{name}: {queue} got a message"
            );
        }
    }
    let logs = stack.log.lines().join("\n");
    assert!(!logs.contains(secret), "the secret appears in the logs");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_signatures_are_refused_with_their_code_and_nothing_is_enqueued() {
    let stack = start(options()).await;
    let b = BadInput::new(&stack);
    let cases = vec![
        (
            "tampered body",
            WebhookRequest {
                body: b.tampered(),
                ..b.ok(&b.sample.body, JSON)
            },
            StatusCode::UNAUTHORIZED,
            "signature_mismatch",
        ),
        (
            "stale timestamp",
            b.at(b.now - 600),
            StatusCode::UNAUTHORIZED,
            "timestamp_too_old",
        ),
        (
            "far stale timestamp",
            b.at(b.now - 86_400),
            StatusCode::UNAUTHORIZED,
            "timestamp_too_old",
        ),
        (
            "future timestamp",
            b.at(b.now + 600),
            StatusCode::UNAUTHORIZED,
            "timestamp_in_future",
        ),
        (
            "wrong secret",
            WebhookRequest::signed("not-the-secret", JSON, &b.sample.body, &unique("d-"), "x"),
            StatusCode::UNAUTHORIZED,
            "signature_mismatch",
        ),
        (
            "missing signature",
            b.ok(&b.sample.body, JSON).without("x-nexus-signature-256"),
            StatusCode::UNAUTHORIZED,
            "missing_signature_header",
        ),
        (
            "missing timestamp",
            b.ok(&b.sample.body, JSON).without("x-nexus-timestamp"),
            StatusCode::UNAUTHORIZED,
            "missing_signature_header",
        ),
        (
            "garbled signature",
            b.ok(&b.sample.body, JSON)
                .set("x-nexus-signature-256", "sha256=not-hex"),
            StatusCode::UNAUTHORIZED,
            "malformed_signature",
        ),
        (
            "short signature",
            b.ok(&b.sample.body, JSON)
                .set("x-nexus-signature-256", "sha256=abcd"),
            StatusCode::UNAUTHORIZED,
            "malformed_signature",
        ),
        (
            "signature without scheme",
            b.ok(&b.sample.body, JSON)
                .set("x-nexus-signature-256", &b.good_signature()[7..]),
            StatusCode::UNAUTHORIZED,
            "malformed_signature",
        ),
        (
            "sha1 scheme",
            b.ok(&b.sample.body, JSON).set(
                "x-nexus-signature-256",
                &b.good_signature().replace("sha256=", "sha1="),
            ),
            StatusCode::UNAUTHORIZED,
            "malformed_signature",
        ),
        (
            "timestamp not a number",
            b.ok(&b.sample.body, JSON)
                .set("x-nexus-timestamp", "yesterday"),
            StatusCode::UNAUTHORIZED,
            "timestamp_not_numeric",
        ),
        (
            "timestamp in exponent form",
            b.ok(&b.sample.body, JSON).set("x-nexus-timestamp", "1.8e9"),
            StatusCode::UNAUTHORIZED,
            "timestamp_not_numeric",
        ),
        (
            "timestamp changed after signing",
            b.ok(&b.sample.body, JSON)
                .set("x-nexus-timestamp", &(b.now - 1).to_string()),
            StatusCode::UNAUTHORIZED,
            "signature_mismatch",
        ),
    ];
    each_refused(&stack, cases).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_and_headers_are_refused_with_their_code_and_nothing_is_enqueued() {
    let stack = start(options()).await;
    let b = BadInput::new(&stack);
    let cases = vec![
        (
            "malformed JSON",
            b.ok(b"{\"eventType\": ", JSON),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            "JSON that is not an object",
            b.ok(b"[1,2,3]", JSON),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            "malformed XML",
            b.ok(b"<ContactEvent><ContactId>1</Contact>", "text/xml"),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            "XML with a DTD",
            b.ok(
                b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
                "application/xml",
            ),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            "empty body",
            b.ok(b"", JSON),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            "missing delivery id",
            b.ok(&b.sample.body, JSON).without("x-nexus-delivery-id"),
            StatusCode::BAD_REQUEST,
            "missing_delivery_id",
        ),
        (
            "overlong delivery id",
            b.ok(&b.sample.body, JSON)
                .set("x-nexus-delivery-id", &"d".repeat(300)),
            StatusCode::BAD_REQUEST,
            "missing_delivery_id",
        ),
        (
            "body over 256 KiB",
            b.ok(&vec![b' '; 256 * 1024 + 1], JSON),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "text/plain",
            b.ok(&b.sample.body, "text/plain"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "no content type",
            b.ok(&b.sample.body, ""),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    each_refused(&stack, cases).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_identical_deliveries_enqueue_exactly_one_event() {
    let stack = start(options()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let client = reqwest::Client::new();
    let s = sample("voice");
    let request = std::sync::Arc::new(signed(&stack.resources.secrets.webhook, &s, &unique("d-")));
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (request, client, gateway) =
            (request.clone(), client.clone(), stack.gateway_url.clone());
        sends.spawn(async move { request.send(&client, &gateway).await });
    }
    let results = sends.join_all().await;
    let accepted = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .count();
    assert_eq!(accepted, 1, "{results:?}");
    for (status, body) in &results {
        match *status {
            StatusCode::ACCEPTED => {}
            StatusCode::OK => assert_eq!(body["status"], "duplicate"),
            StatusCode::SERVICE_UNAVAILABLE => assert_eq!(body["error"]["code"], "in_progress"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    stack.relayed().await;
    assert_eq!(
        receive_all(&sqs, &stack.resources.queues["events"].url)
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_secret_is_picked_up_without_a_restart_and_the_retired_one_is_refused() {
    let stack = start(options()).await;
    let client = reqwest::Client::new();
    let current = stack.resources.secrets.webhook.clone();
    let previous = stack.resources.secrets.webhook_previous.clone();

    let s = sample("chat");
    let (status, _) = signed(&previous, &s, &unique("d-"))
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "the previous secret is still active"
    );

    let document = stack.read_secret().await;
    let rotated = unique("rotated-");
    let mut next = document.clone();
    next["webhookSecrets"] = json!([rotated, current]);
    stack.write_secret(&next).await;

    let (status, body) = signed(&rotated, &sample("chat"), &unique("d-"))
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "the new secret works at once: {body}"
    );
    let (status, _) = signed(&current, &sample("chat"), &unique("d-"))
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "the old current is now the previous one"
    );
    let (status, body) = signed(&previous, &sample("chat"), &unique("d-"))
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the retired secret is refused"
    );
    assert_eq!(body["error"]["code"], "signature_mismatch");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_queue_gone_the_webhook_is_accepted_and_lands_once_when_the_queue_is_back() {
    let stack = start(options()).await;
    let sdk = sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let client = reqwest::Client::new();
    let events = stack.resources.queues["events"].clone();
    let secret = &stack.resources.secrets.webhook;
    let s = sample("voice");
    let delivery = unique("d-");

    sqs.delete_queue()
        .queue_url(&events.url)
        .send()
        .await
        .unwrap();
    let (status, body) = signed(secret, &s, &delivery)
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let record = dynamodb
        .get_item()
        .table_name(&stack.resources.table)
        .key("pk", AttributeValue::S(format!("delivery#{delivery}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the delivery is recorded");
    let outbox = record["outbox"].as_s().unwrap();
    assert!(outbox.contains(&events.url), "{outbox}");
    assert!(
        record["event"].as_s().unwrap().contains(&delivery),
        "the event is recorded with it"
    );
    assert!(
        !stack.outbox_relayed(Duration::from_secs(2)).await,
        "the relay keeps the record while the queue is gone"
    );

    let recreated = sqs
        .create_queue()
        .queue_name(&events.name)
        .send()
        .await
        .unwrap();
    assert_eq!(recreated.queue_url(), Some(events.url.as_str()));
    stack.relayed().await;
    let (status, _) = resigned(secret, &s, &delivery)
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(status, StatusCode::OK, "CXone's retry is a duplicate");
    stack.relayed().await;
    let landed = receive_all(&sqs, &events.url).await;
    assert_eq!(landed.len(), 1, "only once");
    assert!(landed[0].body().unwrap_or_default().contains(&delivery));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_table_gone_the_receiver_answers_503_and_the_retry_after_recovery_lands_once() {
    let stack = start(options()).await;
    let sdk = sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let client = reqwest::Client::new();
    let table = stack.resources.table.clone();
    let secret = &stack.resources.secrets.webhook;
    let s = sample("sms");
    let delivery = unique("d-");

    dynamodb
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let (status, body) = signed(secret, &s, &delivery)
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "dependency_unavailable");
    assert_eq!(
        queue_depth(&sqs, &stack.resources.queues["events"].url).await,
        0
    );

    cxbridge_e2e::create_table(&dynamodb, &table).await;
    let (status, body) = eventually(
        "the receiver to recover",
        Duration::from_secs(20),
        || async {
            let out = signed(secret, &s, &delivery)
                .send(&client, &stack.gateway_url)
                .await;
            (out.0 != StatusCode::SERVICE_UNAVAILABLE).then_some(out)
        },
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    stack.relayed().await;
    assert_eq!(
        receive_all(&sqs, &stack.resources.queues["events"].url)
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_sends_correctly_signed_webhooks_that_are_accepted() {
    let stack = start(options()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let out = tokio::process::Command::new(cxbridge_e2e::bin_dir().join("cxbridge"))
        .args([
            "send",
            "webhook",
            "--channel",
            "sms",
            "--count",
            "3",
            "--to",
        ])
        .arg(format!("{}/webhooks/cxone", stack.gateway_url))
        .arg("--secret")
        .arg(&stack.resources.secrets.webhook_previous)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains(" 202 Accepted "))
            .count(),
        3,
        "{stdout}"
    );
    stack.relayed().await;
    assert_eq!(
        receive_all(&sqs, &stack.resources.queues["events"].url)
            .await
            .len(),
        3
    );

    let refused = tokio::process::Command::new(cxbridge_e2e::bin_dir().join("cxbridge"))
        .args(["send", "webhook", "--channel", "xml", "--to"])
        .arg(format!("{}/webhooks/cxone", stack.gateway_url))
        .args(["--secret", "wrong"])
        .output()
        .await
        .unwrap();
    assert!(
        !refused.status.success(),
        "a refused webhook makes the command fail"
    );
    assert!(String::from_utf8_lossy(&refused.stdout).contains("401"));
}

#[test]
fn the_cli_prints_headers_that_verify() {
    let out = std::process::Command::new(cxbridge_e2e::bin_dir().join("cxbridge"))
        .args([
            "sign",
            "--secret",
            "s3cret",
            "--timestamp",
            "1800000000",
            "--body",
            "{\"a\":1}",
            "--delivery-id",
            "d-1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = cxbridge::webhook::signature::sign(b"s3cret", 1_800_000_000, b"{\"a\":1}");
    assert!(
        stdout.contains(&format!("X-Nexus-Signature-256: {expected}")),
        "{stdout}"
    );
    assert!(stdout.contains("X-Nexus-Timestamp: 1800000000"));
    assert!(stdout.contains("X-Nexus-Delivery-Id: d-1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retired_secret_is_refused_once_the_cache_lapses_even_if_it_is_tried_first() {
    let short_cache = "webhook-receiver:CXBRIDGE_SECRET_CACHE_TTL_SECS=1";
    let stack = start(cxbridge_e2e::with_setting(options(), short_cache)).await;
    let client = reqwest::Client::new();
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk().await);
    let previous = stack.resources.secrets.webhook_previous.clone();
    let rotated = unique("rotated-");
    let current: Value = serde_json::from_str(
        secrets
            .get_secret_value()
            .secret_id(&stack.resources.secret_id)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .unwrap()
            .secret_string()
            .unwrap(),
    )
    .unwrap();
    let mut next = current.clone();
    next["webhookSecrets"] = json!([rotated, stack.resources.secrets.webhook]);
    secrets
        .put_secret_value()
        .secret_id(&stack.resources.secret_id)
        .secret_string(next.to_string())
        .send()
        .await
        .unwrap();

    let refused = eventually(
        "the retired secret to be refused",
        Duration::from_secs(15),
        || async {
            let (status, body) = signed(&previous, &sample("voice"), &unique("d-"))
                .send(&client, &stack.gateway_url)
                .await;
            (status == StatusCode::UNAUTHORIZED).then_some(body)
        },
    )
    .await;
    assert_eq!(refused["error"]["code"], "signature_mismatch");
    let (status, _) = signed(&rotated, &sample("voice"), &unique("d-"))
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread")]
async fn when_one_queue_fails_the_relay_retries_only_it_and_each_queue_gets_the_event_once() {
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    // A second queue that does not exist yet: every send to it fails.
    let crm_name = unique("crm-");
    let crm_url = format!(
        "{}/123456789012/{crm_name}",
        cxbridge_e2e::aws_endpoint().trim_end_matches('/')
    );
    let routes =
        json!({"routes": [{"name": "both", "targets": [{"queue": "events"}, {"queue": crm_url}]}]});
    let opts = cxbridge_e2e::with_webhook_config(options(), &routes);
    let stack = start(opts).await;
    let client = reqwest::Client::new();
    let request = signed(
        &stack.resources.secrets.webhook,
        &sample("chat"),
        &unique("d-"),
    );

    // Recorded with its outbox, the webhook is accepted whatever the queues do.
    let (status, body) = request.send(&client, &stack.gateway_url).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let events = &stack.resources.queues["events"].url;
    eventually(
        "the queue that works to get the event",
        Duration::from_secs(20),
        || async { (queue_depth(&sqs, events).await == 1).then_some(()) },
    )
    .await;
    assert!(
        !stack.outbox_relayed(Duration::from_secs(2)).await,
        "the relay is still retrying the queue that fails"
    );

    // The failing queue comes back; the relay's retry sends only to it.
    let created = sqs
        .create_queue()
        .queue_name(&crm_name)
        .send()
        .await
        .unwrap();
    assert_eq!(created.queue_url(), Some(crm_url.as_str()));
    stack.relayed().await;
    let (status, _) = request.send(&client, &stack.gateway_url).await;
    assert_eq!(status, StatusCode::OK, "a redelivery is a duplicate");
    stack.relayed().await;

    assert_eq!(receive_all(&sqs, events).await.len(), 1, "never twice");
    assert_eq!(receive_all(&sqs, &crm_url).await.len(), 1);
}
