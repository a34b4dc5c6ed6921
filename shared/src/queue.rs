//! Port and SQS adapter for sending messages to queues.

use std::future::Future;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    pub body: String,
    /// String message attributes, for consumers' filtering.
    pub attributes: Vec<(String, String)>,
    /// Deduplication id, used on FIFO queues.
    pub dedup_id: String,
    /// Message group, used on FIFO queues.
    pub group_id: String,
}

#[derive(Debug, thiserror::Error)]
#[error("could not send to {queue}: {detail}")]
pub struct QueueError {
    pub queue: String,
    pub detail: String,
}

/// Port: durable queues.
pub trait MessageQueue: Send + Sync {
    /// Sends every message or fails; on failure some may have been sent.
    fn send_all(
        &self,
        queue_url: &str,
        messages: &[OutboundMessage],
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// [`MessageQueue`] over SQS: batches of ten, each entry checked.
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
        for chunk in messages.chunks(10) {
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
