//! Adapter tests: the attempt claims of `DynamoDbExecutionStore` against the AWS emulator
//! `make test` starts. A job copy delivered twice runs once, and a stale copy of an attempt
//! that has ended never runs again, however late it comes.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use cxbridge::aws::{AwsClients, load_sdk_config};
use cxbridge::signals::store::{AttemptClaim, DynamoDbExecutionStore, ExecutionStore};
use serde_json::json;

const NOW_MS: i64 = 1_800_000_000_000;
const LEASE: Duration = Duration::from_secs(15);
/// Long after any lease taken at `NOW_MS` has lapsed.
const LATER_MS: i64 = NOW_MS + 60_000;

async fn store() -> DynamoDbExecutionStore {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty()),
        "AWS_ENDPOINT_URL is not set: run the tests with `make test`, which starts moto"
    );
    let client = AwsClients::new(&load_sdk_config().await).dynamodb;
    let table = format!("executions-{}", cxbridge::ids::new_uuid());
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        // The template's sparse `due` index.
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("dueShard")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("dueAt")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .unwrap(),
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("due")
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("dueShard")
                        .key_type(KeyType::Hash)
                        .build()
                        .unwrap(),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("dueAt")
                        .key_type(KeyType::Range)
                        .build()
                        .unwrap(),
                )
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
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
            "completed",
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
