//! Runs one delivery job: one routed event to one named target, once.
//!
//! Each (delivery, target) pair is a job of its own, claimed on a `run#{jobId}` record so
//! that a copy of it never runs twice. Before sending, the target's circuit breaker is
//! asked: a paused target's deliveries are parked (sent back to the queue without spending
//! an attempt) until the cool-down ends, when one of them is let through as the probe.
//! Every attempt is written to the delivery log.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Breaker, TargetSpec, Targets};
use crate::idempotency::StoreError;
use crate::jobs::Job;
use crate::signals::JobFailure;
use crate::signals::store::{AttemptClaim, ExecutionStore};

/// What the breaker lets a delivery do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Send,
    /// The target is paused and its cool-down is over: this delivery is the one probe.
    Probe,
    /// The target is paused: come back at `until_ms`.
    Park {
        until_ms: i64,
    },
}

/// A target's breaker state, as `cxbridge targets list` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetState {
    pub name: String,
    /// `active` or `paused`.
    pub state: String,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// Paused by an operator: no probe until resumed by hand.
    pub manual: bool,
    pub paused_until_ms: Option<i64>,
}

/// One attempt, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub delivery_id: String,
    pub target: String,
    pub attempt: u32,
    /// `delivered`, `failed` or `parked`.
    pub status: String,
    /// The target's HTTP status, when it answered.
    pub http_status: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub at_ms: i64,
}

