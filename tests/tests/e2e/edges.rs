//! Requests at the edges, through the local stack: a retry that meets its first copy still
//! running, keys and ids that cannot be used, ids that would leave CXone's path or outgrow
//! DynamoDB's keys, and events too big for a queue. Each is answered as the sender's
//! retry rules need, and nothing is enqueued or sent for what is refused.

use aws_sdk_dynamodb::types::AttributeValue;
use cxbridge_e2e::{
    TestStack, WebhookRequest, options, platform_options, queue_depth, sdk, start, unique,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// An answer with the headers a retrying sender reads.
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

async fn answer(response: reqwest::Response) -> Answer {
    Answer {
        status: response.status(),
        retry_after: response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: response.json().await.unwrap_or(Value::Null),
    }
}

async fn send_webhook(stack: &TestStack, request: &WebhookRequest) -> Answer {
    let mut builder = reqwest::Client::new()
        .post(format!("{}/webhooks/cxone", stack.gateway_url))
        .header("content-type", &request.content_type)
        .body(request.body.clone());
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    answer(builder.send().await.unwrap()).await
}

async fn send_studio(stack: &TestStack, delivery_id: &str, body: &str) -> Answer {
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/studio", stack.gateway_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-api-key", &stack.resources.secrets.studio)
        .header("x-delivery-id", delivery_id)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn dynamodb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk().await)
}

/// Records `key` as claimed by a copy of `body` that is still running, as the first of
/// two concurrent copies leaves it.
async fn claimed_by_a_running_copy(stack: &TestStack, key: &str, body: &[u8]) {
    let now_ms = cxbridge::clock::now_ms();
    dynamodb()
        .await
        .put_item()
        .table_name(&stack.resources.table)
        .item("pk", AttributeValue::S(key.to_owned()))
        .item("status", AttributeValue::S("in_progress".into()))
        .item(
            "payloadHash",
            AttributeValue::S(hex::encode(Sha256::digest(body))),
        )
        .item(
            "expiresAt",
            AttributeValue::N((now_ms / 1000 + 3600).to_string()),
        )
        .item(
            "inProgressExpiresAt",
            AttributeValue::N((now_ms + 600_000).to_string()),
        )
        .send()
        .await
        .unwrap();
}

/// The first copy fails and lets its claim go, as the receiver does after a 503.
async fn first_copy_fails(stack: &TestStack, key: &str) {
    dynamodb()
        .await
        .delete_item()
        .table_name(&stack.resources.table)
        .key("pk", AttributeValue::S(key.to_owned()))
        .send()
        .await
        .unwrap();
}

