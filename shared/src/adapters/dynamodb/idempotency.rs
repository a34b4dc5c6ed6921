//! [`IdempotencyStore`] and [`ReplayGuard`] in the one DynamoDB table: `delivery#…`,
//! `intent#…` and `replay#…` items (ARCHITECTURE.md, Table items).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use serde_json::Value;

use super::{applied, n, s, text, unavailable};
use crate::idempotency::{
    Claim, DeliveryRecords, IdempotencyStore, NewDelivery, Recorded, ReplayCheck, ReplayGuard,
    StoreError,
};

const STATUS_IN_PROGRESS: &str = "in_progress";
const STATUS_COMPLETED: &str = "completed";
/// Given up part-way, with the parts done in `doneParts`.
const STATUS_PARTIAL: &str = "partial";

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

/// A write made only while the claim is still this caller's: a failed condition means
/// another copy took the key over, and its record stands.
fn unless_taken_over<T, E>(result: Result<T, SdkError<E>>) -> Result<(), StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    applied(result).map(|_| ())
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

impl DynamoDbIdempotencyStore {
    /// What a successful claim found: the parts an earlier copy of the same payload did, if
    /// it gave up part-way. Parts left by another payload are cleared, so that they can
    /// never be taken for this one's.
    async fn acquired(
        &self,
        key: &str,
        payload_hash: &str,
        old: Option<HashMap<String, AttributeValue>>,
    ) -> Result<Claim, StoreError> {
        let old = old.unwrap_or_default();
        let parts: Vec<String> = old
            .get("doneParts")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|p| p.as_s().ok().cloned()).collect())
            .unwrap_or_default();
        if parts.is_empty() {
            return Ok(Claim::Acquired);
        }
        if text(&old, "payloadHash") == Some(payload_hash) {
            return Ok(Claim::Resumed(parts));
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression("REMOVE doneParts")
            .send()
            .await
            .map_err(unavailable)?;
        Ok(Claim::Acquired)
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
        // An update, not a put, so that the parts a failed copy recorded as done stay on
        // the item until this copy completes or records its own.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression(
                "SET #status = :in_progress, payloadHash = :hash, expiresAt = :expires, inProgressExpiresAt = :until REMOVE #response",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR expiresAt < :now OR (#status = :in_progress AND inProgressExpiresAt < :now_ms) OR (#status = :partial AND payloadHash = :hash)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#response", "response")
            .expression_attribute_values(":in_progress", s(STATUS_IN_PROGRESS))
            .expression_attribute_values(":partial", s(STATUS_PARTIAL))
            .expression_attribute_values(":hash", s(payload_hash))
            .expression_attribute_values(":expires", n(self.expires_at(now_ms)))
            .expression_attribute_values(":until", n(in_progress_until_ms))
            .expression_attribute_values(":now", n(now_ms / 1000))
            .expression_attribute_values(":now_ms", n(now_ms))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(out) => return self.acquired(key, payload_hash, out.attributes).await,
            Err(err) => err,
        };
        let existing = match err.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(e)) => {
                e.item.clone().unwrap_or_default()
            }
            _ => return Err(unavailable(err)),
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

    async fn partial(
        &self,
        key: &str,
        payload_hash: &str,
        done: &[String],
        in_progress_until_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("status", s(STATUS_PARTIAL))
            .item("payloadHash", s(payload_hash))
            .item("expiresAt", n(self.expires_at(now_ms)))
            .item(
                "doneParts",
                AttributeValue::L(done.iter().map(|d| s(d.as_str())).collect()),
            )
            .condition_expression("inProgressExpiresAt = :until AND #status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":until", n(in_progress_until_ms))
            .expression_attribute_values(":in_progress", s(STATUS_IN_PROGRESS))
            .send()
            .await;
        // Taken over by another copy: its record stands.
        unless_taken_over(result)
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
        // Someone else's record, or already gone: nothing of ours to release.
        unless_taken_over(result)
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

/// A delivery record may be written where there is none, where it has expired, or where an
/// older version left a claim that was never finished.
const NEW_RECORD: &str = "attribute_not_exists(pk) OR expiresAt < :now OR (#status = :in_progress AND inProgressExpiresAt < :now_ms) OR #status = :partial";
/// A replay entry may be written where there is none, where it has expired, or over the
/// same delivery's (a redelivery of the same signed request).
const NEW_REPLAY: &str = "attribute_not_exists(pk) OR expiresAt < :now OR deliveryId = :id";

/// What an existing delivery record means for a new copy.
fn existing_record(existing: &HashMap<String, AttributeValue>, payload_hash: &str) -> Recorded {
    if text(existing, "payloadHash") != Some(payload_hash) {
        return Recorded::Conflict;
    }
    if text(existing, "status") == Some(STATUS_COMPLETED) {
        let saved = text(existing, "response")
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or(Value::Null);
        return Recorded::Duplicate(saved);
    }
    Recorded::InProgress
}

impl DynamoDbIdempotencyStore {
    fn delivery_put(&self, d: &NewDelivery<'_>) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .item("pk", s(d.key))
            .item("status", s(STATUS_COMPLETED))
            .item("payloadHash", s(d.payload_hash))
            .item("expiresAt", n(self.expires_at(d.now_ms)))
            .item("acceptedAt", n(d.now_ms))
            .item("response", s(d.response.to_string()))
            .item("event", s(d.event))
            .item("outbox", s(d.outbox))
            .condition_expression(NEW_RECORD)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(d.now_ms / 1000))
            .expression_attribute_values(":now_ms", n(d.now_ms))
            .expression_attribute_values(":in_progress", s(STATUS_IN_PROGRESS))
            .expression_attribute_values(":partial", s(STATUS_PARTIAL))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError(e.to_string()))
    }
}

