//! The dispatcher on in-memory fakes of CXone, the execution store and the jobs queue.

use std::sync::atomic::Ordering;

use super::definitions::DEFAULT_SIGNALS;
use super::store::{AttemptClaim, CLAIM, ExecutionStatus};
use super::*;
use crate::cxone::api::ExecutionHistory;
use crate::testing::{FakeCxone, FakeExecutions, FakeQueue};

const NOW: i64 = 1_800_000_000_000;
const JOBS: &str = "https://sqs.local/jobs";
const DEADLINE: Duration = Duration::from_secs(300);
const LEASE: Duration = Duration::from_secs(15);

type TestDispatcher = Dispatcher<FakeCxone, FakeExecutions, FakeQueue>;

fn dispatcher_for(profile: Profile) -> TestDispatcher {
    Dispatcher {
        definitions: definitions::parse(DEFAULT_SIGNALS, profile).unwrap(),
        profile,
        cxone: FakeCxone::default(),
        store: FakeExecutions::default(),
        queue: FakeQueue::default(),
        jobs_queue_url: JOBS.to_owned(),
        deadline: DEADLINE,
        retry: crate::jobs::RetryPolicy {
            max_attempts: 4,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(5),
        },
        lease: LEASE,
    }
}

fn dispatcher() -> TestDispatcher {
    dispatcher_for(Profile::Documented)
}

fn order() -> Value {
    json!({"customerId": "C1", "orderId": "O1", "updateType": "shipped", "priority": "high",
           "timestamp": "2026-11-22T09:00:00Z", "address": {"city": "Leeds", "zip": "LS1"}})
}

fn body(data: Value) -> Value {
    json!({"data": data, "metadata": {"contactId": "700001"}})
}

async fn submit(
    d: &TestDispatcher,
    key: &str,
    body: &Value,
    now: i64,
) -> Result<(StatusCode, Value), ApiError> {
    d.submit(
        "order-update",
        Some(key.as_bytes()),
        body.to_string().as_bytes(),
        now,
    )
    .await
}

/// What the jobs queue was sent, in order.
fn messages(d: &TestDispatcher) -> Vec<OutboundMessage> {
    let sent = d.queue.sent.lock().unwrap().clone();
    assert!(sent.iter().all(|(queue, _)| queue == JOBS), "{sent:?}");
    sent.into_iter().map(|(_, m)| m).collect()
}

fn jobs(d: &TestDispatcher) -> Vec<Job> {
    messages(d)
        .iter()
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect()
}

fn kinds(d: &TestDispatcher) -> Vec<JobKind> {
    jobs(d).iter().map(|j| j.kind).collect()
}

fn status_of(d: &TestDispatcher, key: &str) -> String {
    d.store.item(key).unwrap().status
}

fn untouched(d: &TestDispatcher) {
    assert!(d.cxone.signals().is_empty(), "nothing is sent");
    assert!(
        d.store.items.lock().unwrap().is_empty(),
        "nothing is stored"
    );
    assert!(d.queue.sent.lock().unwrap().is_empty(), "nothing is queued");
}

/// Another request's claim on `key`, made at `at` and not answered yet.
async fn claimed(d: &TestDispatcher, key: &str, body: &Value, at: i64) {
    let hash = payload_hash("order-update", &body["data"], &body["metadata"]);
    let created = d
        .store
        .create(key, "order-update", &hash, at)
        .await
        .unwrap();
    assert_eq!(created, Created::New);
}

/// Submits `key` while CXone is unavailable and returns the signal job that was queued.
async fn queued_signal(d: &TestDispatcher, key: &str) -> Job {
    d.cxone
        .fail_next([CxoneError::Unavailable("status 503: down".into())]);
    submit(d, key, &body(order()), NOW).await.unwrap();
    jobs(d)
        .into_iter()
        .find(|j| j.kind == JobKind::Signal && j.correlation_id == key)
        .unwrap()
}

fn job(kind: JobKind, id: &str, attempt: u32, payload: Value) -> Job {
    Job {
        attempt,
        ..Job::new(kind, id.to_owned(), id.to_owned(), payload, NOW)
    }
}

/// A `signal` job as webhook routing queues it: data to validate, no saved request.
fn routed_job(data: Value) -> Job {
    let id = "dlv-1:order-update";
    job(
        JobKind::Signal,
        id,
        0,
        json!({"signal": "order-update", "data": data,
               "metadata": {"correlationId": id, "sourceSystem": "shopify", "contactId": "700001"}}),
    )
}

fn context_job(attempt: u32) -> Job {
    job(
        JobKind::Context,
        "intent:abc",
        attempt,
        json!({"interactionId": "700001", "attributes": {"queue": "Retention"}}),
    )
}

