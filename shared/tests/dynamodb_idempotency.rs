//! Adapter tests: `DynamoDbIdempotencyStore` against the AWS emulator `make test` starts.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

mod common;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use cxbridge::adapters::dynamodb::DynamoDbIdempotencyStore;
use cxbridge::idempotency::{
    Claim, DeliveryRecords, IdempotencyStore, NewDelivery, Recorded, ReplayCheck, ReplayEntry,
    ReplayGuard,
};
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

fn delivery<'a>(
    key: &'a str,
    hash: &'a str,
    response: &'a serde_json::Value,
    replay: Option<ReplayEntry<'a>>,
    now_ms: i64,
) -> NewDelivery<'a> {
    NewDelivery {
        key,
        payload_hash: hash,
        response,
        event: r#"{"deliveryId":"a"}"#,
        outbox: r#"[{"queue":"q","messages":[{"body":"event"}]}]"#,
        replay,
        now_ms,
    }
}

fn replay<'a>(signature: &'a str, delivery_id: &'a str) -> Option<ReplayEntry<'a>> {
    Some(ReplayEntry {
        signature,
        delivery_id,
        expires_at_s: NOW_MS / 1000 + 300,
    })
}

#[tokio::test]
async fn a_delivery_is_recorded_with_its_outbox_once_and_a_copy_is_told_apart_in_one_write() {
    let (client, table, store) = store().await;
    let answer = json!({"status": "accepted", "deliveryId": "a"});
    let first = delivery("delivery#a", "h1", &answer, replay("s1", "a"), NOW_MS);
    assert_eq!(store.record(&first).await.unwrap(), Recorded::New);
    let item = common::item(&client, &table, "delivery#a").await;
    assert_eq!(item["outbox"].as_s().unwrap(), first.outbox);
    assert_eq!(item["event"].as_s().unwrap(), first.event);
    assert_eq!(item["acceptedAt"].as_n().unwrap(), &NOW_MS.to_string());
    assert_eq!(
        common::item(&client, &table, "replay#s1").await["deliveryId"]
            .as_s()
            .unwrap(),
        "a"
    );

    // The same signed request again, and the same delivery signed anew: duplicates.
    assert_eq!(
        store.record(&first).await.unwrap(),
        Recorded::Duplicate(answer.clone())
    );
    let resigned = delivery(
        "delivery#a",
        "h1",
        &answer,
        replay("s2", "a"),
        NOW_MS + 1000,
    );
    assert_eq!(
        store.record(&resigned).await.unwrap(),
        Recorded::Duplicate(answer.clone())
    );
    // Another body under the id; the first signature under another id.
    let other = delivery("delivery#a", "h2", &answer, replay("s3", "a"), NOW_MS);
    assert_eq!(store.record(&other).await.unwrap(), Recorded::Conflict);
    let replayed = delivery("delivery#b", "h1", &answer, replay("s1", "b"), NOW_MS);
    assert_eq!(store.record(&replayed).await.unwrap(), Recorded::Replayed);
    assert!(
        common::maybe_item(&client, &table, "delivery#b")
            .await
            .is_none(),
        "a cancelled transaction writes nothing"
    );
    assert!(
        common::maybe_item(&client, &table, "replay#s3")
            .await
            .is_none(),
        "nor the replay entry of a conflict"
    );
}

#[tokio::test]
async fn without_a_signature_the_record_is_one_conditional_put() {
    let (_, _, store) = store().await;
    let answer = json!({"status": "accepted", "deliveryId": "s"});
    let first = delivery("studio-delivery#s", "h1", &answer, None, NOW_MS);
    assert_eq!(store.record(&first).await.unwrap(), Recorded::New);
    assert_eq!(
        store.record(&first).await.unwrap(),
        Recorded::Duplicate(answer.clone())
    );
    let other = delivery("studio-delivery#s", "h2", &answer, None, NOW_MS);
    assert_eq!(store.record(&other).await.unwrap(), Recorded::Conflict);
}

#[tokio::test]
async fn an_older_claim_still_running_is_in_progress_and_one_past_its_expiry_is_replaced() {
    let (_, _, store) = store().await;
    store
        .claim("delivery#old", "h1", NOW_MS, NOW_MS + 5000)
        .await
        .unwrap();
    let answer = json!({"status": "accepted", "deliveryId": "old"});
    let copy = delivery(
        "delivery#old",
        "h1",
        &answer,
        replay("so", "old"),
        NOW_MS + 1000,
    );
    assert_eq!(store.record(&copy).await.unwrap(), Recorded::InProgress);
    let later = delivery(
        "delivery#old",
        "h1",
        &answer,
        replay("so", "old"),
        NOW_MS + 6000,
    );
    assert_eq!(store.record(&later).await.unwrap(), Recorded::New);
}

#[tokio::test]
async fn an_expired_record_is_replaced_by_a_new_delivery() {
    let (_, _, store) = store().await;
    let answer = json!({"status": "accepted", "deliveryId": "e"});
    let first = delivery("delivery#e", "h1", &answer, None, NOW_MS);
    assert_eq!(store.record(&first).await.unwrap(), Recorded::New);
    // The store keeps records an hour; moto never deletes expired items.
    let later = delivery("delivery#e", "h2", &answer, None, NOW_MS + 3_601_000);
    assert_eq!(store.record(&later).await.unwrap(), Recorded::New);
}
