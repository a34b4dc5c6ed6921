//! The retry-drainer's service: runs each job from `jobs` once, and decides what replaces a
//! copy that failed (ARCHITECTURE.md, Job envelope).
//!
//! A retryable failure is sent back to `jobs` as attempt + 1 with a backoff delay, and the
//! message is reported done; when attempts run out, or on a permanent failure, the job goes
//! to the DLQ. Waiting by re-sending with `DelaySeconds` (rather than
//! `ChangeMessageVisibility`) keeps the attempt count, the last error and the attempt times
//! in the job itself, where the DLQ and the operator see them, and works the same on every
//! queue. A crash between the send and the delete leaves two copies; the run record lets
//! only one of them run.

use std::future::Future;
use std::time::Duration;

use crate::jobs::{Job, JobKind, RetryPolicy};
use crate::queue::{MessageQueue, OutboundMessage};
use crate::signals::JobFailure;
use crate::targets::TargetRetry;

/// What runs the jobs: the dispatcher's and the deliverer's work behind one port.
pub trait JobRunner: Send + Sync {
    /// Runs one copy of a job.
    fn run(&self, job: &Job, now_ms: i64) -> impl Future<Output = Result<(), JobFailure>> + Send;
    /// Records a failed copy's run as finished, once what replaces it is sent.
    fn settle(&self, job: &Job, now_ms: i64) -> impl Future<Output = ()> + Send;
    /// A delivery job's target and its retry policy.
    fn target_retry(&self, job: &Job) -> Option<(String, TargetRetry)>;
    /// Marks the execution behind a dead-lettered job so.
    fn dead_lettered(
        &self,
        job: &Job,
        reason: &str,
        now_ms: i64,
    ) -> impl Future<Output = ()> + Send;
}

/// What replaces a copy that failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Back to `jobs` as its next attempt, after `delay_secs`.
    Retry {
        job: Job,
        delay_secs: i32,
        dedup: String,
        /// The delivery target whose policy chose the delay.
        target: Option<String>,
    },
    /// Back to `jobs` after `delay_secs`, its attempts unspent (its target is paused).
    Park {
        job: Job,
        delay_secs: i32,
        dedup: String,
    },
    /// To the DLQ with `reason`; `spent` when it gave up on a retryable failure.
    DeadLetter {
        job: Job,
        reason: String,
        spent: bool,
    },
}

/// The decision for a failed copy of `job`, from its failure, the drainer's policy or its
/// target's, and a jitter in [0, 1]. Pure: the caller sends what it says.
pub fn next(
    mut job: Job,
    failure: &JobFailure,
    policy: RetryPolicy,
    target: Option<(String, TargetRetry)>,
    now_ms: i64,
    jitter: f64,
) -> Next {
    if let Some(wait) = failure.park {
        let parks = job
            .payload
            .get("parks")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
            + 1;
        if let Some(p) = job.payload.as_object_mut() {
            p.insert("parks".to_owned(), parks.into());
        }
        let dedup = format!("{}:park:{parks}", job.id);
        return Next::Park {
            job,
            delay_secs: seconds(wait, 1),
            dedup,
        };
    }
    job.attempt += 1;
    job.last_attempt_at = Some(crate::clock::rfc3339(now_ms));
    job.last_error = Some(failure.reason.clone());
    job.redriven = false;
    // A reconcile job waits for a callback; its checks are not attempts.
    let counted = job.kind != JobKind::Reconcile;
    let may_retry = match &target {
        Some((_, retry)) => retry.may_retry(job.attempt),
        None => !counted || policy.may_retry(job.attempt),
    };
    if failure.retryable && may_retry {
        let wait = match &target {
            Some((_, retry)) => retry.delay_after(job.attempt, failure.retry_after, jitter),
            None => policy.delay(job.attempt, failure.retry_after, jitter),
        };
        let dedup = format!("{}:{}", job.id, job.attempt);
        return Next::Retry {
            job,
            delay_secs: seconds(wait, 0),
            dedup,
            target: target.map(|(name, _)| name),
        };
    }
    let reason = if failure.retryable {
        format!("gave up after {} attempts: {}", job.attempt, failure.reason)
    } else {
        failure.reason.clone()
    };
    Next::DeadLetter {
        job,
        reason,
        spent: failure.retryable,
    }
}

