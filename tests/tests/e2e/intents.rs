//! Cognigy intent results into CXone, end to end in both profiles.

use std::time::Duration;

use cxbridge_e2e::{eventually, options, start};
use cxbridge_local::{EnvOverride, Stack, StackOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// name, content type, body, expected status, expected code, the field named.
type Case<'a> = (
    &'a str,
    &'a str,
    String,
    StatusCode,
    &'a str,
    Option<&'a str>,
);

const SIGNALS: &str = r#"{
  "order-update": {"contactIdPath": "metadata.contactId", "nested": "flatten", "variables": [
    {"name": "customerId", "type": "string"}, {"name": "orderId", "type": "string"},
    {"name": "updateType", "type": "string"}, {"name": "priority", "type": "string"},
    {"name": "timestamp", "type": "datetime"}, {"name": "address.city", "type": "string"},
    {"name": "address.zip", "type": "string"}]},
  "escalate": {"contactIdPath": "metadata.contactId", "nested": "reject", "variables": [
    {"name": "intent", "type": "string"}, {"name": "confidence", "type": "number"}]}
}"#;

const INTENTS: &str = r#"{"threshold": 0.6, "intents": {
  "billing": {"attributes": {"queue": "Billing"}},
  "cancel": {"attributes": {"queue": "Retention"},
             "signal": {"name": "escalate", "mapping": {"intent": "intent", "confidence": "confidence"}}}
}}"#;

fn configured(profile: &str) -> StackOptions {
    let mut opts = options();
    opts.profile = profile.into();
    opts.queue_overrides.visibility_timeout = Some(2);
    for (function, key, value) in [
        ("*", "CXBRIDGE_SIGNALS", SIGNALS),
        ("intent-router", "CXBRIDGE_INTENTS", INTENTS),
    ] {
        opts.env_overrides.push(EnvOverride {
            function: function.into(),
            key: key.into(),
            value: value.into(),
        });
    }
    opts
}

