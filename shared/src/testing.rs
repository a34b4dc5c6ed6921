//! In-memory fakes of the ports, for the services' unit tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::idempotency::{
    Claim, DeliveryRecords, IdempotencyStore, NewDelivery, Recorded, ReplayCheck, ReplayGuard,
    StoreError,
};
use crate::queue::{MessageQueue, OutboundMessage, QueueError};
use crate::secrets::{SecretError, SecretSource, Secrets};

/// Secrets whose stored value can change, counting forced reads.
pub struct FakeSecrets {
    pub stored: Mutex<Arc<Secrets>>,
    pub cached: Mutex<Arc<Secrets>>,
    pub refreshes: AtomicUsize,
}

impl FakeSecrets {
    pub fn with(secrets: Secrets) -> Self {
        let s = Arc::new(secrets);
        Self {
            stored: Mutex::new(s.clone()),
            cached: Mutex::new(s),
            refreshes: AtomicUsize::new(0),
        }
    }
}

impl SecretSource for FakeSecrets {
    async fn current(&self) -> Result<Arc<Secrets>, SecretError> {
        Ok(self.cached.lock().unwrap().clone())
    }
    async fn refresh(&self) -> Result<Arc<Secrets>, SecretError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let fresh = self.stored.lock().unwrap().clone();
        *self.cached.lock().unwrap() = fresh.clone();
        Ok(fresh)
    }
}

/// Idempotency records and the replay guard in maps; `down` makes every call fail.
#[derive(Default)]
pub struct FakeStore {
    pub items: Mutex<HashMap<String, (String, Option<Value>)>>,
    /// Keys given up part-way: the payload hash and the parts done.
    pub partials: Mutex<HashMap<String, (String, Vec<String>)>>,
    pub replays: Mutex<HashMap<String, String>>,
    /// Delivery records: the payload hash, the saved answer, the event and the outbox.
    pub deliveries: Mutex<HashMap<String, FakeDelivery>>,
    pub down: AtomicBool,
}

impl FakeStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError("down".into()));
        }
        Ok(())
    }
}

impl IdempotencyStore for FakeStore {
    async fn claim(&self, key: &str, hash: &str, _: i64, _: i64) -> Result<Claim, StoreError> {
        self.check()?;
        let mut items = self.items.lock().unwrap();
        if let Some((h, done)) = self.partials.lock().unwrap().remove(key) {
            if h != hash {
                return Ok(Claim::Conflict);
            }
            items.insert(key.into(), (hash.into(), None));
            return Ok(Claim::Resumed(done));
        }
        Ok(match items.get(key) {
            None => {
                items.insert(key.into(), (hash.into(), None));
                Claim::Acquired
            }
            Some((h, _)) if h != hash => Claim::Conflict,
            Some((_, Some(r))) => Claim::Completed(r.clone()),
            Some((_, None)) => Claim::InProgress,
        })
    }
    async fn complete(
        &self,
        key: &str,
        hash: &str,
        response: &Value,
        _: i64,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.items
            .lock()
            .unwrap()
            .insert(key.into(), (hash.into(), Some(response.clone())));
        Ok(())
    }
    async fn partial(
        &self,
        key: &str,
        hash: &str,
        done: &[String],
        _: i64,
        _: i64,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.items.lock().unwrap().remove(key);
        self.partials
            .lock()
            .unwrap()
            .insert(key.into(), (hash.into(), done.to_vec()));
        Ok(())
    }
    async fn release(&self, key: &str, _: i64) -> Result<(), StoreError> {
        self.check()?;
        self.items.lock().unwrap().remove(key);
        Ok(())
    }
}

impl ReplayGuard for FakeStore {
    async fn remember(
        &self,
        sig: &str,
        delivery: &str,
        _: i64,
        _: i64,
    ) -> Result<ReplayCheck, StoreError> {
        self.check()?;
        let mut replays = self.replays.lock().unwrap();
        Ok(match replays.get(sig) {
            None => {
                replays.insert(sig.into(), delivery.into());
                ReplayCheck::Fresh
            }
            Some(d) if d == delivery => ReplayCheck::SameDelivery,
            Some(_) => ReplayCheck::Replayed,
        })
    }
}

/// A delivery record as [`FakeStore`] keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeDelivery {
    pub payload_hash: String,
    pub response: Value,
    pub event: String,
    pub outbox: String,
}