#[tokio::test]
async fn a_new_signal_is_sent_to_cxone_once_and_recorded_as_dispatched() {
    let d = dispatcher();
    let (status, answer) = submit(&d, "k-1", &body(order()), NOW).await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        answer,
        json!({"status": "dispatched", "correlationId": "k-1", "signalExecutionId": "sx-1"})
    );
    let sent = d.cxone.signals();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].definition_id, "order-update");
    assert_eq!(sent[0].idempotency_key.as_deref(), Some("k-1"));
    assert_eq!(
        (sent[0].contact_id.as_ref(), sent[0].spawn.as_ref()),
        (None, None)
    );
    assert_eq!(
        sent[0].metadata,
        json!({"contactId": "700001", "correlationId": "k-1", "sourceSystem": "cxbridge"})
    );
    let names: Vec<&str> = sent[0].data.iter().map(|(n, _)| n.as_str()).collect();
    let declared = "customerId orderId updateType priority timestamp address.city address.zip";
    assert_eq!(names.join(" "), declared, "in declaration order");
    let record = d.store.item("k-1").unwrap();
    assert_eq!((record.status.as_str(), record.attempts), ("dispatched", 1));
    assert_eq!(record.signal_execution_id.as_deref(), Some("sx-1"));
    assert_eq!(record.response, Some(answer));
    assert_eq!(record.due_at, Some(NOW + 300_000));
}

#[tokio::test]
async fn a_dispatched_signal_schedules_its_deadline_check_on_the_jobs_queue() {
    let d = dispatcher();
    submit(&d, "k-1", &body(order()), NOW).await.unwrap();
    let sent = messages(&d);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].attributes,
        [("kind".to_owned(), "reconcile".to_owned())]
    );
    assert_eq!(sent[0].delay_seconds, Some(300));
    let check: Job = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(
        (check.kind, check.id.as_str(), check.correlation_id.as_str()),
        (JobKind::Reconcile, "k-1:reconcile", "k-1")
    );
    assert_eq!(check.payload, json!({"dispatchedAt": NOW}));
}

#[tokio::test]
async fn the_same_key_and_body_again_get_the_first_answer_without_a_second_send() {
    let d = dispatcher();
    let (_, first) = submit(&d, "k-1", &body(order()), NOW).await.unwrap();
    let (status, again) = submit(&d, "k-1", &body(order()), NOW + 1_000)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first);
    assert_eq!(d.cxone.signals().len(), 1);
    assert_eq!(kinds(&d), [JobKind::Reconcile], "one deadline check");
}

#[tokio::test]
async fn the_same_key_with_another_body_is_an_idempotency_conflict() {
    let d = dispatcher();
    submit(&d, "k-1", &body(order()), NOW).await.unwrap();
    let mut other = order();
    other["orderId"] = json!("O2");
    let e = submit(&d, "k-1", &body(other), NOW + 1_000)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::IdempotencyKeyReused);
    assert_eq!(e.status(), StatusCode::CONFLICT);
    assert_eq!(d.cxone.signals().len(), 1);
    assert_eq!(
        d.store.item("k-1").unwrap().payload_hash,
        payload_hash("order-update", &order(), &json!({"contactId": "700001"})),
        "the record keeps the first request"
    );
}

#[tokio::test]
async fn a_key_another_request_is_still_dispatching_answers_in_progress() {
    let d = dispatcher();
    let b = body(order());
    claimed(&d, "k-1", &b, NOW).await;
    let claim_end = NOW + i64::try_from(CLAIM.as_millis()).unwrap();
    for at in [NOW + 1_000, claim_end] {
        let e = submit(&d, "k-1", &b, at).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InProgress);
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            e.retry_after,
            Some(crate::error::IN_PROGRESS_RETRY_AFTER_SECS)
        );
    }
    assert!(d.cxone.signals().is_empty());
    assert_eq!(status_of(&d, "k-1"), "pending");
}

#[tokio::test]
async fn a_claim_that_lapsed_without_an_answer_is_taken_over_and_sent() {
    let d = dispatcher();
    let b = body(order());
    claimed(&d, "k-1", &b, NOW).await;
    let lapsed = NOW + i64::try_from(CLAIM.as_millis()).unwrap() + 1;
    let (status, answer) = submit(&d, "k-1", &b, lapsed).await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer["status"], "dispatched");
    assert_eq!(d.cxone.signals().len(), 1);
    assert_eq!(status_of(&d, "k-1"), "dispatched");
}

