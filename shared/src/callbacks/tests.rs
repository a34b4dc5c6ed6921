//! The callback service on in-memory fakes of the secret and the execution store.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::*;
use crate::secrets::parse_secrets;
use crate::testing::{ExecutionItem, FakeExecutions, FakeSecrets};

const NOW: i64 = 1_800_000_000_000;
const SECRET: &str = "cb-secret";
const TOLERANCE: Duration = Duration::from_secs(300);

type Service = CallbackService<Arc<FakeSecrets>, FakeExecutions>;

fn secrets_with(callback_secrets: &[&str]) -> crate::secrets::Secrets {
    parse_secrets(
        "t",
        &json!({"callbackSecrets": callback_secrets}).to_string(),
    )
    .unwrap()
}

fn service(auth: CallbackAuth) -> (Service, Arc<FakeSecrets>) {
    let secrets = Arc::new(FakeSecrets::with(secrets_with(&[SECRET])));
    let service = CallbackService::new(
        auth,
        TOLERANCE,
        secrets.clone(),
        FakeExecutions::default(),
        Duration::from_secs(30),
    );
    (service, secrets)
}

/// An execution waiting for its callback.
fn waiting(service: &Service, id: &str, status: &str) {
    service.store.items.lock().unwrap().insert(
        id.to_owned(),
        ExecutionItem {
            signal: "order-update".into(),
            status: status.into(),
            expires_at: NOW / 1000 + 3600,
            due_at: Some(NOW + 60_000),
            ..ExecutionItem::default()
        },
    );
}

fn completed(id: &str) -> String {
    json!({"correlationId": id, "signalExecutionId": "sx-9", "status": "completed",
           "outputs": {"caseId": "CS-1"}})
    .to_string()
}

/// Signs `body` at `at` (epoch seconds) with `secret` and sends it.
async fn send_signed(
    service: &Service,
    secret: &str,
    at: i64,
    body: &str,
) -> Result<(StatusCode, Value), ApiError> {
    let timestamp = at.to_string();
    let signature = signature::sign(secret.as_bytes(), at, body.as_bytes());
    let request = CallbackRequest {
        signature: Some(&signature),
        timestamp: Some(&timestamp),
        token: None,
        body: body.as_bytes(),
    };
    service.receive(&request, NOW).await
}

async fn send_token(
    service: &Service,
    token: Option<&str>,
    body: &str,
) -> Result<(StatusCode, Value), ApiError> {
    let request = CallbackRequest {
        token,
        body: body.as_bytes(),
        ..CallbackRequest::default()
    };
    service.receive(&request, NOW).await
}

#[tokio::test]
async fn a_signed_callback_settles_its_execution_with_the_outputs() {
    let (s, _) = service(CallbackAuth::Hmac);
    waiting(&s, "k-1", "dispatched");
    let answer = send_signed(&s, SECRET, NOW / 1000, &completed("k-1"))
        .await
        .unwrap();
    assert_eq!(
        answer,
        (
            StatusCode::OK,
            json!({"status": "recorded", "correlationId": "k-1"})
        )
    );
    let item = s.store.item("k-1").unwrap();
    assert_eq!(item.status, "completed");
    assert_eq!(item.outputs, json!({"caseId": "CS-1"}));
    assert_eq!(item.signal_execution_id.as_deref(), Some("sx-9"));
    assert_eq!(
        item.due_at, None,
        "a settled execution leaves the due index"
    );
}

#[tokio::test]
async fn the_same_callback_twice_is_a_duplicate_and_changes_nothing() {
    let (s, _) = service(CallbackAuth::Hmac);
    waiting(&s, "k-1", "dispatched");
    send_signed(&s, SECRET, NOW / 1000, &completed("k-1"))
        .await
        .unwrap();
    let failed = json!({"correlationId": "k-1", "status": "failed", "error": "late"}).to_string();
    let answer = send_signed(&s, SECRET, NOW / 1000, &failed).await.unwrap();
    assert_eq!(answer.1["status"], "duplicate");
    let item = s.store.item("k-1").unwrap();
    assert_eq!(
        (item.status.as_str(), item.last_error),
        ("completed", None),
        "an ended execution never moves backwards"
    );
}

