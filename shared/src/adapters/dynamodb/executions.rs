//! [`ExecutionStore`] in the one DynamoDB table: `exec#{correlationId}` and `run#{jobId}`
//! items, and the sparse `due` index (ARCHITECTURE.md, Table items).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{applied, conditional_failed, n, s, unavailable};
use crate::idempotency::StoreError;
use crate::signals::store::{
    AttemptClaim, CLAIM, CallbackOutcome, Created, Execution, ExecutionStatus, ExecutionStore,
    RECORD_TTL,
};

#[derive(Debug, Clone)]
pub struct DynamoDbExecutionStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbExecutionStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }
}

fn key(id: &str) -> AttributeValue {
    AttributeValue::S(format!("exec#{id}"))
}

/// The sparse index of dispatched executions by deadline (template.yaml, `Table`).
pub const DUE_INDEX: &str = "due";

/// The index's partition values (`due#0`…): spread so that no one partition takes every
/// dispatch's write.
const DUE_SHARDS: u8 = 4;

fn due_shard(id: &str) -> String {
    let first = Sha256::digest(id.as_bytes())[0];
    format!("due#{}", first % DUE_SHARDS)
}

/// The run record of a job with no execution record of its own.
fn run_key(job_id: &str) -> AttributeValue {
    AttributeValue::S(format!("run#{job_id}"))
}

/// Why an attempt could not be claimed, from the item that refused it: held while another
/// run's lease on this very attempt is live (and the work is still open), done otherwise.
fn refused_claim(item: &HashMap<String, AttributeValue>, attempt: u32, open: bool) -> AttemptClaim {
    let number = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u32>().ok())
    };
    let finished = number("finishedAttempt").is_some_and(|f| f >= attempt);
    if open && !finished && number("runningAttempt") == Some(attempt) {
        AttemptClaim::Held
    } else {
        AttemptClaim::Done
    }
}

fn parse(item: &HashMap<String, AttributeValue>, now_ms: i64) -> Option<Execution> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let num = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
    };
    // Lazy TTL: an expired record is absent.
    if num("expiresAt").is_some_and(|e| e < now_ms / 1000) {
        return None;
    }
    let pk = text("pk")?;
    Some(Execution {
        correlation_id: pk.strip_prefix("exec#").unwrap_or(&pk).to_owned(),
        signal: text("signal").unwrap_or_default(),
        status: text("status")
            .as_deref()
            .and_then(ExecutionStatus::parse)
            .unwrap_or(ExecutionStatus::Pending),
        attempts: u32::try_from(num("attempts").unwrap_or(0)).unwrap_or(0),
        signal_execution_id: text("signalExecutionId"),
        outputs: text("outputs")
            .and_then(|o| serde_json::from_str(&o).ok())
            .unwrap_or(Value::Null),
        last_error: text("lastError"),
        created_at: text("createdAt").unwrap_or_default(),
        updated_at: text("updatedAt").unwrap_or_default(),
        payload_hash: text("payloadHash").unwrap_or_default(),
        response: text("response").and_then(|r| serde_json::from_str(&r).ok()),
        in_progress_expires_at: num("inProgressExpiresAt"),
    })
}

