//! Adapter tests: `DynamoDbIdempotencyStore` against the AWS emulator `make test` starts.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

mod common;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use cxbridge::adapters::dynamodb::DynamoDbIdempotencyStore;
use cxbridge::idempotency::{Claim, IdempotencyStore, ReplayCheck, ReplayGuard};
use serde_json::json;

const NOW_MS: i64 = 1_800_000_000_000;

async fn store() -> (Client, String, DynamoDbIdempotencyStore) {
    let (client, table) = common::table("adapter", false).await;
    let store =
        DynamoDbIdempotencyStore::new(client.clone(), table.clone(), Duration::from_secs(3600));
    (client, table, store)
}

#[tokio::test]
async fn a_key_is_claimed_once_then_in_progress_then_completed_with_its_response() {
    let (_, _, store) = store().await;
    assert_eq!(
        store
            .claim("delivery#a", "h1", NOW_MS, NOW_MS + 5000)
            .await
            .unwrap(),
        Claim::Acquired
    );
    assert_eq!(
        store
            .claim("delivery#a", "h1", NOW_MS, NOW_MS + 5000)
            .await
            .unwrap(),
        Claim::InProgress
    );
    assert_eq!(
        store
            .claim("delivery#a", "h2", NOW_MS, NOW_MS + 5000)
            .await
            .unwrap(),
        Claim::Conflict
    );
    let response = json!({"status": "accepted", "deliveryId": "a"});
    store
        .complete("delivery#a", "h1", &response, NOW_MS)
        .await
        .unwrap();
    assert_eq!(
        store
            .claim("delivery#a", "h1", NOW_MS, NOW_MS + 5000)
            .await
            .unwrap(),
        Claim::Completed(response)
    );
}

#[tokio::test]
async fn an_in_progress_claim_past_its_expiry_can_be_taken_over() {
    let (_, _, store) = store().await;
    assert_eq!(
        store
            .claim("delivery#b", "h", NOW_MS, NOW_MS + 5000)
            .await
            .unwrap(),
        Claim::Acquired
    );
    let later = NOW_MS + 6000;
    assert_eq!(
        store
            .claim("delivery#b", "h", later, later + 5000)
            .await
            .unwrap(),
        Claim::Acquired
    );
}

#[tokio::test]
async fn an_expired_record_is_treated_as_absent() {
    let (client, table, store) = store().await;
    // The emulator, like DynamoDB for hours, still holds an item whose TTL has passed.
    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("delivery#c".into()))
        .item("status", AttributeValue::S("completed".into()))
        .item("payloadHash", AttributeValue::S("old".into()))
        .item(
            "expiresAt",
            AttributeValue::N((NOW_MS / 1000 - 1).to_string()),
        )
        .item("response", AttributeValue::S("{}".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        store
            .claim("delivery#c", "new", NOW_MS, NOW_MS + 5000)
            .await
            .unwrap(),
        Claim::Acquired
    );
}

#[tokio::test]
async fn a_released_claim_can_be_claimed_again_but_only_its_owner_releases_it() {
    let (_, _, store) = store().await;
    assert_eq!(
        store
            .claim("delivery#d", "h", NOW_MS, NOW_MS + 5000)
            .await
            .unwrap(),
        Claim::Acquired
    );
    store.release("delivery#d", NOW_MS + 4999).await.unwrap();
    assert_eq!(
        store
            .claim("delivery#d", "h", NOW_MS, NOW_MS + 5000)
            .await
            .unwrap(),
        Claim::InProgress
    );
    store.release("delivery#d", NOW_MS + 5000).await.unwrap();
    assert_eq!(
        store
            .claim("delivery#d", "h", NOW_MS, NOW_MS + 5000)
            .await
            .unwrap(),
        Claim::Acquired
    );
}

#[tokio::test]
async fn the_replay_guard_tells_a_redelivery_from_a_replay_until_the_window_ends() {
    let (_, _, store) = store().await;
    let now = NOW_MS / 1000;
    assert_eq!(
        store.remember("sig", "d1", now, now + 300).await.unwrap(),
        ReplayCheck::Fresh
    );
    assert_eq!(
        store.remember("sig", "d1", now, now + 300).await.unwrap(),
        ReplayCheck::SameDelivery
    );
    assert_eq!(
        store.remember("sig", "d2", now, now + 300).await.unwrap(),
        ReplayCheck::Replayed
    );
    assert_eq!(
        store
            .remember("sig", "d2", now + 301, now + 601)
            .await
            .unwrap(),
        ReplayCheck::Fresh
    );
}

#[tokio::test]
async fn a_missing_table_is_an_error_not_a_claim() {
    let (client, table, store) = store().await;
    client
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    assert!(
        store
            .claim("delivery#e", "h", NOW_MS, NOW_MS + 5000)
            .await
            .is_err()
    );
    assert!(
        store
            .remember("sig", "d", NOW_MS / 1000, NOW_MS / 1000 + 300)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_key_given_up_part_way_is_resumed_with_its_parts_by_the_same_payload_only() {
    let (_, _, store) = store().await;
    assert_eq!(
        store
            .claim("delivery#p", "h1", NOW_MS, NOW_MS + 5000)
            .await
            .unwrap(),
        Claim::Acquired
    );
    store
        .partial(
            "delivery#p",
            "h1",
            &["q/events".to_owned()],
            NOW_MS + 5000,
            NOW_MS,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .claim("delivery#p", "h2", NOW_MS + 1, NOW_MS + 5001)
            .await
            .unwrap(),
        Claim::Conflict,
        "another body under the same id"
    );
    assert_eq!(
        store
            .claim("delivery#p", "h1", NOW_MS + 1, NOW_MS + 5001)
            .await
            .unwrap(),
        Claim::Resumed(vec!["q/events".to_owned()])
    );
    assert_eq!(
        store
            .claim("delivery#p", "h1", NOW_MS + 2, NOW_MS + 5002)
            .await
            .unwrap(),
        Claim::InProgress,
        "the resumed claim is held like any other"
    );
    // The resumed copy dies; once its claim lapses the parts are still there.
    assert_eq!(
        store
            .claim("delivery#p", "h1", NOW_MS + 6000, NOW_MS + 11_000)
            .await
            .unwrap(),
        Claim::Resumed(vec!["q/events".to_owned()])
    );
    store
        .complete(
            "delivery#p",
            "h1",
            &json!({"status": "accepted"}),
            NOW_MS + 6001,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .claim("delivery#p", "h1", NOW_MS + 6002, NOW_MS + 11_002)
            .await
            .unwrap(),
        Claim::Completed(json!({"status": "accepted"}))
    );
}

#[tokio::test]
async fn parts_left_by_another_payload_are_never_taken_for_this_one() {
    let (_, _, store) = store().await;
    store
        .claim("delivery#q", "h1", NOW_MS, NOW_MS + 5000)
        .await
        .unwrap();
    store
        .partial(
            "delivery#q",
            "h1",
            &["q/events".to_owned()],
            NOW_MS + 5000,
            NOW_MS,
        )
        .await
        .unwrap();
    // Long after the record expired, the id comes back with another body.
    let much_later = NOW_MS + 400 * 24 * 3600 * 1000;
    assert_eq!(
        store
            .claim("delivery#q", "h2", much_later, much_later + 5000)
            .await
            .unwrap(),
        Claim::Acquired
    );
    assert_eq!(
        store
            .claim("delivery#q", "h2", much_later + 6000, much_later + 11_000)
            .await
            .unwrap(),
        Claim::Acquired,
        "the old parts were cleared"
    );
}
