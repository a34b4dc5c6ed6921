//! [`MessageQueue`] over SQS.

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use crate::queue::{MessageQueue, OutboundMessage, QueueError, Sent, batches};

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

impl SqsMessageQueue {
    fn entry(
        i: usize,
        m: &OutboundMessage,
        fifo: bool,
    ) -> Result<SendMessageBatchRequestEntry, String> {
        let mut entry = SendMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .message_body(&m.body);
        for (name, value) in &m.attributes {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| e.to_string())?;
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
        entry.build().map_err(|e| e.to_string())
    }
}

impl MessageQueue for SqsMessageQueue {
    async fn send_all(
        &self,
        queue_url: &str,
        messages: &[OutboundMessage],
    ) -> Result<(), QueueError> {
        match self.send_each(queue_url, messages).await.error {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    async fn send_each(&self, queue_url: &str, messages: &[OutboundMessage]) -> Sent {
        let fail = |detail: String| QueueError {
            queue: queue_url.to_owned(),
            detail,
        };
        let fifo = queue_url.ends_with(".fifo");
        let mut sent = vec![false; messages.len()];
        let mut error = None;
        let mut offset = 0;
        for chunk in batches(messages) {
            let start = offset;
            offset += chunk.len();
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| Self::entry(i, m, fifo))
                .collect::<Result<Vec<_>, _>>();
            let entries = match entries {
                Ok(entries) => entries,
                Err(detail) => {
                    error = Some(fail(detail));
                    break;
                }
            };
            let out = match self
                .client
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    error = Some(fail(DisplayErrorContext(&e).to_string()));
                    break;
                }
            };
            for i in 0..chunk.len() {
                sent[start + i] = true;
            }
            for failed in &out.failed {
                if let Ok(i) = failed.id.parse::<usize>()
                    && let Some(slot) = sent.get_mut(start + i)
                {
                    *slot = false;
                }
            }
            if let Some(first) = out.failed.first() {
                error.get_or_insert_with(|| {
                    fail(format!(
                        "{} of {} messages failed ({}: {})",
                        out.failed.len(),
                        chunk.len(),
                        first.code,
                        first.message.as_deref().unwrap_or_default()
                    ))
                });
            }
        }
        Sent { sent, error }
    }
}