impl DeliveryRecords for FakeStore {
    async fn record(&self, d: &NewDelivery<'_>) -> Result<Recorded, StoreError> {
        self.check()?;
        // As one transaction: nothing is written unless both would be.
        let mut replays = self.replays.lock().unwrap();
        if let Some(replay) = d.replay
            && replays
                .get(replay.signature)
                .is_some_and(|id| id != replay.delivery_id)
        {
            return Ok(Recorded::Replayed);
        }
        let mut deliveries = self.deliveries.lock().unwrap();
        if let Some(existing) = deliveries.get(d.key) {
            return Ok(if existing.payload_hash == d.payload_hash {
                Recorded::Duplicate(existing.response.clone())
            } else {
                Recorded::Conflict
            });
        }
        if let Some(replay) = d.replay {
            replays.insert(replay.signature.into(), replay.delivery_id.into());
        }
        deliveries.insert(
            d.key.into(),
            FakeDelivery {
                payload_hash: d.payload_hash.into(),
                response: d.response.clone(),
                event: d.event.into(),
                outbox: d.outbox.into(),
            },
        );
        Ok(Recorded::New)
    }
}

/// The relay's progress in a map; `down` makes every call fail.
#[derive(Default)]
pub struct FakeProgress {
    pub saved: Mutex<HashMap<String, crate::relay::Progress>>,
    pub down: AtomicBool,
}

impl crate::relay::RelayProgress for FakeProgress {
    async fn progress(&self, seq: &str) -> Result<crate::relay::Progress, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError("down".into()));
        }
        Ok(self
            .saved
            .lock()
            .unwrap()
            .get(seq)
            .cloned()
            .unwrap_or_default())
    }
    async fn remember(
        &self,
        seq: &str,
        progress: &crate::relay::Progress,
        _: i64,
    ) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError("down".into()));
        }
        self.saved
            .lock()
            .unwrap()
            .insert(seq.into(), progress.clone());
        Ok(())
    }
}

/// Queues that keep what they were sent; `down` makes every send fail, and `refusing`
/// names the queues that refuse them.
#[derive(Default)]
pub struct FakeQueue {
    pub sent: Mutex<Vec<(String, OutboundMessage)>>,
    /// Calls to `send_each`, one per queue a caller sent a list to.
    pub lists: AtomicUsize,
    pub down: AtomicBool,
    pub refusing: Mutex<Vec<String>>,
}

impl MessageQueue for FakeQueue {
    async fn send_all(&self, queue: &str, messages: &[OutboundMessage]) -> Result<(), QueueError> {
        if self.down.load(Ordering::SeqCst)
            || self.refusing.lock().unwrap().iter().any(|q| q == queue)
        {
            return Err(QueueError {
                queue: queue.into(),
                detail: "down".into(),
            });
        }
        let mut sent = self.sent.lock().unwrap();
        sent.extend(messages.iter().map(|m| (queue.to_owned(), m.clone())));
        Ok(())
    }

    async fn send_each(&self, queue: &str, messages: &[OutboundMessage]) -> crate::queue::Sent {
        self.lists.fetch_add(1, Ordering::SeqCst);
        match self.send_all(queue, messages).await {
            Ok(()) => crate::queue::Sent {
                sent: vec![true; messages.len()],
                error: None,
            },
            Err(err) => crate::queue::Sent {
                sent: vec![false; messages.len()],
                error: Some(err),
            },
        }
    }
}

/// Run claims in a map: a run number at or below the last one finished, or the one
/// running, is refused; `hold` makes every claim `Held`.
#[derive(Default)]
pub struct FakeRuns {
    pub runs: Mutex<HashMap<String, (u32, Option<u32>)>>,
    pub hold: AtomicBool,
}

impl crate::targets::deliver::RunGuard for FakeRuns {
    async fn begin(
        &self,
        job_id: &str,
        run: u32,
        _lease: std::time::Duration,
        _now_ms: i64,
    ) -> Result<crate::signals::store::AttemptClaim, StoreError> {
        use crate::signals::store::AttemptClaim;
        if self.hold.load(Ordering::SeqCst) {
            return Ok(AttemptClaim::Held);
        }
        let mut runs = self.runs.lock().unwrap();
        let entry = runs.entry(job_id.to_owned()).or_insert((0, None));
        if entry.1.is_some_and(|f| f >= run) || entry.0 >= run {
            return Ok(AttemptClaim::Done);
        }
        entry.0 = run;
        Ok(AttemptClaim::Started)
    }