#[tokio::test]
async fn a_late_callback_still_settles_a_timed_out_execution() {
    let (s, _) = service(CallbackAuth::Hmac);
    waiting(&s, "k-1", "timed_out");
    let failed =
        json!({"correlationId": "k-1", "status": "failed", "error": {"code": 7}}).to_string();
    let answer = send_signed(&s, SECRET, NOW / 1000, &failed).await.unwrap();
    assert_eq!(answer.1["status"], "recorded");
    let item = s.store.item("k-1").unwrap();
    assert_eq!(item.status, "failed");
    assert_eq!(item.last_error.as_deref(), Some(r#"{"code":7}"#));
}

#[tokio::test]
async fn a_callback_for_an_unknown_execution_is_404_execution_not_found() {
    let (s, _) = service(CallbackAuth::Hmac);
    let err = send_signed(&s, SECRET, NOW / 1000, &completed("nobody"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ExecutionNotFound);
    assert_eq!(err.code.status(), StatusCode::NOT_FOUND);
    assert!(s.store.item("nobody").is_none());
}

#[tokio::test]
async fn a_wrong_signature_is_refused_after_one_fresh_secret_read() {
    let (s, secrets) = service(CallbackAuth::Hmac);
    waiting(&s, "k-1", "dispatched");
    let err = send_signed(&s, "not-the-secret", NOW / 1000, &completed("k-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::SignatureMismatch);
    assert_eq!(secrets.refreshes.load(Ordering::SeqCst), 1);
    // The gate holds the next forced read back for its interval.
    send_signed(&s, "not-the-secret", NOW / 1000, &completed("k-1"))
        .await
        .unwrap_err();
    assert_eq!(secrets.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(s.store.item("k-1").unwrap().status, "dispatched");
}

#[tokio::test]
async fn a_secret_rotated_since_it_was_cached_is_picked_up_without_a_restart() {
    let (s, secrets) = service(CallbackAuth::Hmac);
    waiting(&s, "k-1", "dispatched");
    *secrets.stored.lock().unwrap() = Arc::new(secrets_with(&["rotated", SECRET]));
    let answer = send_signed(&s, "rotated", NOW / 1000, &completed("k-1"))
        .await
        .unwrap();
    assert_eq!(answer.1["status"], "recorded");
    assert_eq!(secrets.refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stale_or_future_timestamp_is_refused_without_reading_the_secret() {
    let (s, secrets) = service(CallbackAuth::Hmac);
    waiting(&s, "k-1", "dispatched");
    let old = NOW / 1000 - 301;
    let err = send_signed(&s, SECRET, old, &completed("k-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TimestampTooOld);
    let ahead = NOW / 1000 + 301;
    let err = send_signed(&s, SECRET, ahead, &completed("k-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TimestampInFuture);
    assert_eq!(secrets.refreshes.load(Ordering::SeqCst), 0);
    assert_eq!(s.store.item("k-1").unwrap().status, "dispatched");
}

#[tokio::test]
async fn a_callback_without_its_signature_headers_is_refused_by_name() {
    let (s, _) = service(CallbackAuth::Hmac);
    let body = completed("k-1");
    let request = CallbackRequest {
        body: body.as_bytes(),
        ..CallbackRequest::default()
    };
    let err = s.receive(&request, NOW).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::MissingSignatureHeader);
    assert_eq!(err.code.status(), StatusCode::UNAUTHORIZED);
    assert!(err.message.contains("x-callback-"), "{}", err.message);
}

#[tokio::test]
async fn token_auth_takes_any_current_callback_secret_and_refuses_others() {
    let (s, _) = service(CallbackAuth::Token);
    waiting(&s, "k-1", "dispatched");
    let err = send_token(&s, None, &completed("k-1")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unauthorized);
    let err = send_token(&s, Some("guess"), &completed("k-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unauthorized);
    assert_eq!(s.store.item("k-1").unwrap().status, "dispatched");
    let answer = send_token(&s, Some(SECRET), &completed("k-1"))
        .await
        .unwrap();
    assert_eq!(answer.1["status"], "recorded");
}

#[tokio::test]
async fn token_auth_ignores_a_signature() {
    let (s, _) = service(CallbackAuth::Token);
    waiting(&s, "k-1", "dispatched");
    let err = send_signed(&s, SECRET, NOW / 1000, &completed("k-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unauthorized);
}

#[tokio::test]
async fn an_invalid_body_lists_every_problem_and_touches_nothing() {
    let (s, _) = service(CallbackAuth::Token);
    waiting(&s, "k-1", "dispatched");
    let body = json!({"status": "running", "outputs": [1]}).to_string();
    let err = send_token(&s, Some(SECRET), &body).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest);
    let (name, problems) = err.details.unwrap();
    assert_eq!(name, "fields");
    let fields: Vec<String> = problems
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["correlationId", "status", "outputs"]);
    let err = send_token(&s, Some(SECRET), "{not json").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::MalformedBody);
    let long = json!({"correlationId": "x".repeat(MAX_KEY_LEN + 1), "status": "completed"});
    let err = send_token(&s, Some(SECRET), &long.to_string())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest);
    assert_eq!(s.store.item("k-1").unwrap().status, "dispatched");
}

#[tokio::test]
async fn a_store_that_cannot_be_reached_is_503_so_the_script_retries() {
    let (s, _) = service(CallbackAuth::Token);
    waiting(&s, "k-1", "dispatched");
    s.store.down.store(true, Ordering::SeqCst);
    let err = send_token(&s, Some(SECRET), &completed("k-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::DependencyUnavailable);
    assert_eq!(err.code.status(), StatusCode::SERVICE_UNAVAILABLE);
    s.store.down.store(false, Ordering::SeqCst);
    assert_eq!(s.store.item("k-1").unwrap().status, "dispatched");
}

#[test]
fn a_callback_with_no_outputs_records_an_empty_object() {
    let parsed = parse_callback(br#"{"correlationId":"k-1","status":"failed"}"#).unwrap();
    assert_eq!(
        parsed,
        Callback {
            correlation_id: "k-1".into(),
            signal_execution_id: None,
            status: ExecutionStatus::Failed,
            outputs: json!({}),
            error: None,
        }
    );
}
