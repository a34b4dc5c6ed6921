//! Adapter tests: the attempt claims of `DynamoDbExecutionStore` against the AWS emulator
//! `make test` starts. A job copy delivered twice runs once, and a stale copy of an attempt
//! that has ended never runs again, however late it comes.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

mod common;

use cxbridge::adapters::dynamodb::DynamoDbExecutionStore;
use cxbridge::signals::store::{AttemptClaim, ExecutionStatus, ExecutionStore};
use serde_json::json;

const NOW_MS: i64 = 1_800_000_000_000;
const LEASE: Duration = Duration::from_secs(15);
/// Long after any lease taken at `NOW_MS` has lapsed.
const LATER_MS: i64 = NOW_MS + 60_000;

async fn store() -> DynamoDbExecutionStore {
    let (client, table) = common::table("executions", true).await;
    DynamoDbExecutionStore::new(client, table)
}

#[tokio::test]
async fn a_signal_attempt_that_failed_and_was_requeued_never_runs_again_from_a_stale_copy() {
    let store = store().await;
    store
        .create("k-1", "order-update", "h", NOW_MS)
        .await
        .unwrap();
    let begin = |attempt, at| store.begin_attempt("k-1", attempt, LEASE, at);
    assert_eq!(begin(1, NOW_MS).await.unwrap(), AttemptClaim::Started);
    assert_eq!(begin(1, NOW_MS + 1).await.unwrap(), AttemptClaim::Held);
    // The attempt fails retryably; attempt 2 is queued.
    store
        .queued(
            "k-1",
            "CXone is unavailable",
            &json!({"status": "queued"}),
            Some(1),
            NOW_MS,
        )
        .await
        .unwrap();
    assert_eq!(
        begin(1, LATER_MS).await.unwrap(),
        AttemptClaim::Done,
        "a stale copy of attempt 1, after its lease"
    );
    assert_eq!(begin(2, LATER_MS).await.unwrap(), AttemptClaim::Started);
}

#[tokio::test]
async fn a_job_run_is_claimed_once_per_attempt_and_ended_attempts_stay_ended() {
    let store = store().await;
    let begin = |attempt, at| store.begin_run("intent:abc", attempt, LEASE, at);
    assert_eq!(begin(2, NOW_MS).await.unwrap(), AttemptClaim::Started);
    assert_eq!(
        begin(2, NOW_MS + 1).await.unwrap(),
        AttemptClaim::Held,
        "a second copy while the first runs"
    );
    store.finish_run("intent:abc", 2, NOW_MS).await.unwrap();
    assert_eq!(
        begin(2, LATER_MS).await.unwrap(),
        AttemptClaim::Done,
        "a copy of the finished attempt"
    );
    assert_eq!(begin(3, LATER_MS).await.unwrap(), AttemptClaim::Started);
    assert_eq!(
        begin(2, LATER_MS + 1).await.unwrap(),
        AttemptClaim::Done,
        "an overtaken attempt"
    );

    // A run that died without finishing is run again once its lease lapses.
    let other = |attempt, at| store.begin_run("intent:def", attempt, LEASE, at);
    assert_eq!(other(2, NOW_MS).await.unwrap(), AttemptClaim::Started);
    assert_eq!(other(2, LATER_MS).await.unwrap(), AttemptClaim::Started);
}

#[tokio::test]
async fn a_run_whose_claim_was_never_written_lets_its_retry_run() {
    // The claim of run 1 failed (the store was unavailable), so the job was retried and
    // run 1 then recorded as finished: the item holds a finished run and no running one.
    let store = store().await;
    store.finish_run("delivery:xyz", 1, NOW_MS).await.unwrap();
    let begin = |attempt, at| store.begin_run("delivery:xyz", attempt, LEASE, at);
    assert_eq!(
        begin(1, NOW_MS + 1).await.unwrap(),
        AttemptClaim::Done,
        "a copy of the finished run"
    );
    assert_eq!(
        begin(2, NOW_MS + 1).await.unwrap(),
        AttemptClaim::Started,
        "the retry runs"
    );
}

#[tokio::test]
async fn only_executions_still_dispatched_past_their_deadline_are_overdue() {
    let store = store().await;
    for id in ["late", "early", "answered", "pending"] {
        store.create(id, "order-update", "h", NOW_MS).await.unwrap();
    }
    let answer = json!({"status": "dispatched"});
    let dispatch = |id, due| store.dispatched(id, None, &answer, due, NOW_MS);
    dispatch("late", NOW_MS + 1000).await.unwrap();
    dispatch("early", NOW_MS + 90_000).await.unwrap();
    dispatch("answered", NOW_MS + 1000).await.unwrap();
    store
        .callback(
            "answered",
            ExecutionStatus::Completed,
            &json!({}),
            None,
            None,
            NOW_MS + 500,
        )
        .await
        .unwrap();
    let mut overdue = store.overdue(NOW_MS + 2000, 100).await.unwrap();
    overdue.sort();
    assert_eq!(overdue, ["late"]);
    assert!(store.timed_out("late", NOW_MS + 2000).await.unwrap());
    assert!(store.overdue(NOW_MS + 2000, 100).await.unwrap().is_empty());
    assert_eq!(
        store.overdue(NOW_MS + 100_000, 100).await.unwrap(),
        ["early"]
    );
}