    async fn finish(&self, job_id: &str, run: u32, _now_ms: i64) -> Result<(), StoreError> {
        let mut runs = self.runs.lock().unwrap();
        let entry = runs.entry(job_id.to_owned()).or_insert((0, None));
        entry.1 = Some(entry.1.map_or(run, |f| f.max(run)));
        Ok(())
    }
}

/// A target that records every send; `fail_next` makes the next sends fail.
#[derive(Default)]
pub struct FakeSender {
    pub sent: Mutex<Vec<(String, String, Value)>>,
    /// Failures still to give, and whether they are retryable.
    pub failing: Mutex<(usize, bool)>,
}

impl FakeSender {
    pub fn fail_next(&self, times: usize, retryable: bool) {
        *self.failing.lock().unwrap() = (times, retryable);
    }
}

impl crate::targets::deliver::TargetSender for FakeSender {
    async fn send(
        &self,
        spec: &crate::targets::TargetSpec,
        message_id: &str,
        event: &Value,
        _now_ms: i64,
    ) -> Result<crate::targets::deliver::Sent, crate::targets::deliver::SendError> {
        self.sent
            .lock()
            .unwrap()
            .push((spec.name.clone(), message_id.to_owned(), event.clone()));
        let mut failing = self.failing.lock().unwrap();
        if failing.0 > 0 {
            failing.0 -= 1;
            return Err(crate::targets::deliver::SendError {
                retryable: failing.1,
                http_status: Some(if failing.1 { 500 } else { 400 }),
                reason: "HTTP 500".into(),
                retry_after: None,
            });
        }
        Ok(crate::targets::deliver::Sent {
            http_status: Some(200),
            excerpt: String::new(),
        })
    }
}

/// Breaker states and the delivery log in memory, with the breaker's rules.
#[derive(Default)]
pub struct FakeTargetStore {
    /// State, and the paused-until and probe-until times.
    pub states: Mutex<HashMap<String, (crate::targets::deliver::TargetState, Option<i64>)>>,
    pub entries: Mutex<Vec<crate::targets::deliver::LogEntry>>,
}

impl FakeTargetStore {
    fn with<T>(
        &self,
        target: &str,
        f: impl FnOnce(&mut crate::targets::deliver::TargetState, &mut Option<i64>) -> T,
    ) -> T {
        let mut states = self.states.lock().unwrap();
        let (state, probe) = states.entry(target.to_owned()).or_insert_with(|| {
            (
                crate::targets::deliver::TargetState {
                    name: target.to_owned(),
                    state: "active".into(),
                    ..Default::default()
                },
                None,
            )
        });
        f(state, probe)
    }
}

impl crate::targets::deliver::TargetStore for FakeTargetStore {
    async fn admit(
        &self,
        target: &str,
        breaker: crate::targets::Breaker,
        now_ms: i64,
        probe_lease: std::time::Duration,
    ) -> Result<crate::targets::deliver::Admission, StoreError> {
        use crate::targets::deliver::Admission;
        let cooldown = i64::try_from(breaker.cooldown.as_millis()).unwrap_or(0);
        let lease = i64::try_from(probe_lease.as_millis()).unwrap_or(0);
        Ok(self.with(target, |s, probe| {
            if s.state != "paused" {
                Admission::Send
            } else if s.manual {
                Admission::Park {
                    until_ms: now_ms + cooldown,
                }
            } else if let Some(until) = s.paused_until_ms.filter(|u| *u > now_ms) {
                Admission::Park { until_ms: until }
            } else if let Some(until) = probe.filter(|u| *u > now_ms) {
                Admission::Park { until_ms: until }
            } else {
                *probe = Some(now_ms + lease);
                Admission::Probe
            }
        }))
    }

    async fn succeeded(&self, target: &str, _now_ms: i64) -> Result<(), StoreError> {
        self.with(target, |s, probe| {
            s.consecutive_failures = 0;
            if !s.manual {
                s.state = "active".into();
                s.paused_until_ms = None;
                *probe = None;
            }
        });
        Ok(())
    }

    async fn failed(
        &self,
        target: &str,
        error: &str,
        breaker: crate::targets::Breaker,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let cooldown = i64::try_from(breaker.cooldown.as_millis()).unwrap_or(0);
        Ok(self.with(target, |s, probe| {
            s.consecutive_failures += 1;
            s.last_error = Some(error.to_owned());
            if s.manual {
                return false;
            }
            let newly = s.state != "paused";
            if s.state == "paused" || s.consecutive_failures >= breaker.failures {
                s.state = "paused".into();
                s.paused_until_ms = Some(now_ms + cooldown);
                *probe = None;
            }
            newly && s.state == "paused"
        }))
    }

