//! [`MessageQueue`] over SQS.

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use crate::queue::{MessageQueue, OutboundMessage, QueueError, batches};

/// [`MessageQueue`] over SQS: batches within SQS's limits, each entry checked.
#[derive(Debug, Clone)]
pub struct SqsMessageQueue {
    client: aws_sdk_sqs::Client,
}

impl SqsMessageQueue {
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        Self { client }
    }
}

impl MessageQueue for SqsMessageQueue {
    async fn send_all(
        &self,
        queue_url: &str,
        messages: &[OutboundMessage],
    ) -> Result<(), QueueError> {
        let fail = |detail: String| QueueError {
            queue: queue_url.to_owned(),
            detail,
        };
        let fifo = queue_url.ends_with(".fifo");
        for chunk in batches(messages) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, m) in chunk.iter().enumerate() {
                let mut entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body);
                for (name, value) in &m.attributes {
                    let attribute = MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(value)
                        .build()
                        .map_err(|e| fail(e.to_string()))?;
                    entry = entry.message_attributes(name, attribute);
                }
                if let Some(delay) = m.delay_seconds {
                    entry = entry.delay_seconds(delay.clamp(0, 900));
                }
                if fifo {
                    entry = entry
                        .message_group_id(&m.group_id)
                        .message_deduplication_id(&m.dedup_id);
                }
                entries.push(entry.build().map_err(|e| fail(e.to_string()))?);
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| fail(DisplayErrorContext(&e).to_string()))?;
            if let Some(first) = out.failed.first() {
                return Err(fail(format!(
                    "{} of {} messages failed ({}: {})",
                    out.failed.len(),
                    chunk.len(),
                    first.code,
                    first.message.as_deref().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}