#[tokio::test]
async fn a_signal_cxone_cannot_take_now_is_queued_as_a_signal_job_and_accepted() {
    let d = dispatcher();
    d.cxone
        .fail_next([CxoneError::Unavailable("status 503: down".into())]);
    let (status, answer) = submit(&d, "k-1", &body(order()), NOW).await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer, json!({"status": "queued", "correlationId": "k-1"}));

    let sent = messages(&d);
    assert_eq!(sent.len(), 1, "no deadline check for what was not sent");
    assert_eq!(
        sent[0].attributes,
        [("kind".to_owned(), "signal".to_owned())]
    );
    assert!(
        sent[0].delay_seconds.is_some_and(|s| (0..=1).contains(&s)),
        "the first backoff, at most the base: {:?}",
        sent[0].delay_seconds
    );
    let queued: Job = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(
        (
            queued.kind,
            queued.id.as_str(),
            queued.correlation_id.as_str(),
            queued.attempt
        ),
        (JobKind::Signal, "k-1", "k-1", 1)
    );
    assert_eq!(
        queued.last_error.as_deref(),
        Some("CXone is unavailable: status 503: down")
    );
    assert_eq!(queued.payload["signal"], "order-update");
    assert_eq!(
        request_from_json(&queued.payload["request"]).as_ref(),
        Some(&d.cxone.signals()[0]),
        "the job carries the request CXone could not take"
    );

    let record = d.store.item("k-1").unwrap();
    assert_eq!((record.status.as_str(), record.attempts), ("pending", 1));
    assert_eq!(
        record.last_error.as_deref(),
        Some("CXone is unavailable: status 503: down")
    );
    assert_eq!(record.response, Some(answer));
}

#[tokio::test]
async fn timeouts_and_rate_limits_are_queued_too_no_sooner_than_cxone_asked() {
    let d = dispatcher();
    d.cxone.fail_next([
        CxoneError::Timeout(Duration::from_secs(5)),
        CxoneError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
            local: false,
        },
    ]);
    for key in ["k-1", "k-2"] {
        let (status, answer) = submit(&d, key, &body(order()), NOW).await.unwrap();
        assert_eq!(
            (status, &answer["status"]),
            (StatusCode::ACCEPTED, &json!("queued"))
        );
    }
    assert_eq!(kinds(&d), [JobKind::Signal, JobKind::Signal]);
    assert_eq!(messages(&d)[1].delay_seconds, Some(7));
}

#[tokio::test]
async fn a_signal_cxone_refuses_for_good_gets_its_mapped_error_and_is_not_queued() {
    let cases = [
        (
            CxoneError::Invalid {
                status: Some(400),
                detail: "p2 is too long".into(),
            },
            ErrorCode::CxoneRejected,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            CxoneError::NotFound("no such definition".into()),
            ErrorCode::CxoneNotFound,
            StatusCode::NOT_FOUND,
        ),
        (
            CxoneError::Forbidden("no".into()),
            ErrorCode::CxoneRefused,
            StatusCode::FAILED_DEPENDENCY,
        ),
        (
            CxoneError::Unauthorized("no".into()),
            ErrorCode::CxoneRefused,
            StatusCode::FAILED_DEPENDENCY,
        ),
    ];
    for (error, code, expected) in cases {
        let d = dispatcher();
        d.cxone.fail_next([error.clone()]);
        let e = submit(&d, "k-1", &body(order()), NOW).await.unwrap_err();
        assert_eq!((e.code, e.status()), (code, expected), "{error}");
        assert!(e.message.ends_with(&error.to_string()), "{}", e.message);
        assert!(messages(&d).is_empty(), "{error}");
        let record = d.store.item("k-1").unwrap();
        assert_eq!(
            (record.status.as_str(), record.attempts),
            ("failed", 1),
            "{error}"
        );
        assert_eq!(
            record.last_error,
            Some(format!("{}: {}", e.code, e.message))
        );
        assert_eq!(record.response, Some(e.body()));
    }
}

#[tokio::test]
async fn a_contact_that_is_not_running_on_the_platform_is_contact_not_active() {
    let d = dispatcher_for(Profile::InContact);
    d.cxone
        .fail_next([CxoneError::NotFound("contact 700001".into())]);
    let e = submit(&d, "k-1", &body(order()), NOW).await.unwrap_err();
    assert_eq!(
        (e.code, e.status()),
        (ErrorCode::ContactNotActive, StatusCode::NOT_FOUND)
    );
    let sent = d.cxone.signals();
    assert_eq!(sent[0].contact_id.as_deref(), Some("700001"));
    assert_eq!(sent[0].data[0], ("correlationId".to_owned(), json!("k-1")));
    assert!(messages(&d).is_empty());
    assert_eq!(status_of(&d, "k-1"), "failed");
}

