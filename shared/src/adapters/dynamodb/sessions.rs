//! [`SessionMemory`] in the one DynamoDB table: `cognigy-session#{sessionId}` items
//! (ARCHITECTURE.md, Table items).

use std::time::Duration;

use super::{n, number, s, text, unavailable};
use crate::idempotency::StoreError;
use crate::intents::session::SessionMemory;
use crate::intents::turn::ContactId;

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
        let item = super::read_item(&self.client, &self.table, s(key(session_id)))
            .await
            .map_err(unavailable)?;
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
