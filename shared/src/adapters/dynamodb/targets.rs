//! [`TargetStore`] in the one DynamoDB table: breaker states and the delivery log
//! (ARCHITECTURE.md, Table items).
//!
//! - `target#{name}`: `state` (`active`/`paused`), `failures` (consecutive), `lastError`,
//!   `manual` (paused by an operator), `pausedUntil` and `probeUntil` (ms), `updatedAt`.
//! - `dlog#{target}#{deliveryId}#{attempt}#{at}`: one attempt, with `logKey`
//!   (`{target}#{yyyy-mm-dd}`) and `logAt` (`{at:013}#{deliveryId}#{attempt}`) for the
//!   `log` index, which `cxbridge deliveries list` queries a day at a time, and `expiresAt`.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{applied, n, number, s, text, unavailable};
use crate::idempotency::StoreError;
use crate::targets::Breaker;
use crate::targets::deliver::{Admission, LogEntry, TargetState, TargetStore};

/// The index over the delivery log.
pub const LOG_INDEX: &str = "log";

pub struct DynamoDbTargetStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// How long a log record is kept.
    log_ttl: Duration,
}

impl DynamoDbTargetStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, log_ttl: Duration) -> Self {
        Self {
            client,
            table,
            log_ttl,
        }
    }

    async fn item(&self, target: &str) -> Result<HashMap<String, AttributeValue>, StoreError> {
        super::read_item(&self.client, &self.table, key(target))
            .await
            .map_err(unavailable)
    }
}

fn key(target: &str) -> AttributeValue {
    s(format!("target#{target}"))
}

fn owned(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    text(item, k).map(str::to_owned)
}

fn state_of(target: &str, item: &HashMap<String, AttributeValue>) -> TargetState {
    TargetState {
        name: target.to_owned(),
        state: owned(item, "state").unwrap_or_else(|| "active".to_owned()),
        consecutive_failures: u32::try_from(number(item, "failures").unwrap_or(0)).unwrap_or(0),
        last_error: owned(item, "lastError"),
        manual: item
            .get("manual")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        paused_until_ms: number(item, "pausedUntil"),
    }
}