    async fn set_paused(&self, target: &str, paused: bool, _now_ms: i64) -> Result<(), StoreError> {
        self.with(target, |s, probe| {
            s.state = if paused { "paused" } else { "active" }.into();
            s.manual = paused;
            s.paused_until_ms = None;
            s.consecutive_failures = 0;
            *probe = None;
        });
        Ok(())
    }

    async fn state(
        &self,
        target: &str,
    ) -> Result<crate::targets::deliver::TargetState, StoreError> {
        Ok(self.with(target, |s, _| s.clone()))
    }

    async fn log(&self, entry: &crate::targets::deliver::LogEntry) -> Result<(), StoreError> {
        self.entries.lock().unwrap().push(entry.clone());
        Ok(())
    }

    async fn history(
        &self,
        target: &str,
        since_ms: i64,
        _now_ms: i64,
    ) -> Result<Vec<crate::targets::deliver::LogEntry>, StoreError> {
        Ok(self
            .entries
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.target == target && e.at_ms >= since_ms)
            .cloned()
            .collect())
    }
}

// The signal dispatcher's ports: execution records and CXone.

use std::collections::VecDeque;
use std::sync::atomic::AtomicI64;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cxone::api::ExecutionHistory;
use crate::cxone::{ContextSink, CxoneError, CxoneSignals, SignalAccepted, SignalRequest};
use crate::signals::store::{
    AttemptClaim, CLAIM, CallbackOutcome, Created, Execution, ExecutionStatus, ExecutionStore,
    RECORD_TTL,
};

/// An execution record (`exec#{id}`) with every attribute the DynamoDB adapter writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionItem {
    pub signal: String,
    pub status: String,
    pub attempts: u32,
    pub payload_hash: String,
    pub outputs: Value,
    pub created_at: String,
    pub updated_at: String,
    /// Epoch seconds, as the table's TTL attribute.
    pub expires_at: i64,
    pub in_progress_expires_at: Option<i64>,
    pub response: Option<Value>,
    pub last_error: Option<String>,
    pub signal_execution_id: Option<String>,
    pub dispatched_at: Option<i64>,
    /// Set while the record is in the sparse `due` index.
    pub due_at: Option<i64>,
    pub running_attempt: Option<u32>,
    pub running_until: Option<i64>,
    pub finished_attempt: Option<u32>,
}

/// A run record (`run#{jobId}`) of a job with no execution record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunItem {
    pub running_attempt: Option<u32>,
    pub running_until: Option<i64>,
    pub finished_attempt: Option<u32>,
    /// Epoch seconds.
    pub expires_at: i64,
}

/// Execution and run records in maps, under the conditions the DynamoDB adapter writes
/// them with: an attribute a record lacks compares false, as it does in DynamoDB. `down`
/// makes every call fail, and `failing` names the methods that fail. `get`, which takes
/// no time, reads at the latest `now_ms` any call passed.
#[derive(Default)]
pub struct FakeExecutions {
    pub items: Mutex<HashMap<String, ExecutionItem>>,
    pub runs: Mutex<HashMap<String, RunItem>>,
    pub clock: AtomicI64,
    pub down: AtomicBool,
    pub failing: Mutex<Vec<&'static str>>,
}

/// The adapter's partitions of the `due` index.
const DUE_SHARDS: u8 = 4;

fn due_shard(id: &str) -> u8 {
    Sha256::digest(id.as_bytes())[0] % DUE_SHARDS
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(0)
}

fn record_expiry(now_ms: i64) -> i64 {
    now_ms / 1000 + i64::try_from(RECORD_TTL.as_secs()).unwrap_or(0)
}

/// Why a claim was refused: held while another run's lease on this very attempt is live
/// and the work is open, done otherwise.
fn refused(finished: Option<u32>, running: Option<u32>, attempt: u32, open: bool) -> AttemptClaim {
    if open && finished.is_none_or(|f| f < attempt) && running == Some(attempt) {
        AttemptClaim::Held
    } else {
        AttemptClaim::Done
    }
}

impl FakeExecutions {
    /// Makes every later call of `method` fail.
    pub fn fail(&self, method: &'static str) {
        self.failing.lock().unwrap().push(method);
    }

    pub fn item(&self, id: &str) -> Option<ExecutionItem> {
        self.items.lock().unwrap().get(id).cloned()
    }

    pub fn run(&self, job_id: &str) -> Option<RunItem> {
        self.runs.lock().unwrap().get(job_id).cloned()
    }

