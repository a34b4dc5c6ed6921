//! `event-relay`: takes the outboxes of accepted webhooks from the table's stream to the
//! queues (ARCHITECTURE.md, Outbox).
//!
//! The stream gives a shard's records in order, and Lambda retries a batch from the record
//! the function reports as failed. So the relay sends records in order and stops at the
//! first it cannot finish: the records after it were never started. Of that record, the
//! queues it did reach are remembered (`relay#{sequence number}`), and the retry, which
//! starts with that record, reads them back and sends only to the rest. Each queue gets
//! each message once.

use std::collections::HashMap;
use std::future::Future;

use serde::Deserialize;

use crate::idempotency::StoreError;
use crate::queue::MessageQueue;
use crate::webhook::outbox::Outbox;

/// A DynamoDB stream event as Lambda delivers it, with only what the relay reads.
#[derive(Debug, Default, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventName", default)]
    pub event_name: String,
    #[serde(default)]
    pub dynamodb: StreamChange,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamChange {
    #[serde(rename = "SequenceNumber", default)]
    pub sequence_number: String,
    #[serde(rename = "NewImage", default)]
    pub new_image: HashMap<String, Attribute>,
}

/// An attribute of the new image; only strings are read.
#[derive(Debug, Default, Deserialize)]
pub struct Attribute {
    #[serde(rename = "S")]
    pub s: Option<String>,
}

impl StreamRecord {
    fn string(&self, name: &str) -> Option<&str> {
        self.dynamodb
            .new_image
            .get(name)
            .and_then(|a| a.s.as_deref())
    }

    /// The record's key, event and outbox, when it is a delivery record written with them.
    fn work(&self) -> Option<(&str, &str, &str)> {
        if !matches!(self.event_name.as_str(), "INSERT" | "MODIFY") {
            return None;
        }
        Some((
            self.string("pk")?,
            self.string("event")?,
            self.string("outbox")?,
        ))
    }
}

