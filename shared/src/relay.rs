//! `event-relay`: takes the outboxes of accepted webhooks from the table's stream to the
//! queues (ARCHITECTURE.md, Outbox).
//!
//! The stream gives a shard's records in order, and Lambda retries a batch from the record
//! the function reports as failed. The relay sends a batch's messages queue by queue, as
//! many to a request as SQS takes, and reports the first record not wholly sent. What was
//! sent of that record and of any after it is remembered (`relay#{sequence number}`, the
//! first naming the others), and the retry, which starts with that record, reads it back
//! and sends only the rest. Each queue gets each message once.

use std::collections::HashMap;
use std::future::Future;

use serde::Deserialize;

use crate::idempotency::StoreError;
use crate::queue::{MessageQueue, OutboundMessage};
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

/// What earlier attempts sent of a stream record: the indices of its messages (in the
/// order [`Outbox::messages`] lists them), and, on the first record a batch stopped at,
/// the later records of that batch that were sent in part or whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub sent: Vec<u32>,
    pub also: Vec<String>,
}

/// Port: what earlier attempts sent of stream records.
pub trait RelayProgress: Send + Sync {
    fn progress(
        &self,
        sequence_number: &str,
    ) -> impl Future<Output = Result<Progress, StoreError>> + Send;

    fn remember(
        &self,
        sequence_number: &str,
        progress: &Progress,
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

/// A delivery record of the batch, with its messages and what is sent of them.
struct Work<'a> {
    seq: &'a str,
    key: &'a str,
    messages: Vec<(String, OutboundMessage)>,
    sent: Vec<bool>,
}

impl Work<'_> {
    fn done(&self) -> bool {
        self.sent.iter().all(|s| *s)
    }

    fn sent_indices(&self) -> Vec<u32> {
        self.sent
            .iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect()
    }
}