/// `yyyy-mm-dd` of a time in ms.
fn day(at_ms: i64) -> String {
    crate::clock::rfc3339(at_ms).chars().take(10).collect()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl TargetStore for DynamoDbTargetStore {
    async fn admit(
        &self,
        target: &str,
        breaker: Breaker,
        now_ms: i64,
        probe_lease: Duration,
    ) -> Result<Admission, StoreError> {
        let item = self.item(target).await?;
        let state = state_of(target, &item);
        if state.state != "paused" {
            return Ok(Admission::Send);
        }
        if state.manual {
            return Ok(Admission::Park {
                until_ms: now_ms + ms(breaker.cooldown),
            });
        }
        if let Some(until) = state.paused_until_ms.filter(|u| *u > now_ms) {
            return Ok(Admission::Park { until_ms: until });
        }
        if let Some(until) = number(&item, "probeUntil").filter(|u| *u > now_ms) {
            return Ok(Admission::Park { until_ms: until });
        }
        // The cool-down is over: one delivery takes the probe's turn.
        let until = now_ms + ms(probe_lease);
        let taken = applied(
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", key(target))
                .update_expression("SET probeUntil = :until")
                .condition_expression(
                    "#st = :paused AND manual = :no AND (attribute_not_exists(probeUntil) OR probeUntil <= :now)",
                )
                .expression_attribute_names("#st", "state")
                .expression_attribute_values(":paused", s("paused"))
                .expression_attribute_values(":no", AttributeValue::Bool(false))
                .expression_attribute_values(":until", n(until))
                .expression_attribute_values(":now", n(now_ms))
                .send()
                .await,
        )?;
        Ok(if taken {
            Admission::Probe
        } else {
            Admission::Park { until_ms: until }
        })
    }

    async fn succeeded(&self, target: &str, now_ms: i64) -> Result<(), StoreError> {
        let stamp = s(crate::clock::rfc3339(now_ms));
        // Resumes a target its breaker paused; one paused by hand stays paused.
        let resumed = applied(
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", key(target))
                .update_expression(
                    "SET #st = :active, failures = :zero, manual = :no, updatedAt = :u REMOVE pausedUntil, probeUntil",
                )
                .condition_expression("attribute_not_exists(manual) OR manual = :no")
                .expression_attribute_names("#st", "state")
                .expression_attribute_values(":active", s("active"))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":no", AttributeValue::Bool(false))
                .expression_attribute_values(":u", stamp.clone())
                .send()
                .await,
        )?;
        if !resumed {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", key(target))
                .update_expression("SET failures = :zero, updatedAt = :u")
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":u", stamp)
                .send()
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn failed(
        &self,
        target: &str,
        error: &str,
        breaker: Breaker,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", key(target))
            .update_expression(
                "SET lastError = :e, updatedAt = :u, #st = if_not_exists(#st, :active), manual = if_not_exists(manual, :no) ADD failures :one",
            )
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":e", s(error.chars().take(512).collect::<String>()))
            .expression_attribute_values(":u", s(crate::clock::rfc3339(now_ms)))
            .expression_attribute_values(":active", s("active"))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(unavailable)?;
        let state = state_of(target, &out.attributes.unwrap_or_default());
        if state.manual {
            return Ok(false);
        }
        let was_paused = state.state == "paused";
        if !was_paused && state.consecutive_failures < breaker.failures {
            return Ok(false);
        }
        // At the threshold, or a failed probe: paused for another cool-down.
        let paused = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", key(target))
            .update_expression("SET #st = :paused, pausedUntil = :until REMOVE probeUntil")
            .condition_expression("manual = :no")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":paused", s("paused"))
            .expression_attribute_values(":until", n(now_ms + ms(breaker.cooldown)))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .send()
            .await;
        // Paused by hand meanwhile: that pause stands.
        applied(paused)?;
        Ok(!was_paused)
    }

    async fn set_paused(&self, target: &str, paused: bool, now_ms: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", key(target))
            .update_expression(
                "SET #st = :st, manual = :manual, failures = :zero, updatedAt = :u REMOVE pausedUntil, probeUntil",
            )
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":st", s(if paused { "paused" } else { "active" }))
            .expression_attribute_values(":manual", AttributeValue::Bool(paused))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":u", s(crate::clock::rfc3339(now_ms)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn state(&self, target: &str) -> Result<TargetState, StoreError> {
        Ok(state_of(target, &self.item(target).await?))
    }

    async fn log(&self, entry: &LogEntry) -> Result<(), StoreError> {
        let expires = (entry.at_ms + ms(self.log_ttl)) / 1000;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(
                "pk",
                s(format!(
                    "dlog#{}#{}#{}#{}",
                    entry.target, entry.delivery_id, entry.attempt, entry.at_ms
                )),
            )
            .item(
                "logKey",
                s(format!("{}#{}", entry.target, day(entry.at_ms))),
            )
            .item(
                "logAt",
                s(format!(
                    "{:013}#{}#{}",
                    entry.at_ms, entry.delivery_id, entry.attempt
                )),
            )
            .item("deliveryId", s(&entry.delivery_id))
            .item("target", s(&entry.target))
            .item("attempt", n(i64::from(entry.attempt)))
            .item("status", s(&entry.status))
            .item(
                "latencyMs",
                n(i64::try_from(entry.latency_ms).unwrap_or(i64::MAX)),
            )
            .item("at", n(entry.at_ms))
            .item("expiresAt", n(expires));
        if let Some(code) = entry.http_status {
            put = put.item("httpStatus", n(i64::from(code)));
        }
        if let Some(e) = &entry.error {
            put = put.item("error", s(e));
        }
        put.send().await.map_err(unavailable)?;
        Ok(())
    }

    async fn history(
        &self,
        target: &str,
        since_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let mut entries = Vec::new();
        let mut at = since_ms;
        let mut days = Vec::new();
        while day(at) <= day(now_ms) && days.len() < 400 {
            days.push(day(at));
            at += 86_400_000;
        }
        if days.last() != Some(&day(now_ms)) {
            days.push(day(now_ms));
        }
        for d in days {
            let mut start = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(LOG_INDEX)
                    .key_condition_expression("logKey = :k AND logAt >= :since")
                    .expression_attribute_values(":k", s(format!("{target}#{d}")))
                    .expression_attribute_values(":since", s(format!("{since_ms:013}")))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(unavailable)?;
                for item in out.items() {
                    if number(item, "expiresAt").is_some_and(|e| e < now_ms / 1000) {
                        continue;
                    }
                    entries.push(LogEntry {
                        delivery_id: owned(item, "deliveryId").unwrap_or_default(),
                        target: owned(item, "target").unwrap_or_default(),
                        attempt: u32::try_from(number(item, "attempt").unwrap_or(0)).unwrap_or(0),
                        status: owned(item, "status").unwrap_or_default(),
                        http_status: number(item, "httpStatus").and_then(|c| u16::try_from(c).ok()),
                        latency_ms: u64::try_from(number(item, "latencyMs").unwrap_or(0))
                            .unwrap_or(0),
                        error: owned(item, "error"),
                        at_ms: number(item, "at").unwrap_or(0),
                    });
                }
                start = out.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        entries.sort_by_key(|e| e.at_ms);
        Ok(entries)
    }
}
