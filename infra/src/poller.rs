//! An SQS event source mapping: receives batches from a queue, invokes the function, and
//! deletes only what succeeded. Failed messages stay and come back after the queue's
//! visibility timeout; the queue's redrive policy moves them to the DLQ when spent.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use axum::body::Bytes;
use serde_json::{Value, json};

use crate::log::LogSink;
use crate::runtime_api::FunctionHost;

#[derive(Clone)]
pub struct Poller {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: i32,
    pub report_batch_item_failures: bool,
    pub host: Arc<FunctionHost>,
    pub log: LogSink,
    /// The mapping's `Enabled`: while false it takes nothing from the queue.
    pub enabled: Arc<AtomicBool>,
}

impl Poller {
    /// Polls until the task is dropped.
    pub async fn run(self) {
        loop {
            if !self.enabled.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(self.batch_size.clamp(1, 10))
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await;
            let messages = match received {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(err) => {
                    self.log.line(format!(
                        "cxbridge-local: cannot receive from {}: {}",
                        self.queue_url,
                        aws_sdk_sqs::error::DisplayErrorContext(&err)
                    ));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            // Disabled while this receive waited: the batch goes back, untouched.
            if !self.enabled.load(Ordering::Relaxed) {
                self.release(&messages).await;
                continue;
            }
            self.deliver(messages).await;
        }
    }

    /// Makes received messages visible again at once, without counting a failure.
    async fn release(&self, messages: &[Message]) {
        if let Err(err) = set_visibility(&self.sqs, &self.queue_url, messages, 0).await {
            self.log.line(format!(
                "cxbridge-local: cannot return a batch to {}: {err}",
                self.queue_url
            ));
        }
    }

    async fn deliver(&self, messages: Vec<Message>) {
        let event = json!({
            "Records": messages.iter().map(|m| self.record(m)).collect::<Vec<_>>()
        });
        let outcome = self.host.invoke(Bytes::from(event.to_string())).await;
        let succeeded: Vec<&Message> = match outcome {
            Ok(output) => match self.failed_ids(&output, &messages) {
                Some(failed) => messages
                    .iter()
                    .filter(|m| !failed.contains(m.message_id().unwrap_or_default()))
                    .collect(),
                None => {
                    self.log.line(format!(
                        "cxbridge-local: {} returned an invalid batch response; the whole batch will be retried",
                        self.host.name()
                    ));
                    Vec::new()
                }
            },
            Err(err) => {
                self.log.line(format!(
                    "cxbridge-local: {} failed on a batch of {} ({err}); the whole batch will be retried",
                    self.host.name(),
                    messages.len()
                ));
                Vec::new()
            }
        };
        if succeeded.is_empty() {
            return;
        }
        let entries: Vec<DeleteMessageBatchRequestEntry> = succeeded
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect();
        match self
            .sqs
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                for failed in out.failed {
                    self.log.line(format!(
                        "cxbridge-local: could not delete a processed message ({}: {}); it will be delivered again",
                        failed.code,
                        failed.message.unwrap_or_default()
                    ));
                }
            }
            Err(err) => self.log.line(format!(
                "cxbridge-local: cannot delete processed messages ({}); they will be delivered again",
                aws_sdk_sqs::error::DisplayErrorContext(&err)
            )),
        }
    }

    /// The ids the function reported as failed, or `None` when the response makes the
    /// whole batch count as failed (as Lambda treats an unknown or empty identifier).
    fn failed_ids(&self, output: &[u8], messages: &[Message]) -> Option<HashSet<String>> {
        if !self.report_batch_item_failures {
            return Some(HashSet::new());
        }
        let value: Value = serde_json::from_slice(output).ok()?;
        let failures = match value.get("batchItemFailures") {
            None | Some(Value::Null) => return Some(HashSet::new()),
            Some(Value::Array(items)) => items,
            Some(_) => return None,
        };
        let known: HashSet<&str> = messages.iter().filter_map(Message::message_id).collect();
        let mut failed = HashSet::new();
        for item in failures {
            let id = item.get("itemIdentifier").and_then(Value::as_str)?;
            if !known.contains(id) {
                return None;
            }
            failed.insert(id.to_owned());
        }
        Some(failed)
    }

    fn record(&self, m: &Message) -> Value {
        let attributes: serde_json::Map<String, Value> = m
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let message_attributes: serde_json::Map<String, Value> = m
            .message_attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            json!({
                                "stringValue": v.string_value(),
                                "stringListValues": [],
                                "binaryListValues": [],
                                "dataType": v.data_type(),
                            }),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "messageId": m.message_id(),
            "receiptHandle": m.receipt_handle(),
            "body": m.body(),
            "attributes": attributes,
            "messageAttributes": message_attributes,
            "md5OfBody": m.md5_of_body(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": "us-east-1",
        })
    }
}

/// Sets the visibility of `messages` on `queue` to `secs`, ten at a time (what
/// `ChangeMessageVisibilityBatch` takes); the error is the first batch's that failed.
pub async fn set_visibility(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    messages: &[Message],
    secs: i32,
) -> Result<(), String> {
    let mut first_error = None;
    for chunk in messages.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .visibility_timeout(secs)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        let sent = sqs
            .change_message_visibility_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await;
        if let Err(err) = sent {
            first_error
                .get_or_insert_with(|| aws_sdk_sqs::error::DisplayErrorContext(&err).to_string());
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Messages on a queue right now: visible, in flight and delayed.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<i64, String> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())?;
    Ok(attrs
        .attributes()
        .map(|a| a.values().filter_map(|v| v.parse::<i64>().ok()).sum())
        .unwrap_or(0))
}
