//! A DynamoDB stream event source mapping: reads the table's stream in order, invokes the
//! function with the records its filter lets through, and moves on only past what
//! succeeded. A batch item failure makes the next batch start at that record, as Lambda's
//! checkpointing does; a function error retries the whole batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use axum::body::Bytes;
use serde_json::{Map, Value, json};

use crate::log::LogSink;
use crate::runtime_api::FunctionHost;
use crate::template::StreamFilter;

/// How often an idle shard is read: Lambda polls a stream about four times a second.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// How often an idle reader checks that its stream is still the table's latest: a table
/// deleted and made again has a new stream, and the old one just stays empty.
const CHECK_STREAM: Duration = Duration::from_secs(1);
/// The wait before a failed batch is tried again.
const RETRY_AFTER: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct StreamPoller {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub table: String,
    pub batch_size: i32,
    pub report_batch_item_failures: bool,
    pub filter: StreamFilter,
    pub host: Arc<FunctionHost>,
    pub log: LogSink,
    /// The mapping's `Enabled`: while false nothing is read.
    pub enabled: Arc<AtomicBool>,
    pub caught_up: Arc<CaughtUp>,
}

/// When the reader last started a read that found nothing new: every record written
/// before that moment had been handed to the function, and had succeeded.
#[derive(Debug, Default)]
pub struct CaughtUp(std::sync::Mutex<Option<Instant>>);

impl CaughtUp {
    fn mark(&self, read_started: Instant) {
        if let Ok(mut at) = self.0.lock() {
            *at = Some(read_started);
        }
    }

