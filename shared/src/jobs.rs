//! Jobs on the `jobs` queue (ARCHITECTURE.md, Job envelope): outbound CXone work that runs, or runs again,
//! outside the request that asked for it, and the backoff between attempts.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The envelope version this code writes; older versions are read as version 1.
pub const JOB_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Signal,
    Context,
    /// Check, after its deadline, an execution whose completion callback has not come.
    Reconcile,
    /// Settle every execution past its deadline (put on the queue by a schedule).
    Sweep,
    /// Deliver one routed event to one named HTTPS or EventBridge target.
    Delivery,
}

fn version_one() -> u32 {
    1
}

/// `{"version","id","kind","correlationId","attempt","firstAttemptAt","lastAttemptAt",
/// "payload","lastError"}`. The payload is read as JSON; a writer may give it a type of its
/// own (the webhook route writes a delivery's event as the text it already serialised).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job<P = Value> {
    #[serde(default = "version_one")]
    pub version: u32,
    pub id: String,
    pub kind: JobKind,
    pub correlation_id: String,
    /// Attempts made so far: 0 for a job nobody has tried yet.
    pub attempt: u32,
    /// RFC 3339; when the work was first asked for.
    pub first_attempt_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    pub payload: P,
    pub last_error: Option<String>,
    /// Set by `cxbridge dlq redrive`: the job may revive a dead-lettered execution.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redriven: bool,
}

impl<P> Job<P> {
    /// A job nobody has tried yet, first asked for at `now_ms`.
    pub fn new(kind: JobKind, id: String, correlation_id: String, payload: P, now_ms: i64) -> Self {
        Self {
            version: JOB_VERSION,
            id,
            kind,
            correlation_id,
            attempt: 0,
            first_attempt_at: crate::clock::rfc3339(now_ms),
            last_attempt_at: None,
            payload,
            last_error: None,
            redriven: false,
        }
    }

    /// This job after an attempt at `now_ms` that failed with `error`: the attempt counts,
    /// and the error goes with the job.
    pub fn failed(mut self, error: impl Into<String>, now_ms: i64) -> Self {
        self.attempt += 1;
        self.last_attempt_at = Some(crate::clock::rfc3339(now_ms));
        self.last_error = Some(error.into());
        self
    }
}

/// How retries are spaced and when they stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

/// SQS will not delay a message longer than this.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

impl RetryPolicy {
    /// The wait before attempt `made + 1`, after `made` attempts: exponential with full
    /// jitter (`jitter` in [0, 1]), never under a `Retry-After` CXone sent, and never over
    /// SQS's 15 minutes.
    pub fn delay(&self, made: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let exponent = made.saturating_sub(1).min(30);
        let ceiling = self
            .base
            .checked_mul(1u32 << exponent)
            .unwrap_or(MAX_DELAY)
            .min(self.cap)
            .min(MAX_DELAY);
        let jittered = ceiling.mul_f64(jitter.clamp(0.0, 1.0));
        let floor = retry_after.map_or(Duration::ZERO, |r| r.min(MAX_DELAY));
        jittered.max(floor).min(MAX_DELAY)
    }

    /// Whether another attempt is allowed after `made` attempts.
    pub fn may_retry(&self, made: u32) -> bool {
        made < self.max_attempts
    }
}

/// A uniform number in [0, 1].
pub fn jitter() -> f64 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        base: Duration::from_secs(1),
        cap: Duration::from_secs(5),
    };

    #[test]
    fn the_ceiling_doubles_from_the_base_up_to_the_cap() {
        let ceilings: Vec<u64> = (1..=6)
            .map(|made| LOCAL.delay(made, None, 1.0).as_secs())
            .collect();
        assert_eq!(ceilings, [1, 2, 4, 5, 5, 5]);
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        assert_eq!(LOCAL.delay(3, None, 0.0), Duration::ZERO);
        assert_eq!(LOCAL.delay(3, None, 0.5), Duration::from_secs(2));
        assert_eq!(
            LOCAL.delay(3, None, 7.0),
            Duration::from_secs(4),
            "jitter is clamped"
        );
    }

    #[test]
    fn retry_after_is_a_floor_and_900_seconds_the_ceiling() {
        assert_eq!(
            LOCAL.delay(1, Some(Duration::from_secs(2)), 0.0),
            Duration::from_secs(2)
        );
        assert_eq!(
            LOCAL.delay(1, Some(Duration::from_secs(3600)), 1.0),
            MAX_DELAY
        );
        let long = RetryPolicy {
            max_attempts: 50,
            base: Duration::from_secs(60),
            cap: Duration::from_secs(100_000),
        };
        assert_eq!(
            long.delay(40, None, 1.0),
            MAX_DELAY,
            "no overflow, capped by SQS"
        );
    }

    #[test]
    fn attempts_stop_at_the_maximum() {
        assert!(LOCAL.may_retry(3));
        assert!(!LOCAL.may_retry(4));
    }

    #[test]
    fn an_envelope_without_a_version_reads_as_version_one() {
        let job: Job = serde_json::from_str(
            r#"{"id":"j","kind":"signal","correlationId":"c","attempt":1,"firstAttemptAt":"t","payload":{},"lastError":null}"#,
        )
        .unwrap();
        assert_eq!(job.version, 1);
        assert!(!job.redriven);
        let text = serde_json::to_string(&job).unwrap();
        assert!(!text.contains("redriven") && !text.contains("lastAttemptAt"));
    }
}
