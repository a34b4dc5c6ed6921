//! The session memory: which CXone contact a Cognigy session belongs to.
//!
//! On a voice call only the first turn carries the SIP headers with the contact ids; the
//! turns that carry intents do not. A turn with both a `sessionId` and a contact id
//! records the pair (item `cognigy-session#{sessionId}`, with a TTL), and a later turn
//! of the same session uses it. The DynamoDB adapter is `adapters::dynamodb::sessions`.

use std::future::Future;

use crate::idempotency::StoreError;

use super::turn::ContactId;

/// Port: remembers and recalls a session's contact.
pub trait SessionMemory: Send + Sync {
    fn recall(
        &self,
        session_id: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<ContactId>, StoreError>> + Send;

    fn remember(
        &self,
        session_id: &str,
        contact: &ContactId,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
