//! Cognigy turns into CXone, end to end, on fixtures shaped like what real flows send
//! (`tests/fixtures/cognigy/`).

use std::time::Duration;

use base64::Engine as _;
use cxbridge_e2e::{
    TestStack, eventually, options, platform_options, project_root, signal_parameters, start,
};
use cxbridge_local::{EnvOverride, StackOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = project_root().join(format!("tests/fixtures/cognigy/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn with_env(mut opts: StackOptions, function: &str, key: &str, value: &str) -> StackOptions {
    opts.env_overrides.push(EnvOverride {
        function: function.into(),
        key: key.into(),
        value: value.into(),
    });
    opts
}

/// An auth header (name, value).
type Auth = (&'static str, String);

async fn post(
    stack: &TestStack,
    auth: &[Auth],
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/cognigy/intents", stack.gateway_url))
        .body(body);
    if !content_type.is_empty() {
        request = request.header("content-type", content_type);
    }
    for (name, value) in auth {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

fn api_key(stack: &TestStack) -> Vec<Auth> {
    vec![("x-api-key", stack.resources.secrets.cognigy.clone())]
}

async fn send_json(stack: &TestStack, body: &Value) -> (StatusCode, Value) {
    post(stack, &api_key(stack), "application/json", body.to_string()).await
}

/// Every write the stack attempted on CXone (signals, context updates, spawns), whatever
/// CXone answered; token and discovery calls are not writes.
async fn writes(stack: &TestStack) -> Vec<Value> {
    stack
        .requests(|path| {
            path.ends_with("/signal")
                || path.ends_with("/context")
                || path.ends_with("/start")
                || path.starts_with("/api/v2/signals/")
        })
        .await
}

/// The writes CXone accepted (2xx).
async fn accepted_writes(stack: &TestStack) -> Vec<Value> {
    writes(stack)
        .await
        .into_iter()
        .filter(|e| e["status"].as_u64().is_some_and(|s| s / 100 == 2))
        .collect()
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

const BOUNDARY: &str = "cxbridge-test-boundary";
const MULTIPART: &str = "multipart/form-data; boundary=cxbridge-test-boundary";

/// A multipart/form-data body of text fields.
fn multipart(fields: &[(&str, &str)]) -> (String, String) {
    let boundary = BOUNDARY;
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (MULTIPART.to_owned(), body)
}

fn form(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_voice_call_forwarding_every_input_escalates_the_spawned_contact_with_one_signal() {
    let stack = start(platform_options()).await;
    // The first turn: SIP headers, no intent.
    let (status, first) = send_json(&stack, &fixture("voice-first-turn")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["status"], "below_threshold");
    assert_eq!(first["interactionId"], "700123");
    assert_eq!(first["contactSource"], "sip:X-InContact-ContactId");

    // A spoken turn: the intent, but no contact id in the input.
    let (status, spoken) = send_json(&stack, &fixture("voice-spoken-turn")).await;
    assert_eq!(status, StatusCode::OK, "{spoken}");
    assert_eq!(spoken["status"], "routed");
    assert_eq!(spoken["interactionId"], "700123");
    assert_eq!(spoken["contactSource"], "session");
    assert_eq!(spoken["action"], "Escalate");
    assert_eq!(spoken["attributes"]["queue"], "Retention");

    let writes = accepted_writes(&stack).await;
    assert_eq!(writes.len(), 1, "{writes:?}");
    let path = writes[0]["path"].as_str().unwrap();
    assert!(
        path.starts_with("/inContactAPI/services/v")
            && path.ends_with("/interactions/700123/signal"),
        "{path}"
    );
    let params = signal_parameters(&writes[0]);
    assert_eq!(params.len(), 2, "{params:?}");
    assert_eq!(params[0], ("p1".to_owned(), "Escalate".to_owned()));
    let p2: Value = serde_json::from_str(&params[1].1).unwrap();
    assert_eq!(p2["cognigyDetectedIntent"], "cancel");
    assert_eq!(p2["cognigyIntentConfidence"], 0.91);
    assert_eq!(p2["queue"], "Retention");
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_endpoint_outputs_with_basic_auth_route_an_intent_and_ignore_plain_text() {
    let stack = start(platform_options()).await;
    let auth = vec![(
        "authorization",
        basic("cognigy", &stack.resources.secrets.cognigy),
    )];
    let post_fixture = |name: &'static str| {
        let auth = auth.clone();
        let stack = &stack;
        async move { post(stack, &auth, "application/json", fixture(name).to_string()).await }
    };
    let (status, text) = post_fixture("webhook-output-text").await;
    assert_eq!(
        (status, text["status"].as_str()),
        (StatusCode::OK, Some("ignored")),
        "{text}"
    );
    let (status, output) = post_fixture("webhook-output-intent").await;
    assert_eq!(status, StatusCode::OK, "{output}");
    assert_eq!(output["status"], "routed");
    assert_eq!(output["interactionId"], "800555");
    // Cognigy posts an output again if its call failed: one signal all the same.
    assert_eq!(
        post_fixture("webhook-output-intent").await,
        (status, output)
    );
    let writes = writes(&stack).await;
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(
        writes[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("/interactions/800555/signal")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_and_context_turns_find_their_contacts_and_only_an_action_reaches_cxone() {
    let stack = start(platform_options()).await;
    // Chat: the contact id in input.data; billing has attributes but no action.
    let (status, chat) = send_json(&stack, &fixture("chat-turn")).await;
    assert_eq!(status, StatusCode::OK, "{chat}");
    assert_eq!(chat["status"], "routed");
    assert_eq!(chat["interactionId"], "800789");
    assert_eq!(chat["contactSource"], "input.data.contactId");
    assert_eq!(chat["attributes"]["queue"], "Billing");
    assert_eq!(chat["action"], Value::Null);
    assert!(
        accepted_writes(&stack).await.is_empty(),
        "no action, no signal"
    );

    // A turn that carries Cognigy's context: the spawned contact is preferred.
    let (status, ctx) = send_json(&stack, &fixture("context-turn")).await;
    assert_eq!(status, StatusCode::OK, "{ctx}");
    assert_eq!(ctx["interactionId"], "700999");
    assert_eq!(ctx["contactSource"], "context.data.spawnedContactId");
    let writes = accepted_writes(&stack).await;
    assert_eq!(writes.len(), 1);
    assert!(
        writes[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("/interactions/700999/signal")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_main_contact_is_used_when_the_configuration_prefers_it() {
    let stack = start(with_env(
        platform_options(),
        "intent-router",
        "CXBRIDGE_INTENTS",
        r#"{"preferContact": "main", "intents": {"cancel": {"action": "Escalate"}}}"#,
    ))
    .await;
    let (_, first) = send_json(&stack, &fixture("voice-first-turn")).await;
    assert_eq!(first["interactionId"], "600456");
    let (_, spoken) = send_json(&stack, &fixture("voice-spoken-turn")).await;
    assert_eq!(spoken["interactionId"], "600456", "{spoken}");
    let writes = accepted_writes(&stack).await;
    assert!(
        writes[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("/interactions/600456/signal")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_cognigy_auth_option_works_and_a_wrong_token_in_any_gives_401_with_nothing_sent() {
    let stack = start(platform_options()).await;
    let token = stack.resources.secrets.cognigy.clone();
    let cases: Vec<(&str, Vec<Auth>, bool)> = vec![
        ("X-API-Key", vec![("x-api-key", token.clone())], true),
        (
            "ApiKey",
            vec![("authorization", format!("ApiKey {token}"))],
            true,
        ),
        (
            "Bearer",
            vec![("authorization", format!("Bearer {token}"))],
            true,
        ),
        (
            "Basic",
            vec![("authorization", basic("cognigy", &token))],
            true,
        ),
        (
            "X-API-Key wrong",
            vec![("x-api-key", "wrong".into())],
            false,
        ),
        (
            "ApiKey wrong",
            vec![("authorization", "ApiKey wrong".into())],
            false,
        ),
        (
            "Bearer wrong",
            vec![("authorization", "Bearer wrong".into())],
            false,
        ),
        (
            "Basic wrong",
            vec![("authorization", basic("cognigy", "wrong"))],
            false,
        ),
        (
            "Basic token as user",
            vec![("authorization", basic(&token, ""))],
            false,
        ),
        ("none", vec![], false),
    ];
    let mut sent = 0;
    for (n, (name, auth, accepted)) in cases.into_iter().enumerate() {
        let body = json!({"conversationId": format!("55500{n}"), "intent": "cancel", "confidence": 0.9, "inputId": name});
        let (status, reply) = post(&stack, &auth, "application/json", body.to_string()).await;
        if accepted {
            sent += 1;
            assert_eq!(status, StatusCode::OK, "{name}: {reply}");
            assert_eq!(reply["status"], "routed", "{name}");
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {reply}");
            assert_eq!(reply["error"]["code"], "unauthorized", "{name}");
        }
        assert_eq!(writes(&stack).await.len(), sent, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_no_intent_turn_rendered_as_empty_strings_is_below_threshold_as_json_form_and_multipart()
{
    let stack = start(platform_options()).await;
    let rendered = fixture("rendered-no-intent");
    let fields: Vec<(&str, &str)> = rendered
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    let (multipart_type, multipart_body) = multipart(&fields);
    for (name, content_type, body) in [
        ("json", "application/json".to_owned(), rendered.to_string()),
        (
            "form",
            "application/x-www-form-urlencoded".to_owned(),
            form(&fields),
        ),
        ("multipart", multipart_type, multipart_body),
    ] {
        let (status, reply) = post(&stack, &api_key(&stack), &content_type, body).await;
        assert_eq!(status, StatusCode::OK, "{name}: {reply}");
        assert_eq!(reply["status"], "below_threshold", "{name}: {reply}");
    }
    assert!(writes(&stack).await.is_empty());

    // The same form types carry a decisive turn too.
    let (multipart_type, multipart_body) = multipart(&[
        ("conversationId", "800111"),
        ("intent", "cancel"),
        ("confidence", "0.87"),
    ]);
    let (status, reply) = post(&stack, &api_key(&stack), &multipart_type, multipart_body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["confidence"], 0.87);
    assert_eq!(accepted_writes(&stack).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn genuine_turns_are_each_routed_and_a_resent_turn_once() {
    let stack = start(platform_options()).await;
    let mut turn = fixture("chat-turn");
    turn["input"]["intent"] = json!("cancel");
    let (status, first) = send_json(&stack, &turn).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // Cognigy's retry of the same HTTP call: the same answer, nothing more sent.
    assert_eq!(send_json(&stack, &turn).await, (status, first.clone()));
    assert_eq!(accepted_writes(&stack).await.len(), 1);
    // The user says it again: a new turn, with its own input id.
    turn["input"]["inputId"] = json!("9c8b7a6f-5e4d-4c3b-8a29-1f0e9d8c7bff");
    let (status, second) = send_json(&stack, &turn).await;
    assert_eq!(
        (status, second["status"].as_str()),
        (StatusCode::OK, Some("routed"))
    );
    assert_eq!(accepted_writes(&stack).await.len(), 2);
}

/// name, content type, body, status, code (error code or answer status), field named,
/// writes that reach CXone.
type Case = (
    &'static str,
    &'static str,
    String,
    StatusCode,
    &'static str,
    Option<&'static str>,
    usize,
);

#[tokio::test(flavor = "multi_thread")]
async fn bad_and_odd_inputs_get_their_status_and_code_and_send_nothing_they_should_not() {
    let stack = start(platform_options()).await;
    let flat = |contact: Value| {
        json!({"conversationId": contact, "intent": "cancel", "confidence": 0.9}).to_string()
    };
    let cases: Vec<Case> = vec![
        ("malformed JSON", "application/json", "{\"intent\": ".into(), StatusCode::BAD_REQUEST, "malformed_body", None, 0),
        ("array body", "application/json", "[1]".into(), StatusCode::BAD_REQUEST, "malformed_body", None, 0),
        ("empty body", "application/json", "".into(), StatusCode::BAD_REQUEST, "malformed_body", None, 0),
        ("plain text", "text/plain", "cancel".into(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", None, 0),
        ("no content type", "", "{}".into(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", None, 0),
        ("xml", "application/xml", "<a/>".into(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", None, 0),
        ("multipart without a boundary", "multipart/form-data", "--x\r\n".into(), StatusCode::BAD_REQUEST, "malformed_body", None, 0),
        ("multipart never closed", MULTIPART, "--cxbridge-test-boundary\r\nContent-Disposition: form-data; name=\"intent\"\r\n\r\ncancel".into(), StatusCode::BAD_REQUEST, "malformed_body", None, 0),
        ("intent not a string", "application/json", json!({"conversationId": "1", "intent": 5, "confidence": 0.9}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("intent"), 0),
        ("confidence over 1", "application/json", json!({"conversationId": "1", "intent": "x", "confidence": 1.5}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("confidence"), 0),
        ("confidence negative", "application/json", json!({"conversationId": "1", "intent": "x", "confidence": "-0.1"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("confidence"), 0),
        ("confidence as words", "application/json", json!({"conversationId": "1", "intent": "x", "confidence": "high"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("confidence"), 0),
        ("form with a bad score", "application/x-www-form-urlencoded", "conversationId=1&intent=x&confidence=lots".into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("confidence"), 0),
        ("timestamp a number", "application/json", json!({"conversationId": "1", "intent": "x", "confidence": 0.9, "timestamp": 5}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("timestamp"), 0),
        ("input not an object", "application/json", json!({"input": "x"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("input"), 0),
        ("intent with no contact and no session", "application/json", json!({"input": {"intent": "cancel", "intentScore": 0.9, "data": {}}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("contactId"), 0),
        ("intent of a session never seen", "application/json", json!({"input": {"intent": "cancel", "intentScore": 0.9, "sessionId": "never-seen"}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("contactId"), 0),
        ("envelope without a session", "application/json", json!({"userId": "u", "AIOutput": {"data": {"intent": "cancel"}}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("sessionId"), 0),
        ("contact id a dot", "application/json", flat(json!(".")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("conversationId"), 0),
        ("contact id two dots", "application/json", flat(json!("..")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("conversationId"), 0),
        ("contact id with a slash", "application/json", flat(json!("1/../2")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("conversationId"), 0),
        ("contact id too long", "application/json", flat(json!("7".repeat(200))), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("conversationId"), 0),
        ("contact id an object", "application/json", flat(json!({"id": 1})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("conversationId"), 0),
        ("SIP contact id a dot", "application/json", json!({"input": {"intent": "cancel", "intentScore": 0.9, "data": {"payload": {"sip": {"headers": {"x-incontact-contactid": "."}}}}}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("sip:X-InContact-ContactId"), 0),
        ("session id too long", "application/json", json!({"conversationId": "1", "intent": "", "sessionId": "s".repeat(300)}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", Some("sessionId"), 0),
        ("an empty object", "application/json", "{}".into(), StatusCode::OK, "below_threshold", None, 0),
        ("\"undefined\" everywhere", "application/json", json!({"conversationId": "undefined", "intent": "undefined", "confidence": "undefined"}).to_string(), StatusCode::OK, "below_threshold", None, 0),
        ("a low score", "application/json", json!({"conversationId": "1", "intent": "cancel", "confidence": "0.3"}).to_string(), StatusCode::OK, "below_threshold", None, 0),
        ("a negated intent", "application/json", json!({"input": {"intent": "cancel", "intentScore": 0.95, "data": {"contactId": "1"}, "nlu": {"intentMapperResults": {"finalIntentName": "cancel", "finalIntentScore": 0.95, "finalIntentNegated": true}}}}).to_string(), StatusCode::OK, "negated", None, 0),
        ("an intent not in the map", "application/json", json!({"conversationId": "1", "intent": "weather", "confidence": 0.99}).to_string(), StatusCode::OK, "routed", None, 0),
        ("a form carrying the first voice turn", "application/x-www-form-urlencoded", form(&[("input", &fixture("voice-first-turn")["input"].to_string())]), StatusCode::OK, "below_threshold", None, 0),
        ("a webhook text output", "application/json", fixture("webhook-output-text").to_string(), StatusCode::OK, "ignored", None, 0),
        ("a pattern rule's intent without a score", "application/json", json!({"input": {"intent": "cancel", "intentScore": null, "inputId": "rule-1", "data": {"contactId": "900001"}}}).to_string(), StatusCode::OK, "routed", None, 1),
        ("an ended contact", "application/json", json!({"conversationId": "unknown-9", "intent": "cancel", "confidence": 0.9}).to_string(), StatusCode::NOT_FOUND, "contact_not_active", None, 1),
        ("a flat intent whose score rendered empty", "application/json", json!({"conversationId": "1", "intent": "cancel", "confidence": ""}).to_string(), StatusCode::OK, "below_threshold", None, 0),
        ("a flat intent rendered negated", "application/x-www-form-urlencoded", "conversationId=1&intent=cancel&confidence=0.9&negated=true".into(), StatusCode::OK, "negated", None, 0),
    ];
    assert!(cases.len() >= 25, "{}", cases.len());
    let mut expected = 0;
    for (name, content_type, body, status, code, field, sent) in cases {
        let (got, reply) = post(&stack, &api_key(&stack), content_type, body).await;
        assert_eq!(got, status, "{name}: {reply}");
        if status.is_success() {
            assert_eq!(reply["status"], code, "{name}: {reply}");
        } else {
            assert_eq!(reply["error"]["code"], code, "{name}: {reply}");
        }
        if let Some(field) = field {
            let fields: Vec<&str> = reply["error"]["fields"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: {reply}"))
                .iter()
                .map(|f| f["field"].as_str().unwrap())
                .collect();
            assert!(fields.contains(&field), "{name}: {fields:?}");
        }
        expected += sent;
        assert_eq!(writes(&stack).await.len(), expected, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_while_the_turn_is_still_running_gets_503_then_the_first_answer_and_one_signal() {
    let stack = start(with_env(
        platform_options(),
        "intent-router",
        "CXBRIDGE_INTENTS",
        r#"{"syncLimitMs": 7000, "intents": {"cancel": {"action": "Escalate"}}}"#,
    ))
    .await;
    // CXone takes 4.5 s to accept the signal: the first call is still running meanwhile.
    stack
        .fault(json!({"match": "signal", "status": 202, "delayMs": 4500, "times": 1}))
        .await;
    let turn = json!({"conversationId": "920001", "intent": "cancel", "confidence": 0.9, "inputId": "slow-1"});
    let first = {
        let gateway = stack.gateway_url.clone();
        let key = stack.resources.secrets.cognigy.clone();
        let body = turn.to_string();
        tokio::spawn(async move {
            let response = reqwest::Client::new()
                .post(format!("{gateway}/cognigy/intents"))
                .header("x-api-key", key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        })
    };
    // The first call has claimed the turn once its record is in the table.
    let parsed =
        cxbridge::intents::turn::read(&turn, cxbridge::intents::PreferContact::Spawned).unwrap();
    let (key, _) = cxbridge::intents::turn_key(&parsed, "920001", "cancel", 0.9);
    let dynamodb = aws_sdk_dynamodb::Client::new(&cxbridge_e2e::sdk().await);
    eventually(
        "the first call's claim",
        Duration::from_secs(10),
        || async {
            dynamodb
                .get_item()
                .table_name(&stack.resources.table)
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(key.clone()),
                )
                .consistent_read(true)
                .send()
                .await
                .ok()
                .and_then(|o| o.item)
        },
    )
    .await;
    // Cognigy's retry of the same turn meanwhile: 503 in_progress, with Retry-After.
    let response = reqwest::Client::new()
        .post(format!("{}/cognigy/intents", stack.gateway_url))
        .header("x-api-key", &stack.resources.secrets.cognigy)
        .header("content-type", "application/json")
        .body(turn.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let busy: (Value, Option<String>) = (response.json().await.unwrap(), retry_after);
    assert_eq!(busy.0["error"]["code"], "in_progress", "{}", busy.0);
    assert_eq!(busy.1.as_deref(), Some("1"));
    let (status, answer) = first.await.unwrap();
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("routed")),
        "{answer}"
    );
    // Once it is done, the retry gets its answer, and CXone got one signal.
    assert_eq!(send_json(&stack, &turn).await, (status, answer));
    let writes = writes(&stack).await;
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(signal_parameters(&writes[0])[0].1, "Escalate");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cxone_outage_or_a_slow_cxone_queues_the_action_and_a_retry_delivers_it() {
    let stack = start(with_env(
        platform_options(),
        "intent-router",
        "CXBRIDGE_INTENTS",
        r#"{"syncLimitMs": 1000, "intents": {"cancel": {"action": "Escalate", "attributes": {"queue": "Retention"}}}}"#,
    ))
    .await;
    for (contact, fault, reason) in [
        (
            "910001",
            json!({"match": "signal", "status": 503, "times": 1}),
            "CXone is unavailable",
        ),
        // Slower than the synchronous limit (and failed in the end, so that only the retry
        // is accepted).
        (
            "910002",
            json!({"match": "signal", "status": 503, "delayMs": 3000, "times": 1}),
            "CXone did not answer within 1000 ms",
        ),
    ] {
        stack.fault(fault).await;
        let (status, reply) = send_json(
            &stack,
            &json!({"conversationId": contact, "intent": "cancel", "confidence": 0.9}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{contact}: {reply}");
        assert_eq!(reply["status"], "queued");
        assert_eq!(reply["reason"], reason, "{contact}");
        let delivered = eventually("the queued action", Duration::from_secs(30), || async {
            let mine: Vec<Value> = accepted_writes(&stack)
                .await
                .into_iter()
                .filter(|w| {
                    w["path"]
                        .as_str()
                        .unwrap()
                        .ends_with(&format!("/{contact}/signal"))
                })
                .collect();
            (!mine.is_empty()).then_some(mine)
        })
        .await;
        assert_eq!(delivered.len(), 1, "{contact}");
        let params = signal_parameters(&delivered[0]);
        assert_eq!(params[0].1, "Escalate");
        assert_eq!(
            serde_json::from_str::<Value>(&params[1].1).unwrap()["queue"],
            "Retention"
        );
    }
}

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

fn documented() -> StackOptions {
    let mut opts = options();
    opts.queue_overrides.visibility_timeout = Some(2);
    let opts = with_env(opts, "*", "CXBRIDGE_SIGNALS", SIGNALS);
    with_env(opts, "intent-router", "CXBRIDGE_INTENTS", INTENTS)
}

/// The context updates CXone received: (interaction id, attributes, status).
async fn context_updates(stack: &TestStack) -> Vec<(String, Value, u64)> {
    stack
        .journal()
        .await
        .into_iter()
        .filter_map(|e| {
            let path = e["path"].as_str()?;
            let id = path
                .strip_prefix("/api/v2/interactions/interactions/")?
                .strip_suffix("/context")?;
            let body: Value = serde_json::from_str(e["body"].as_str()?).ok()?;
            Some((
                id.to_owned(),
                body["attributes"].clone(),
                e["status"].as_u64()?,
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_profile_updates_the_context_once_per_turn_and_triggers_mapped_signals() {
    let stack = start(documented()).await;
    let (status, body) = send_json(&stack, &fixture("chat-turn")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sent"], "context");
    send_json(&stack, &fixture("voice-first-turn")).await;
    let (status, cancel) = send_json(&stack, &fixture("voice-spoken-turn")).await;
    assert_eq!(status, StatusCode::OK, "{cancel}");
    assert_eq!(cancel["signal"]["status"], "dispatched", "{cancel}");
    // A resend changes nothing more.
    send_json(&stack, &fixture("chat-turn")).await;

    let seen = context_updates(&stack).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, "800789");
    assert_eq!(seen[0].1["cognigyDetectedIntent"], "billing");
    assert_eq!(seen[0].1["cognigyIntentConfidence"], 0.82);
    assert_eq!(seen[0].1["queue"], "Billing");
    assert!(seen[0].1["routedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(seen[1].0, "700123");
    assert_eq!(seen[1].1["queue"], "Retention");
    let signals: Vec<Value> = stack.requests_under("/api/v2/signals/escalate").await;
    assert_eq!(signals.len(), 1);
    let payload: Value = serde_json::from_str(signals[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        payload["data"],
        json!({"intent": "cancel", "confidence": 0.91})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_the_documented_profile_an_unknown_interaction_is_404_and_a_503_is_queued_then_delivered()
 {
    let stack = start(documented()).await;
    let (status, body) = send_json(
        &stack,
        &json!({"conversationId": "unknown-contact", "intent": "billing", "confidence": 0.9}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "interaction_not_found");

    stack
        .fault(json!({"match": "context", "status": 503, "times": 1}))
        .await;
    let (status, body) = send_json(
        &stack,
        &json!({"conversationId": "c-later", "intent": "billing", "confidence": 0.9}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "queued");
    let delivered = eventually("the queued update", Duration::from_secs(30), || async {
        let seen: Vec<_> = context_updates(&stack)
            .await
            .into_iter()
            .filter(|u| u.0 == "c-later")
            .collect();
        seen.iter().any(|u| u.2 / 100 == 2).then_some(seen)
    })
    .await;
    assert_eq!(
        delivered.iter().map(|u| u.2).collect::<Vec<_>>(),
        [503, 200]
    );
    assert_eq!(delivered[1].1["queue"], "Billing");
}
