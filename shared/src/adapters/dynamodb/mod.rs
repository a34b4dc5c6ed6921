//! The stores in the one DynamoDB table (ARCHITECTURE.md, Table items), and the item
//! helpers they share.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use crate::idempotency::StoreError;

pub mod executions;
pub mod idempotency;
pub mod rate;
pub mod relay;
pub mod sessions;
pub mod targets;
pub mod tokens;

pub use executions::{DUE_INDEX, DynamoDbExecutionStore};
pub use idempotency::DynamoDbIdempotencyStore;
pub use rate::DynamoDbRateBudget;
pub use relay::DynamoDbRelayProgress;
pub use sessions::DynamoDbSessionMemory;
pub use targets::{DynamoDbTargetStore, LOG_INDEX};
pub use tokens::DynamoDbTokenStore;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A string attribute.
pub(crate) fn text<'a>(item: &'a HashMap<String, AttributeValue>, key: &str) -> Option<&'a str> {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// A number attribute that fits an `i64`.
pub(crate) fn number(item: &HashMap<String, AttributeValue>, key: &str) -> Option<i64> {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// Reads the item at `pk`, strongly consistent; an absent item is empty.
pub(crate) async fn read_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: AttributeValue,
) -> Result<
    HashMap<String, AttributeValue>,
    SdkError<aws_sdk_dynamodb::operation::get_item::GetItemError>,
> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", pk)
        .consistent_read(true)
        .send()
        .await?;
    Ok(out.item.unwrap_or_default())
}

/// The store is unavailable: the SDK's error with its context.
pub(crate) fn unavailable<E>(e: SdkError<E>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    StoreError(DisplayErrorContext(&e).to_string())
}

/// Whether a conditional write was applied: a failed condition is an answer, not an error.
pub(crate) fn applied<T, E>(result: Result<T, SdkError<E>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if conditional_failed(&e) => Ok(false),
        Err(e) => Err(unavailable(e)),
    }
}

/// Whether a write failed its condition.
pub(crate) fn conditional_failed<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}
