//! [`RateBudget`] in the one DynamoDB table: a sliding one-second log of grants in one item
//! (`rate#{tenant}`), updated with optimistic concurrency (ARCHITECTURE.md, Table items).
//!
//! A grant is one conditional `PutItem`, written over the version this instance last knew.
//! When another instance wrote since, the put fails and its cancellation carries the item
//! as it is (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), so the retry needs no read.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use crate::clock::now_ms;
use crate::cxone::rate::{RateBudget, Refusal};

/// Grants at most `limit` calls in any window of `window` (one second plus a margin for
/// the time between the grant and the call's arrival).
#[derive(Debug)]
pub struct DynamoDbRateBudget {
    client: aws_sdk_dynamodb::Client,
    table: String,
    key: String,
    limit: usize,
    window_ms: i64,
    /// One attempt at a time per instance, and the item as it last saw it: when its grants
    /// alone fill the window, the caller is told to wait without a round trip.
    known: tokio::sync::Mutex<Known>,
}

/// The budget's item as this instance last wrote or was shown it. Other instances only add
/// grants, so grants that fill the window here fill it in the table too.
#[derive(Debug, Default)]
struct Known {
    /// 0 when there is no item.
    version: i64,
    grants: Vec<i64>,
}

impl Known {
    fn from_item(item: &HashMap<String, AttributeValue>) -> Self {
        Self {
            version: item
                .get("version")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            grants: item
                .get("grants")
                .and_then(|v| v.as_ns().ok())
                .map(|ns| ns.iter().filter_map(|g| g.parse().ok()).collect())
                .unwrap_or_default(),
        }
    }
}

/// Grants are counted over one second plus this, so that a call granted at the end of one
/// second and one granted early in the next cannot arrive in the same second at CXone, even
/// when a busy instance is slow to send a granted call. It costs a fifth of the budget's
/// throughput, in exchange for never exceeding it.
pub const ARRIVAL_MARGIN: Duration = Duration::from_millis(250);

/// Contended updates are retried this many times before the caller is told to wait.
const ATTEMPTS: usize = 20;

/// Store errors are retried this many times before the caller is told the store failed.
const STORE_ATTEMPTS: usize = 3;

/// Why one attempt gave no answer.
enum Miss {
    /// Another instance updated the item first.
    Raced,
    /// The store failed.
    Failed(String),
}

fn failed<E>(err: &aws_sdk_dynamodb::error::SdkError<E>) -> Miss
where
    E: std::error::Error + Send + Sync + 'static,
{
    Miss::Failed(aws_sdk_dynamodb::error::DisplayErrorContext(err).to_string())
}

impl DynamoDbRateBudget {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: String,
        tenant: &str,
        per_second: u32,
    ) -> Self {
        Self {
            client,
            table,
            key: format!("rate#{tenant}"),
            limit: per_second.max(1) as usize,
            window_ms: 1000 + i64::try_from(ARRIVAL_MARGIN.as_millis()).unwrap_or(0),
            known: tokio::sync::Mutex::new(Known::default()),
        }
    }

    /// The wait until a slot frees, if `grants` fill the window at `now`.
    fn full(&self, grants: &mut Vec<i64>, now: i64) -> Option<Duration> {
        grants.retain(|g| *g > now - self.window_ms);
        grants.sort_unstable();
        if grants.len() < self.limit {
            return None;
        }
        let oldest = grants[grants.len() - self.limit];
        // Spread the waiters over the next window rather than waking them all at once.
        let wait = (oldest + self.window_ms - now).max(1) + spread(self.window_ms);
        Some(Duration::from_millis(u64::try_from(wait).unwrap_or(1)))
    }

    async fn try_once(&self, known: &mut Known) -> Result<Result<(), Duration>, Miss> {
        let now = now_ms();
        if let Some(wait) = self.full(&mut known.grants, now) {
            return Ok(Err(wait));
        }
        let mut grants = known.grants.clone();
        // A number set cannot hold duplicates: nudge a grant in the same millisecond.
        let mut mine = now;
        while grants.contains(&mine) {
            mine += 1;
        }
        grants.push(mine);
        let version = known.version;
        let condition = if version == 0 {
            "attribute_not_exists(version)"
        } else {
            "version = :v"
        };
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(self.key.clone()))
            .item(
                "grants",
                AttributeValue::Ns(grants.iter().map(i64::to_string).collect()),
            )
            .item("version", AttributeValue::N((version + 1).to_string()))
            .item(
                "expiresAt",
                AttributeValue::N((now / 1000 + 60).to_string()),
            )
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if version != 0 {
            put = put.expression_attribute_values(":v", AttributeValue::N(version.to_string()));
        }
        match put.send().await {
            Ok(_) => {
                *known = Known {
                    version: version + 1,
                    grants,
                };
                Ok(Ok(()))
            }
            Err(e) => match e.as_service_error() {
                // Another instance wrote first (or the item expired): this is the item now.
                Some(PutItemError::ConditionalCheckFailedException(found)) => {
                    *known = found.item().map(Known::from_item).unwrap_or_default();
                    Err(Miss::Raced)
                }
                _ => Err(failed(&e)),
            },
        }
    }
}

/// A random share of `window_ms`.
fn spread(window_ms: i64) -> i64 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    window_ms * i64::from(u16::from_le_bytes(b)) / i64::from(u16::MAX)
}

impl RateBudget for DynamoDbRateBudget {
    async fn acquire(&self) -> Result<(), Refusal> {
        let mut known = self.known.lock().await;
        let mut store_errors = 0;
        for attempt in 0..ATTEMPTS {
            match self.try_once(&mut known).await {
                Ok(outcome) => return outcome.map_err(Refusal::Wait),
                Err(Miss::Failed(detail)) => {
                    store_errors += 1;
                    if store_errors == STORE_ATTEMPTS {
                        return Err(Refusal::Unavailable(format!(
                            "the CXone rate budget's store is unavailable: {detail}"
                        )));
                    }
                }
                Err(Miss::Raced) => {}
            }
            // Lost a race with another instance, or a passing store error: try again after
            // a short, growing pause.
            tokio::time::sleep(Duration::from_millis(2 + 3 * attempt as u64)).await;
        }
        Err(Refusal::Wait(Duration::from_millis(50)))
    }
}