#[tokio::test]
async fn with_cxone_and_the_jobs_queue_both_down_the_caller_retries_and_its_retry_is_sent() {
    let d = dispatcher();
    let b = body(order());
    d.cxone
        .fail_next([CxoneError::Unavailable("status 502: bad gateway".into())]);
    d.queue.down.store(true, Ordering::SeqCst);
    let e = submit(&d, "k-1", &b, NOW).await.unwrap_err();
    assert_eq!(
        (e.code, e.status()),
        (
            ErrorCode::DependencyUnavailable,
            StatusCode::SERVICE_UNAVAILABLE
        )
    );
    assert!(e.code.is_retryable());
    assert!(d.store.item("k-1").is_none(), "the claim is let go");
    assert!(messages(&d).is_empty());

    d.queue.down.store(false, Ordering::SeqCst);
    let (status, answer) = submit(&d, "k-1", &b, NOW + 1_000).await.unwrap();
    assert_eq!(
        (status, &answer["status"]),
        (StatusCode::ACCEPTED, &json!("dispatched"))
    );
    assert_eq!(d.cxone.signals().len(), 2);
}

#[tokio::test]
async fn when_the_execution_store_cannot_claim_the_key_nothing_is_sent() {
    let d = dispatcher();
    d.store.fail("create");
    let e = submit(&d, "k-1", &body(order()), NOW).await.unwrap_err();
    assert_eq!(
        (e.code, e.status()),
        (
            ErrorCode::DependencyUnavailable,
            StatusCode::SERVICE_UNAVAILABLE
        )
    );
    untouched(&d);
}

#[tokio::test]
async fn an_unknown_signal_is_signal_not_found_and_nothing_is_stored_or_sent() {
    let d = dispatcher();
    let e = d
        .submit(
            "order-cancel",
            Some(b"k-1"),
            body(order()).to_string().as_bytes(),
            NOW,
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.status()),
        (ErrorCode::SignalNotFound, StatusCode::NOT_FOUND)
    );
    untouched(&d);
}

#[tokio::test]
async fn data_that_does_not_match_the_definition_is_invalid_payload_listing_every_field() {
    let d = dispatcher();
    let mut data = order();
    data["priority"] = json!(1);
    data.as_object_mut().unwrap().remove("orderId");
    let e = submit(&d, "k-1", &body(data), NOW).await.unwrap_err();
    assert_eq!(
        (e.code, e.status()),
        (ErrorCode::InvalidPayload, StatusCode::UNPROCESSABLE_ENTITY)
    );
    assert_eq!(
        e.body()["error"]["fields"],
        json!([
            {"field": "orderId", "problem": "is missing"},
            {"field": "priority", "problem": "must be a string, not a number"}
        ])
    );
    untouched(&d);
}

#[tokio::test]
async fn a_body_or_key_that_cannot_be_used_is_refused_before_anything_is_stored() {
    let good = body(order()).to_string();
    let with_metadata =
        |metadata: Value| json!({"data": order(), "metadata": metadata}).to_string();
    let cases: Vec<(Option<Vec<u8>>, String, ErrorCode)> = vec![
        (
            Some(b"k-1".to_vec()),
            "{not json".into(),
            ErrorCode::MalformedBody,
        ),
        (
            Some(b"k-1".to_vec()),
            "[1]".into(),
            ErrorCode::MalformedBody,
        ),
        (
            Some(b"k-1".to_vec()),
            with_metadata(json!("x")),
            ErrorCode::InvalidPayload,
        ),
        (
            Some(b"two words".to_vec()),
            good.clone(),
            ErrorCode::BadRequest,
        ),
        (Some(vec![b'k'; 129]), good.clone(), ErrorCode::BadRequest),
        (Some(vec![0xff]), good.clone(), ErrorCode::BadRequest),
        (Some(b"  ".to_vec()), good.clone(), ErrorCode::BadRequest),
        (
            None,
            with_metadata(json!({"correlationId": ""})),
            ErrorCode::BadRequest,
        ),
        (
            None,
            with_metadata(json!({"correlationId": {"id": 1}})),
            ErrorCode::InvalidPayload,
        ),
    ];
    for (key, text, code) in cases {
        let d = dispatcher();
        let e = d
            .submit("order-update", key.as_deref(), text.as_bytes(), NOW)
            .await
            .unwrap_err();
        assert_eq!(e.code, code, "{key:?} {text}");
        untouched(&d);
    }
}

#[tokio::test]
async fn without_the_header_the_correlation_id_is_the_idempotency_key() {
    let d = dispatcher();
    let b = json!({"data": order(), "metadata": {"correlationId": 42}});
    let (_, answer) = d
        .submit("order-update", None, b.to_string().as_bytes(), NOW)
        .await
        .unwrap();
    assert_eq!(answer["correlationId"], "42");
    assert_eq!(status_of(&d, "42"), "dispatched");
    let sent = d.cxone.signals();
    assert_eq!(sent[0].idempotency_key.as_deref(), Some("42"));
    assert_eq!(sent[0].metadata["correlationId"], "42");
}

