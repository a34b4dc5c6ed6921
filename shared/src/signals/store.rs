//! Execution records (`exec#{correlationId}`, ARCHITECTURE.md, Table items): idempotency for signal
//! requests and the state of each execution, which only ever moves forward. The DynamoDB
//! adapter is `adapters::dynamodb::executions`.

use std::future::Future;
use std::time::Duration;

use serde_json::{Value, json};

use crate::idempotency::StoreError;

/// Where an execution is. It only moves forward: `pending` → `dispatched` → `completed`,
/// `failed` or `timed_out` (a late callback still settles a timed-out one); `pending` →
/// `failed`, or `dead_lettered` when its job's attempts are spent (a redriven job revives
/// it to `pending`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Pending,
    Dispatched,
    Completed,
    Failed,
    TimedOut,
    DeadLettered,
}

impl ExecutionStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Dispatched => "dispatched",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::DeadLettered => "dead_lettered",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Dispatched,
            Self::Completed,
            Self::Failed,
            Self::TimedOut,
            Self::DeadLettered,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An execution as `GET /executions/{correlationId}` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub correlation_id: String,
    pub signal: String,
    pub status: ExecutionStatus,
    pub attempts: u32,
    pub signal_execution_id: Option<String>,
    pub outputs: Value,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub payload_hash: String,
    /// The first answer, for duplicates.
    pub response: Option<Value>,
    /// Until when (epoch ms) the request that created it owns it.
    pub in_progress_expires_at: Option<i64>,
}

impl Execution {
    pub fn view(&self) -> Value {
        json!({
            "correlationId": self.correlation_id,
            "signal": self.signal,
            "status": self.status,
            "attempts": self.attempts,
            "signalExecutionId": self.signal_execution_id,
            "outputs": self.outputs,
            "lastError": self.last_error,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New,
    Existing(Box<Execution>),
}

/// Whether a job run may go ahead with its attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptClaim {
    /// Go ahead.
    Started,
    /// The execution has moved on, or a later attempt ran: nothing to do.
    Done,
    /// Another run holds this attempt right now.
    Held,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    Recorded,
    /// The execution had already ended: nothing moves backwards.
    Duplicate,
    NotFound,
}

/// Port: execution records.
pub trait ExecutionStore: Send + Sync {
    fn create(
        &self,
        id: &str,
        signal: &str,
        payload_hash: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Execution>, StoreError>> + Send;
    /// `pending` → `dispatched`, with CXone's execution id and the answer given. Until it
    /// moves on, the execution sits in the sparse `due` index under `due_at_ms`, where the
    /// sweep finds it once its deadline has passed.
    fn dispatched(
        &self,
        id: &str,
        signal_execution_id: Option<&str>,
        response: &Value,
        due_at_ms: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Up to `limit` executions still `dispatched` whose deadline is before `now_ms`, read
    /// from the sparse `due` index (never a scan).
    fn overdue(
        &self,
        now_ms: i64,
        limit: i32,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// Stays `pending`: the work is queued as a job.
    /// A retryable failure: one more attempt counted. `finished_attempt` is the job
    /// attempt that ended, so that no stale copy of it can run again once its lease lapses.
    fn queued(
        &self,
        id: &str,
        error: &str,
        response: &Value,
        finished_attempt: Option<u32>,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// `pending`/`dispatched` → `failed` or `dead_lettered`.
    fn failed(
        &self,
        id: &str,
        status: ExecutionStatus,
        error: &str,
        response: Option<&Value>,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn callback(
        &self,
        id: &str,
        status: ExecutionStatus,
        outputs: &Value,
        error: Option<&str>,
        signal_execution_id: Option<&str>,
        now_ms: i64,
    ) -> impl Future<Output = Result<CallbackOutcome, StoreError>> + Send;
    /// `dispatched` → `timed_out`; false if it had moved on.
    fn timed_out(
        &self,
        id: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Claims attempt `attempt` of a pending execution for `lease`, so that a job delivered
    /// twice runs once, and one whose run died runs again once the lease lapses.
    fn begin_attempt(
        &self,
        id: &str,
        attempt: u32,
        lease: Duration,
        now_ms: i64,
    ) -> impl Future<Output = Result<AttemptClaim, StoreError>> + Send;
    /// `dead_lettered` → `pending`, for a job redriven from the DLQ.
    fn revive(
        &self,
        id: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Takes over a `pending` execution whose creator's claim lapsed without an answer.
    fn take_over(
        &self,
        id: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Claims attempt `attempt` of the job `job_id` (a job with no execution record, such
    /// as a context update) for `lease`: a copy delivered twice runs once, and a copy of an
    /// attempt that has finished, or been overtaken, never runs again.
    fn begin_run(
        &self,
        job_id: &str,
        attempt: u32,
        lease: Duration,
        now_ms: i64,
    ) -> impl Future<Output = Result<AttemptClaim, StoreError>> + Send;
    /// Records attempt `attempt` of `job_id` as finished, whatever its outcome.
    fn finish_run(
        &self,
        job_id: &str,
        attempt: u32,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Forgets a record whose request could not be accepted at all.
    fn forget(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// How long a new request owns its execution before another request with the same key may
/// take it over (the dispatcher died before recording an answer).
pub const CLAIM: Duration = Duration::from_secs(30);

/// How long execution records are kept.
pub const RECORD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