impl ExecutionStore for DynamoDbExecutionStore {
    async fn create(
        &self,
        id: &str,
        signal: &str,
        payload_hash: &str,
        now_ms: i64,
    ) -> Result<Created, StoreError> {
        let now = crate::clock::rfc3339(now_ms);
        let expires = now_ms / 1000 + i64::try_from(RECORD_TTL.as_secs()).unwrap_or(0);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", key(id))
            .item("signal", s(signal))
            .item("status", s("pending"))
            .item("attempts", n(0))
            .item("payloadHash", s(payload_hash))
            .item("outputs", s("{}"))
            .item("createdAt", s(now.clone()))
            .item("updatedAt", s(now))
            .item("expiresAt", n(expires))
            .item("inProgressExpiresAt", n(now_ms + CLAIM.as_millis() as i64))
            .condition_expression("attribute_not_exists(pk) OR expiresAt < :now")
            .expression_attribute_values(":now", n(now_ms / 1000))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Created::New),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                    let item = c.item.clone().unwrap_or_default();
                    parse(&item, now_ms).map(|e| Created::Existing(Box::new(e))).ok_or_else(|| StoreError("the existing record is unreadable".into()))
                }
                _ => Err(unavailable(e)),
            },
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        let item = super::read_item(&self.client, &self.table, key(id))
            .await
            .map_err(unavailable)?;
        Ok(parse(&item, crate::clock::now_ms()))
    }

    async fn dispatched(
        &self,
        id: &str,
        signal_execution_id: Option<&str>,
        response: &Value,
        due_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", key(id))
            .update_expression(if signal_execution_id.is_some() {
                "SET #s = :dispatched, attempts = attempts + :one, updatedAt = :u, dispatchedAt = :at, #r = if_not_exists(#r, :r), signalExecutionId = :x, dueShard = :shard, dueAt = :due REMOVE lastError"
            } else {
                "SET #s = :dispatched, attempts = attempts + :one, updatedAt = :u, dispatchedAt = :at, #r = if_not_exists(#r, :r), dueShard = :shard, dueAt = :due REMOVE lastError"
            })
            .condition_expression("#s = :pending")
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#r", "response")
            .expression_attribute_values(":dispatched", s("dispatched"))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":u", s(crate::clock::rfc3339(now_ms)))
            .expression_attribute_values(":at", n(now_ms))
            .expression_attribute_values(":shard", s(due_shard(id)))
            .expression_attribute_values(":due", n(due_at_ms))
            .expression_attribute_values(":r", s(response.to_string()));
        if let Some(x) = signal_execution_id {
            update = update.expression_attribute_values(":x", s(x));
        }
        // A callback may have got there first: it is further along, keep it.
        applied(update.send().await).map(|_| ())
    }

    async fn queued(
        &self,
        id: &str,
        error: &str,
        response: &Value,
        finished_attempt: Option<u32>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", key(id))
            .expression_attribute_names("#r", "response")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":e", s(error))
            .expression_attribute_values(":u", s(crate::clock::rfc3339(now_ms)))
            .expression_attribute_values(":r", s(response.to_string()));
        let mut update = "SET attempts = attempts + :one, lastError = :e, updatedAt = :u, #r = if_not_exists(#r, :r)".to_owned();
        if let Some(finished) = finished_attempt {
            update.push_str(", finishedAttempt = :f");
            request = request.expression_attribute_values(":f", n(i64::from(finished)));
        }
        request
            .update_expression(update)
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn failed(
        &self,
        id: &str,
        status: ExecutionStatus,
        error: &str,
        response: Option<&Value>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", key(id))
            .update_expression(if response.is_some() {
                "SET #s = :status, lastError = :e, updatedAt = :u, attempts = attempts + :tried, #r = if_not_exists(#r, :r) REMOVE dueShard, dueAt"
            } else {
                "SET #s = :status, lastError = :e, updatedAt = :u, attempts = attempts + :tried REMOVE dueShard, dueAt"
            })
            .condition_expression("#s IN (:pending, :dispatched)")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":dispatched", s("dispatched"))
            // A failure is an attempt that CXone refused; running out of attempts is not one.
            .expression_attribute_values(":tried", n(i64::from(status == ExecutionStatus::Failed)))
            .expression_attribute_values(":e", s(error))
            .expression_attribute_values(":u", s(crate::clock::rfc3339(now_ms)));
        if let Some(r) = response {
            update = update
                .expression_attribute_names("#r", "response")
                .expression_attribute_values(":r", s(r.to_string()));
        }
        applied(update.send().await).map(|_| ())
    }

    async fn callback(
        &self,
        id: &str,
        status: ExecutionStatus,
        outputs: &Value,
        error: Option<&str>,
        signal_execution_id: Option<&str>,
        now_ms: i64,
    ) -> Result<CallbackOutcome, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", key(id))
            .update_expression(match signal_execution_id {
                Some(_) => "SET #s = :status, outputs = :o, lastError = :e, updatedAt = :u, signalExecutionId = if_not_exists(signalExecutionId, :x) REMOVE dueShard, dueAt",
                None => "SET #s = :status, outputs = :o, lastError = :e, updatedAt = :u REMOVE dueShard, dueAt",
            })
            .condition_expression("attribute_exists(pk) AND expiresAt >= :now AND #s IN (:pending, :dispatched, :timed_out)")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":o", s(outputs.to_string()))
            .expression_attribute_values(":e", error.map_or(AttributeValue::Null(true), s))
            .expression_attribute_values(":u", s(crate::clock::rfc3339(now_ms)))
            .expression_attribute_values(":now", n(now_ms / 1000))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":dispatched", s("dispatched"))
            .expression_attribute_values(":timed_out", s("timed_out"))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(x) = signal_execution_id {
            update = update.expression_attribute_values(":x", s(x));
        }
        match update.send().await {
            Ok(_) => Ok(CallbackOutcome::Recorded),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    let existing = c.item.as_ref().and_then(|i| parse(i, now_ms));
                    Ok(if existing.is_some() { CallbackOutcome::Duplicate } else { CallbackOutcome::NotFound })
                }
                _ => Err(unavailable(e)),
            },
        }
    }

    async fn timed_out(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", key(id))
            .update_expression(
                "SET #s = :timed_out, updatedAt = :u, lastError = :e REMOVE dueShard, dueAt",
            )
            .condition_expression("#s = :dispatched")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":timed_out", s("timed_out"))
            .expression_attribute_values(":dispatched", s("dispatched"))
            .expression_attribute_values(":u", s(crate::clock::rfc3339(now_ms)))
            .expression_attribute_values(
                ":e",
                s("no completion callback arrived before the deadline"),
            )
            .send()
            .await;
        applied(result)
    }

    async fn overdue(&self, now_ms: i64, limit: i32) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        for shard in 0..DUE_SHARDS {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression("dueShard = :shard AND dueAt < :now")
                .expression_attribute_values(":shard", s(format!("due#{shard}")))
                .expression_attribute_values(":now", n(now_ms))
                .limit(limit)
                .send()
                .await
                .map_err(unavailable)?;
            ids.extend(
                out.items()
                    .iter()
                    .filter_map(|item| item.get("pk")?.as_s().ok()?.strip_prefix("exec#"))
                    .map(str::to_owned),
            );
        }
        Ok(ids)
    }

    async fn begin_attempt(
        &self,
        id: &str,
        attempt: u32,
        lease: Duration,
        now_ms: i64,
    ) -> Result<AttemptClaim, StoreError> {
        let until = now_ms + i64::try_from(lease.as_millis()).unwrap_or(0);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", key(id))
            .update_expression("SET runningAttempt = :a, runningUntil = :until")
            .condition_expression(
                "#s = :pending AND (attribute_not_exists(finishedAttempt) OR finishedAttempt < :a) AND (attribute_not_exists(runningAttempt) OR runningAttempt < :a OR (runningAttempt = :a AND runningUntil < :now))",
            )
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":a", n(i64::from(attempt)))
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now_ms))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(AttemptClaim::Started),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    let item = c.item.clone().unwrap_or_default();
                    let status = item.get("status").and_then(|v| v.as_s().ok()).map(String::as_str);
                    Ok(refused_claim(&item, attempt, status == Some("pending")))
                }
                _ => Err(unavailable(e)),
            },
        }
    }

    async fn begin_run(
        &self,
        job_id: &str,
        attempt: u32,
        lease: Duration,
        now_ms: i64,
    ) -> Result<AttemptClaim, StoreError> {
        let until = now_ms + i64::try_from(lease.as_millis()).unwrap_or(0);
        let expires = now_ms / 1000 + i64::try_from(RECORD_TTL.as_secs()).unwrap_or(0);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", run_key(job_id))
            .update_expression("SET runningAttempt = :a, runningUntil = :until, expiresAt = :exp")
            .condition_expression(
                "attribute_not_exists(pk) OR expiresAt < :now_s OR ((attribute_not_exists(finishedAttempt) OR finishedAttempt < :a) AND (attribute_not_exists(runningAttempt) OR runningAttempt < :a OR (runningAttempt = :a AND runningUntil < :now)))",
            )
            .expression_attribute_values(":a", n(i64::from(attempt)))
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":exp", n(expires))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":now_s", n(now_ms / 1000))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(AttemptClaim::Started),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    Ok(refused_claim(&c.item.clone().unwrap_or_default(), attempt, true))
                }
                _ => Err(unavailable(e)),
            },
        }
    }

    async fn finish_run(&self, job_id: &str, attempt: u32, now_ms: i64) -> Result<(), StoreError> {
        let expires = now_ms / 1000 + i64::try_from(RECORD_TTL.as_secs()).unwrap_or(0);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", run_key(job_id))
            .update_expression("SET finishedAttempt = :a, expiresAt = :exp")
            .condition_expression("attribute_not_exists(finishedAttempt) OR finishedAttempt < :a")
            .expression_attribute_values(":a", n(i64::from(attempt)))
            .expression_attribute_values(":exp", n(expires))
            .send()
            .await;
        // A later attempt already finished: nothing to record.
        applied(result).map(|_| ())
    }

    async fn revive(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", key(id))
            .update_expression(
                "SET #s = :pending, updatedAt = :u REMOVE runningAttempt, runningUntil, finishedAttempt",
            )
            // Also a job that reached the DLQ by the queue's receive limit, whose record
            // still says pending with a claimed attempt.
            .condition_expression("#s IN (:dead, :pending)")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":dead", s("dead_lettered"))
            .expression_attribute_values(":u", s(crate::clock::rfc3339(now_ms)))
            .send()
            .await;
        applied(result)
    }

    async fn take_over(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", key(id))
            .update_expression("SET inProgressExpiresAt = :until, updatedAt = :u")
            .condition_expression(
                "#s = :pending AND attribute_not_exists(#r) AND inProgressExpiresAt < :now",
            )
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#r", "response")
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":until", n(now_ms + CLAIM.as_millis() as i64))
            .expression_attribute_values(":u", s(crate::clock::rfc3339(now_ms)))
            .send()
            .await;
        applied(result)
    }

    async fn forget(&self, id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", key(id))
            .condition_expression("#s = :pending")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":pending", s("pending"))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if conditional_failed(&e) {
                    Ok(())
                } else {
                    Err(unavailable(e))
                }
            })
    }
}
