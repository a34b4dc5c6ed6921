//! The router on in-memory fakes of its ports.

use std::sync::atomic::Ordering;

use base64::Engine as _;

use super::*;
use crate::secrets::parse_secrets;
use crate::testing::{FakeSecrets, FakeSessions, FakeSink, FakeStore};

const NOW: i64 = 1_800_000_000_000;
const TOKEN: &str = "cg-token";

type Router = IntentRouter<FakeSecrets, FakeStore, FakeSessions, FakeSink>;

fn router_with(profile: Profile, config: &str) -> Router {
    let secrets =
        parse_secrets("t", &json!({"cognigyTokens": ["old", TOKEN]}).to_string()).unwrap();
    IntentRouter::new(
        IntentConfig::parse(config).unwrap(),
        profile,
        FakeSecrets::with(secrets),
        FakeStore::default(),
        FakeStore::default(),
        FakeSessions::default(),
        FakeSink::default(),
        Duration::from_secs(30),
    )
}

fn platform() -> Router {
    router_with(Profile::InContact, config::LOCAL_INTENTS)
}

fn api_key() -> String {
    TOKEN.to_owned()
}

async fn send(r: &Router, ct: &str, body: &str) -> Result<Answer, ApiError> {
    let key = api_key();
    let req = IntentRequest {
        content_type: Some(ct),
        authorization: None,
        api_key: Some(key.as_bytes()),
        body: body.as_bytes(),
    };
    r.route(&req, NOW, NOW + 10_000).await
}

async fn send_json(r: &Router, body: Value) -> Result<Answer, ApiError> {
    send(r, "application/json", &body.to_string()).await
}

fn first_voice_turn(session: &str) -> Value {
    json!({"input": {"text": "", "intent": null, "intentScore": null, "sessionId": session,
        "inputId": "in-1", "data": {"event": "CALL_CREATED", "payload": {"sip": {"headers": {
            "X-InContact-ContactId": "700001", "X-InContact-MasterId": "600001"}}}}}})
}

fn spoken_turn(session: &str, input_id: &str, intent: &str, score: f64) -> Value {
    json!({"input": {"text": "cancel my plan", "intent": intent, "intentScore": score,
        "sessionId": session, "inputId": input_id,
        "data": {"event": "RECOGNIZED_SPEECH"}}})
}

#[tokio::test]
async fn a_voice_session_routes_a_spoken_turn_to_the_first_turns_spawned_contact() {
    let r = platform();
    let first = send_json(&r, first_voice_turn("s-1")).await.unwrap();
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["status"], "below_threshold");
    assert_eq!(first.body["interactionId"], "700001");
    assert!(r.sink.calls().is_empty());

    let spoken = send_json(&r, spoken_turn("s-1", "in-2", "cancel", 0.93))
        .await
        .unwrap();
    assert_eq!(spoken.status, StatusCode::OK, "{}", spoken.body);
    assert_eq!(spoken.body["status"], "routed");
    assert_eq!(spoken.body["interactionId"], "700001");
    assert_eq!(spoken.body["contactSource"], "session");
    assert_eq!(spoken.body["action"], "Escalate");
    assert_eq!(spoken.body["sent"], "action");
    let calls = r.sink.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["action"], "Escalate");
    assert_eq!(calls[0]["contact"], "700001");
    assert_eq!(calls[0]["attributes"]["queue"], "Retention");
    assert_eq!(calls[0]["attributes"]["cognigyDetectedIntent"], "cancel");
    assert_eq!(calls[0]["attributes"]["cognigyIntentConfidence"], 0.93);
}

#[tokio::test]
async fn an_intent_without_an_action_sends_nothing_on_the_platform() {
    let r = platform();
    send_json(&r, first_voice_turn("s-2")).await.unwrap();
    let a = send_json(&r, spoken_turn("s-2", "in-9", "billing", 0.8))
        .await
        .unwrap();
    assert_eq!(a.body["status"], "routed");
    assert_eq!(a.body["attributes"]["queue"], "Billing");
    assert_eq!(a.body["action"], Value::Null);
    assert_eq!(a.body["sent"], Value::Null);
    assert!(r.sink.calls().is_empty());
}

