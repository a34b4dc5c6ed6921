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
    /// Seconds before the message becomes visible (at most 900).
    pub delay_seconds: Option<i32>,
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

/// SQS takes at most ten entries and 256 KiB in one batch.
const MAX_BATCH_ENTRIES: usize = 10;
const MAX_BATCH_BYTES: usize = 256 * 1024;

fn size(m: &OutboundMessage) -> usize {
    m.body.len()
        + m.attributes
            .iter()
            .map(|(k, v)| k.len() + v.len() + "String".len())
            .sum::<usize>()
}

/// Splits messages into batches SQS accepts.
fn batches(messages: &[OutboundMessage]) -> Vec<&[OutboundMessage]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, m) in messages.iter().enumerate() {
        let full =
            i - start == MAX_BATCH_ENTRIES || (i > start && bytes + size(m) > MAX_BATCH_BYTES);
        if full {
            out.push(&messages[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size(m);
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize) -> OutboundMessage {
        OutboundMessage {
            body: "x".repeat(len),
            attributes: Vec::new(),
            dedup_id: String::new(),
            group_id: String::new(),
            delay_seconds: None,
        }
    }

    #[test]
    fn batches_hold_at_most_ten_messages_and_256_kib() {
        let small: Vec<_> = (0..23).map(|_| message(10)).collect();
        assert_eq!(
            batches(&small).iter().map(|b| b.len()).collect::<Vec<_>>(),
            [10, 10, 3]
        );
        let large: Vec<_> = (0..3).map(|_| message(100 * 1024)).collect();
        assert_eq!(
            batches(&large).iter().map(|b| b.len()).collect::<Vec<_>>(),
            [2, 1]
        );
        assert!(batches(&[]).is_empty());
    }
}
