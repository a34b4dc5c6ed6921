//! Idempotency and replay records (ARCHITECTURE.md, Table items): the ports; the DynamoDB
//! adapter is `adapters::dynamodb::idempotency`.
//!
//! Idempotency follows the pattern proven by Powertools for AWS Lambda: a conditional put
//! claims the key (absent, expired, or in progress past its in-progress expiry), carrying a
//! hash of the payload and, once done, the saved response. `ReturnValuesOnConditionCheckFailure
//! = ALL_OLD` makes a duplicate cost one request. TTL deletion is lazy, so reads treat an
//! expired item as absent.

use std::future::Future;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This caller owns the key and must complete or release it.
    Acquired,
    /// This caller owns the key, and an earlier copy that failed part-way already did the
    /// parts named here (see [`IdempotencyStore::partial`]): only the rest is left to do.
    Resumed(Vec<String>),
    /// Already done: the saved response.
    Completed(Value),
    /// Another caller is working on it now.
    InProgress,
    /// The key was used with a different payload.
    Conflict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayCheck {
    /// First time this signed request is seen.
    Fresh,
    /// Seen before under the same delivery id: a redelivery, not a replay.
    SameDelivery,
    /// Seen before under another delivery id.
    Replayed,
}

#[derive(Debug, thiserror::Error)]
#[error("the idempotency store is unavailable: {0}")]
pub struct StoreError(pub String);

/// Port: claims, completes and releases idempotency keys.
pub trait IdempotencyStore: Send + Sync {
    fn claim(
        &self,
        key: &str,
        payload_hash: &str,
        now_ms: i64,
        in_progress_until_ms: i64,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    fn complete(
        &self,
        key: &str,
        payload_hash: &str,
        response: &Value,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives up the claim made with `in_progress_until_ms` after part of the work was done:
    /// `done` names those parts, and the retry that claims the key next gets them back in
    /// [`Claim::Resumed`], so that no part is done twice. A claim taken over by someone
    /// else is left alone.
    fn partial(
        &self,
        key: &str,
        payload_hash: &str,
        done: &[String],
        in_progress_until_ms: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives up the claim made with `in_progress_until_ms`, so that a retry can claim the
    /// key at once. A claim taken over by someone else is left alone.
    fn release(
        &self,
        key: &str,
        in_progress_until_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Port: remembers signed requests for as long as their timestamp is acceptable.
pub trait ReplayGuard: Send + Sync {
    fn remember(
        &self,
        signature: &str,
        delivery_id: &str,
        now_s: i64,
        expires_at_s: i64,
    ) -> impl Future<Output = Result<ReplayCheck, StoreError>> + Send;
}

/// A signed request to remember with the delivery it brought, until `expires_at_s`.
#[derive(Debug, Clone, Copy)]
pub struct ReplayEntry<'a> {
    /// The verified signature, in hex.
    pub signature: &'a str,
    pub delivery_id: &'a str,
    pub expires_at_s: i64,
}

/// An accepted webhook, to record with its outbox in one write.
#[derive(Debug, Clone, Copy)]
pub struct NewDelivery<'a> {
    /// The delivery record's key (`delivery#…` or `studio-delivery#…`).
    pub key: &'a str,
    pub payload_hash: &'a str,
    /// The answer, saved for duplicates.
    pub response: &'a Value,
    /// The event's text, as the queues get it.
    pub event: &'a str,
    /// The outbox (`webhook::outbox::Outbox` as text).
    pub outbox: &'a str,
    /// The signed request's replay entry, written in the same transaction; `None` for a
    /// sender without a signature.
    pub replay: Option<ReplayEntry<'a>>,
    pub now_ms: i64,
}

/// What recording a delivery found.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// Recorded, with its outbox: the work is durable.
    New,
    /// Recorded earlier with the same payload: the saved answer.
    Duplicate(Value),
    /// The delivery id was recorded with another payload.
    Conflict,
    /// The signed request was seen under another delivery id.
    Replayed,
    /// Another copy is being recorded at this moment, or an older record is still in
    /// progress: the sender should retry.
    InProgress,
}

/// Port: records an accepted webhook and the work it brings (its outbox) in one write, so
/// that accepting it and queueing its messages can never half happen.
pub trait DeliveryRecords: Send + Sync {
    fn record(
        &self,
        delivery: &NewDelivery<'_>,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;
}
