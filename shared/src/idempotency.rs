//! Idempotency and replay records in DynamoDB (design §5).
//!
//! Idempotency follows the pattern proven by Powertools for AWS Lambda: a conditional put
//! claims the key (absent, expired, or in progress past its in-progress expiry), carrying a
//! hash of the payload and, once done, the saved response. `ReturnValuesOnConditionCheckFailure
//! = ALL_OLD` makes a duplicate cost one request. TTL deletion is lazy, so reads treat an
//! expired item as absent.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This caller owns the key and must complete or release it.
    Acquired,
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

const STATUS_IN_PROGRESS: &str = "in_progress";
const STATUS_COMPLETED: &str = "completed";

/// [`IdempotencyStore`] and [`ReplayGuard`] over the one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbIdempotencyStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    ttl: Duration,
}

impl DynamoDbIdempotencyStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, ttl: Duration) -> Self {
        Self { client, table, ttl }
    }

    fn expires_at(&self, now_ms: i64) -> i64 {
        now_ms / 1000 + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2)
    }
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn text<'a>(item: &'a HashMap<String, AttributeValue>, key: &str) -> Option<&'a str> {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(crate) fn number(item: &HashMap<String, AttributeValue>, key: &str) -> Option<i64> {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

pub(crate) fn unavailable<E>(err: SdkError<E>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    StoreError(DisplayErrorContext(&err).to_string())
}

/// The item that blocked a conditional put, if that is why it failed.
fn conflicting_item(err: &SdkError<PutItemError>) -> Option<HashMap<String, AttributeValue>> {
    match err.as_service_error() {
        Some(PutItemError::ConditionalCheckFailedException(e)) => {
            Some(e.item.clone().unwrap_or_default())
        }
        _ => None,
    }
}

impl IdempotencyStore for DynamoDbIdempotencyStore {
    async fn claim(
        &self,
        key: &str,
        payload_hash: &str,
        now_ms: i64,
        in_progress_until_ms: i64,
    ) -> Result<Claim, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("status", s(STATUS_IN_PROGRESS))
            .item("payloadHash", s(payload_hash))
            .item("expiresAt", n(self.expires_at(now_ms)))
            .item("inProgressExpiresAt", n(in_progress_until_ms))
            .condition_expression(
                "attribute_not_exists(pk) OR expiresAt < :now OR (#status = :in_progress AND inProgressExpiresAt < :now_ms)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now_ms / 1000))
            .expression_attribute_values(":now_ms", n(now_ms))
            .expression_attribute_values(":in_progress", s(STATUS_IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Claim::Acquired),
            Err(err) => err,
        };
        let Some(existing) = conflicting_item(&err) else {
            return Err(unavailable(err));
        };
        if text(&existing, "payloadHash") != Some(payload_hash) {
            return Ok(Claim::Conflict);
        }
        if text(&existing, "status") == Some(STATUS_COMPLETED) {
            let saved = text(&existing, "response")
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or(Value::Null);
            return Ok(Claim::Completed(saved));
        }
        Ok(Claim::InProgress)
    }

    async fn complete(
        &self,
        key: &str,
        payload_hash: &str,
        response: &Value,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("status", s(STATUS_COMPLETED))
            .item("payloadHash", s(payload_hash))
            .item("expiresAt", n(self.expires_at(now_ms)))
            .item("response", s(response.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn release(&self, key: &str, in_progress_until_ms: i64) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .condition_expression("inProgressExpiresAt = :until AND #status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":until", n(in_progress_until_ms))
            .expression_attribute_values(":in_progress", s(STATUS_IN_PROGRESS))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Someone else's record, or already gone: nothing of ours to release.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(unavailable(err)),
        }
    }
}

impl ReplayGuard for DynamoDbIdempotencyStore {
    async fn remember(
        &self,
        signature: &str,
        delivery_id: &str,
        now_s: i64,
        expires_at_s: i64,
    ) -> Result<ReplayCheck, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("replay#{signature}")))
            .item("deliveryId", s(delivery_id))
            .item("expiresAt", n(expires_at_s))
            .condition_expression("attribute_not_exists(pk) OR expiresAt < :now")
            .expression_attribute_values(":now", n(now_s))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(ReplayCheck::Fresh),
            Err(err) => err,
        };
        let Some(existing) = conflicting_item(&err) else {
            return Err(unavailable(err));
        };
        if text(&existing, "deliveryId") == Some(delivery_id) {
            Ok(ReplayCheck::SameDelivery)
        } else {
            Ok(ReplayCheck::Replayed)
        }
    }
}

/// Reads an item's status, treating an expired item as absent (test and tooling aid).
pub fn live_status(item: &HashMap<String, AttributeValue>, now_s: i64) -> Option<&str> {
    if number(item, "expiresAt").is_some_and(|e| e < now_s) {
        return None;
    }
    text(item, "status")
}