#[tokio::test]
async fn a_queued_signal_job_sends_the_saved_request_and_records_the_dispatch() {
    let d = dispatcher();
    let queued = queued_signal(&d, "k-1").await;
    d.run_signal_job(&queued, NOW + 2_000).await.unwrap();
    let sent = d.cxone.signals();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1], sent[0], "the same request again");
    let record = d.store.item("k-1").unwrap();
    assert_eq!((record.status.as_str(), record.attempts), ("dispatched", 2));
    assert_eq!(record.signal_execution_id.as_deref(), Some("sx-2"));
    assert_eq!(record.due_at, Some(NOW + 2_000 + 300_000));
    assert_eq!(kinds(&d), [JobKind::Signal, JobKind::Reconcile]);
}

#[tokio::test]
async fn a_copy_of_a_signal_job_that_already_ran_is_skipped_without_sending() {
    let d = dispatcher();
    let queued = queued_signal(&d, "k-1").await;
    d.run_signal_job(&queued, NOW + 2_000).await.unwrap();
    d.run_signal_job(&queued, NOW + 60_000).await.unwrap();
    assert_eq!(d.cxone.signals().len(), 2);
    assert_eq!(kinds(&d), [JobKind::Signal, JobKind::Reconcile]);
}

#[tokio::test]
async fn a_signal_job_that_fails_again_asks_for_a_retry_and_its_stale_copy_never_runs() {
    let d = dispatcher();
    let queued = queued_signal(&d, "k-1").await;
    d.cxone.fail_next([CxoneError::RateLimited {
        retry_after: Some(Duration::from_secs(3)),
        local: false,
    }]);
    let failure = d.run_signal_job(&queued, NOW + 2_000).await.unwrap_err();
    let reason = "CXone rate-limited the call (429); retry after 3000 ms";
    assert_eq!(
        failure,
        JobFailure::retry(reason, Some(Duration::from_secs(3)))
    );
    let record = d.store.item("k-1").unwrap();
    assert_eq!(
        (
            record.status.as_str(),
            record.attempts,
            record.finished_attempt
        ),
        ("pending", 2, Some(2))
    );
    assert_eq!(record.last_error.as_deref(), Some(reason));

    d.run_signal_job(&queued, NOW + 60_000).await.unwrap();
    assert_eq!(d.cxone.signals().len(), 2, "the stale copy sends nothing");
    let retry = Job {
        attempt: queued.attempt + 1,
        ..queued
    };
    d.run_signal_job(&retry, NOW + 60_000).await.unwrap();
    assert_eq!(d.cxone.signals().len(), 3);
    assert_eq!(status_of(&d, "k-1"), "dispatched");
}

#[tokio::test]
async fn a_signal_job_cxone_refuses_for_good_fails_its_execution_permanently() {
    let d = dispatcher();
    let queued = queued_signal(&d, "k-1").await;
    d.cxone.fail_next([CxoneError::Invalid {
        status: Some(400),
        detail: "p2 is too long".into(),
    }]);
    let failure = d.run_signal_job(&queued, NOW + 2_000).await.unwrap_err();
    let reason = "cxone_rejected: CXone rejected the signal: CXone rejected the request (400): p2 is too long";
    assert_eq!(failure, JobFailure::permanent(reason));
    let record = d.store.item("k-1").unwrap();
    assert_eq!(
        (record.status.as_str(), record.last_error.as_deref()),
        ("failed", Some(reason))
    );
    assert_eq!(kinds(&d), [JobKind::Signal], "no deadline check");
}

#[tokio::test]
async fn a_signal_job_another_run_holds_waits_in_the_queue_until_the_lease_lapses() {
    let d = dispatcher();
    let queued = queued_signal(&d, "k-1").await;
    let claim = d
        .store
        .begin_attempt("k-1", queued.attempt + 1, LEASE, NOW + 1_000)
        .await
        .unwrap();
    assert_eq!(claim, AttemptClaim::Started);

    let failure = d.run_signal_job(&queued, NOW + 2_000).await.unwrap_err();
    assert_eq!(
        failure,
        JobFailure {
            hold: true,
            ..JobFailure::retry("another run holds this attempt", None)
        }
    );
    assert_eq!(d.cxone.signals().len(), 1);

    let lapsed = NOW + 1_000 + i64::try_from(LEASE.as_millis()).unwrap() + 1;
    d.run_signal_job(&queued, lapsed).await.unwrap();
    assert_eq!(d.cxone.signals().len(), 2);
    assert_eq!(status_of(&d, "k-1"), "dispatched");
}