    fn check(&self, method: &str, now_ms: i64) -> Result<(), StoreError> {
        self.clock.fetch_max(now_ms, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) || self.failing.lock().unwrap().contains(&method) {
            return Err(StoreError("down".into()));
        }
        Ok(())
    }

    fn execution(id: &str, item: &ExecutionItem) -> Execution {
        Execution {
            correlation_id: id.to_owned(),
            signal: item.signal.clone(),
            status: ExecutionStatus::parse(&item.status).unwrap_or(ExecutionStatus::Pending),
            attempts: item.attempts,
            signal_execution_id: item.signal_execution_id.clone(),
            outputs: item.outputs.clone(),
            last_error: item.last_error.clone(),
            created_at: item.created_at.clone(),
            updated_at: item.updated_at.clone(),
            payload_hash: item.payload_hash.clone(),
            response: item.response.clone(),
            in_progress_expires_at: item.in_progress_expires_at,
        }
    }
}

impl ExecutionStore for FakeExecutions {
    async fn create(
        &self,
        id: &str,
        signal: &str,
        payload_hash: &str,
        now_ms: i64,
    ) -> Result<Created, StoreError> {
        self.check("create", now_ms)?;
        let mut items = self.items.lock().unwrap();
        // `attribute_not_exists(pk) OR expiresAt < :now`
        if let Some(live) = items.get(id).filter(|i| i.expires_at >= now_ms / 1000) {
            return Ok(Created::Existing(Box::new(Self::execution(id, live))));
        }
        let now = crate::clock::rfc3339(now_ms);
        items.insert(
            id.to_owned(),
            ExecutionItem {
                signal: signal.to_owned(),
                status: "pending".into(),
                attempts: 0,
                payload_hash: payload_hash.to_owned(),
                outputs: json!({}),
                created_at: now.clone(),
                updated_at: now,
                expires_at: record_expiry(now_ms),
                in_progress_expires_at: Some(now_ms + millis(CLAIM)),
                ..Default::default()
            },
        );
        Ok(Created::New)
    }

    async fn get(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        self.check("get", 0)?;
        let now_s = self.clock.load(Ordering::SeqCst) / 1000;
        Ok(self
            .items
            .lock()
            .unwrap()
            .get(id)
            .filter(|i| i.expires_at >= now_s)
            .map(|i| Self::execution(id, i)))
    }

    async fn dispatched(
        &self,
        id: &str,
        signal_execution_id: Option<&str>,
        response: &Value,
        due_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.check("dispatched", now_ms)?;
        let mut items = self.items.lock().unwrap();
        // `#s = :pending`; a callback that got there first is kept.
        let Some(item) = items.get_mut(id).filter(|i| i.status == "pending") else {
            return Ok(());
        };
        item.status = "dispatched".into();
        item.attempts += 1;
        item.updated_at = crate::clock::rfc3339(now_ms);
        item.dispatched_at = Some(now_ms);
        if item.response.is_none() {
            item.response = Some(response.clone());
        }
        if let Some(x) = signal_execution_id {
            item.signal_execution_id = Some(x.to_owned());
        }
        item.due_at = Some(due_at_ms);
        item.last_error = None;
        Ok(())
    }

    async fn overdue(&self, now_ms: i64, limit: i32) -> Result<Vec<String>, StoreError> {
        self.check("overdue", now_ms)?;
        let items = self.items.lock().unwrap();
        let mut ids = Vec::new();
        // One query a shard, each in `dueAt` order and up to `limit`.
        for shard in 0..DUE_SHARDS {
            let mut due: Vec<(i64, &String)> = items
                .iter()
                .filter(|(id, _)| due_shard(id) == shard)
                .filter_map(|(id, i)| i.due_at.filter(|at| *at < now_ms).map(|at| (at, id)))
                .collect();
            due.sort();
            ids.extend(
                due.into_iter()
                    .take(usize::try_from(limit).unwrap_or(0))
                    .map(|(_, id)| id.clone()),
            );
        }
        Ok(ids)
    }

    async fn queued(
        &self,
        id: &str,
        error: &str,
        response: &Value,
        finished_attempt: Option<u32>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.check("queued", now_ms)?;
        let mut items = self.items.lock().unwrap();
        // No condition, but `attempts = attempts + :one` names an attribute a missing
        // record lacks, which DynamoDB refuses.
        let Some(item) = items.get_mut(id) else {
            return Err(StoreError(format!(
                "no execution {id} to count an attempt on"
            )));
        };
        item.attempts += 1;
        item.last_error = Some(error.to_owned());
        item.updated_at = crate::clock::rfc3339(now_ms);
        if item.response.is_none() {
            item.response = Some(response.clone());
        }
        if let Some(finished) = finished_attempt {
            item.finished_attempt = Some(finished);
        }
        Ok(())
    }