impl DeliveryRecords for DynamoDbIdempotencyStore {
    async fn record(&self, d: &NewDelivery<'_>) -> Result<Recorded, StoreError> {
        let put = self.delivery_put(d)?;
        let Some(replay) = d.replay else {
            // One conditional put.
            let mut request = self.client.put_item().table_name(put.table_name);
            request = request.set_item(Some(put.item));
            let result = request
                .set_condition_expression(put.condition_expression)
                .set_expression_attribute_names(put.expression_attribute_names)
                .set_expression_attribute_values(put.expression_attribute_values)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            return match result {
                Ok(_) => Ok(Recorded::New),
                Err(err) => match conflicting_item(&err) {
                    Some(existing) => Ok(existing_record(&existing, d.payload_hash)),
                    None => Err(unavailable(err)),
                },
            };
        };
        // The replay entry and the record in one transaction: one request either way.
        let replay_put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(format!("replay#{}", replay.signature)))
            .item("deliveryId", s(replay.delivery_id))
            .item("expiresAt", n(replay.expires_at_s))
            .condition_expression(NEW_REPLAY)
            .expression_attribute_values(":now", n(d.now_ms / 1000))
            .expression_attribute_values(":id", s(replay.delivery_id))
            .build()
            .map_err(|e| StoreError(e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(replay_put).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Recorded::New),
            Err(err) => err,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        else {
            return Err(unavailable(err));
        };
        let reasons = cancelled.cancellation_reasons();
        let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
        if code(0) == "ConditionalCheckFailed" {
            return Ok(Recorded::Replayed);
        }
        if code(1) == "ConditionalCheckFailed" {
            let existing = reasons
                .get(1)
                .and_then(|r| r.item())
                .cloned()
                .unwrap_or_default();
            return Ok(existing_record(&existing, d.payload_hash));
        }
        if reasons
            .iter()
            .any(|r| r.code() == Some("TransactionConflict"))
        {
            // Another copy is being written at this moment.
            return Ok(Recorded::InProgress);
        }
        Err(unavailable(err))
    }
}