#[tokio::test]
async fn a_signal_job_that_cannot_claim_its_attempt_is_retried_without_sending() {
    let d = dispatcher();
    let queued = queued_signal(&d, "k-1").await;
    d.store.fail("begin_attempt");
    let failure = d.run_signal_job(&queued, NOW + 2_000).await.unwrap_err();
    assert_eq!(
        failure,
        JobFailure::retry("the idempotency store is unavailable: down", None)
    );
    assert_eq!(d.cxone.signals().len(), 1);
}

#[tokio::test]
async fn a_dead_lettered_execution_runs_again_only_from_a_redriven_job() {
    let d = dispatcher();
    let queued = queued_signal(&d, "k-1").await;
    d.store
        .failed(
            "k-1",
            ExecutionStatus::DeadLettered,
            "gave up after 4 attempts",
            None,
            NOW + 1_000,
        )
        .await
        .unwrap();
    d.run_signal_job(&queued, NOW + 2_000).await.unwrap();
    assert_eq!(
        d.cxone.signals().len(),
        1,
        "a dead-lettered execution has ended"
    );

    let redriven = Job {
        redriven: true,
        ..queued
    };
    d.run_signal_job(&redriven, NOW + 3_000).await.unwrap();
    assert_eq!(d.cxone.signals().len(), 2);
    assert_eq!(status_of(&d, "k-1"), "dispatched");
}

#[tokio::test]
async fn a_signal_job_from_webhook_routing_is_validated_recorded_and_sent() {
    let d = dispatcher();
    d.run_signal_job(&routed_job(order()), NOW).await.unwrap();
    let sent = d.cxone.signals();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].idempotency_key.as_deref(),
        Some("dlv-1:order-update")
    );
    assert_eq!(sent[0].metadata["sourceSystem"], "shopify");
    let record = d.store.item("dlv-1:order-update").unwrap();
    assert_eq!(
        (record.signal.as_str(), record.status.as_str()),
        ("order-update", "dispatched")
    );
    assert_eq!(kinds(&d), [JobKind::Reconcile]);
}

#[tokio::test]
async fn a_routed_signal_job_whose_data_does_not_validate_fails_permanently_and_leaves_no_trace() {
    let d = dispatcher();
    let mut data = order();
    data["priority"] = json!(1);
    let failure = d.run_signal_job(&routed_job(data), NOW).await.unwrap_err();
    assert!(!failure.retryable && !failure.hold, "{failure:?}");
    assert!(
        failure.reason.starts_with("invalid_payload: ")
            && failure.reason.contains("must be a string, not a number"),
        "{}",
        failure.reason
    );
    untouched(&d);
}

#[tokio::test]
async fn a_routed_signal_job_whose_key_a_request_used_for_other_data_fails_without_sending() {
    let d = dispatcher();
    let mut other = order();
    other["priority"] = json!("low");
    let (status, _) = submit(&d, "dlv-1:order-update", &body(other), NOW)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    let failure = d
        .run_signal_job(&routed_job(order()), NOW + 1_000)
        .await
        .unwrap_err();
    assert_eq!(
        failure,
        JobFailure::permanent(
            "idempotency_key_reused: the key dlv-1:order-update was already used for a different request"
        )
    );
    let sent = d.cxone.signals();
    assert_eq!(sent.len(), 1, "only the request's signal reached CXone");
    let priority = sent[0].data.iter().find(|(name, _)| name == "priority");
    assert_eq!(priority.map(|(_, v)| v), Some(&json!("low")));
    let record = d.store.item("dlv-1:order-update").unwrap();
    assert_eq!(
        record.status, "dispatched",
        "the request's execution is untouched"
    );
}

#[tokio::test]
async fn a_copy_of_a_routed_signal_job_that_was_sent_sends_nothing_again() {
    let d = dispatcher();
    d.run_signal_job(&routed_job(order()), NOW).await.unwrap();
    d.run_signal_job(&routed_job(order()), NOW + 1_000)
        .await
        .unwrap();
    assert_eq!(d.cxone.signals().len(), 1);
    assert_eq!(status_of(&d, "dlv-1:order-update"), "dispatched");
}

#[tokio::test]
async fn a_repeat_of_an_execution_that_failed_with_no_answer_recorded_says_failed_not_dispatched() {
    let d = dispatcher();
    d.cxone
        .fail_next([CxoneError::NotFound("no such definition".into())]);
    let job = routed_job(order());
    d.run_signal_job(&job, NOW).await.unwrap_err();
    // The same request made directly: same key, signal, data and metadata.
    let repeat = json!({"data": order(), "metadata": job.payload["metadata"]});
    let (status, answer) = submit(&d, "dlv-1:order-update", &repeat, NOW + 1_000)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "failed", "{answer}");
    assert_eq!(answer["correlationId"], "dlv-1:order-update");
    assert!(
        answer["lastError"]
            .as_str()
            .is_some_and(|e| e.starts_with("cxone_not_found: ")),
        "{answer}"
    );
    assert_eq!(d.cxone.signals().len(), 1, "nothing is sent again");
}