/// Whole seconds for `DelaySeconds`, rounded up, within SQS's 0–900.
fn seconds(wait: Duration, least: u64) -> i32 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    i32::try_from(whole.clamp(least, 900)).unwrap_or(900)
}

/// The drainer: runs each job and sends what replaces a failed copy.
pub struct Drainer<R, Q> {
    pub runner: R,
    pub queue: Q,
    pub jobs_url: String,
    pub dlq_url: String,
    pub policy: RetryPolicy,
    /// The function's name, for metrics.
    pub function: &'static str,
}

impl<R: JobRunner, Q: MessageQueue> Drainer<R, Q> {
    /// Handles one message from `jobs`. An error leaves the message on the queue, to come
    /// back after its visibility timeout.
    pub async fn handle(
        &self,
        message_id: &str,
        body: Option<&str>,
        now_ms: i64,
        jitter: f64,
    ) -> Result<(), String> {
        let job: Job = match body.map(serde_json::from_str) {
            Some(Ok(job)) => job,
            Some(Err(e)) => {
                let reason = format!("not a job: {e}");
                let raw = body.unwrap_or_default().to_owned();
                return self.dead_letter(message_id, raw, None, &reason).await;
            }
            None => {
                return self
                    .dead_letter(message_id, String::new(), None, "the message has no body")
                    .await;
            }
        };
        let failure = match self.runner.run(&job, now_ms).await {
            Ok(()) => return Ok(()),
            Err(f) if f.hold => return Err(f.reason),
            Err(f) => f,
        };
        let target = if job.kind == JobKind::Delivery {
            self.runner.target_retry(&job)
        } else {
            None
        };
        // This copy is settled only once what replaces it (its retry, its parked copy or
        // its DLQ copy) is sent: if that send fails, the message comes back and runs again.
        let decision = next(job.clone(), &failure, self.policy, target, now_ms, jitter);
        self.replace(message_id, decision, now_ms).await?;
        if matches!(job.kind, JobKind::Delivery | JobKind::Context) {
            self.runner.settle(&job, now_ms).await;
        }
        Ok(())
    }

    async fn replace(&self, message_id: &str, decision: Next, now_ms: i64) -> Result<(), String> {
        match decision {
            Next::Retry {
                job,
                delay_secs,
                dedup,
                target,
            } => {
                if let Some(name) = &target {
                    crate::telemetry::target_metric(self.function, name, "Retried", 1.0);
                }
                tracing::info!(correlation_id = %job.correlation_id, attempt = job.attempt, delay_s = delay_secs, reason = ?job.last_error, "job will be retried");
                self.send(&self.jobs_url, &job, "retry", delay_secs, dedup)
                    .await
            }
            Next::Park {
                job,
                delay_secs,
                dedup,
            } => {
                tracing::info!(job_id = %job.id, delay_s = delay_secs, "delivery parked: its target is paused");
                self.send(&self.jobs_url, &job, "parked", delay_secs, dedup)
                    .await
            }
            Next::DeadLetter { job, reason, spent } => {
                let body = crate::queue::sqs_json(&job);
                self.dead_letter(message_id, body, Some(&job), &reason)
                    .await?;
                if spent {
                    self.runner.dead_lettered(&job, &reason, now_ms).await;
                }
                Ok(())
            }
        }
    }

    async fn send(
        &self,
        queue: &str,
        job: &Job,
        kind: &str,
        delay_secs: i32,
        dedup: String,
    ) -> Result<(), String> {
        let message = OutboundMessage {
            body: crate::queue::sqs_json(job),
            attributes: vec![("kind".to_owned(), kind.to_owned())],
            group_id: dedup.clone(),
            dedup_id: dedup,
            delay_seconds: Some(delay_secs),
        };
        self.queue
            .send_all(queue, std::slice::from_ref(&message))
            .await
            .map_err(|e| e.to_string())
    }

