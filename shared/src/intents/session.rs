//! The session memory: which CXone contact a Cognigy session belongs to.
//!
//! On a voice call only the first turn carries the SIP headers with the contact ids; the
//! turns that carry intents do not. A turn with both a `sessionId` and a contact id
//! records the pair (item `cognigy-session#{sessionId}`, with a TTL), and a later turn
//! of the same session uses it.

use std::future::Future;
use std::time::Duration;

use crate::idempotency::{StoreError, n, number, s, text, unavailable};

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

/// [`SessionMemory`] in the one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbSessionMemory {
    client: aws_sdk_dynamodb::Client,
    table: String,
    ttl: Duration,
}

impl DynamoDbSessionMemory {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, ttl: Duration) -> Self {
        Self { client, table, ttl }
    }
}

fn key(session_id: &str) -> String {
    format!("cognigy-session#{session_id}")
}

impl SessionMemory for DynamoDbSessionMemory {
    async fn recall(&self, session_id: &str, now_ms: i64) -> Result<Option<ContactId>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key(session_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?
            .item
            .unwrap_or_default();
        // TTL deletion is lazy: an expired item is absent.
        if number(&item, "expiresAt").is_none_or(|e| e < now_ms / 1000) {
            return Ok(None);
        }
        Ok(text(&item, "contactId").map(|id| ContactId {
            id: id.to_owned(),
            source: "session".into(),
        }))
    }

    async fn remember(
        &self,
        session_id: &str,
        contact: &ContactId,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key(session_id)))
            .item("contactId", s(&contact.id))
            .item("contactSource", s(&contact.source))
            .item("expiresAt", n(now_ms / 1000 + ttl))
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