#[tokio::test]
async fn a_reconcile_job_that_comes_before_the_deadline_waits_for_the_rest_of_it() {
    let d = dispatcher();
    submit(&d, "k-1", &body(order()), NOW).await.unwrap();
    let check = jobs(&d).pop().unwrap();
    let failure = d.reconcile(&check, NOW + 100_000).await.unwrap_err();
    assert_eq!(
        failure,
        JobFailure::retry(
            "the deadline has not passed yet",
            Some(Duration::from_secs(200))
        )
    );
    assert_eq!(status_of(&d, "k-1"), "dispatched");
}

#[tokio::test]
async fn past_its_deadline_an_execution_is_settled_from_cxones_history() {
    for (ended, error) in [
        ("completed", None),
        ("failed", Some("failed in CXone (reconciled)")),
    ] {
        let d = dispatcher();
        submit(&d, "k-1", &body(order()), NOW).await.unwrap();
        d.cxone.history(
            "sx-1",
            Ok(ExecutionHistory {
                status: ended.into(),
                outputs: json!({"ticket": "T-9"}),
            }),
        );
        let check = jobs(&d).pop().unwrap();
        d.reconcile(&check, NOW + 300_000).await.unwrap();
        let record = d.store.item("k-1").unwrap();
        assert_eq!(record.status, ended);
        assert_eq!(record.outputs, json!({"ticket": "T-9"}));
        assert_eq!(record.last_error.as_deref(), error);
        assert_eq!(record.due_at, None, "out of the due index");
    }
}

#[tokio::test]
async fn past_its_deadline_an_execution_cxone_has_no_history_of_is_timed_out() {
    let d = dispatcher();
    submit(&d, "k-1", &body(order()), NOW).await.unwrap();
    submit(&d, "k-2", &body(order()), NOW).await.unwrap();
    d.cxone
        .history("sx-2", Err(CxoneError::NotFound("sx-2".into())));
    for check in jobs(&d) {
        d.reconcile(&check, NOW + 300_000).await.unwrap();
    }
    for key in ["k-1", "k-2"] {
        let record = d.store.item(key).unwrap();
        assert_eq!(record.status, "timed_out", "{key}");
        assert_eq!(
            record.last_error.as_deref(),
            Some("no completion callback arrived before the deadline")
        );
    }
}

#[tokio::test]
async fn a_reconcile_that_cannot_read_cxones_history_now_is_retried_and_settles_nothing() {
    let d = dispatcher();
    submit(&d, "k-1", &body(order()), NOW).await.unwrap();
    d.cxone.history(
        "sx-1",
        Err(CxoneError::Unavailable("status 503: busy".into())),
    );
    let check = jobs(&d).pop().unwrap();
    let failure = d.reconcile(&check, NOW + 300_000).await.unwrap_err();
    assert_eq!(
        failure,
        JobFailure::retry("CXone is unavailable: status 503: busy", None)
    );
    assert_eq!(status_of(&d, "k-1"), "dispatched");
}

#[tokio::test]
async fn an_execution_whose_callback_came_in_time_is_left_alone_by_its_reconcile() {
    let d = dispatcher();
    submit(&d, "k-1", &body(order()), NOW).await.unwrap();
    d.store
        .callback(
            "k-1",
            ExecutionStatus::Completed,
            &json!({"a": 1}),
            None,
            None,
            NOW + 1_000,
        )
        .await
        .unwrap();
    let check = jobs(&d).pop().unwrap();
    d.reconcile(&check, NOW + 300_000).await.unwrap();
    let record = d.store.item("k-1").unwrap();
    assert_eq!(
        (record.status.as_str(), &record.outputs),
        ("completed", &json!({"a": 1}))
    );
}

#[tokio::test]
async fn the_sweep_settles_every_execution_past_its_deadline_and_no_other() {
    let d = dispatcher();
    submit(&d, "k-1", &body(order()), NOW).await.unwrap();
    submit(&d, "k-2", &body(order()), NOW + 200_000)
        .await
        .unwrap();
    submit(&d, "k-3", &body(order()), NOW + 1_000)
        .await
        .unwrap();
    d.cxone.history(
        "sx-1",
        Ok(ExecutionHistory {
            status: "completed".into(),
            outputs: json!({}),
        }),
    );
    d.sweep(NOW + 400_000).await.unwrap();
    assert_eq!(status_of(&d, "k-1"), "completed");
    assert_eq!(
        status_of(&d, "k-2"),
        "dispatched",
        "its deadline is still ahead"
    );
    assert_eq!(status_of(&d, "k-3"), "timed_out");
}

