//! Webhooks through the local stack's gateway at a fixed rate (an open loop: requests go
//! out on schedule whatever the answers, and latency counts from the scheduled time).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::time::Instant;

use crate::requests::Webhook;

/// At most this many requests wait for answers at once (each holds two sockets in this
/// process, the client's and the gateway's); a request due beyond it is counted as an error.
const MAX_IN_FLIGHT: usize = 5000;

/// The calls moto served, by `"<caller> <operation>"`.
pub type Calls = BTreeMap<String, u64>;

pub async fn calls(client: &reqwest::Client, aws_endpoint: &str) -> Result<Calls> {
    client
        .get(format!("{aws_endpoint}/_cxbridge/calls"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .context("the emulator's call counts")
}

/// The calls `caller` made between two readings, by operation.
pub fn made_by(caller: &str, before: &Calls, after: &Calls) -> BTreeMap<String, u64> {
    let prefix = format!("{caller} ");
    after
        .iter()
        .filter_map(|(key, n)| {
            let op = key.strip_prefix(&prefix)?;
            let made = n.saturating_sub(before.get(key).copied().unwrap_or(0));
            (made > 0).then(|| (op.to_owned(), made))
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct LoadRun {
    pub rate: u32,
    pub duration: Duration,
    pub sent: usize,
    /// Answered 202.
    pub accepted: usize,
    /// Anything else, by status (or transport error).
    pub errors: BTreeMap<String, usize>,
    /// Latency of every answered request, sorted.
    pub latencies: Vec<Duration>,
    /// Each accepted request's number (`first` + its place in the run) and latency.
    pub answered: Vec<(usize, Duration)>,
    /// Messages that reached the events queue during the run.
    pub enqueued: i64,
    /// AWS calls event-relay made for the run's webhooks, by operation.
    pub relay_calls: BTreeMap<String, u64>,
    /// AWS calls webhook-receiver made during the run, by operation.
    pub calls: BTreeMap<String, u64>,
}

impl LoadRun {
    pub fn error_count(&self) -> usize {
        self.errors.values().sum()
    }

    /// Nearest-rank percentile of the answered requests.
    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub struct Target {
    pub client: reqwest::Client,
    pub url: String,
    pub secret: String,
    pub run: String,
    pub sqs: aws_sdk_sqs::Client,
    pub events_queue: String,
    pub aws_endpoint: String,
    /// event-relay's progress through the table's stream.
    pub relay: std::sync::Arc<cxbridge_local::streams::CaughtUp>,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub table: String,
}

/// The size DynamoDB bills an item by: each attribute's name and value (strings by their
/// UTF-8 bytes, numbers by about one byte per two digits plus one).
pub fn item_bytes(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> u64 {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    item.iter()
        .map(|(name, value)| {
            let value = match value {
                A::S(s) => s.len(),
                A::N(n) => n.len().div_ceil(2) + 1,
                A::B(b) => b.as_ref().len(),
                A::Bool(_) | A::Null(_) => 1,
                _ => 3,
            };
            (name.len() + value) as u64
        })
        .sum()
}

/// How long a run's accepted webhooks may take to reach `events` through event-relay.
const RELAY_LIMIT: Duration = Duration::from_secs(60);

/// Messages on a queue: visible, in flight and delayed.
async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<i64> {
    cxbridge_local::poller::queue_depth(sqs, url)
        .await
        .map_err(anyhow::Error::msg)
}

/// Where the local named targets put what they received.
pub struct Sinks {
    /// The CXone simulator, whose journal holds the `audit` sink's deliveries.
    pub simulator: String,
    /// The queue the bus's rule forwards to.
    pub bus_queue: String,
    /// The drainer's queue: empty once every delivery job has run.
    pub jobs_queue: String,
}

/// What the named targets received for the accepted webhooks of one run.
#[derive(Debug, Clone, Default)]
pub struct Fanout {
    /// Distinct deliveries the `audit` sink answered 2xx.
    pub audit: usize,
    /// 2xx answers at the sink beyond the first for the same delivery.
    pub audit_repeats: usize,
    /// Events on `bus-events`.
    pub bus: i64,
    /// How long after the last answer every delivery job had run.
    pub settled_after: Duration,
}

/// One run whose requests alternate between a route to `events` alone (even numbers) and
/// the route to `events` and the named targets (odd numbers), on the same stack at the same
/// time, so that the two acknowledgements are compared under the same emulator load.
#[derive(Debug, Clone)]
pub struct Interleaved {
    pub run: LoadRun,
    /// Latencies of the requests routed to `events` alone, sorted.
    pub events_only: Vec<Duration>,
    /// Latencies of the requests routed to `events` and the targets, sorted.
    pub with_targets: Vec<Duration>,
}

impl Interleaved {
    pub fn new(run: LoadRun) -> Self {
        let (mut events_only, mut with_targets) = (Vec::new(), Vec::new());
        for &(n, latency) in &run.answered {
            if n % 2 == 0 {
                events_only.push(latency);
            } else {
                with_targets.push(latency);
            }
        }
        events_only.sort();
        with_targets.sort();
        Self {
            run,
            events_only,
            with_targets,
        }
    }

    /// What the targets add to the acknowledgement's p50.
    pub fn added_p50(&self) -> Duration {
        percentile(&self.with_targets, 50.0).saturating_sub(percentile(&self.events_only, 50.0))
    }
}

/// The same rate without and with the local named targets.
#[derive(Debug, Clone)]
pub struct TargetsRun {
    pub events_only: LoadRun,
    /// With the targets, the drainer's mapping disabled during the run.
    pub held: LoadRun,
    /// With the targets, the drainer delivering during the run.
    pub delivering: LoadRun,
    /// What the targets got for both runs.
    pub fanout: Fanout,
    /// Both routes in one run, the drainer's mapping disabled.
    pub interleaved: Interleaved,
    /// What the emulator takes for the receiver's sends without and with the targets.
    pub sends: SendCosts,
}

/// Medians, from the bench to the idle emulator.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendCosts {
    /// The events queue's batch alone.
    pub alone: Duration,
    /// It and the delivery jobs' batch, sent at once.
    pub paired: Duration,
}

impl SendCosts {
    /// What the second, concurrent batch adds on this emulator.
    pub fn added(&self) -> Duration {
        self.paired.saturating_sub(self.alone)
    }
}

impl Target {
    async fn depth(&self) -> Result<i64> {
        queue_depth(&self.sqs, &self.events_queue).await
    }

    /// What the emulator takes for the receiver's sends, as medians of `count` tries over
    /// new queues of their own: the events queue's batch alone (one event), and that batch
    /// with the delivery jobs' batch (two jobs) sent at once, as the receiver sends them
    /// when the event also goes to the named targets.
    pub async fn send_costs(&self, prefix: &str, count: usize) -> Result<SendCosts> {
        let events = self.probe_queue(&format!("{prefix}-events")).await?;
        let jobs = self.probe_queue(&format!("{prefix}-jobs")).await?;
        let (mut alone, mut paired) = (Vec::new(), Vec::new());
        for _ in 0..count {
            let started = std::time::Instant::now();
            self.probe_batch(&events, 1).await?;
            alone.push(started.elapsed());
            let started = std::time::Instant::now();
            let (a, b) = tokio::join!(self.probe_batch(&events, 1), self.probe_batch(&jobs, 2));
            paired.push(started.elapsed());
            a?;
            b?;
        }
        alone.sort();
        paired.sort();
        Ok(SendCosts {
            alone: percentile(&alone, 50.0),
            paired: percentile(&paired, 50.0),
        })
    }

    async fn probe_queue(&self, name: &str) -> Result<String> {
        self.sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await?
            .queue_url
            .context("no queue URL")
    }

    /// One `SendMessageBatch` of `n` messages shaped like the receiver's: 1.5 KiB each, with
    /// three string attributes.
    async fn probe_batch(&self, url: &str, n: usize) -> Result<()> {
        use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
        let body = "x".repeat(1536);
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value("bench-0000000001")
            .build()?;
        let mut entries = Vec::new();
        for id in 0..n {
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(id.to_string())
                .message_body(&body);
            for name in ["deliveryId", "route", "eventType"] {
                entry = entry.message_attributes(name, attribute.clone());
            }
            entries.push(entry.build()?);
        }
        self.sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await?;
        Ok(())
    }

    /// Waits, up to `limit`, until every one of `accepted` webhooks has reached the `audit`
    /// sink and the bus and no delivery job is left; then counts what each target got.
    pub async fn fanout(&self, sinks: &Sinks, accepted: usize, limit: Duration) -> Result<Fanout> {
        let started = Instant::now();
        loop {
            let fanout = self.received(sinks).await?;
            let done = fanout.audit >= accepted
                && fanout.bus >= accepted as i64
                && queue_depth(&self.sqs, &sinks.jobs_queue).await? == 0;
            if done || started.elapsed() >= limit {
                return Ok(Fanout {
                    settled_after: started.elapsed(),
                    ..fanout
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn received(&self, sinks: &Sinks) -> Result<Fanout> {
        let journal: Vec<serde_json::Value> = self
            .client
            .get(format!("{}/_sim/requests", sinks.simulator))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .context("the simulator's journal")?;
        let mut seen = std::collections::BTreeSet::new();
        let mut answered = 0;
        for entry in &journal {
            let ok = entry["status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s));
            if entry["path"] == "/_sim/targets/audit" && ok {
                answered += 1;
                seen.insert(
                    entry["headers"]["webhook-id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
        Ok(Fanout {
            audit: seen.len(),
            audit_repeats: answered - seen.len(),
            bus: queue_depth(&self.sqs, &sinks.bus_queue).await?,
            settled_after: Duration::ZERO,
        })
    }

    /// `rate` webhooks a second for `duration`, each a new delivery.
    pub async fn fixed_rate(&self, rate: u32, duration: Duration, first: usize) -> Result<LoadRun> {
        let total = (f64::from(rate) * duration.as_secs_f64()) as usize;
        let depth_before = self.depth().await?;
        let calls_before = calls(&self.client, &self.aws_endpoint).await?;
        let start = Instant::now() + Duration::from_millis(200);
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
        let shared = Arc::new((self.client.clone(), self.url.clone(), self.secret.clone()));
        let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        let mut tasks = Vec::with_capacity(total);
        for i in 0..total {
            let at = start + interval * i as u32;
            tokio::time::sleep_until(at).await;
            let shared = shared.clone();
            let run = self.run.clone();
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                tasks.push(tokio::spawn(async move {
                    (
                        first + i,
                        Err(format!("not sent: {MAX_IN_FLIGHT} already in flight")),
                        Duration::ZERO,
                    )
                }));
                continue;
            };
            tasks.push(tokio::spawn(async move {
                let _permit = permit;
                let (client, url, secret) = &*shared;
                let outcome = match Webhook::new(secret, &run, first + i) {
                    Ok(webhook) => match webhook.request(client, url).send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let _ = response.bytes().await;
                            Ok(status)
                        }
                        Err(err) => Err(transport(&err)),
                    },
                    Err(err) => Err(format!("{err}")),
                };
                (first + i, outcome, at.elapsed())
            }));
        }
        let mut run = LoadRun {
            rate,
            duration,
            sent: total,
            accepted: 0,
            errors: BTreeMap::new(),
            latencies: Vec::with_capacity(total),
            answered: Vec::with_capacity(total),
            enqueued: 0,
            calls: BTreeMap::new(),
            relay_calls: BTreeMap::new(),
        };
        for task in tasks {
            let (n, outcome, latency) = task.await?;
            match outcome {
                Ok(202) => {
                    run.accepted += 1;
                    run.latencies.push(latency);
                    run.answered.push((n, latency));
                }
                Ok(status) => {
                    run.latencies.push(latency);
                    *run.errors.entry(format!("HTTP {status}")).or_default() += 1;
                }
                Err(kind) => *run.errors.entry(kind).or_default() += 1,
            }
        }
        run.latencies.sort();
        // What was accepted is on `events` once event-relay has read the stream this far.
        if !self.relay.wait(RELAY_LIMIT).await {
            eprintln!(
                "cxbridge-bench: event-relay did not catch up within {} s",
                RELAY_LIMIT.as_secs()
            );
        }
        run.enqueued = self.depth().await? - depth_before;
        let calls_after = calls(&self.client, &self.aws_endpoint).await?;
        run.calls = made_by("webhook-receiver", &calls_before, &calls_after);
        run.relay_calls = made_by("event-relay", &calls_before, &calls_after);
        Ok(run)
    }

    /// `count` new deliveries, then each sent again byte for byte (CXone's retry of a
    /// delivery it thinks failed): the AWS calls webhook-receiver made for each pass.
    pub async fn duplicates(&self, count: usize, first: usize) -> Result<DuplicateRun> {
        let webhooks = (first..first + count)
            .map(|n| Webhook::new(&self.secret, &self.run, n))
            .collect::<Result<Vec<_>>>()?;
        let mut passes = Vec::new();
        for expected in [202u16, 200] {
            let before = calls(&self.client, &self.aws_endpoint).await?;
            for webhook in &webhooks {
                let response = webhook.request(&self.client, &self.url).send().await?;
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                if status != expected {
                    bail!("expected {expected}, got {status}: {body}");
                }
            }
            let after = calls(&self.client, &self.aws_endpoint).await?;
            passes.push(made_by("webhook-receiver", &before, &after));
        }
        let duplicate = passes.pop().unwrap_or_default();
        let accepted = passes.pop().unwrap_or_default();
        // What one accepted webhook left in the table: its delivery record (with the event
        // and the outbox) and its replay entry.
        let first_webhook = webhooks.first().ok_or_else(|| anyhow!("no deliveries"))?;
        let signature = first_webhook
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("x-nexus-signature-256"))
            .and_then(|(_, v)| v.strip_prefix("sha256="))
            .ok_or_else(|| anyhow!("the webhook has no signature"))?;
        let record_bytes = self.item(&format!("delivery#{}-{first}", self.run)).await?;
        let replay_bytes = self.item(&format!("replay#{signature}")).await?;
        Ok(DuplicateRun {
            count,
            accepted,
            duplicate,
            record_bytes,
            replay_bytes,
        })
    }

    async fn item(&self, pk: &str) -> Result<u64> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(pk.to_owned()),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        let item = out
            .item
            .ok_or_else(|| anyhow!("{pk} is not in the table"))?;
        Ok(item_bytes(&item))
    }
}

#[derive(Debug, Clone)]
pub struct DuplicateRun {
    pub count: usize,
    /// Calls for the first sending, by operation.
    pub accepted: BTreeMap<String, u64>,
    /// Calls for the repeat, by operation.
    pub duplicate: BTreeMap<String, u64>,
    /// The first delivery's record and replay entry, in the bytes DynamoDB bills.
    pub record_bytes: u64,
    pub replay_bytes: u64,
}

fn transport(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timeout".into()
    } else if err.is_connect() {
        "connection refused".into()
    } else {
        "transport error".into()
    }
}