#[tokio::test]
async fn the_main_contact_is_used_when_preferred() {
    let r = router_with(Profile::InContact, r#"{"preferContact": "main"}"#);
    let a = send_json(&r, first_voice_turn("s-3")).await.unwrap();
    assert_eq!(a.body["interactionId"], "600001");
    assert_eq!(a.body["contactSource"], "sip:X-InContact-MasterId");
}

#[tokio::test]
async fn the_contact_is_looked_up_in_order() {
    let r = platform();
    let sip = json!({"X-INCONTACT-CONTACTID": "4"});
    let cases = [
        (
            json!({"conversationId": "1", "context": {"data": {"spawnedContactId": "2"}},
                   "input": {"data": {"contactId": "3", "payload": {"sip": {"headers": sip}}}}}),
            "1",
            "conversationId",
        ),
        (
            json!({"context": {"data": {"contactId": "2m", "spawnedContactId": "2"}},
                   "input": {"data": {"contactId": "3"}}}),
            "2",
            "context.data.spawnedContactId",
        ),
        (
            json!({"input": {"data": {"contactID": "3", "payload": {"sip": {"headers": sip}}}}}),
            "3",
            "input.data.contactID",
        ),
        (
            json!({"input": {"data": {"payload": {"sip": {"headers": sip}}}}}),
            "4",
            "sip:X-InContact-ContactId",
        ),
        (
            json!({"input": {"data": {"contactId": ""}}, "contactId": "null", "conversationId": 77}),
            "77",
            "conversationId",
        ),
    ];
    for (body, id, source) in cases {
        let a = send_json(&r, body.clone()).await.unwrap();
        assert_eq!(
            (
                a.body["interactionId"].as_str(),
                a.body["contactSource"].as_str()
            ),
            (Some(id), Some(source)),
            "{body}"
        );
    }
}

#[tokio::test]
async fn every_cognigy_auth_option_is_accepted_and_a_wrong_token_is_not() {
    let r = platform();
    let basic = |user: &str, password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    let cases: Vec<(Option<String>, Option<&str>, bool)> = vec![
        (None, Some(TOKEN), true),
        (Some(format!("ApiKey {TOKEN}")), None, true),
        (Some(format!("apikey {TOKEN}")), None, true),
        (Some(format!("Bearer {TOKEN}")), None, true),
        (Some(basic("cognigy", TOKEN)), None, true),
        (Some(basic("", TOKEN)), None, true),
        // An Authorization header for something else does not hide a good key.
        (Some("Bearer unrelated".into()), Some(TOKEN), true),
        (Some(basic("cognigy", "")), Some(TOKEN), true),
        (Some(basic(TOKEN, "wrong")), None, false),
        (Some(basic("cognigy", "")), None, false),
        (Some("ApiKey wrong".into()), None, false),
        (Some(format!("Token {TOKEN}")), None, false),
        (Some("Basic !!!".into()), None, false),
        (None, Some("wrong"), false),
        (None, None, false),
    ];
    let mut accepted_so_far = 0;
    for (n, (authorization, key, accepted)) in cases.into_iter().enumerate() {
        // A decisive turn: an accepted one sends one action.
        let body =
            json!({"conversationId": "c-1", "intent": "cancel", "confidence": 0.9, "inputId": n})
                .to_string();
        let req = IntentRequest {
            content_type: Some("application/json"),
            authorization: authorization.as_deref().map(str::as_bytes),
            api_key: key.map(str::as_bytes),
            body: body.as_bytes(),
        };
        match r.route(&req, NOW, NOW + 1).await {
            Ok(a) => {
                assert!(accepted, "{authorization:?} {key:?}: {}", a.body);
                accepted_so_far += 1;
            }
            Err(e) => {
                assert!(!accepted, "{authorization:?} {key:?}: {}", e.message);
                assert_eq!(e.code, ErrorCode::Unauthorized);
            }
        }
        assert_eq!(
            r.sink.calls().len(),
            accepted_so_far,
            "{authorization:?} {key:?}"
        );
    }
}

#[tokio::test]
async fn rendered_strings_are_read_for_what_they_mean() {
    let r = platform();
    for body in [
        json!({"conversationId": "c", "intent": "", "confidence": ""}),
        json!({"conversationId": "c", "intent": "null", "confidence": "null"}),
        json!({"conversationId": "c", "intent": "undefined", "confidence": "undefined"}),
        json!({"input": {"intent": "", "intentScore": "", "data": {"contactId": ""}}}),
    ] {
        let a = send_json(&r, body.clone()).await.unwrap();
        assert_eq!(a.body["status"], "below_threshold", "{body}");
    }
    let a = send(
        &r,
        "application/x-www-form-urlencoded",
        "conversationId=c-9&intent=billing&confidence=0.87&timestamp=%7B%22ISODate%22%3A%222026-12-01T10%3A00%3A00.000Z%22%7D",
    )
    .await
    .unwrap();
    assert_eq!(a.body["status"], "routed");
    assert_eq!(a.body["confidence"], 0.87);
    assert!(r.sink.calls().is_empty());
}

#[tokio::test]
async fn name_and_score_come_as_a_pair_and_a_rule_scores_one() {
    let r = platform();
    // The input's own intent has no score (a pattern rule); the mapper's score belongs to
    // another intent and is not borrowed.
    let a = send_json(
        &r,
        json!({"input": {"intent": "cancel", "intentScore": null, "data": {"contactId": "c-1"},
            "nlu": {"intentMapperResults": {"finalIntentName": "billing", "finalIntentScore": 0.1}}}}),
    )
    .await
    .unwrap();
    assert_eq!(
        (a.body["intent"].as_str(), a.body["confidence"].as_f64()),
        (Some("cancel"), Some(1.0))
    );
    // With no input intent, both come from the mapper.
    let a = send_json(
        &r,
        json!({"input": {"intent": null, "intentScore": 0.99, "data": {"contactId": "c-2"},
            "nlu": {"intentMapperResults": {"finalIntentName": "billing", "finalIntentScore": 0.7}}}}),
    )
    .await
    .unwrap();
    assert_eq!(
        (a.body["intent"].as_str(), a.body["confidence"].as_f64()),
        (Some("billing"), Some(0.7))
    );
}

#[tokio::test]
async fn an_explicit_intent_beside_an_embedded_input_wins_as_a_pair() {
    let r = platform();
    let a = send_json(
        &r,
        json!({"conversationId": "c-1", "intent": "billing", "confidence": "0.9",
            "input": {"intent": "cancel", "intentScore": 0.99, "sessionId": "s-x"}}),
    )
    .await
    .unwrap();
    assert_eq!(
        (a.body["intent"].as_str(), a.body["confidence"].as_f64()),
        (Some("billing"), Some(0.9))
    );
    assert_eq!(r.sessions.pairs.lock().unwrap()["s-x"].id, "c-1");
}

#[tokio::test]
async fn a_flat_intent_with_an_empty_score_is_below_threshold() {
    let r = platform();
    let a = send_json(
        &r,
        json!({"conversationId": "c-1", "intent": "cancel", "confidence": ""}),
    )
    .await
    .unwrap();
    assert_eq!(a.body["status"], "below_threshold");
    assert_eq!(a.body["reason"], "the intent came without a score");
    let a = send_json(
        &r,
        json!({"conversationId": "c-1", "intent": "cancel", "confidence": "0.9", "negated": "true"}),
    )
    .await
    .unwrap();
    assert_eq!(a.body["status"], "negated");
    assert!(r.sink.calls().is_empty());
}

#[tokio::test]
async fn a_routable_turn_is_routed_even_if_its_session_cannot_be_recorded() {
    let r = platform();
    r.sessions.down.store(true, Ordering::SeqCst);
    let a = send_json(
        &r,
        json!({"input": {"intent": "cancel", "intentScore": 0.9, "sessionId": "s", "data": {"contactId": "c-1"}}}),
    )
    .await
    .unwrap();
    assert_eq!(a.body["status"], "routed");
    assert_eq!(r.sink.calls().len(), 1);
}

#[tokio::test]
async fn a_negated_intent_is_not_routed() {
    let r = platform();
    let a = send_json(
        &r,
        json!({"input": {"intent": "cancel", "intentScore": 0.95, "data": {"contactId": "c-1"},
            "nlu": {"intentMapperResults": {"finalIntentName": "cancel", "finalIntentScore": 0.95, "finalIntentNegated": true}}}}),
    )
    .await
    .unwrap();
    assert_eq!(a.body["status"], "negated");
    assert!(r.sink.calls().is_empty());
}

#[tokio::test]
async fn a_turn_is_routed_once_and_each_genuine_turn_is_routed() {
    let r = platform();
    let turn = |id: &str| json!({"input": {"intent": "cancel", "intentScore": 0.9, "inputId": id, "data": {"contactId": "c-1"}}});
    let first = send_json(&r, turn("a")).await.unwrap();
    let again = send_json(&r, turn("a")).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(r.sink.calls().len(), 1);
    send_json(&r, turn("b")).await.unwrap();
    assert_eq!(r.sink.calls().len(), 2);
}

#[tokio::test]
async fn a_retry_while_the_turn_runs_gets_503_and_then_the_first_answer() {
    let r = platform();
    let body =
        json!({"conversationId": "c-1", "intent": "cancel", "confidence": 0.9, "inputId": "x"});
    let turn = turn::read(&body, PreferContact::Spawned).unwrap();
    let (key, hash) = turn_key(&turn, "c-1", "cancel", 0.9);
    // The first call holds the turn.
    r.dedup.claim(&key, &hash, NOW, NOW + 1).await.unwrap();
    let err = send_json(&r, body.clone()).await.unwrap_err();
    assert_eq!(
        (err.code, err.status(), err.retry_after),
        (
            ErrorCode::InProgress,
            StatusCode::SERVICE_UNAVAILABLE,
            Some(1)
        )
    );
    // It finishes: the retry gets its answer, and nothing more is sent.
    let first = json!({"status": "routed", "interactionId": "c-1"});
    r.dedup
        .complete(&key, &hash, &json!({"status": 200, "body": first}), NOW)
        .await
        .unwrap();
    let a = send_json(&r, body.clone()).await.unwrap();
    assert_eq!((a.status, a.body), (StatusCode::OK, first));
    assert!(r.sink.calls().is_empty());
}

#[tokio::test]
async fn a_retry_after_the_first_call_gave_up_is_routed() {
    let r = platform();
    let body =
        json!({"conversationId": "c-1", "intent": "cancel", "confidence": 0.9, "inputId": "x"});
    let turn = turn::read(&body, PreferContact::Spawned).unwrap();
    let (key, hash) = turn_key(&turn, "c-1", "cancel", 0.9);
    r.dedup.claim(&key, &hash, NOW, NOW + 1).await.unwrap();
    r.dedup.release(&key, NOW + 1).await.unwrap();
    assert_eq!(send_json(&r, body).await.unwrap().body["status"], "routed");
    assert_eq!(r.sink.calls().len(), 1);
}

#[tokio::test]
async fn a_turn_nothing_identifies_is_remembered_only_briefly() {
    let r = platform();
    let body = json!({"conversationId": "c-1", "intent": "cancel", "confidence": 0.9});
    send_json(&r, body.clone()).await.unwrap();
    send_json(&r, body).await.unwrap();
    assert_eq!(r.sink.calls().len(), 1, "a quick retry is still one turn");
    assert_eq!(r.anonymous.items.lock().unwrap().len(), 1);
    assert!(r.dedup.items.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_cxone_outage_queues_the_action_and_a_gone_contact_is_refused() {
    let r = platform();
    *r.sink.fail.lock().unwrap() = Some(|| CxoneError::Unavailable("503".into()));
    let body = json!({"conversationId": "c-1", "intent": "cancel", "confidence": 0.9});
    let a = send_json(&r, body.clone()).await.unwrap();
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("queued"))
    );
    assert_eq!(a.body["reason"], "CXone is unavailable");
    let queued = r.sink.queued.lock().unwrap().clone();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].payload["action"], "Escalate");
    assert_eq!(queued[0].payload["attributes"]["queue"], "Retention");

    let r = platform();
    *r.sink.fail.lock().unwrap() = Some(|| CxoneError::NotFound("gone".into()));
    let err = send_json(&r, body.clone()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ContactNotActive);
    // The refused turn is released: once the contact exists, a resend is routed.
    *r.sink.fail.lock().unwrap() = None;
    assert_eq!(send_json(&r, body).await.unwrap().body["status"], "routed");
}

