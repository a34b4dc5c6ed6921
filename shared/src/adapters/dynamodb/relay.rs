//! [`RelayProgress`] in the one DynamoDB table: `relay#{sequence number}` items, written
//! only when a batch stopped at a record (ARCHITECTURE.md, Outbox).

use aws_sdk_dynamodb::types::AttributeValue;

use super::{n, read_item, s, unavailable};
use crate::idempotency::StoreError;
use crate::relay::{Progress, RelayProgress};

/// How long a record of progress is kept: past the stream's 24 hours of retention.
const KEEP_SECS: i64 = 2 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct DynamoDbRelayProgress {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbRelayProgress {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }
}

fn key(sequence_number: &str) -> AttributeValue {
    s(format!("relay#{sequence_number}"))
}

impl RelayProgress for DynamoDbRelayProgress {
    async fn progress(&self, sequence_number: &str) -> Result<Progress, StoreError> {
        let item = read_item(&self.client, &self.table, key(sequence_number))
            .await
            .map_err(unavailable)?;
        let list = |name: &str| -> Vec<String> {
            item.get(name)
                .and_then(|v| v.as_l().ok())
                .map(|l| {
                    l.iter()
                        .filter_map(|v| v.as_s().or_else(|_| v.as_n()).ok().cloned())
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Progress {
            sent: list("sent").iter().filter_map(|n| n.parse().ok()).collect(),
            also: list("also"),
        })
    }

    async fn remember(
        &self,
        sequence_number: &str,
        progress: &Progress,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", key(sequence_number))
            .item(
                "sent",
                AttributeValue::L(
                    progress
                        .sent
                        .iter()
                        .map(|i| AttributeValue::N(i.to_string()))
                        .collect(),
                ),
            )
            .item(
                "also",
                AttributeValue::L(progress.also.iter().map(|q| s(q.as_str())).collect()),
            )
            .item("expiresAt", n(now_ms / 1000 + KEEP_SECS))
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