#[tokio::test]
async fn the_sweep_leaves_what_it_cannot_settle_to_the_next_sweep() {
    let d = dispatcher();
    submit(&d, "k-1", &body(order()), NOW).await.unwrap();
    submit(&d, "k-2", &body(order()), NOW).await.unwrap();
    d.cxone.history(
        "sx-1",
        Err(CxoneError::Unavailable("status 503: busy".into())),
    );
    d.sweep(NOW + 400_000).await.unwrap();
    assert_eq!(status_of(&d, "k-1"), "dispatched");
    assert_eq!(status_of(&d, "k-2"), "timed_out");

    d.cxone.histories.lock().unwrap().clear();
    d.store.fail("overdue");
    d.sweep(NOW + 500_000).await.unwrap();
    assert_eq!(
        status_of(&d, "k-1"),
        "dispatched",
        "the due index could not be read"
    );
    d.store.failing.lock().unwrap().clear();
    d.sweep(NOW + 600_000).await.unwrap();
    assert_eq!(status_of(&d, "k-1"), "timed_out");
}

#[tokio::test]
async fn a_context_job_is_sent_once_and_settles_its_own_attempt() {
    let d = dispatcher();
    d.run_context_job(&context_job(0), NOW).await.unwrap();
    d.run_context_job(&context_job(0), NOW + 60_000)
        .await
        .unwrap();
    assert_eq!(
        d.cxone.contexts(),
        [json!({"context": "700001", "attributes": {"queue": "Retention"}})]
    );
    assert_eq!(d.store.run("intent:abc").unwrap().finished_attempt, Some(1));
}

#[tokio::test]
async fn settle_run_records_a_failed_attempt_finished_so_only_its_retry_runs() {
    let d = dispatcher();
    d.cxone
        .fail_next([CxoneError::Unavailable("status 503: busy".into())]);
    let failure = d.run_context_job(&context_job(0), NOW).await.unwrap_err();
    assert!(failure.retryable);
    assert_eq!(
        d.store.run("intent:abc").unwrap().finished_attempt,
        None,
        "a failed attempt is the drainer's to settle"
    );

    d.settle_run(&context_job(0), NOW + 1_000).await;
    assert_eq!(d.store.run("intent:abc").unwrap().finished_attempt, Some(1));
    d.run_context_job(&context_job(0), NOW + 60_000)
        .await
        .unwrap();
    assert_eq!(
        d.cxone.contexts().len(),
        1,
        "the settled attempt never runs again"
    );

    d.run_context_job(&context_job(1), NOW + 60_000)
        .await
        .unwrap();
    assert_eq!(d.cxone.contexts().len(), 2);
    assert_eq!(d.store.run("intent:abc").unwrap().finished_attempt, Some(2));
}

#[tokio::test]
async fn a_context_job_whose_claim_failed_runs_on_its_retry() {
    let d = dispatcher();
    d.store.fail("begin_run");
    let failure = d.run_context_job(&context_job(0), NOW).await.unwrap_err();
    assert!(failure.retryable, "{}", failure.reason);
    assert!(d.cxone.contexts().is_empty());
    // The drainer sent the retry, then settled the copy that failed.
    d.store.failing.lock().unwrap().clear();
    d.settle_run(&context_job(0), NOW + 1_000).await;

    d.run_context_job(&context_job(1), NOW + 2_000)
        .await
        .unwrap();
    assert_eq!(d.cxone.contexts().len(), 1, "the retry is sent");
}

#[tokio::test]
async fn a_refused_signal_asked_again_gets_the_same_refusal_not_a_success() {
    let d = dispatcher();
    d.cxone
        .fail_next([CxoneError::NotFound("no such definition".into())]);
    let first = submit(&d, "k-1", &body(order()), NOW).await.unwrap_err();
    let (status, again) = submit(&d, "k-1", &body(order()), NOW + 1_000)
        .await
        .unwrap();
    assert_eq!(status, first.status());
    assert_eq!(again, first.body());
    assert_eq!(d.cxone.signals().len(), 1, "nothing is sent again");
}

#[tokio::test]
async fn an_execution_is_read_back_by_its_correlation_id() {
    let d = dispatcher();
    submit(&d, "k-1", &body(order()), NOW).await.unwrap();
    let view = d.execution("k-1").await.unwrap();
    assert_eq!(view["correlationId"], "k-1");
    assert_eq!(view["signal"], "order-update");
    assert_eq!(view["status"], status_of(&d, "k-1"));
}

#[tokio::test]
async fn reading_an_execution_refuses_a_bad_id_and_names_a_missing_one() {
    let d = dispatcher();
    let err = d.execution("has space").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest);
    let err = d.execution("nobody").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ExecutionNotFound);
    d.store.down.store(true, Ordering::SeqCst);
    let err = d.execution("k-1").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::DependencyUnavailable);
}