    /// Moves a message to the DLQ with its reason, and for a job its attempts, attempt
    /// times and target; and says so in the log and in a metric.
    async fn dead_letter(
        &self,
        message_id: &str,
        body: String,
        job: Option<&Job>,
        reason: &str,
    ) -> Result<(), String> {
        let mut attributes = match job {
            Some(job) => vec![
                ("attempts".to_owned(), job.attempt.to_string()),
                ("firstAttemptAt".to_owned(), job.first_attempt_at.clone()),
                (
                    "lastAttemptAt".to_owned(),
                    job.last_attempt_at.clone().unwrap_or_default(),
                ),
            ],
            None => Vec::new(),
        };
        if let Some(delivery) = job.and_then(crate::targets::deliver::Delivery::of) {
            attributes.push(("target".to_owned(), delivery.target.to_owned()));
        }
        attributes.push((
            "deadLetterReason".to_owned(),
            reason.chars().take(256).collect(),
        ));
        attributes.retain(|(_, v)| !v.is_empty());
        let message = OutboundMessage {
            body,
            attributes,
            dedup_id: message_id.to_owned(),
            group_id: message_id.to_owned(),
            delay_seconds: None,
        };
        self.queue
            .send_all(&self.dlq_url, std::slice::from_ref(&message))
            .await
            .map_err(|e| format!("could not dead-letter the job ({reason}): {e}"))?;
        tracing::warn!(message_id, correlation_id = ?job.map(|j| &j.correlation_id), attempts = ?job.map(|j| j.attempt), %reason, "job dead-lettered");
        crate::telemetry::metric(self.function, "JobsDeadLettered", 1.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::Backoff;
    use crate::testing::FakeQueue;
    use serde_json::json;
    use std::sync::Mutex;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        base: Duration::from_secs(2),
        cap: Duration::from_secs(60),
    };
    const NOW: i64 = 1_764_633_600_000;

    fn job(kind: JobKind, attempt: u32) -> Job {
        Job {
            version: crate::jobs::JOB_VERSION,
            id: "j-1".into(),
            kind,
            correlation_id: "c-1".into(),
            attempt,
            first_attempt_at: "2025-12-02T00:00:00Z".into(),
            last_attempt_at: None,
            payload: json!({"target": "audit", "deliveryId": "d-1", "event": {}}),
            last_error: None,
            redriven: true,
        }
    }

    fn audit(max_retries: u32, backoff: Backoff) -> Option<(String, TargetRetry)> {
        Some((
            "audit".to_owned(),
            TargetRetry {
                max_retries,
                backoff,
                delay: Duration::from_secs(3),
            },
        ))
    }

    fn retry() -> JobFailure {
        JobFailure::retry("CXone answered 503", None)
    }

    /// (delay in seconds, dedup id) of a retry, or None.
    fn retried(next: &Next) -> Option<(i32, &str, u32)> {
        match next {
            Next::Retry {
                job,
                delay_secs,
                dedup,
                ..
            } => Some((*delay_secs, dedup.as_str(), job.attempt)),
            _ => None,
        }
    }

    #[test]
    fn the_drainer_policy_spaces_retries_and_gives_up_after_its_attempts() {
        // (attempts made before, jitter) → (delay, attempt), or None for dead-lettered
        type Case = (u32, f64, Option<(i32, u32)>);
        let cases: [Case; 5] = [
            (0, 1.0, Some((2, 1))),
            (1, 1.0, Some((4, 2))),
            (2, 1.0, Some((8, 3))),
            (2, 0.0, Some((0, 3))),
            (3, 1.0, None),
        ];
        for (made, jitter, expected) in cases {
            let next = next(
                job(JobKind::Signal, made),
                &retry(),
                POLICY,
                None,
                NOW,
                jitter,
            );
            let got = retried(&next).map(|(d, _, a)| (d, a));
            assert_eq!(got, expected, "after {made} attempts, jitter {jitter}");
            if expected.is_none() {
                assert_eq!(
                    next,
                    Next::DeadLetter {
                        job: Job {
                            attempt: 4,
                            last_attempt_at: Some(crate::clock::rfc3339(NOW)),
                            last_error: Some("CXone answered 503".into()),
                            redriven: false,
                            ..job(JobKind::Signal, 3)
                        },
                        reason: "gave up after 4 attempts: CXone answered 503".into(),
                        spent: true,
                    }
                );
            }
        }
    }

    #[test]
    fn a_retry_carries_its_attempt_time_error_and_a_dedup_id_per_attempt() {
        let Next::Retry { job, dedup, .. } =
            next(job(JobKind::Signal, 1), &retry(), POLICY, None, NOW, 0.5)
        else {
            panic!("not a retry");
        };
        assert_eq!(dedup, "j-1:2");
        assert_eq!(job.attempt, 2);
        assert_eq!(job.last_error.as_deref(), Some("CXone answered 503"));
        assert_eq!(job.last_attempt_at, Some(crate::clock::rfc3339(NOW)));
        assert!(
            !job.redriven,
            "a redriven job's next copy is an ordinary retry"
        );
    }

    #[test]
    fn retry_after_is_the_least_wait() {
        let failure = JobFailure::retry("429", Some(Duration::from_millis(7_200)));
        let next = next(job(JobKind::Signal, 0), &failure, POLICY, None, NOW, 0.0);
        assert_eq!(retried(&next).map(|r| r.0), Some(8), "7.2 s rounds up");
    }

    #[test]
    fn a_permanent_failure_is_dead_lettered_at_once_with_its_reason() {
        let failure = JobFailure::permanent("CXone answered 404");
        match next(job(JobKind::Signal, 0), &failure, POLICY, None, NOW, 1.0) {
            Next::DeadLetter { reason, spent, job } => {
                assert_eq!(reason, "CXone answered 404");
                assert!(!spent);
                assert_eq!(job.attempt, 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reconcile_job_is_checked_again_however_many_times_it_waited() {
        let next = next(
            job(JobKind::Reconcile, 40),
            &retry(),
            POLICY,
            None,
            NOW,
            1.0,
        );
        assert_eq!(retried(&next).map(|r| r.2), Some(41));
        let permanent = JobFailure::permanent("no such execution");
        assert!(matches!(
            super::next(
                job(JobKind::Reconcile, 40),
                &permanent,
                POLICY,
                None,
                NOW,
                1.0
            ),
            Next::DeadLetter { .. }
        ));
    }

    #[test]
    fn a_delivery_follows_its_target_policy_not_the_drainer_one() {
        // (retries made, backoff) → delay, with no jitter on a fixed or linear backoff
        let cases = [
            (0, Backoff::Fixed, Some(3)),
            (3, Backoff::Fixed, Some(3)),
            (0, Backoff::Linear, Some(3)),
            (2, Backoff::Linear, Some(9)),
            (5, Backoff::Fixed, None),
        ];
        for (made, backoff, expected) in cases {
            let next = next(
                job(JobKind::Delivery, made),
                &retry(),
                POLICY,
                audit(5, backoff),
                NOW,
                1.0,
            );
            assert_eq!(retried(&next).map(|r| r.0), expected, "{made} {backoff:?}");
            if let Next::Retry { target, .. } = &next {
                assert_eq!(target.as_deref(), Some("audit"));
            }
        }
        // Six attempts in all with five retries: past the drainer's four.
        let within = next(
            job(JobKind::Delivery, 4),
            &retry(),
            POLICY,
            audit(5, Backoff::Fixed),
            NOW,
            1.0,
        );
        assert!(retried(&within).is_some());
    }

    #[test]
    fn a_target_with_no_retries_dead_letters_its_first_failure() {
        let next = next(
            job(JobKind::Delivery, 0),
            &retry(),
            POLICY,
            audit(0, Backoff::Exponential),
            NOW,
            1.0,
        );
        assert!(
            matches!(&next, Next::DeadLetter { reason, spent: true, .. } if reason == "gave up after 1 attempts: CXone answered 503"),
            "{next:?}"
        );
    }

    #[test]
    fn a_parked_delivery_keeps_its_attempts_and_counts_its_parks() {
        let failure = JobFailure::park(Duration::from_millis(1_500));
        let first = next(job(JobKind::Delivery, 2), &failure, POLICY, None, NOW, 1.0);
        let Next::Park {
            job: parked,
            delay_secs,
            dedup,
        } = first
        else {
            panic!("not parked");
        };
        assert_eq!((parked.attempt, delay_secs), (2, 2));
        assert_eq!(parked.payload["parks"], 1);
        assert_eq!(dedup, "j-1:park:1");
        let again = next(parked, &failure, POLICY, None, NOW, 1.0);
        assert!(
            matches!(&again, Next::Park { job, dedup, .. } if job.payload["parks"] == 2 && dedup == "j-1:park:2")
        );
    }

    #[test]
    fn a_wait_is_whole_seconds_within_what_sqs_takes() {
        assert_eq!(seconds(Duration::ZERO, 0), 0);
        assert_eq!(seconds(Duration::from_millis(1), 0), 1);
        assert_eq!(seconds(Duration::ZERO, 1), 1);
        assert_eq!(seconds(Duration::from_secs(3_600), 0), 900);
    }

    /// Runs every job with the next of `outcomes`, and records what it was asked.
    #[derive(Default)]
    struct FakeRunner {
        outcomes: Mutex<Vec<Result<(), JobFailure>>>,
        settled: Mutex<Vec<String>>,
        dead: Mutex<Vec<String>>,
    }

    impl FakeRunner {
        fn then(outcome: Result<(), JobFailure>) -> Self {
            Self {
                outcomes: Mutex::new(vec![outcome]),
                ..Self::default()
            }
        }
    }

    impl JobRunner for FakeRunner {
        async fn run(&self, _job: &Job, _now_ms: i64) -> Result<(), JobFailure> {
            self.outcomes.lock().unwrap().pop().unwrap_or(Ok(()))
        }
        async fn settle(&self, job: &Job, _now_ms: i64) {
            self.settled.lock().unwrap().push(job.id.clone());
        }
        fn target_retry(&self, job: &Job) -> Option<(String, TargetRetry)> {
            (job.kind == JobKind::Delivery)
                .then(|| audit(2, Backoff::Fixed))
                .flatten()
        }
        async fn dead_lettered(&self, job: &Job, reason: &str, _now_ms: i64) {
            self.dead
                .lock()
                .unwrap()
                .push(format!("{}: {reason}", job.correlation_id));
        }
    }

    fn drainer(runner: FakeRunner) -> Drainer<FakeRunner, FakeQueue> {
        Drainer {
            runner,
            queue: FakeQueue::default(),
            jobs_url: "jobs".into(),
            dlq_url: "dlq".into(),
            policy: POLICY,
            function: "test",
        }
    }

    fn body(job: &Job) -> String {
        serde_json::to_string(job).unwrap()
    }

    fn sent(d: &Drainer<FakeRunner, FakeQueue>) -> Vec<(String, crate::queue::OutboundMessage)> {
        d.queue.sent.lock().unwrap().clone()
    }

    fn attribute<'a>(m: &'a crate::queue::OutboundMessage, name: &str) -> Option<&'a str> {
        m.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn a_job_that_runs_sends_nothing() {
        let d = drainer(FakeRunner::then(Ok(())));
        let j = job(JobKind::Signal, 0);
        d.handle("m-1", Some(&body(&j)), NOW, 1.0).await.unwrap();
        assert!(sent(&d).is_empty());
        assert!(d.runner.settled.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_held_job_stays_on_the_queue_and_nothing_is_sent() {
        let held = JobFailure {
            hold: true,
            ..JobFailure::retry("another run holds it", None)
        };
        let d = drainer(FakeRunner::then(Err(held)));
        let err = d
            .handle("m-1", Some(&body(&job(JobKind::Delivery, 0))), NOW, 1.0)
            .await
            .unwrap_err();
        assert_eq!(err, "another run holds it");
        assert!(sent(&d).is_empty());
        assert!(d.runner.settled.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failed_delivery_is_sent_back_then_settled() {
        let d = drainer(FakeRunner::then(Err(retry())));
        d.handle("m-1", Some(&body(&job(JobKind::Delivery, 0))), NOW, 1.0)
            .await
            .unwrap();
        let sent = sent(&d);
        assert_eq!(sent.len(), 1);
        let (queue, message) = &sent[0];
        assert_eq!(queue, "jobs");
        assert_eq!(message.delay_seconds, Some(3), "the target's fixed 3 s");
        assert_eq!(attribute(message, "kind"), Some("retry"));
        let copy: Job = serde_json::from_str(&message.body).unwrap();
        assert_eq!(copy.attempt, 1);
        assert_eq!(*d.runner.settled.lock().unwrap(), ["j-1"]);
    }

    #[tokio::test]
    async fn a_failed_copy_is_not_settled_when_its_replacement_cannot_be_sent() {
        let d = drainer(FakeRunner::then(Err(retry())));
        d.queue
            .down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let err = d
            .handle("m-1", Some(&body(&job(JobKind::Context, 0))), NOW, 1.0)
            .await
            .unwrap_err();
        assert!(err.contains("down"), "{err}");
        assert!(d.runner.settled.lock().unwrap().is_empty(), "it runs again");
    }

    #[tokio::test]
    async fn a_spent_delivery_goes_to_the_dlq_with_its_target_and_reason() {
        let d = drainer(FakeRunner::then(Err(retry())));
        d.handle("m-9", Some(&body(&job(JobKind::Delivery, 2))), NOW, 1.0)
            .await
            .unwrap();
        let sent = sent(&d);
        assert_eq!(sent.len(), 1);
        let (queue, message) = &sent[0];
        assert_eq!(queue, "dlq");
        assert_eq!(message.dedup_id, "m-9");
        assert_eq!(attribute(message, "target"), Some("audit"));
        assert_eq!(attribute(message, "attempts"), Some("3"));
        assert_eq!(
            attribute(message, "deadLetterReason"),
            Some("gave up after 3 attempts: CXone answered 503")
        );
        assert_eq!(
            *d.runner.dead.lock().unwrap(),
            ["c-1: gave up after 3 attempts: CXone answered 503"]
        );
        assert_eq!(*d.runner.settled.lock().unwrap(), ["j-1"]);
    }

    #[tokio::test]
    async fn a_permanent_failure_is_dead_lettered_without_marking_it_spent() {
        let d = drainer(FakeRunner::then(Err(JobFailure::permanent("refused"))));
        d.handle("m-1", Some(&body(&job(JobKind::Signal, 0))), NOW, 1.0)
            .await
            .unwrap();
        let sent = sent(&d);
        assert_eq!(sent[0].0, "dlq");
        assert_eq!(attribute(&sent[0].1, "deadLetterReason"), Some("refused"));
        assert!(d.runner.dead.lock().unwrap().is_empty());
        assert!(
            d.runner.settled.lock().unwrap().is_empty(),
            "signal runs settle themselves"
        );
    }

    #[tokio::test]
    async fn a_message_that_is_not_a_job_is_dead_lettered_as_it_came() {
        let d = drainer(FakeRunner::default());
        d.handle("m-1", Some("{not json"), NOW, 1.0).await.unwrap();
        d.handle("m-2", None, NOW, 1.0).await.unwrap();
        let sent = sent(&d);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].1.body, "{not json");
        assert!(
            attribute(&sent[0].1, "deadLetterReason")
                .unwrap()
                .starts_with("not a job: ")
        );
        assert_eq!(
            attribute(&sent[1].1, "deadLetterReason"),
            Some("the message has no body")
        );
        assert!(sent.iter().all(|(q, _)| q == "dlq"));
    }

    #[tokio::test]
    async fn a_parked_delivery_goes_back_unspent() {
        let d = drainer(FakeRunner::then(Err(JobFailure::park(
            Duration::from_secs(2),
        ))));
        d.handle("m-1", Some(&body(&job(JobKind::Delivery, 1))), NOW, 1.0)
            .await
            .unwrap();
        let sent = sent(&d);
        let copy: Job = serde_json::from_str(&sent[0].1.body).unwrap();
        assert_eq!((copy.attempt, sent[0].1.delay_seconds), (1, Some(2)));
        assert_eq!(attribute(&sent[0].1, "kind"), Some("parked"));
        assert_eq!(*d.runner.settled.lock().unwrap(), ["j-1"]);
    }
}