impl<Q: MessageQueue, P: RelayProgress> Relay<Q, P> {
    /// The batch's delivery records, each with its messages; the rest are counted skipped.
    fn work<'a>(event: &'a StreamEvent, out: &mut Relayed) -> Vec<Work<'a>> {
        let mut work = Vec::new();
        for record in &event.records {
            let Some((key, text, outbox)) = record.work() else {
                out.skipped += 1;
                continue;
            };
            let seq = record.dynamodb.sequence_number.as_str();
            match Outbox::parse(outbox).and_then(|o| o.messages(text)) {
                Ok(by_queue) => {
                    let messages: Vec<(String, OutboundMessage)> = by_queue
                        .into_iter()
                        .flat_map(|(q, list)| list.into_iter().map(move |m| (q.clone(), m)))
                        .collect();
                    let sent = vec![false; messages.len()];
                    work.push(Work {
                        seq,
                        key,
                        messages,
                        sent,
                    });
                }
                Err(err) => {
                    // It can never be sent: retrying would only hold up the shard.
                    tracing::error!(record = key, sequence_number = seq, error = %err, "an outbox that cannot be read is skipped");
                    out.skipped += 1;
                }
            }
        }
        work
    }

    /// Marks what earlier attempts sent: the first record's progress, and that of the
    /// records it names.
    async fn restore(&self, work: &mut [Work<'_>]) -> Result<(), StoreError> {
        let Some(first) = work.first() else {
            return Ok(());
        };
        let progress = self.progress.progress(first.seq).await?;
        let mut known = vec![(first.seq.to_owned(), progress.sent)];
        for seq in &progress.also {
            known.push((seq.clone(), self.progress.progress(seq).await?.sent));
        }
        for (seq, sent) in known {
            if let Some(w) = work.iter_mut().find(|w| w.seq == seq) {
                for i in sent {
                    if let Some(slot) = w.sent.get_mut(i as usize) {
                        *slot = true;
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends the batch's outboxes, and reports the first record not wholly sent.
    pub async fn relay(&self, event: &StreamEvent, now_ms: i64) -> Relayed {
        let mut out = Relayed::default();
        let mut work = Self::work(event, &mut out);
        if let Err(err) = self.restore(&mut work).await {
            if let Some(first) = work.first() {
                tracing::warn!(sequence_number = first.seq, error = %err, "cannot read the relay's progress; the batch will be retried");
                out.retry_from = Some(first.seq.to_owned());
            }
            return out;
        }

        // Every unsent message of the batch, by queue, in record order.
        let mut by_queue: Vec<(String, Vec<(usize, usize)>)> = Vec::new();
        for (r, w) in work.iter().enumerate() {
            for (m, (queue, _)) in w.messages.iter().enumerate() {
                if w.sent[m] {
                    continue;
                }
                match by_queue.iter_mut().find(|(q, _)| q == queue) {
                    Some((_, list)) => list.push((r, m)),
                    None => by_queue.push((queue.clone(), vec![(r, m)])),
                }
            }
        }
        let sends = by_queue.iter().map(|(queue, slots)| {
            let messages: Vec<OutboundMessage> = slots
                .iter()
                .map(|&(r, m)| work[r].messages[m].1.clone())
                .collect();
            async move { self.queue.send_each(queue, &messages).await }
        });
        let results = futures_util::future::join_all(sends).await;
        for ((_, slots), result) in by_queue.iter().zip(results) {
            if let Some(err) = &result.error {
                tracing::warn!(error = %err, "a queue did not take every message; the records left will be retried");
            }
            for (&(r, m), sent) in slots.iter().zip(result.sent) {
                if sent {
                    work[r].sent[m] = true;
                }
            }
        }

        let Some(stop) = work.iter().position(|w| !w.done()) else {
            out.sent = work.len();
            return out;
        };
        out.sent = stop;
        // What was sent of the record stopped at and of those after it, so that the retry,
        // which starts there, sends only the rest.
        let later: Vec<&Work<'_>> = work[stop + 1..]
            .iter()
            .filter(|w| w.sent.iter().any(|s| *s))
            .collect();
        let first = &work[stop];
        let mut saved = vec![(
            first.seq,
            first.key,
            Progress {
                sent: first.sent_indices(),
                also: later.iter().map(|w| w.seq.to_owned()).collect(),
            },
        )];
        saved.extend(later.iter().map(|w| {
            (
                w.seq,
                w.key,
                Progress {
                    sent: w.sent_indices(),
                    also: Vec::new(),
                },
            )
        }));
        // The records after the first are written first: the first names them.
        for (seq, key, progress) in saved.iter().rev() {
            if progress.sent.is_empty() && progress.also.is_empty() {
                continue;
            }
            if let Err(err) = self.progress.remember(seq, progress, now_ms).await {
                tracing::warn!(record = key, sequence_number = seq, error = %err, "cannot remember what was sent");
            }
        }
        out.retry_from = Some(first.seq.to_owned());
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
    async fn a_batch_goes_out_queue_by_queue_in_as_few_requests_as_sqs_takes() {
        let r = relay();
        let records = (0..25)
            .map(|i| {
                record(
                    "INSERT",
                    &i.to_string(),
                    &format!("delivery#r{i}"),
                    &["events"],
                )
            })
            .collect();
        let out = r.relay(&event(records), 0).await;
        assert_eq!(out.sent, 25);
        let sent = sent(&r);
        assert_eq!(sent.len(), 25, "every record's event, once");
        for (i, (_, body)) in sent.iter().enumerate() {
            assert!(
                body.contains(&format!("delivery#r{i}\"")),
                "in stream order"
            );
        }
        assert_eq!(
            r.queue.lists.load(Ordering::SeqCst),
            1,
            "one list for the queue, which the adapter sends ten to a request"
        );
        assert!(
            r.progress.saved.lock().unwrap().is_empty(),
            "nothing to remember"
        );
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
        assert_eq!(sent(&r).len(), 3, "the three events went in one request");
        {
            let saved = r.progress.saved.lock().unwrap();
            assert_eq!(
                saved.get("2"),
                Some(&Progress {
                    sent: vec![0],
                    also: vec!["3".into()],
                }),
                "b's event is sent, its job is not, and c was sent after it"
            );
            assert_eq!(
                saved.get("3"),
                Some(&Progress {
                    sent: vec![0],
                    also: Vec::new(),
                })
            );
        }

        // Lambda retries from record 2, which is now the batch's first.
        r.queue.refusing.lock().unwrap().clear();
        let retry = event(vec![
            record("INSERT", "2", "delivery#b", &["events", "jobs"]),
            record("INSERT", "3", "delivery#c", &["events"]),
            record("INSERT", "4", "delivery#d", &["events"]),
        ]);
        let out = r.relay(&retry, 0).await;
        assert_eq!(out.sent, 3);
        assert_eq!(out.retry_from, None);
        let got = sent(&r);
        let count = |q: &str, id: &str| {
            got.iter()
                .filter(|(queue, body)| queue == q && body.contains(&format!("{id}\"")))
                .count()
        };
        for id in ["delivery#a", "delivery#b", "delivery#c", "delivery#d"] {
            assert_eq!(count("events", id), 1, "events got {id} once");
        }
        assert_eq!(count("jobs", "delivery#b"), 1);
        assert_eq!(got.len(), 5);
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
        assert!(r.progress.saved.lock().unwrap().is_empty());
    }
}