    /// Whether a read that found nothing started after `since`.
    pub fn since(&self, since: Instant) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at > since)
    }

    /// Waits (at most `limit`) until every record written before this call has been
    /// handed to the function, and each succeeded. False if that did not happen in time.
    pub async fn wait(&self, limit: Duration) -> bool {
        let since = Instant::now();
        while since.elapsed() < limit {
            if self.since(since) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

/// Where the next read starts.
enum Start {
    TrimHorizon,
    At(String),
    After(String),
}

impl StreamPoller {
    /// Reads until the task is dropped. A table deleted and made again (with a new stream)
    /// is read from its new stream's start.
    pub async fn run(self) {
        let mut stream: Option<(String, String)> = None;
        let mut start = Start::TrimHorizon;
        let mut iterator: Option<String> = None;
        // When the stream was last found to be the table's latest.
        let mut verified = Instant::now();
        let mut last_arn: Option<String> = None;
        loop {
            if !self.enabled.load(Ordering::Relaxed) {
                iterator = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let Some((arn, shard)) = stream.clone() else {
                match self.locate().await {
                    Ok(found) => {
                        // The same stream again (after a failed read) keeps its checkpoint;
                        // a new one (the table made again) is read from its start.
                        if last_arn.as_ref() != Some(&found.0) {
                            start = Start::TrimHorizon;
                            last_arn = Some(found.0.clone());
                        }
                        stream = Some(found);
                        verified = Instant::now();
                    }
                    Err(err) => {
                        self.log.line(format!(
                            "cxbridge-local: cannot find the stream of {}: {err}",
                            self.table
                        ));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                continue;
            };
            let current = match iterator.take() {
                Some(it) => it,
                None => match self.iterator(&arn, &shard, &start).await {
                    Ok(it) => it,
                    Err(err) => {
                        self.log.line(format!(
                            "cxbridge-local: cannot read the stream of {} ({err}); looking it up again",
                            self.table
                        ));
                        stream = None;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            let read_started = Instant::now();
            let read = self
                .streams
                .get_records()
                .shard_iterator(&current)
                .limit(self.batch_size.clamp(1, 1000))
                .send()
                .await;
            let out = match read {
                Ok(out) => out,
                Err(err) => {
                    self.log.line(format!(
                        "cxbridge-local: cannot read the stream of {} ({}); looking it up again",
                        self.table,
                        aws_sdk_dynamodbstreams::error::DisplayErrorContext(&err)
                    ));
                    stream = None;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let records = out.records.unwrap_or_default();
            let next = out.next_shard_iterator;
            if records.is_empty() {
                if verified.elapsed() > CHECK_STREAM {
                    let checked = Instant::now();
                    match self.locate().await {
                        Ok(found) if found.0 == arn => verified = checked,
                        _ => {
                            stream = None;
                            continue;
                        }
                    }
                }
                self.caught_up.mark(read_started.min(verified));
                iterator = next;
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
            match self.deliver(&records).await {
                None => {
                    if let Some(last) = records.last().and_then(sequence_number) {
                        start = Start::After(last.to_owned());
                    }
                    iterator = next;
                }
                Some(retry_from) => {
                    start = Start::At(retry_from);
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }

    /// The table's latest stream and its (one, locally) shard.
    async fn locate(&self) -> Result<(String, String), String> {
        let table = self
            .dynamodb
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())?;
        let arn = table
            .table()
            .and_then(|t| t.latest_stream_arn())
            .ok_or("the table has no stream")?
            .to_owned();
        let described = self
            .streams
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string())?;
        let shard = described
            .stream_description()
            .and_then(|d| d.shards().first())
            .and_then(|s| s.shard_id())
            .ok_or("the stream has no shard")?
            .to_owned();
        Ok((arn, shard))
    }

    async fn iterator(&self, arn: &str, shard: &str, start: &Start) -> Result<String, String> {
        let (kind, seq) = match start {
            Start::TrimHorizon => (ShardIteratorType::TrimHorizon, None),
            Start::At(seq) => (ShardIteratorType::AtSequenceNumber, Some(seq.clone())),
            Start::After(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
        };
        self.streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .set_sequence_number(seq)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string())?
            .shard_iterator
            .ok_or_else(|| "no shard iterator".to_owned())
    }

    /// Invokes the function with the records the filter lets through. `None` when the batch
    /// is done; otherwise the sequence number to read again from.
    async fn deliver(&self, records: &[Record]) -> Option<String> {
        let passed: Vec<&Record> = records.iter().filter(|r| self.passes(r)).collect();
        let first = passed.first()?;
        let first_seq = sequence_number(first).unwrap_or_default().to_owned();
        let event =
            json!({ "Records": passed.iter().map(|r| lambda_record(r)).collect::<Vec<_>>() });
        let output = match self.host.invoke(Bytes::from(event.to_string())).await {
            Ok(output) => output,
            Err(err) => {
                self.log.line(format!(
                    "cxbridge-local: {} failed on a batch of {} stream records ({err}); the batch will be retried",
                    self.host.name(),
                    passed.len()
                ));
                return Some(first_seq);
            }
        };
        if !self.report_batch_item_failures {
            return None;
        }
        let value: Value = serde_json::from_slice(&output).unwrap_or(Value::Null);
        let failures = match value.get("batchItemFailures") {
            None | Some(Value::Null) => return None,
            Some(Value::Array(items)) => items,
            Some(_) => return Some(first_seq),
        };
        // The lowest sequence number reported; one that is not in the batch fails it all,
        // as Lambda treats it.
        let mut earliest: Option<(usize, String)> = None;
        for item in failures {
            let id = item.get("itemIdentifier").and_then(Value::as_str);
            let Some(at) =
                id.and_then(|id| passed.iter().position(|r| sequence_number(r) == Some(id)))
            else {
                return Some(first_seq);
            };
            if earliest.as_ref().is_none_or(|(i, _)| at < *i) {
                earliest = Some((at, id.unwrap_or_default().to_owned()));
            }
        }
        earliest.map(|(_, seq)| seq)
    }

    fn passes(&self, record: &Record) -> bool {
        let name = record.event_name().map(|n| n.as_str()).unwrap_or_default();
        if !self.filter.event_names.is_empty() && !self.filter.event_names.iter().any(|n| n == name)
        {
            return false;
        }
        let image = record.dynamodb().and_then(|d| d.new_image());
        self.filter
            .new_image_has
            .iter()
            .all(|a| image.is_some_and(|i| i.contains_key(a)))
    }
}

fn sequence_number(record: &Record) -> Option<&str> {
    record.dynamodb().and_then(|d| d.sequence_number())
}

/// A stream record as Lambda hands it to a function.
fn lambda_record(record: &Record) -> Value {
    let change = record.dynamodb();
    let image = |m: Option<&std::collections::HashMap<String, AttributeValue>>| {
        m.map(|m| Value::Object(item(m)))
    };
    let mut dynamodb = Map::new();
    if let Some(c) = change {
        dynamodb.insert("Keys".into(), image(c.keys()).unwrap_or(Value::Null));
        if let Some(new) = image(c.new_image()) {
            dynamodb.insert("NewImage".into(), new);
        }
        if let Some(old) = image(c.old_image()) {
            dynamodb.insert("OldImage".into(), old);
        }
        dynamodb.insert("SequenceNumber".into(), json!(c.sequence_number()));
        dynamodb.insert("SizeBytes".into(), json!(c.size_bytes()));
        dynamodb.insert(
            "StreamViewType".into(),
            json!(c.stream_view_type().map(|v| v.as_str())),
        );
    }
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": record.event_version(),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.aws_region(),
        "dynamodb": dynamodb,
    })
}

fn item(map: &std::collections::HashMap<String, AttributeValue>) -> Map<String, Value> {
    map.iter().map(|(k, v)| (k.clone(), attribute(v))).collect()
}

/// An attribute in DynamoDB's JSON form (binary as base64).
fn attribute(value: &AttributeValue) -> Value {
    use base64::Engine as _;
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(b.as_ref())
    };
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(n) => json!({ "NULL": n }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(v) => json!({ "L": v.iter().map(attribute).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": item(m) }),
        _ => Value::Null,
    }
}
