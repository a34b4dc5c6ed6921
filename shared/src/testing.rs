//! In-memory fakes of the ports, for the services' unit tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::idempotency::{Claim, IdempotencyStore, ReplayCheck, ReplayGuard, StoreError};
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

/// Queues that keep what they were sent; `down` makes every send fail, and `refusing`
/// names the queues that refuse them.
#[derive(Default)]
pub struct FakeQueue {
    pub sent: Mutex<Vec<(String, OutboundMessage)>>,
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