    async fn failed(
        &self,
        id: &str,
        status: ExecutionStatus,
        error: &str,
        response: Option<&Value>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.check("failed", now_ms)?;
        let mut items = self.items.lock().unwrap();
        // `#s IN (:pending, :dispatched)`
        let Some(item) = items
            .get_mut(id)
            .filter(|i| matches!(i.status.as_str(), "pending" | "dispatched"))
        else {
            return Ok(());
        };
        item.status = status.as_str().to_owned();
        item.last_error = Some(error.to_owned());
        item.updated_at = crate::clock::rfc3339(now_ms);
        item.attempts += u32::from(status == ExecutionStatus::Failed);
        if let Some(r) = response
            && item.response.is_none()
        {
            item.response = Some(r.clone());
        }
        item.due_at = None;
        Ok(())
    }

    async fn callback(
        &self,
        id: &str,
        status: ExecutionStatus,
        outputs: &Value,
        error: Option<&str>,
        signal_execution_id: Option<&str>,
        now_ms: i64,
    ) -> Result<CallbackOutcome, StoreError> {
        self.check("callback", now_ms)?;
        let mut items = self.items.lock().unwrap();
        let Some(item) = items.get_mut(id).filter(|i| i.expires_at >= now_ms / 1000) else {
            return Ok(CallbackOutcome::NotFound);
        };
        if !matches!(item.status.as_str(), "pending" | "dispatched" | "timed_out") {
            return Ok(CallbackOutcome::Duplicate);
        }
        item.status = status.as_str().to_owned();
        item.outputs = outputs.clone();
        item.last_error = error.map(str::to_owned);
        item.updated_at = crate::clock::rfc3339(now_ms);
        if let Some(x) = signal_execution_id
            && item.signal_execution_id.is_none()
        {
            item.signal_execution_id = Some(x.to_owned());
        }
        item.due_at = None;
        Ok(CallbackOutcome::Recorded)
    }

    async fn timed_out(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.check("timed_out", now_ms)?;
        let mut items = self.items.lock().unwrap();
        let Some(item) = items.get_mut(id).filter(|i| i.status == "dispatched") else {
            return Ok(false);
        };
        item.status = "timed_out".into();
        item.updated_at = crate::clock::rfc3339(now_ms);
        item.last_error = Some("no completion callback arrived before the deadline".into());
        item.due_at = None;
        Ok(true)
    }

    async fn begin_attempt(
        &self,
        id: &str,
        attempt: u32,
        lease: std::time::Duration,
        now_ms: i64,
    ) -> Result<AttemptClaim, StoreError> {
        self.check("begin_attempt", now_ms)?;
        let mut items = self.items.lock().unwrap();
        let Some(item) = items.get_mut(id) else {
            return Ok(AttemptClaim::Done);
        };
        let open = item.status == "pending";
        let unfinished = item.finished_attempt.is_none_or(|f| f < attempt);
        let free = item.running_attempt.is_none_or(|r| r < attempt)
            || (item.running_attempt == Some(attempt)
                && item.running_until.is_some_and(|u| u < now_ms));
        if open && unfinished && free {
            item.running_attempt = Some(attempt);
            item.running_until = Some(now_ms + millis(lease));
            return Ok(AttemptClaim::Started);
        }
        Ok(refused(
            item.finished_attempt,
            item.running_attempt,
            attempt,
            open,
        ))
    }

    async fn revive(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.check("revive", now_ms)?;
        let mut items = self.items.lock().unwrap();
        let Some(item) = items
            .get_mut(id)
            .filter(|i| matches!(i.status.as_str(), "dead_lettered" | "pending"))
        else {
            return Ok(false);
        };
        item.status = "pending".into();
        item.updated_at = crate::clock::rfc3339(now_ms);
        item.running_attempt = None;
        item.running_until = None;
        item.finished_attempt = None;
        Ok(true)
    }

    async fn take_over(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.check("take_over", now_ms)?;
        let mut items = self.items.lock().unwrap();
        let Some(item) = items.get_mut(id).filter(|i| {
            i.status == "pending"
                && i.response.is_none()
                && i.in_progress_expires_at.is_some_and(|u| u < now_ms)
        }) else {
            return Ok(false);
        };
        item.in_progress_expires_at = Some(now_ms + millis(CLAIM));
        item.updated_at = crate::clock::rfc3339(now_ms);
        Ok(true)
    }