async fn post(
    stack: &Stack,
    auth: Option<(&str, String)>,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/cognigy/intents", stack.gateway_url))
        .body(body);
    if !content_type.is_empty() {
        request = request.header("content-type", content_type);
    }
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

fn bearer(stack: &Stack) -> Option<(&'static str, String)> {
    Some((
        "authorization",
        format!("Bearer {}", stack.resources.secrets.cognigy),
    ))
}

async fn send_json(stack: &Stack, body: &Value) -> (StatusCode, Value) {
    post(stack, bearer(stack), "application/json", body.to_string()).await
}

/// The context updates CXone received: (interaction id, attributes, status).
async fn updates(stack: &Stack) -> Vec<(String, Value, u64)> {
    let journal: Vec<Value> = reqwest::get(format!("{}/_sim/requests", stack.cxone_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out = Vec::new();
    for e in journal {
        let path = e["path"].as_str().unwrap_or_default().to_owned();
        let status = e["status"].as_u64().unwrap_or(0);
        if let Some(id) = path
            .strip_prefix("/api/v2/interactions/interactions/")
            .and_then(|p| p.strip_suffix("/context"))
        {
            let body: Value = serde_json::from_str(e["body"].as_str().unwrap()).unwrap_or_default();
            out.push((id.to_owned(), body["attributes"].clone(), status));
        } else if path.ends_with("/signal") {
            let q = cxbridge_e2e::signal_parameters(&e);
            if q.first().map(|(_, v)| v.as_str()) == Some("updateContext") {
                let id = path.rsplit('/').nth(1).unwrap_or_default().to_owned();
                out.push((
                    id,
                    serde_json::from_str(&q[1].1).unwrap_or_default(),
                    status,
                ));
            }
        }
    }
    out
}

async fn signals(stack: &Stack) -> Vec<Value> {
    let journal: Vec<Value> = reqwest::get(format!("{}/_sim/requests", stack.cxone_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    journal
        .into_iter()
        .filter(|e| {
            let p = e["path"].as_str().unwrap_or_default();
            p.starts_with("/api/v2/signals/escalate")
                || (p.ends_with("/signal")
                    && cxbridge_e2e::signal_parameters(e)
                        .first()
                        .is_none_or(|(_, v)| v != "updateContext"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn flat_and_native_results_each_update_cxone_once_with_the_right_attributes() {
    for profile in ["documented", "incontact"] {
        let stack = start(configured(profile)).await;
        let flat = json!({"conversationId": "c-flat", "intent": "billing", "confidence": 0.92, "timestamp": "2026-11-22T09:00:00Z"});
        let (status, body) = send_json(&stack, &flat).await;
        assert_eq!(status, StatusCode::OK, "{profile}: {body}");
        assert_eq!(body["status"], "routed");
        assert_eq!(body["attributes"]["queue"], "Billing");

        let native = json!({"input": {"intent": null, "intentScore": null,
            "nlu": {"intentMapperResults": {"finalIntentName": "billing", "finalIntentScore": 0.88}},
            "data": {"payload": {"sip": {"headers": {"X-InContact-ContactId": "c-native"}}}}}});
        assert_eq!(
            send_json(&stack, &native).await.0,
            StatusCode::OK,
            "{profile}"
        );

        let seen = updates(&stack).await;
        assert_eq!(seen.len(), 2, "{profile}: {seen:?}");
        assert_eq!(seen[0].0, "c-flat");
        assert_eq!(seen[0].1["cognigyDetectedIntent"], "billing");
        assert_eq!(seen[0].1["cognigyIntentConfidence"], 0.92);
        assert_eq!(seen[0].1["queue"], "Billing");
        assert!(seen[0].1["routedAt"].as_str().unwrap().ends_with('Z'));
        assert_eq!(seen[1].0, "c-native");
        assert_eq!(seen[1].1["cognigyIntentConfidence"], 0.88);

        // A resend of the same result changes nothing more, and answers the same.
        let (again, again_body) = send_json(&stack, &flat).await;
        assert_eq!((again, again_body), (status, body), "{profile}");
        assert_eq!(
            updates(&stack).await.len(),
            2,
            "{profile}: one update per result"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_form_encoded_result_works_and_a_low_score_changes_nothing() {
    let stack = start(configured("documented")).await;
    let (status, body) = post(
        &stack,
        bearer(&stack),
        "application/x-www-form-urlencoded",
        "conversationId=c-form&intent=billing&confidence=0.75",
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("routed")),
        "{body}"
    );
    let (status, body) = send_json(
        &stack,
        &json!({"conversationId": "c-low", "intent": "billing", "confidence": 0.3}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "below_threshold");
    let (_, body) = send_json(
        &stack,
        &json!({"conversationId": "c-none", "intent": null, "confidence": null}),
    )
    .await;
    assert_eq!(body["status"], "below_threshold");
    let seen = updates(&stack).await;
    assert_eq!(
        seen.iter().map(|u| u.0.as_str()).collect::<Vec<_>>(),
        ["c-form"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_intent_mapped_to_a_signal_triggers_it() {
    for profile in ["documented", "incontact"] {
        let stack = start(configured(profile)).await;
        let (status, body) = send_json(
            &stack,
            &json!({"conversationId": "c-cancel", "intent": "cancel", "confidence": 0.97}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{profile}: {body}");
        assert_eq!(body["attributes"]["queue"], "Retention");
        assert_eq!(body["signal"]["status"], "dispatched", "{profile}: {body}");
        let sent = signals(&stack).await;
        assert_eq!(sent.len(), 1, "{profile}");
        if profile == "documented" {
            let payload: Value = serde_json::from_str(sent[0]["body"].as_str().unwrap()).unwrap();
            assert_eq!(
                payload["data"],
                json!({"intent": "cancel", "confidence": 0.97})
            );
        } else {
            assert_eq!(
                sent[0]["path"],
                "/inContactAPI/services/v30.0/interactions/c-cancel/signal"
            );
            let q = cxbridge_e2e::signal_parameters(&sent[0]);
            assert_eq!(
                &q[1..],
                [
                    ("p2".to_owned(), "cancel".to_owned()),
                    ("p3".to_owned(), "0.97".to_owned())
                ]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_valid_cognigy_token_is_accepted_as_bearer_or_api_key() {
    let stack = start(configured("documented")).await;
    let body =
        json!({"conversationId": "c-auth", "intent": "billing", "confidence": 0.9}).to_string();
    let token = stack.resources.secrets.cognigy.clone();
    let cases = [
        ("missing", None, StatusCode::UNAUTHORIZED),
        (
            "wrong bearer",
            Some(("authorization", "Bearer nope".to_owned())),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "wrong key",
            Some(("x-api-key", "nope".to_owned())),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "bearer",
            Some(("authorization", format!("Bearer {token}"))),
            StatusCode::OK,
        ),
        (
            "api key",
            Some(("x-api-key", token.clone())),
            StatusCode::OK,
        ),
    ];
    for (name, auth, expected) in cases {
        let (status, reply) = post(&stack, auth, "application/json", body.clone()).await;
        assert_eq!(status, expected, "{name}: {reply}");
        if expected == StatusCode::UNAUTHORIZED {
            assert_eq!(reply["error"]["code"], "unauthorized");
        }
    }
    assert_eq!(
        updates(&stack).await.len(),
        1,
        "the second accepted send is a resend"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_results_are_refused_naming_the_field_and_nothing_reaches_cxone() {
    let stack = start(configured("documented")).await;
    let cases: Vec<Case<'_>> = vec![
        (
            "malformed JSON",
            "application/json",
            "{\"intent\": ".into(),
            StatusCode::BAD_REQUEST,
            "malformed_body",
            None,
        ),
        (
            "array body",
            "application/json",
            "[1]".into(),
            StatusCode::BAD_REQUEST,
            "malformed_body",
            None,
        ),
        (
            "plain text",
            "text/plain",
            "billing".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        ),
        (
            "no content type",
            "",
            "{}".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        ),
        (
            "empty object",
            "application/json",
            "{}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
            Some("conversationId"),
        ),
        (
            "intent not a string",
            "application/json",
            json!({"conversationId": "c", "intent": 5, "confidence": 0.9}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
            Some("intent"),
        ),
        (
            "confidence over 1",
            "application/json",
            json!({"conversationId": "c", "intent": "x", "confidence": 1.5}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
            Some("confidence"),
        ),
        (
            "confidence as words",
            "application/json",
            json!({"conversationId": "c", "intent": "x", "confidence": "high"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
            Some("confidence"),
        ),
        (
            "timestamp not a string",
            "application/json",
            json!({"conversationId": "c", "intent": "x", "confidence": 0.9, "timestamp": 5})
                .to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
            Some("timestamp"),
        ),
        (
            "input not an object",
            "application/json",
            json!({"input": "x"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
            Some("input"),
        ),
        (
            "input without a contact",
            "application/json",
            json!({"input": {"intent": "x", "intentScore": 0.9, "data": {}}}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
            Some("input.data.contactId"),
        ),
        (
            "input score out of range",
            "application/json",
            json!({"input": {"intent": "x", "intentScore": -1, "data": {"contactId": "c"}}})
                .to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
            Some("input.intentScore"),
        ),
        (
            "envelope without session",
            "application/json",
            json!({"userId": "u", "AIOutput": {}}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
            Some("sessionId"),
        ),
        (
            "form with a bad score",
            "application/x-www-form-urlencoded",
            "conversationId=c&intent=x&confidence=lots".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
            Some("confidence"),
        ),
    ];
    assert!(cases.len() >= 12);
    for (name, content_type, body, status, code, field) in cases {
        let (got, reply) = post(&stack, bearer(&stack), content_type, body).await;
        assert_eq!(got, status, "{name}: {reply}");
        assert_eq!(reply["error"]["code"], code, "{name}: {reply}");
        if let Some(field) = field {
            let fields: Vec<&str> = reply["error"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["field"].as_str().unwrap())
                .collect();
            assert!(fields.contains(&field), "{name}: {fields:?}");
        }
        assert!(
            updates(&stack).await.is_empty(),
            "{name}: CXone was updated"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_interaction_is_interaction_not_found_and_a_503_is_queued_then_delivered() {
    for profile in ["documented", "incontact"] {
        let stack = start(configured(profile)).await;
        let (status, body) = send_json(
            &stack,
            &json!({"conversationId": "unknown-contact", "intent": "billing", "confidence": 0.9}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{profile}");
        assert_eq!(body["error"]["code"], "interaction_not_found");

        let matches = if profile == "documented" {
            "context"
        } else {
            "signal"
        };
        let fault = json!({"match": matches, "status": 503, "times": 1});
        reqwest::Client::new()
            .post(format!("{}/_sim/faults", stack.cxone_url))
            .json(&fault)
            .send()
            .await
            .unwrap();
        let (status, body) = send_json(
            &stack,
            &json!({"conversationId": "c-later", "intent": "billing", "confidence": 0.9}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{profile}: {body}");
        assert_eq!(body["status"], "queued");
        let delivered = eventually("the queued update", Duration::from_secs(30), || async {
            let seen: Vec<_> = updates(&stack)
                .await
                .into_iter()
                .filter(|u| u.0 == "c-later")
                .collect();
            seen.iter().any(|u| u.2 / 100 == 2).then_some(seen)
        })
        .await;
        assert_eq!(
            delivered.iter().map(|u| u.2).collect::<Vec<_>>(),
            [503, if profile == "documented" { 200 } else { 202 }]
        );
        assert_eq!(delivered[1].1["queue"], "Billing");
    }
}