/// Port: breaker states and the delivery log.
pub trait TargetStore: Send + Sync {
    /// Whether a delivery may go now. A target paused by hand parks for its cool-down; one
    /// paused by its breaker lets one probe through (holding the turn for `probe_lease`)
    /// once the cool-down is over.
    fn admit(
        &self,
        target: &str,
        breaker: Breaker,
        now_ms: i64,
        probe_lease: Duration,
    ) -> impl Future<Output = Result<Admission, StoreError>> + Send;
    /// A delivery succeeded: failures reset; a probe (or any success of a target paused
    /// automatically) resumes it.
    fn succeeded(
        &self,
        target: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A delivery failed: one more consecutive failure; at the breaker's threshold, or
    /// when the probe failed, the target is paused for the cool-down. Returns whether
    /// this failure paused it.
    fn failed(
        &self,
        target: &str,
        error: &str,
        breaker: Breaker,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn set_paused(
        &self,
        target: &str,
        paused: bool,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn state(&self, target: &str) -> impl Future<Output = Result<TargetState, StoreError>> + Send;
    fn log(&self, entry: &LogEntry) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The log of one target since `since_ms`, oldest first.
    fn history(
        &self,
        target: &str,
        since_ms: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<LogEntry>, StoreError>> + Send;
}

/// Port: the run-once claim of a job attempt.
pub trait RunGuard: Send + Sync {
    fn begin(
        &self,
        job_id: &str,
        run: u32,
        lease: Duration,
        now_ms: i64,
    ) -> impl Future<Output = Result<AttemptClaim, StoreError>> + Send;
    fn finish(
        &self,
        job_id: &str,
        run: u32,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<T: ExecutionStore> RunGuard for T {
    fn begin(
        &self,
        job_id: &str,
        run: u32,
        lease: Duration,
        now_ms: i64,
    ) -> impl Future<Output = Result<AttemptClaim, StoreError>> + Send {
        self.begin_run(job_id, run, lease, now_ms)
    }

    fn finish(
        &self,
        job_id: &str,
        run: u32,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.finish_run(job_id, run, now_ms)
    }
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub retryable: bool,
    pub http_status: Option<u16>,
    pub reason: String,
    pub retry_after: Option<Duration>,
}

/// What a target answered to a send that worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub http_status: Option<u16>,
    /// The first bytes of the answer, for `cxbridge targets test`.
    pub excerpt: String,
}

/// Port: sends one event to one target.
pub trait TargetSender: Send + Sync {
    fn send(
        &self,
        spec: &TargetSpec,
        message_id: &str,
        event: &Value,
        now_ms: i64,
    ) -> impl Future<Output = Result<Sent, SendError>> + Send;
}

/// The payload of a delivery job.
pub struct Delivery<'a> {
    pub target: &'a str,
    pub delivery_id: &'a str,
    pub event: &'a Value,
    /// Times it was parked so far: they count toward the run number, not the attempts.
    pub parks: u32,
}

impl<'a> Delivery<'a> {
    pub fn of(job: &'a Job) -> Option<Self> {
        let p = &job.payload;
        Some(Self {
            target: p.get("target")?.as_str()?,
            delivery_id: p.get("deliveryId").and_then(Value::as_str).unwrap_or(""),
            event: p.get("event")?,
            parks: p
                .get("parks")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
        })
    }
}

pub struct Deliverer<S, T, R> {
    pub targets: Arc<Targets>,
    pub sender: S,
    pub store: T,
    pub runs: R,
    /// How long a run holds its claim (and a probe its turn).
    pub lease: Duration,
    /// The longest a parked delivery waits before it looks again.
    pub park: Duration,
    /// The function that names the metrics.
    pub function: &'static str,
}

impl<S: TargetSender, T: TargetStore, R: RunGuard> Deliverer<S, T, R> {
    /// The target a delivery job is for, when it is still declared.
    pub fn spec(&self, job: &Job) -> Option<&TargetSpec> {
        self.targets.get(Delivery::of(job)?.target)
    }

    /// Runs a delivery job's next attempt; see the module's documentation.
    pub async fn run(&self, job: &Job, now_ms: i64) -> Result<(), JobFailure> {
        let Some(delivery) = Delivery::of(job) else {
            return Err(JobFailure::permanent(
                "the delivery job has no target or event",
            ));
        };
        let Some(spec) = self.targets.get(delivery.target) else {
            return Err(JobFailure::permanent(format!(
                "target {} is not configured",
                delivery.target
            )));
        };
        let run = Self::run_number(job);
        let claim = self.runs.begin(&job.id, run, self.lease, now_ms).await;
        match claim {
            Ok(AttemptClaim::Started) => {}
            Ok(AttemptClaim::Done) => return Ok(()),
            Ok(AttemptClaim::Held) => {
                return Err(JobFailure {
                    hold: true,
                    ..JobFailure::retry("another run holds this delivery", None)
                });
            }
            Err(e) => return Err(JobFailure::retry(e.to_string(), None)),
        }
        let outcome = self.attempt(job, &delivery, spec, now_ms).await;
        // A delivery that went is settled now. One that failed or was parked is settled by
        // the drainer once its next copy (or its DLQ copy) is safely sent: if that send
        // fails, this copy comes back and runs again instead of being lost.
        if outcome.is_ok() {
            self.settle(job, now_ms).await;
        }
        outcome
    }

    /// The run number of a delivery job's next run: a retry spends an attempt, a parked
    /// copy a park, so every copy that may run has a higher one than the last.
    pub fn run_number(job: &Job) -> u32 {
        job.attempt + Delivery::of(job).map_or(0, |d| d.parks) + 1
    }

    /// Records this copy's run as finished, so that no copy of it runs again.
    pub async fn settle(&self, job: &Job, now_ms: i64) {
        let run = Self::run_number(job);
        if let Err(e) = self.runs.finish(&job.id, run, now_ms).await {
            tracing::warn!(job_id = %job.id, run, error = %e, "could not record the finished run");
        }
    }

    async fn attempt(
        &self,
        job: &Job,
        delivery: &Delivery<'_>,
        spec: &TargetSpec,
        now_ms: i64,
    ) -> Result<(), JobFailure> {
        let name = spec.name.as_str();
        let admission = self
            .store
            .admit(name, spec.breaker, now_ms, self.lease)
            .await
            .map_err(|e| JobFailure::retry(format!("target state: {e}"), None))?;
        if let Admission::Park { until_ms } = admission {
            let wait = Duration::from_millis(u64::try_from(until_ms - now_ms).unwrap_or(0)).clamp(
                Duration::from_secs(1),
                self.park.max(Duration::from_secs(1)),
            );
            self.log(
                job,
                delivery,
                "parked",
                None,
                0,
                Some("the target is paused"),
                now_ms,
            )
            .await;
            // Each parked delivery reports the pause again, so the alarm stays raised while
            // deliveries wait, not only in the minute the breaker tripped.
            crate::telemetry::metric(self.function, "TargetsPaused", 1.0);
            return Err(JobFailure::park(wait));
        }
        let started = Instant::now();
        let sent = self
            .sender
            .send(
                spec,
                &super::sign::message_id(&job.id),
                delivery.event,
                now_ms,
            )
            .await;
        let latency = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let metric = |name: &str, value: f64| {
            crate::telemetry::target_metric(self.function, &spec.name, name, value);
        };
        match sent {
            Ok(answer) => {
                self.log(
                    job,
                    delivery,
                    "delivered",
                    answer.http_status,
                    latency,
                    None,
                    now_ms,
                )
                .await;
                if let Err(e) = self.store.succeeded(name, now_ms).await {
                    tracing::warn!(target_name = name, error = %e, "could not record the success");
                }
                metric("Delivered", 1.0);
                metric(
                    "DeliveryLatency",
                    f64::from(u32::try_from(latency).unwrap_or(u32::MAX)),
                );
                Ok(())
            }
            Err(err) => {
                self.log(
                    job,
                    delivery,
                    "failed",
                    err.http_status,
                    latency,
                    Some(&err.reason),
                    now_ms,
                )
                .await;
                metric("Failed", 1.0);
                match self
                    .store
                    .failed(name, &err.reason, spec.breaker, now_ms)
                    .await
                {
                    Ok(true) => {
                        tracing::warn!(target_name = name, reason = %err.reason, "target paused by its circuit breaker");
                        metric("Paused", 1.0);
                        crate::telemetry::metric(self.function, "TargetsPaused", 1.0);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(target_name = name, error = %e, "could not record the failure");
                    }
                }
                let reason = format!("target {name}: {}", err.reason);
                if err.retryable {
                    Err(JobFailure::retry(reason, err.retry_after))
                } else {
                    Err(JobFailure::permanent(reason))
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn log(
        &self,
        job: &Job,
        delivery: &Delivery<'_>,
        status: &str,
        http_status: Option<u16>,
        latency_ms: u64,
        error: Option<&str>,
        now_ms: i64,
    ) {
        let entry = LogEntry {
            delivery_id: delivery.delivery_id.to_owned(),
            target: delivery.target.to_owned(),
            attempt: job.attempt + 1,
            status: status.to_owned(),
            http_status,
            latency_ms,
            error: error.map(|e| e.chars().take(512).collect()),
            at_ms: now_ms,
        };
        if let Err(e) = self.store.log(&entry).await {
            tracing::warn!(job_id = %job.id, error = %e, "could not write the delivery log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeRuns, FakeSender, FakeTargetStore};
    use serde_json::json;

    fn deliverer(failures: u32) -> Deliverer<FakeSender, FakeTargetStore, FakeRuns> {
        let targets = super::super::parse_targets(&[json!({
            "name": "audit", "type": "https", "url": "https://audit.example.com/",
            "retry": {"maxRetries": 3}, "breaker": {"failures": failures, "cooldownSecs": 10}
        })])
        .unwrap();
        Deliverer {
            targets: Arc::new(targets),
            sender: FakeSender::default(),
            store: FakeTargetStore::default(),
            runs: FakeRuns::default(),
            lease: Duration::from_secs(15),
            park: Duration::from_secs(60),
            function: "test",
        }
    }

    fn job(id: &str, attempt: u32, parks: u32) -> Job {
        Job {
            version: 1,
            id: format!("{id}@audit"),
            kind: crate::jobs::JobKind::Delivery,
            correlation_id: format!("{id}@audit"),
            attempt,
            first_attempt_at: "2026-12-01T00:00:00Z".into(),
            last_attempt_at: None,
            payload: json!({"target": "audit", "deliveryId": id, "event": {"eventType": "x"}, "parks": parks}),
            last_error: None,
            redriven: false,
        }
    }

    #[tokio::test]
    async fn a_delivery_is_sent_once_and_logged() {
        let d = deliverer(5);
        d.run(&job("d1", 0, 0), 1_000).await.unwrap();
        d.run(&job("d1", 0, 0), 2_000).await.unwrap();
        assert_eq!(
            d.sender.sent.lock().unwrap().len(),
            1,
            "a copy does not send again"
        );
        let log = d.store.entries.lock().unwrap().clone();
        assert_eq!(log.len(), 1);
        assert_eq!((log[0].status.as_str(), log[0].attempt), ("delivered", 1));
    }

    #[tokio::test]
    async fn a_retryable_failure_counts_toward_the_breaker_and_is_retried() {
        let d = deliverer(2);
        d.sender.fail_next(2, true);
        let first = d.run(&job("d1", 0, 0), 1_000).await.unwrap_err();
        // Not settled: were its retry never sent, this copy would run again.
        assert_eq!(d.runs.runs.lock().unwrap()["d1@audit"].1, None);
        assert!(first.retryable && first.park.is_none());
        assert!(
            first.reason.starts_with("target audit: "),
            "{}",
            first.reason
        );
        d.run(&job("d2", 0, 0), 1_000).await.unwrap_err();
        let state = d.store.state("audit").await.unwrap();
        assert_eq!(state.state, "paused");
        // Paused: the next delivery is parked without being sent, its attempt unspent.
        let parked = d.run(&job("d3", 0, 0), 2_000).await.unwrap_err();
        assert_eq!(parked.park, Some(Duration::from_secs(9)));
        assert_eq!(d.sender.sent.lock().unwrap().len(), 2);
        // After the cool-down one probe goes; it succeeds and the target is active.
        d.run(&job("d3", 0, 1), 11_001).await.unwrap();
        assert_eq!(d.store.state("audit").await.unwrap().state, "active");
        let statuses: Vec<String> = d
            .store
            .entries
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.status.clone())
            .collect();
        assert_eq!(statuses, ["failed", "failed", "parked", "delivered"]);
    }

    #[tokio::test]
    async fn a_permanent_failure_is_not_retried_and_an_unknown_target_is_permanent() {
        let d = deliverer(5);
        d.sender.fail_next(1, false);
        let e = d.run(&job("d1", 0, 0), 1_000).await.unwrap_err();
        assert!(!e.retryable);
        let mut gone = job("d2", 0, 0);
        gone.payload["target"] = json!("crm");
        let e = d.run(&gone, 1_000).await.unwrap_err();
        assert!(!e.retryable && e.reason.contains("crm"));
    }

    #[tokio::test]
    async fn a_target_paused_by_hand_parks_everything_until_resumed() {
        let d = deliverer(5);
        d.store.set_paused("audit", true, 0).await.unwrap();
        let e = d.run(&job("d1", 0, 0), 100_000).await.unwrap_err();
        assert!(e.park.is_some(), "no probe while paused by hand");
        d.store.set_paused("audit", false, 0).await.unwrap();
        d.run(&job("d1", 0, 1), 100_001).await.unwrap();
        assert_eq!(d.sender.sent.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_run_held_elsewhere_is_left_to_the_queue() {
        let d = deliverer(5);
        d.runs.hold.store(true, std::sync::atomic::Ordering::SeqCst);
        let e = d.run(&job("d1", 0, 0), 1_000).await.unwrap_err();
        assert!(e.hold);
        assert!(d.sender.sent.lock().unwrap().is_empty());
    }
}