    async fn begin_run(
        &self,
        job_id: &str,
        attempt: u32,
        lease: std::time::Duration,
        now_ms: i64,
    ) -> Result<AttemptClaim, StoreError> {
        self.check("begin_run", now_ms)?;
        let mut runs = self.runs.lock().unwrap();
        let claimable = match runs.get(job_id) {
            None => true,
            Some(r) if r.expires_at < now_ms / 1000 => true,
            // A run finished without a claim (its claim failed) has no running attempt.
            Some(r) => {
                r.finished_attempt.is_none_or(|f| f < attempt)
                    && (r.running_attempt.is_none_or(|a| a < attempt)
                        || (r.running_attempt == Some(attempt)
                            && r.running_until.is_some_and(|u| u < now_ms)))
            }
        };
        let run = runs.entry(job_id.to_owned()).or_default();
        if !claimable {
            return Ok(refused(
                run.finished_attempt,
                run.running_attempt,
                attempt,
                true,
            ));
        }
        run.running_attempt = Some(attempt);
        run.running_until = Some(now_ms + millis(lease));
        run.expires_at = record_expiry(now_ms);
        Ok(AttemptClaim::Started)
    }

    async fn finish_run(&self, job_id: &str, attempt: u32, now_ms: i64) -> Result<(), StoreError> {
        self.check("finish_run", now_ms)?;
        let mut runs = self.runs.lock().unwrap();
        let run = runs.entry(job_id.to_owned()).or_default();
        // A later attempt already finished: nothing to record.
        if run.finished_attempt.is_none_or(|f| f < attempt) {
            run.finished_attempt = Some(attempt);
            run.expires_at = record_expiry(now_ms);
        }
        Ok(())
    }

    async fn forget(&self, id: &str) -> Result<(), StoreError> {
        self.check("forget", 0)?;
        let mut items = self.items.lock().unwrap();
        if items.get(id).is_some_and(|i| i.status == "pending") {
            items.remove(id);
        }
        Ok(())
    }
}

/// CXone that records every signal, context update and action it is sent. The errors
/// `fail_next` queues are given first, one a call; `histories` is what its execution
/// history says of each signal execution id (none for an id it does not hold). Accepted
/// signals get the execution id `sx-{n}`, `n` counting every signal sent.
#[derive(Default)]
pub struct FakeCxone {
    pub signals: Mutex<Vec<SignalRequest>>,
    pub contexts: Mutex<Vec<Value>>,
    pub failing: Mutex<VecDeque<CxoneError>>,
    pub histories: Mutex<HashMap<String, Result<ExecutionHistory, CxoneError>>>,
}

impl FakeCxone {
    pub fn fail_next(&self, errors: impl IntoIterator<Item = CxoneError>) {
        self.failing.lock().unwrap().extend(errors);
    }

    pub fn history(&self, signal_execution_id: &str, answer: Result<ExecutionHistory, CxoneError>) {
        self.histories
            .lock()
            .unwrap()
            .insert(signal_execution_id.to_owned(), answer);
    }

    pub fn signals(&self) -> Vec<SignalRequest> {
        self.signals.lock().unwrap().clone()
    }

    pub fn contexts(&self) -> Vec<Value> {
        self.contexts.lock().unwrap().clone()
    }

    fn next_failure(&self) -> Option<CxoneError> {
        self.failing.lock().unwrap().pop_front()
    }
}

impl CxoneSignals for FakeCxone {
    async fn execution(
        &self,
        signal_execution_id: &str,
    ) -> Result<Option<ExecutionHistory>, CxoneError> {
        self.histories
            .lock()
            .unwrap()
            .get(signal_execution_id)
            .cloned()
            .transpose()
    }

    async fn signal(&self, request: &SignalRequest) -> Result<SignalAccepted, CxoneError> {
        let n = {
            let mut signals = self.signals.lock().unwrap();
            signals.push(request.clone());
            signals.len()
        };
        if let Some(e) = self.next_failure() {
            return Err(e);
        }
        Ok(SignalAccepted {
            signal_execution_id: Some(format!("sx-{n}")),
        })
    }
}

