//! Adapter tests: `DynamoDbTargetStore` against the AWS emulator `make test` starts. The
//! breaker pauses at its threshold, lets exactly one probe through after the cool-down,
//! and a pause by hand holds until it is lifted; the delivery log reads back by target and
//! time across a day boundary.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

mod common;

use cxbridge::adapters::dynamodb::DynamoDbTargetStore;
use cxbridge::targets::Breaker;
use cxbridge::targets::deliver::{Admission, LogEntry, TargetStore};

/// 2027-01-15T23:59:00Z.
const NOW_MS: i64 = 1_800_057_540_000;
const LEASE: Duration = Duration::from_secs(15);
const BREAKER: Breaker = Breaker {
    failures: 3,
    cooldown: Duration::from_secs(60),
};

async fn store() -> DynamoDbTargetStore {
    let (client, table) = common::table_with_log("targets").await;
    DynamoDbTargetStore::new(client, table, Duration::from_secs(86_400))
}

#[tokio::test]
async fn the_breaker_pauses_at_its_threshold_and_lets_one_probe_through_after_the_cool_down() {
    let store = store().await;
    assert_eq!(
        store.admit("crm", BREAKER, NOW_MS, LEASE).await.unwrap(),
        Admission::Send,
        "a target never seen is active"
    );
    for i in 0..2 {
        assert!(
            !store
                .failed("crm", "HTTP 500", BREAKER, NOW_MS + i)
                .await
                .unwrap()
        );
    }
    assert!(
        store
            .failed("crm", "HTTP 503", BREAKER, NOW_MS + 2)
            .await
            .unwrap(),
        "the third failure pauses it"
    );
    let state = store.state("crm").await.unwrap();
    assert_eq!(
        (
            state.state.as_str(),
            state.consecutive_failures,
            state.last_error.as_deref()
        ),
        ("paused", 3, Some("HTTP 503"))
    );
    let until = NOW_MS + 2 + 60_000;
    assert_eq!(
        store
            .admit("crm", BREAKER, NOW_MS + 10, LEASE)
            .await
            .unwrap(),
        Admission::Park { until_ms: until }
    );
    // After the cool-down, one probe; a second delivery meanwhile waits for it.
    assert_eq!(
        store.admit("crm", BREAKER, until + 1, LEASE).await.unwrap(),
        Admission::Probe
    );
    assert_eq!(
        store.admit("crm", BREAKER, until + 2, LEASE).await.unwrap(),
        Admission::Park {
            until_ms: until + 1 + 15_000
        }
    );
    // The probe fails: paused for another cool-down (not newly paused).
    assert!(
        !store
            .failed("crm", "HTTP 500", BREAKER, until + 3)
            .await
            .unwrap()
    );
    let again = until + 3 + 60_000;
    assert_eq!(
        store.admit("crm", BREAKER, until + 4, LEASE).await.unwrap(),
        Admission::Park { until_ms: again }
    );
    // The next probe succeeds: active, failures reset.
    assert_eq!(
        store.admit("crm", BREAKER, again + 1, LEASE).await.unwrap(),
        Admission::Probe
    );
    store.succeeded("crm", again + 2).await.unwrap();
    let state = store.state("crm").await.unwrap();
    assert_eq!(
        (state.state.as_str(), state.consecutive_failures),
        ("active", 0)
    );
    assert_eq!(
        store.admit("crm", BREAKER, again + 3, LEASE).await.unwrap(),
        Admission::Send
    );
}

#[tokio::test]
async fn a_pause_by_hand_holds_through_successes_until_it_is_lifted() {
    let store = store().await;
    store.set_paused("crm", true, NOW_MS).await.unwrap();
    let state = store.state("crm").await.unwrap();
    assert!(state.manual && state.state == "paused");
    assert_eq!(
        store
            .admit("crm", BREAKER, NOW_MS + 3_600_000, LEASE)
            .await
            .unwrap(),
        Admission::Park {
            until_ms: NOW_MS + 3_600_000 + 60_000
        },
        "no probe while paused by hand"
    );
    // A delivery that was in flight when it was paused succeeds: still paused.
    store.succeeded("crm", NOW_MS + 1).await.unwrap();
    assert!(!store.failed("crm", "x", BREAKER, NOW_MS + 2).await.unwrap());
    assert_eq!(store.state("crm").await.unwrap().state, "paused");
    store.set_paused("crm", false, NOW_MS + 3).await.unwrap();
    let state = store.state("crm").await.unwrap();
    assert_eq!(
        (
            state.state.as_str(),
            state.manual,
            state.consecutive_failures
        ),
        ("active", false, 0)
    );
    assert_eq!(
        store
            .admit("crm", BREAKER, NOW_MS + 4, LEASE)
            .await
            .unwrap(),
        Admission::Send
    );
}

fn entry(target: &str, delivery: &str, at_ms: i64) -> LogEntry {
    LogEntry {
        delivery_id: delivery.to_owned(),
        target: target.to_owned(),
        attempt: 1,
        status: "delivered".to_owned(),
        http_status: Some(200),
        latency_ms: 12,
        error: None,
        at_ms,
    }
}

#[tokio::test]
async fn the_log_reads_back_by_target_and_time_across_midnight_and_drops_expired_attempts() {
    let store = store().await;
    let after_midnight = NOW_MS + 120_000;
    for e in [
        entry("crm", "d-old", NOW_MS - 2 * 86_400_000),
        entry("crm", "d-1", NOW_MS),
        entry("crm", "d-2", after_midnight),
        entry("bus", "d-1", NOW_MS + 1),
    ] {
        store.log(&e).await.unwrap();
    }
    let now = after_midnight + 1_000;
    let read = store.history("crm", NOW_MS - 60_000, now).await.unwrap();
    assert_eq!(
        read,
        [
            entry("crm", "d-1", NOW_MS),
            entry("crm", "d-2", after_midnight)
        ]
    );
    let later = store.history("crm", NOW_MS + 1, now).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].delivery_id, "d-2");
    let all = store
        .history("crm", NOW_MS - 3 * 86_400_000, now)
        .await
        .unwrap();
    assert_eq!(
        all.iter()
            .map(|e| e.delivery_id.as_str())
            .collect::<Vec<_>>(),
        ["d-1", "d-2"],
        "an attempt past the log's TTL is absent"
    );
}