#[tokio::test]
async fn what_cannot_finish_inside_the_limit_is_queued() {
    let r = router_with(
        Profile::InContact,
        r#"{"syncLimitMs": 500, "intents": {"cancel": {"action": "Escalate"}}}"#,
    );
    r.sink.stall.store(true, Ordering::SeqCst);
    let a = send_json(
        &r,
        json!({"conversationId": "c-1", "intent": "cancel", "confidence": 0.9}),
    )
    .await
    .unwrap();
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("queued"))
    );
    assert_eq!(a.body["reason"], "CXone did not answer within 500 ms");
    assert_eq!(r.sink.queued.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_documented_profile_updates_the_context_and_sends_no_action() {
    let r = router_with(Profile::Documented, config::LOCAL_INTENTS);
    let a = send_json(
        &r,
        json!({"conversationId": "c-1", "intent": "cancel", "confidence": 0.9}),
    )
    .await
    .unwrap();
    assert_eq!(a.body["sent"], "context");
    let calls = r.sink.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["context"], "c-1");
    assert_eq!(calls[0]["attributes"]["queue"], "Retention");
}

#[tokio::test]
async fn webhook_envelope_outputs_use_the_session_and_plain_text_is_ignored() {
    let r = platform();
    send_json(&r, first_voice_turn("s-e")).await.unwrap();
    let text = json!({"userId": "u", "sessionId": "s-e", "AIOutput": {"text": "Hello", "data": {}, "traceId": "t-1"}});
    let a = send_json(&r, text).await.unwrap();
    assert_eq!(a.body["status"], "ignored");
    let intent = json!({"userId": "u", "sessionId": "s-e", "AIOutput": {"text": "", "traceId": "t-2",
        "data": {"intent": "cancel", "confidence": "0.9"}}});
    let a = send_json(&r, intent).await.unwrap();
    assert_eq!(a.body["status"], "routed", "{}", a.body);
    assert_eq!(a.body["interactionId"], "700001");
    assert_eq!(r.sink.calls().len(), 1);
}

#[tokio::test]
async fn missing_contact_and_a_failing_session_memory_are_refused_before_anything_is_sent() {
    let r = platform();
    let err = send_json(&r, spoken_turn("never-seen", "i", "cancel", 0.9))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidPayload);
    assert_eq!(err.body()["error"]["fields"][0]["field"], "contactId");
    r.sessions.down.store(true, Ordering::SeqCst);
    let err = send_json(&r, first_voice_turn("s")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::DependencyUnavailable);
    assert!(r.sink.calls().is_empty());
}