async fn has_item(stack: &TestStack, key: &str) -> bool {
    dynamodb()
        .await
        .get_item()
        .table_name(&stack.resources.table)
        .key("pk", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .is_some()
}

/// Messages on `events` once event-relay has sent every accepted webhook's outbox.
async fn events_depth(stack: &TestStack) -> i64 {
    stack.relayed().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    queue_depth(&sqs, &stack.resources.queues["events"].url).await
}

/// Messages on `jobs` once event-relay has sent every accepted webhook's outbox.
async fn jobs_depth(stack: &TestStack) -> i64 {
    stack.relayed().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    queue_depth(&sqs, &stack.resources.queues["jobs"].url).await
}

/// The calls that act on CXone (signals, script starts, context updates) in the
/// simulator's journal; token fetches are left out.
async fn platform_calls(stack: &TestStack) -> Vec<Value> {
    stack
        .journal()
        .await
        .into_iter()
        .filter(|e| {
            e["path"].as_str().is_some_and(|p| {
                p.starts_with("/inContactAPI/")
                    || (p.starts_with("/api/v2/") && !p.starts_with("/api/v2/oauth/"))
            })
        })
        .collect()
}

fn in_progress(a: &Answer) {
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "in_progress", "{}", a.body);
    assert_eq!(a.retry_after.as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_that_meets_its_first_copy_running_gets_a_503_and_is_accepted_once_the_first_copy_fails()
 {
    let stack = start(options()).await;
    let (s, delivery, request) = stack.sample_webhook("chat");
    let key = format!("delivery#{delivery}");
    claimed_by_a_running_copy(&stack, &key, &s.body).await;

    // CXone gave up on the first copy after 1 s and sent it again: it retries a 5xx.
    let retry = send_webhook(&stack, &request).await;
    in_progress(&retry);
    assert_eq!(events_depth(&stack).await, 0);

    // The first copy then fails; the next retry does the work, once.
    first_copy_fails(&stack, &key).await;
    let again = send_webhook(&stack, &request).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    let last = send_webhook(&stack, &request).await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.body);
    assert_eq!(events_depth(&stack).await, 1);

    // Studio's REST action the same way.
    let studio = unique("s-");
    let form = "ContactID=5012&SkillName=Billing&eventType=contact.routed";
    claimed_by_a_running_copy(
        &stack,
        &format!("studio-delivery#{studio}"),
        form.as_bytes(),
    )
    .await;
    in_progress(&send_studio(&stack, &studio, form).await);
    assert_eq!(events_depth(&stack).await, 1);
    first_copy_fails(&stack, &format!("studio-delivery#{studio}")).await;
    let taken = send_studio(&stack, &studio, form).await;
    assert_eq!(taken.status, StatusCode::ACCEPTED, "{}", taken.body);
    assert_eq!(events_depth(&stack).await, 2);
}

async fn post_signal_raw(
    stack: &TestStack,
    key: Option<reqwest::header::HeaderValue>,
    body: &Value,
) -> Answer {
    let mut builder = reqwest::Client::new()
        .post(format!("{}/signals/order-update", stack.gateway_url))
        .header("x-api-key", &stack.resources.secrets.api_key)
        .json(body);
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    answer(builder.send().await.unwrap()).await
}

fn order_update(contact: &str, correlation: Option<Value>) -> Value {
    let mut body = json!({
        "data": {"customerId": "C-1", "orderId": "O-77", "updateType": "shipped", "priority": "high",
                 "timestamp": "2026-11-22T09:00:00Z", "address": {"city": "Leeds", "zip": "LS1 4AP"}},
        "metadata": {"sourceSystem": "shop", "contactId": contact}
    });
    if let Some(id) = correlation {
        body["metadata"]["correlationId"] = id;
    }
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_that_is_not_ascii_is_refused_and_nothing_reaches_cxone() {
    let stack = start(platform_options()).await;
    let key = reqwest::header::HeaderValue::from_bytes("bestellung-ä-1".as_bytes()).unwrap();
    for _ in 0..2 {
        let a = post_signal_raw(&stack, Some(key.clone()), &order_update("4001", None)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
        assert_eq!(a.body["error"]["code"], "bad_request");
        assert!(
            a.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("printable ASCII"),
            "{}",
            a.body
        );
    }
    assert!(platform_calls(&stack).await.is_empty());
    assert_eq!(jobs_depth(&stack).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_numeric_correlation_id_is_the_key_so_a_resend_reaches_cxone_once() {
    let stack = start(platform_options()).await;
    let number = 7_000_000_000_i64 + i64::from(rand_part());
    let body = order_update("4002", Some(json!(number)));
    let first = post_signal_raw(&stack, None, &body).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert_eq!(first.body["correlationId"], number.to_string());
    let again = post_signal_raw(&stack, None, &body).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, first.body);
    let signals: Vec<Value> = platform_calls(&stack)
        .await
        .into_iter()
        .filter(|e| e["path"].as_str().unwrap().ends_with("/4002/signal"))
        .collect();
    assert_eq!(signals.len(), 1, "{signals:?}");
    let (status, execution) = stack.execution(&number.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{execution}");

    // Neither a string nor a number: refused, not replaced by a new id.
    let object = post_signal_raw(&stack, None, &order_update("4002", Some(json!({"id": 1})))).await;
    assert_eq!(
        object.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        object.body
    );
    assert_eq!(
        object.body["error"]["fields"][0]["field"],
        "metadata.correlationId"
    );
    assert_eq!(platform_calls(&stack).await.len(), 1);
}

/// A few random digits, so that parallel runs never share a number.
fn rand_part() -> u32 {
    let id = unique("");
    u32::from_str_radix(&id[..6], 16).unwrap_or(1)
}

#[tokio::test(flavor = "multi_thread")]
async fn contact_ids_that_would_leave_the_path_or_the_url_are_422_and_nothing_reaches_cxone() {
    let stack = start(platform_options()).await;
    let long = "7".repeat(66_000);
    for contact in [
        ".",
        "..",
        "../../scripts/9/start",
        "4003?x=1",
        long.as_str(),
    ] {
        let a = post_signal_raw(
            &stack,
            Some(reqwest::header::HeaderValue::from_str(&unique("k-")).unwrap()),
            &order_update(contact, None),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{contact:.20}: {}",
            a.body
        );
        assert_eq!(a.body["error"]["code"], "invalid_payload");
        assert_eq!(a.body["error"]["fields"][0]["field"], "metadata.contactId");
    }
    // Cognigy's turns are held to the same rule.
    for contact in ["..", long.as_str()] {
        let response = reqwest::Client::new()
            .post(format!("{}/cognigy/intents", stack.gateway_url))
            .header("x-api-key", &stack.resources.secrets.cognigy)
            .json(&json!({"contactId": contact, "intent": "cancel", "intentScore": 0.9, "inputId": unique("i-")}))
            .send()
            .await
            .unwrap();
        let a = answer(response).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{contact:.20}: {}",
            a.body
        );
    }
    assert!(platform_calls(&stack).await.is_empty());
    assert_eq!(jobs_depth(&stack).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_longer_than_any_key_can_be_are_4xx_without_a_lookup() {
    let stack = start(options()).await;
    let long = "x".repeat(3000);

    let (status, body) = stack.execution(&long).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");

    let key = reqwest::header::HeaderValue::from_str(&long).unwrap();
    let a = post_signal_raw(&stack, Some(key), &order_update("4004", None)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);

    let callback = json!({"correlationId": long, "status": "completed", "outputs": {}});
    let text = callback.to_string();
    let ts = cxbridge::clock::now_secs();
    let signature = cxbridge::webhook::signature::sign(
        stack.resources.secrets.callback.as_bytes(),
        ts,
        text.as_bytes(),
    );
    let response = reqwest::Client::new()
        .post(format!("{}/callbacks/studio", stack.gateway_url))
        .header("content-type", "application/json")
        .header("x-callback-timestamp", ts.to_string())
        .header("x-callback-signature-256", signature)
        .body(text)
        .send()
        .await
        .unwrap();
    let a = answer(response).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.body["error"]["fields"][0]["field"], "correlationId");

    // The delivery id is not signed: a good signature with an unusable id.
    let (_, _, request) = stack.sample_webhook("voice");
    let request = request.set("x-nexus-delivery-id", &long);
    let a = send_webhook(&stack, &request).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "missing_delivery_id");
    let calls = platform_calls(&stack).await;
    assert!(calls.is_empty(), "{calls:?}");
    assert_eq!(events_depth(&stack).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_whose_event_outgrows_a_queue_message_is_413_at_once_and_nothing_is_claimed() {
    let stack = start(options()).await;
    // 60,000 control characters: 60 KB of body, 360 KB once escaped in the event.
    let body = format!(
        "<ContactEvent><ContactId>5012</ContactId><Note>{}</Note></ContactEvent>",
        "\u{1}".repeat(60_000)
    );
    let delivery = unique("d-");
    let request = WebhookRequest::signed(
        &stack.resources.secrets.webhook,
        "application/xml",
        body.as_bytes(),
        &delivery,
        "interaction.updated",
    );
    for _ in 0..2 {
        let a = send_webhook(&stack, &request).await;
        assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
        assert_eq!(a.body["error"]["code"], "payload_too_large");
    }
    assert!(!has_item(&stack, &format!("delivery#{delivery}")).await);
    assert_eq!(events_depth(&stack).await, 0);

    // Characters SQS refuses arrive escaped, and read back the same.
    let body = json!({"eventType": "interaction.updated", "data": {"id": "5013", "channelType": "fax", "note": "a\u{ffff}b\u{fffe}"}}).to_string();
    let request = WebhookRequest::signed(
        &stack.resources.secrets.webhook,
        "application/json",
        body.as_bytes(),
        &unique("d-"),
        "interaction.updated",
    );
    let a = send_webhook(&stack, &request).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let landed = cxbridge_e2e::receive_all(&sqs, &stack.resources.queues["events"].url).await;
    assert_eq!(landed.len(), 1);
    let event: Value = serde_json::from_str(landed[0].body().unwrap()).unwrap();
    assert_eq!(event["context"]["data"]["note"], "a\u{ffff}b\u{fffe}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callback_without_its_signature_is_told_which_header_it_lacks() {
    let stack = start(options()).await;
    let response = reqwest::Client::new()
        .post(format!("{}/callbacks/studio", stack.gateway_url))
        .header("content-type", "application/json")
        .header(
            "x-callback-timestamp",
            cxbridge::clock::now_secs().to_string(),
        )
        .body(json!({"correlationId": "c-1", "status": "completed"}).to_string())
        .send()
        .await
        .unwrap();
    let a = answer(response).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body["error"]["code"], "missing_signature_header");
    let message = a.body["error"]["message"].as_str().unwrap();
    assert_eq!(message, "the x-callback-signature-256 header is missing");
}