impl ContextSink for FakeCxone {
    async fn update_context(
        &self,
        interaction_id: &str,
        attributes: &serde_json::Map<String, Value>,
    ) -> Result<(), CxoneError> {
        self.contexts
            .lock()
            .unwrap()
            .push(json!({"context": interaction_id, "attributes": attributes}));
        self.next_failure().map_or(Ok(()), Err)
    }

    async fn send_action(
        &self,
        contact_id: &str,
        action: &str,
        attributes: &serde_json::Map<String, Value>,
    ) -> Result<(), CxoneError> {
        self.contexts
            .lock()
            .unwrap()
            .push(json!({"action": action, "contact": contact_id, "attributes": attributes}));
        self.next_failure().map_or(Ok(()), Err)
    }
}

// The intent router's ports: session memory and the sink of routed intents.

use std::time::Duration;

use serde_json::Map;

use crate::error::{ApiError, ErrorCode};
use crate::intents::{ContactId, IntentSink, SessionMemory};
use crate::jobs::Job;

/// Session memory in a map; `down` makes every call fail.
#[derive(Default)]
pub struct FakeSessions {
    pub pairs: Mutex<HashMap<String, ContactId>>,
    pub down: AtomicBool,
}

impl SessionMemory for FakeSessions {
    async fn recall(&self, session: &str, _: i64) -> Result<Option<ContactId>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError("down".into()));
        }
        Ok(self.pairs.lock().unwrap().get(session).map(|c| ContactId {
            id: c.id.clone(),
            source: "session".into(),
        }))
    }
    async fn remember(&self, session: &str, c: &ContactId, _: i64) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError("down".into()));
        }
        self.pairs.lock().unwrap().insert(session.into(), c.clone());
        Ok(())
    }
}

/// Records what reached "CXone"; `fail` is the error every call returns, `stall` makes
/// every call hang.
#[derive(Default)]
pub struct FakeSink {
    pub calls: Mutex<Vec<Value>>,
    pub queued: Mutex<Vec<Job>>,
    pub fail: Mutex<Option<fn() -> CxoneError>>,
    pub stall: AtomicBool,
}

impl FakeSink {
    async fn call(&self, record: Value) -> Result<(), CxoneError> {
        if self.stall.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if let Some(fail) = *self.fail.lock().unwrap() {
            return Err(fail());
        }
        self.calls.lock().unwrap().push(record);
        Ok(())
    }
    pub fn calls(&self) -> Vec<Value> {
        self.calls.lock().unwrap().clone()
    }
}

impl ContextSink for FakeSink {
    async fn update_context(&self, id: &str, a: &Map<String, Value>) -> Result<(), CxoneError> {
        self.call(json!({"context": id, "attributes": a})).await
    }
    async fn send_action(
        &self,
        id: &str,
        action: &str,
        a: &Map<String, Value>,
    ) -> Result<(), CxoneError> {
        self.call(json!({"action": action, "contact": id, "attributes": a}))
            .await
    }
}

impl IntentSink for FakeSink {
    type Cxone = Self;
    fn cxone(&self) -> &Self {
        self
    }
    async fn trigger(&self, s: &str, _: &str, body: &Value, _: i64) -> Result<Value, ApiError> {
        self.call(json!({"signal": s, "body": body}))
            .await
            .map(|()| json!({"status": "dispatched"}))
            .map_err(|e| ApiError::new(ErrorCode::CxoneRefused, e.to_string()))
    }
    async fn retry_later(&self, job: &Job, _: Option<Duration>) -> Result<(), QueueError> {
        self.queued.lock().unwrap().push(job.clone());
        Ok(())
    }
}

// The token cache's ports.

use secrecy::SecretString;

use crate::cxone::token::{AccessToken, TokenFetch};

/// A token endpoint that counts what it is asked; each token is `token-{n}`, valid for an
/// hour. `down` makes it fail.
#[derive(Default)]
pub struct FakeTokenFetch {
    pub fetches: AtomicUsize,
    pub down: AtomicBool,
}

impl TokenFetch for FakeTokenFetch {
    async fn fetch(&self) -> Result<AccessToken, CxoneError> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        // Let concurrent callers reach the cache while this fetch is under way.
        tokio::task::yield_now().await;
        if self.down.load(Ordering::SeqCst) {
            return Err(CxoneError::Unavailable("the token endpoint is down".into()));
        }
        let now = crate::clock::now_ms();
        Ok(AccessToken {
            value: SecretString::from(format!("token-{n}")),
            expires_at_ms: now + 3_600_000,
            refresh_at_ms: now + 3_540_000,
            api_base: None,
        })
    }
}