/// Port: the queues an earlier attempt at a stream record reached.
pub trait RelayProgress: Send + Sync {
    fn reached(
        &self,
        sequence_number: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    fn remember(
        &self,
        sequence_number: &str,
        reached: &[String],
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The relay with its ports: a function builds one at cold start.
pub struct Relay<Q, P> {
    pub queue: Q,
    pub progress: P,
}

/// What a batch came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Relayed {
    /// Records whose messages all reached their queues.
    pub sent: usize,
    /// Records that are not delivery records, or whose outbox cannot be read (logged).
    pub skipped: usize,
    /// The sequence number to retry from, when a record could not be finished.
    pub retry_from: Option<String>,
}

impl<Q: MessageQueue, P: RelayProgress> Relay<Q, P> {
    /// Sends the batch's outboxes in order, stopping at the first record it cannot finish.
    pub async fn relay(&self, event: &StreamEvent, now_ms: i64) -> Relayed {
        let mut out = Relayed::default();
        for (index, record) in event.records.iter().enumerate() {
            let Some((key, text, outbox)) = record.work() else {
                out.skipped += 1;
                continue;
            };
            let seq = record.dynamodb.sequence_number.as_str();
            let messages = match Outbox::parse(outbox).and_then(|o| o.messages(text)) {
                Ok(messages) => messages,
                Err(err) => {
                    // It can never be sent: retrying would only hold up the shard.
                    tracing::error!(record = key, sequence_number = seq, error = %err, "an outbox that cannot be read is skipped");
                    out.skipped += 1;
                    continue;
                }
            };
            // Only a batch's first record can be a retry of one that stopped part-way.
            let done = if index == 0 {
                match self.progress.reached(seq).await {
                    Ok(done) => done,
                    Err(err) => {
                        tracing::warn!(record = key, sequence_number = seq, error = %err, "cannot read the relay's progress; the batch will be retried");
                        out.retry_from = Some(seq.to_owned());
                        return out;
                    }
                }
            } else {
                Vec::new()
            };
            let sends = messages
                .iter()
                .filter(|(queue, _)| !done.contains(queue))
                .map(
                    |(queue, list)| async move { (queue, self.queue.send_all(queue, list).await) },
                );
            let mut reached = done.clone();
            let mut failed = false;
            for (queue, sent) in futures_util::future::join_all(sends).await {
                match sent {
                    Ok(()) => reached.push(queue.clone()),
                    Err(err) => {
                        tracing::warn!(record = key, sequence_number = seq, error = %err, "a queue could not take the record's messages; it will be retried");
                        failed = true;
                    }
                }
            }
            if failed {
                if reached.len() > done.len()
                    && let Err(err) = self.progress.remember(seq, &reached, now_ms).await
                {
                    tracing::warn!(record = key, sequence_number = seq, error = %err, "cannot remember the queues reached");
                }
                out.retry_from = Some(seq.to_owned());
                return out;
            }
            out.sent += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeProgress, FakeQueue};
    use crate::webhook::outbox::{Body, Message};
    use serde_json::json;
    use std::sync::atomic::Ordering;

    fn outbox(queues: &[&str]) -> String {
        let mut o = Outbox::default();
        for q in queues {
            o.push(
                (*q).to_owned(),
                Message {
                    body: Body::Event,
                    attributes: Vec::new(),
                    dedup_id: String::new(),
                    group_id: String::new(),
                },
            );
        }
        o.to_text()
    }

    fn record(name: &str, seq: &str, key: &str, queues: &[&str]) -> serde_json::Value {
        json!({
            "eventName": name,
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                "Keys": {"pk": {"S": key}},
                "SequenceNumber": seq,
                "NewImage": {
                    "pk": {"S": key},
                    "acceptedAt": {"N": "1"},
                    "event": {"S": format!("{{\"id\":\"{key}\"}}")},
                    "outbox": {"S": outbox(queues)},
                },
            },
        })
    }

    fn event(records: Vec<serde_json::Value>) -> StreamEvent {
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }

    fn relay() -> Relay<FakeQueue, FakeProgress> {
        Relay {
            queue: FakeQueue::default(),
            progress: FakeProgress::default(),
        }
    }

    fn sent(r: &Relay<FakeQueue, FakeProgress>) -> Vec<(String, String)> {
        r.queue
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|(q, m)| (q.clone(), m.body.clone()))
            .collect()
    }

    #[tokio::test]
    async fn each_record_s_messages_reach_their_queues_once_in_order() {
        let r = relay();
        let out = r
            .relay(
                &event(vec![
                    record("INSERT", "1", "delivery#a", &["events", "jobs"]),
                    record("MODIFY", "2", "delivery#b", &["events"]),
                ]),
                0,
            )
            .await;
        assert_eq!(
            out,
            Relayed {
                sent: 2,
                skipped: 0,
                retry_from: None
            }
        );
        let mut got = sent(&r);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("events".into(), r#"{"id":"delivery#a"}"#.into()),
                ("events".into(), r#"{"id":"delivery#b"}"#.into()),
                ("jobs".into(), r#"{"id":"delivery#a"}"#.into()),
            ]
        );
    }

    #[tokio::test]
    async fn records_without_an_outbox_removals_and_damaged_outboxes_are_skipped() {
        let r = relay();
        let mut damaged = record("INSERT", "3", "delivery#c", &["events"]);
        damaged["dynamodb"]["NewImage"]["outbox"]["S"] = json!("[{");
        let out = r
            .relay(
                &event(vec![
                    json!({"eventName": "INSERT", "dynamodb": {"SequenceNumber": "1", "NewImage": {"pk": {"S": "intent#x"}}}}),
                    json!({"eventName": "REMOVE", "dynamodb": {"SequenceNumber": "2"}}),
                    damaged,
                    record("INSERT", "4", "delivery#d", &["events"]),
                ]),
                0,
            )
            .await;
        assert_eq!(out.skipped, 3);
        assert_eq!(out.sent, 1);
        assert_eq!(out.retry_from, None);
        assert_eq!(sent(&r).len(), 1);
    }

    #[tokio::test]
    async fn a_queue_failure_stops_the_batch_at_that_record_and_its_retry_sends_only_the_rest() {
        let r = relay();
        r.queue.refusing.lock().unwrap().push("jobs".into());
        let batch = event(vec![
            record("INSERT", "1", "delivery#a", &["events"]),
            record("INSERT", "2", "delivery#b", &["events", "jobs"]),
            record("INSERT", "3", "delivery#c", &["events"]),
        ]);
        let out = r.relay(&batch, 0).await;
        assert_eq!(out.sent, 1);
        assert_eq!(
            out.retry_from.as_deref(),
            Some("2"),
            "retried from the record that failed"
        );
        assert_eq!(sent(&r).len(), 2, "a's event and b's; c was never started");
        assert_eq!(
            r.progress.reached.lock().unwrap().get("2"),
            Some(&vec!["events".to_owned()])
        );

        // Lambda retries from record 2, which is now the batch's first.
        r.queue.refusing.lock().unwrap().clear();
        let retry = event(vec![
            record("INSERT", "2", "delivery#b", &["events", "jobs"]),
            record("INSERT", "3", "delivery#c", &["events"]),
        ]);
        let out = r.relay(&retry, 0).await;
        assert_eq!(out.sent, 2);
        assert_eq!(out.retry_from, None);
        let got = sent(&r);
        let count = |q: &str, id: &str| {
            got.iter()
                .filter(|(queue, body)| queue == q && body.contains(id))
                .count()
        };
        assert_eq!(count("events", "delivery#b"), 1, "events got b once");
        assert_eq!(count("jobs", "delivery#b"), 1);
        assert_eq!(count("events", "delivery#c"), 1);
    }

    #[tokio::test]
    async fn without_its_progress_the_batch_is_not_started() {
        let r = relay();
        r.progress.down.store(true, Ordering::SeqCst);
        let out = r
            .relay(
                &event(vec![record("INSERT", "7", "delivery#a", &["events"])]),
                0,
            )
            .await;
        assert_eq!(out.retry_from.as_deref(), Some("7"));
        assert!(sent(&r).is_empty());
    }

    #[tokio::test]
    async fn when_every_queue_fails_nothing_is_remembered_and_all_is_retried() {
        let r = relay();
        r.queue.down.store(true, Ordering::SeqCst);
        let out = r
            .relay(
                &event(vec![record(
                    "INSERT",
                    "5",
                    "delivery#a",
                    &["events", "jobs"],
                )]),
                0,
            )
            .await;
        assert_eq!(out.retry_from.as_deref(), Some("5"));
        assert!(r.progress.reached.lock().unwrap().is_empty());
    }
}
