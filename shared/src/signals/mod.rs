//! Studio signals (ARCHITECTURE.md, Routes and Job envelope): validate, de-duplicate and dispatch, queue what
//! cannot go now, and follow each execution to its end.

pub mod definitions;
pub mod store;
pub mod validate;

use std::collections::BTreeMap;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::cxone::api::{PARAMETER_SEPARATOR, Spawn};
use crate::cxone::{CxoneError, CxoneSignals, Profile, SignalRequest};
use crate::error::{ApiError, ErrorCode};
use crate::jobs::{Job, JobKind};
use crate::queue::{MessageQueue, OutboundMessage};
use definitions::{SignalDefinition, SignalKind};
use store::{Created, Execution, ExecutionStatus, ExecutionStore};

/// Longest idempotency key accepted.
pub const MAX_KEY_LEN: usize = 128;

/// Executions one sweep settles from each shard of the due index at most; the rest wait
/// for the next sweep.
const SWEEP_LIMIT: i32 = 100;

/// What a job run reports to the drainer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    pub retryable: bool,
    pub reason: String,
    pub retry_after: Option<Duration>,
    /// Leave the message to the queue (another run holds the attempt): no attempt is
    /// spent and nothing is re-sent.
    pub hold: bool,
    /// Send the job back after this wait without spending an attempt (its target is
    /// paused).
    pub park: Option<Duration>,
}

impl JobFailure {
    pub fn retry(reason: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self {
            retryable: true,
            reason: reason.into(),
            retry_after,
            hold: false,
            park: None,
        }
    }

    pub fn park(wait: Duration) -> Self {
        Self {
            park: Some(wait),
            ..Self::retry("the target is paused", None)
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            retryable: false,
            reason: reason.into(),
            retry_after: None,
            hold: false,
            park: None,
        }
    }
}

pub struct Dispatcher<C, E, Q> {
    pub definitions: BTreeMap<String, SignalDefinition>,
    pub profile: Profile,
    pub cxone: C,
    pub store: E,
    pub queue: Q,
    pub jobs_queue_url: String,
    /// How long after dispatch a missing callback counts as timed out.
    pub deadline: Duration,
    pub retry: crate::jobs::RetryPolicy,
    /// How long a job run holds its attempt.
    pub lease: Duration,
}

fn payload_hash(name: &str, data: &Value, metadata: &Value) -> String {
    hex::encode(Sha256::digest(
        json!({"signal": name, "data": data, "metadata": metadata})
            .to_string()
            .as_bytes(),
    ))
}

fn field<'a>(root: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted
        .split('.')
        .try_fold(root, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

fn bad_key() -> ApiError {
    ApiError::new(
        ErrorCode::BadRequest,
        format!("the idempotency key must be 1 to {MAX_KEY_LEN} printable ASCII characters"),
    )
}

/// Whether `key` can be an idempotency or correlation id: 1 to 128 printable ASCII
/// characters, far inside DynamoDB's 2 KiB key.
pub fn is_usable_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic())
}

fn accept_key(key: &str) -> Result<String, ApiError> {
    let key = key.trim();
    if !is_usable_key(key) {
        return Err(bad_key());
    }
    Ok(key.to_owned())
}

/// `GET /executions/{correlationId}`: an id no execution can have is refused before any
/// lookup.
pub fn execution_id(id: &str) -> Result<&str, ApiError> {
    if is_usable_key(id) {
        Ok(id)
    } else {
        Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("the correlation id must be 1 to {MAX_KEY_LEN} printable ASCII characters"),
        ))
    }
}

/// The request's idempotency key: the `Idempotency-Key` header, else
/// `metadata.correlationId` (a string, or a number in its canonical text), else a new id.
/// A key that is given but unusable is refused, never ignored: a new id in its place would
/// send the caller's retry to CXone a second time.
fn resolve_key(header: Option<&[u8]>, metadata: &Value) -> Result<String, ApiError> {
    if let Some(raw) = header {
        return std::str::from_utf8(raw)
            .map_err(|_| bad_key())
            .and_then(accept_key);
    }
    match metadata.get("correlationId") {
        None | Some(Value::Null) => Ok(crate::ids::new_uuid()),
        Some(Value::String(text)) => accept_key(text),
        Some(Value::Number(number)) => accept_key(&number.to_string()),
        Some(other) => Err(ApiError::new(
            ErrorCode::InvalidPayload,
            "metadata.correlationId must be a string or a number",
        )
        .with_detail(
            "fields",
            json!([{"field": "metadata.correlationId", "problem": format!("must be a string or a number, not {}", validate::describe(other))}]),
        )),
    }
}

fn store_down(e: crate::idempotency::StoreError) -> ApiError {
    ApiError::new(
        ErrorCode::DependencyUnavailable,
        "the execution store is unavailable; retry later",
    )
    .with_cause(e)
}

/// Whether a job run may go ahead after claiming its attempt: `false` when the attempt
/// is done (or overtaken), a held failure (the message stays with the queue, no attempt
/// spent) while another run holds it.
fn may_run(
    claim: Result<store::AttemptClaim, crate::idempotency::StoreError>,
) -> Result<bool, JobFailure> {
    match claim {
        Ok(store::AttemptClaim::Started) => Ok(true),
        Ok(store::AttemptClaim::Done) => Ok(false),
        Ok(store::AttemptClaim::Held) => Err(JobFailure {
            hold: true,
            ..JobFailure::retry("another run holds this attempt", None)
        }),
        Err(e) => Err(JobFailure::retry(e.to_string(), None)),
    }
}

/// How a permanent CXone failure reaches the caller.
fn permanent(err: &CxoneError, request: &SignalRequest) -> ApiError {
    let (code, what) = match err {
        CxoneError::Invalid { .. } => (ErrorCode::CxoneRejected, "CXone rejected the signal"),
        // On the platform a contact signal's 404 means the contact is not running (it
        // ended, or never existed): signalling it again cannot succeed.
        CxoneError::NotFound(_) if request.contact_id.is_some() && request.spawn.is_none() => (
            ErrorCode::ContactNotActive,
            "the contact is not running in CXone (it has ended or does not exist)",
        ),
        CxoneError::NotFound(_) => (
            ErrorCode::CxoneNotFound,
            "CXone does not know the signal target",
        ),
        _ => (ErrorCode::CxoneRefused, "CXone refused the signal"),
    };
    ApiError::new(code, format!("{what}: {err}"))
}

/// How a permanent failure reads in the execution record and the DLQ: its stable code
/// first, then what CXone said.
fn failure(api: &ApiError) -> String {
    format!("{}: {}", api.code, api.message)
}

/// A validated signal, ready for CXone.
struct Ready {
    request: SignalRequest,
    hash: String,
}

impl<C, E, Q> Dispatcher<C, E, Q>
where
    C: CxoneSignals,
    E: ExecutionStore,
    Q: MessageQueue,
{
    fn prepare(
        &self,
        name: &str,
        key: &str,
        data: &Value,
        metadata: &Value,
    ) -> Result<Ready, ApiError> {
        let def = self.definitions.get(name).ok_or_else(|| {
            ApiError::new(
                ErrorCode::SignalNotFound,
                format!("no signal named {name:?} is defined"),
            )
        })?;
        let variables = match validate::validate(def, data) {
            Ok(v) => v,
            Err(fields) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidPayload,
                    "the signal data does not match its definition",
                )
                .with_detail("fields", json!(fields)));
            }
        };
        if def.kind == SignalKind::Spawn && self.profile == Profile::InContact {
            // A spawned script's parameters travel as one |-delimited string, the
            // correlation id first.
            if key.contains(PARAMETER_SEPARATOR) {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    "the idempotency key of a spawn signal must not contain |, which separates a spawned script's parameters",
                ));
            }
            let split: Vec<Value> = variables
                .iter()
                .filter(|(_, v)| v.as_str().is_some_and(|s| s.contains(PARAMETER_SEPARATOR)))
                .map(|(name, _)| json!({"field": name, "problem": "must not contain |, which separates a spawned script's parameters"}))
                .collect();
            if !split.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::InvalidPayload,
                    "the signal data does not match its definition",
                )
                .with_detail("fields", json!(split)));
            }
        }
        let request_root = json!({"data": data, "metadata": metadata});
        let contact_id = match (self.profile, def.kind, def.contact_id_path.as_deref()) {
            (Profile::InContact, SignalKind::Contact, Some(path)) => {
                let id = field(&request_root, path).and_then(|v| match v {
                    Value::String(s) if !s.is_empty() => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
                // The contact id goes into CXone's URL path: it is checked here, so that a
                // bad one is a 422 now rather than a job that can never succeed.
                let problem = match &id {
                    None => "is missing",
                    Some(id) if !crate::ids::is_path_id(id) => crate::ids::PATH_ID_RULE,
                    Some(_) => "",
                };
                if !problem.is_empty() {
                    return Err(ApiError::new(
                        ErrorCode::InvalidPayload,
                        "the signal needs a usable contact id",
                    )
                    .with_detail("fields", json!([{"field": path, "problem": problem}])));
                }
                id
            }
            _ => None,
        };
        let mut meta = metadata.as_object().cloned().unwrap_or_default();
        meta.insert("correlationId".into(), json!(key));
        meta.entry("sourceSystem")
            .or_insert_with(|| json!("cxbridge"));
        let spawn = match (self.profile, def.kind, &def.script_id, &def.skill_id) {
            (Profile::InContact, SignalKind::Spawn, Some(script), Some(skill)) => Some(Spawn {
                script_id: script.clone(),
                skill_id: skill.clone(),
            }),
            _ => None,
        };
        let data = match self.profile {
            // On the platform the correlation id travels first: p1 of a signal, the first
            // parameter of a spawned script.
            Profile::InContact => std::iter::once(("correlationId".to_owned(), json!(key)))
                .chain(variables)
                .collect(),
            Profile::Documented => variables,
        };
        Ok(Ready {
            request: SignalRequest {
                definition_id: def.definition_id.clone(),
                contact_id,
                spawn,
                data,
                metadata: Value::Object(meta),
                idempotency_key: Some(key.to_owned()),
            },
            hash: payload_hash(name, &json!(data_map(&request_root)), metadata),
        })
    }

    /// `GET /executions/{correlationId}`: the execution's view, while its record lives.
    pub async fn execution(&self, correlation_id: &str) -> Result<Value, ApiError> {
        let id = execution_id(correlation_id)?;
        match self.store.get(id).await.map_err(store_down)? {
            Some(execution) => Ok(execution.view()),
            None => Err(ApiError::new(
                ErrorCode::ExecutionNotFound,
                format!("no execution with correlation id {id:?}"),
            )),
        }
    }

    /// `POST /signals/{name}`.
    pub async fn submit(
        &self,
        name: &str,
        idempotency_key: Option<&[u8]>,
        body: &[u8],
        now_ms: i64,
    ) -> Result<(StatusCode, Value), ApiError> {
        let parsed: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                ErrorCode::MalformedBody,
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        let Some(object) = parsed.as_object() else {
            return Err(ApiError::new(
                ErrorCode::MalformedBody,
                "the body must be a JSON object",
            ));
        };
        let data = object.get("data").cloned().unwrap_or(Value::Null);
        let metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
        if !metadata.is_object() {
            return Err(
                ApiError::new(ErrorCode::InvalidPayload, "metadata must be an object").with_detail(
                    "fields",
                    json!([{"field": "metadata", "problem": "must be an object"}]),
                ),
            );
        }
        let key = resolve_key(idempotency_key, &metadata)?;
        let ready = self.prepare(name, &key, &data, &metadata)?;

        match self
            .store
            .create(&key, name, &ready.hash, now_ms)
            .await
            .map_err(store_down)?
        {
            Created::New => {}
            Created::Existing(existing) => {
                if existing.payload_hash != ready.hash || existing.signal != name {
                    return Err(ApiError::new(
                        ErrorCode::IdempotencyKeyReused,
                        format!("the key {key} was already used for a different request"),
                    ));
                }
                if let Some(first) = existing.response {
                    return Ok((replayed_status(&first), first));
                }
                // Past pending without its answer recorded: say where it is, as it is.
                if existing.status != ExecutionStatus::Pending {
                    return Ok((StatusCode::OK, unrecorded_answer(&existing)));
                }
                // Still pending with no answer: the first request may have died. Once its
                // claim lapses, this one takes over; until then it is in progress.
                let lapsed = existing
                    .in_progress_expires_at
                    .is_none_or(|until| until < now_ms);
                if !(lapsed
                    && self
                        .store
                        .take_over(&key, now_ms)
                        .await
                        .map_err(store_down)?)
                {
                    return Err(ApiError::in_progress(format!(
                        "the request with key {key} is still being dispatched; retry later"
                    )));
                }
            }
        }
        self.dispatch(name, &key, ready.request, now_ms).await
    }

    /// Sends to CXone and records the outcome; shared by requests and jobs.
    async fn dispatch(
        &self,
        name: &str,
        key: &str,
        request: SignalRequest,
        now_ms: i64,
    ) -> Result<(StatusCode, Value), ApiError> {
        match self.cxone.signal(&request).await {
            Ok(accepted) => Ok((
                StatusCode::ACCEPTED,
                self.dispatched(key, &accepted, now_ms).await,
            )),
            Err(err) if err.is_retryable() => {
                let answer = json!({"status": "queued", "correlationId": key});
                let payload = json!({"signal": name, "request": request_json(&request)});
                let job = Job::new(
                    JobKind::Signal,
                    key.to_owned(),
                    key.to_owned(),
                    payload,
                    now_ms,
                )
                .failed(err.to_string(), now_ms);
                let wait = self
                    .retry
                    .delay(1, err.retry_after(), crate::jobs::jitter());
                let delay = Some(i32::try_from(wait.as_secs_f64().ceil() as u64).unwrap_or(900));
                if let Err(q) = self.enqueue(&job, delay).await {
                    // Neither sent nor queued: the caller must retry, and its retry must work.
                    if let Err(f) = self.store.forget(key).await {
                        tracing::warn!(correlation_id = %key, error = %f, "could not forget the execution");
                    }
                    return Err(ApiError::new(
                        ErrorCode::DependencyUnavailable,
                        "CXone is unavailable and the job queue too; retry later",
                    )
                    .with_cause(q));
                }
                if let Err(e) = self
                    .store
                    .queued(key, &err.to_string(), &answer, None, now_ms)
                    .await
                {
                    tracing::warn!(correlation_id = %key, error = %e, "could not record the queued dispatch");
                }
                Ok((StatusCode::ACCEPTED, answer))
            }
            Err(err) => {
                let api = permanent(&err, &request);
                if let Err(e) = self
                    .store
                    .failed(
                        key,
                        ExecutionStatus::Failed,
                        &failure(&api),
                        Some(&api.body()),
                        now_ms,
                    )
                    .await
                {
                    tracing::warn!(correlation_id = %key, error = %e, "could not record the failure");
                }
                Err(api)
            }
        }
    }

    /// Records an accepted signal and schedules its deadline check; returns the answer.
    async fn dispatched(
        &self,
        key: &str,
        accepted: &crate::cxone::SignalAccepted,
        now_ms: i64,
    ) -> Value {
        let mut answer = json!({"status": "dispatched", "correlationId": key});
        if let Some(id) = &accepted.signal_execution_id {
            answer["signalExecutionId"] = json!(id);
        }
        let id = accepted.signal_execution_id.as_deref();
        let due = now_ms + i64::try_from(self.deadline.as_millis()).unwrap_or(0);
        if let Err(e) = self.store.dispatched(key, id, &answer, due, now_ms).await {
            tracing::warn!(correlation_id = %key, error = %e, "could not record the dispatch");
        }
        if let Err(e) = self.schedule_reconcile(key, now_ms).await {
            tracing::warn!(correlation_id = %key, error = %e, "could not schedule the deadline check");
        }
        answer
    }

    /// Puts a job on the jobs queue.
    pub async fn enqueue(
        &self,
        job: &Job,
        delay_seconds: Option<i32>,
    ) -> Result<(), crate::queue::QueueError> {
        let message = OutboundMessage {
            body: crate::queue::sqs_json(job),
            attributes: vec![(
                "kind".into(),
                format!("{:?}", job.kind).to_ascii_lowercase(),
            )],
            dedup_id: hex::encode(Sha256::digest(
                format!("{}:{}:{}", job.id, job.kind as u8, job.attempt).as_bytes(),
            )),
            group_id: hex::encode(Sha256::digest(job.correlation_id.as_bytes())),
            delay_seconds,
        };
        self.queue
            .send_all(&self.jobs_queue_url, std::slice::from_ref(&message))
            .await
    }

    async fn schedule_reconcile(
        &self,
        key: &str,
        now_ms: i64,
    ) -> Result<(), crate::queue::QueueError> {
        let job = Job::new(
            JobKind::Reconcile,
            format!("{key}:reconcile"),
            key.to_owned(),
            json!({"dispatchedAt": now_ms}),
            now_ms,
        );
        let delay = i32::try_from(self.deadline.as_secs().min(900)).unwrap_or(900);
        self.enqueue(&job, Some(delay)).await
    }

    /// Runs a `signal` job: from a queued request, or from webhook routing.
    pub async fn run_signal_job(&self, job: &Job, now_ms: i64) -> Result<(), JobFailure> {
        let key = job.correlation_id.as_str();
        let name = job
            .payload
            .get("signal")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let request = match job.payload.get("request").map(request_from_json) {
            Some(Some(request)) => request,
            // A job from webhook routing carries data to validate, like a request would.
            _ => {
                let data = job.payload.get("data").cloned().unwrap_or(Value::Null);
                let metadata = job
                    .payload
                    .get("metadata")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                match self.prepare(name, key, &data, &metadata) {
                    Ok(ready) => {
                        match self.store.create(key, name, &ready.hash, now_ms).await {
                            Ok(Created::New) => {}
                            // A request or another route already used this key for something
                            // else: sending this under its record would be the wrong signal.
                            Ok(Created::Existing(existing))
                                if existing.payload_hash != ready.hash
                                    || existing.signal != name =>
                            {
                                return Err(JobFailure::permanent(format!(
                                    "{}: the key {key} was already used for a different request",
                                    ErrorCode::IdempotencyKeyReused.as_str()
                                )));
                            }
                            // This job's own record, from a copy or an earlier attempt.
                            Ok(Created::Existing(_)) => {}
                            Err(e) => return Err(JobFailure::retry(e.to_string(), None)),
                        }
                        ready.request
                    }
                    Err(e) => {
                        let reason = format!("{}: {}", e.code, e.body()["error"]);
                        return Err(JobFailure::permanent(reason));
                    }
                }
            }
        };
        if job.redriven
            && let Err(e) = self.store.revive(key, now_ms).await
        {
            return Err(JobFailure::retry(e.to_string(), None));
        }
        let claim = self
            .store
            .begin_attempt(key, job.attempt + 1, self.lease, now_ms)
            .await;
        if !may_run(claim)? {
            return Ok(());
        }
        match self.cxone.signal(&request).await {
            Ok(accepted) => {
                self.dispatched(key, &accepted, now_ms).await;
                Ok(())
            }
            Err(err) if err.is_retryable() => {
                if let Err(e) = self
                    .store
                    .queued(
                        key,
                        &err.to_string(),
                        &json!({"status": "queued", "correlationId": key}),
                        Some(job.attempt + 1),
                        now_ms,
                    )
                    .await
                {
                    tracing::warn!(correlation_id = %key, error = %e, "could not record the retry");
                }
                Err(JobFailure::retry(err.to_string(), err.retry_after()))
            }
            Err(err) => {
                // The same code and message a request would have got.
                let reason = failure(&permanent(&err, &request));
                if let Err(e) = self
                    .store
                    .failed(key, ExecutionStatus::Failed, &reason, None, now_ms)
                    .await
                {
                    tracing::warn!(correlation_id = %key, error = %e, "could not record the failure");
                }
                Err(JobFailure::permanent(reason))
            }
        }
    }

    /// Runs a `context` job: a CXone context update (or platform action) that could not
    /// be made in its request. Each attempt runs once: a copy delivered twice, or a stale
    /// copy of an attempt that has ended, sends nothing, so no update or signal repeats.
    pub async fn run_context_job(&self, job: &Job, now_ms: i64) -> Result<(), JobFailure>
    where
        C: crate::cxone::ContextSink,
    {
        let attempt = job.attempt + 1;
        let claim = self
            .store
            .begin_run(&job.id, attempt, self.lease, now_ms)
            .await;
        if !may_run(claim)? {
            return Ok(());
        }
        let outcome = self.send_context(job).await;
        // A failed attempt is settled by the drainer once its retry (or its DLQ copy) is
        // safely sent, so that a failed send leaves this copy to run again.
        if outcome.is_ok() {
            self.settle_run(job, now_ms).await;
        }
        outcome
    }

    /// Records a context job's attempt as finished, so that no copy of it runs again.
    pub async fn settle_run(&self, job: &Job, now_ms: i64) {
        let attempt = job.attempt + 1;
        if let Err(e) = self.store.finish_run(&job.id, attempt, now_ms).await {
            tracing::warn!(job_id = %job.id, attempt, error = %e, "could not record the finished attempt");
        }
    }

    async fn send_context(&self, job: &Job) -> Result<(), JobFailure>
    where
        C: crate::cxone::ContextSink,
    {
        let interaction = job
            .payload
            .get("interactionId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(attributes) = job.payload.get("attributes").and_then(Value::as_object) else {
            return Err(JobFailure::permanent("the context job has no attributes"));
        };
        // A platform action (NICE's Cognigy convention) or a context update.
        let sent = match job.payload.get("action").and_then(Value::as_str) {
            Some(action) => {
                self.cxone
                    .send_action(interaction, action, attributes)
                    .await
            }
            None => self.cxone.update_context(interaction, attributes).await,
        };
        match sent {
            Ok(()) => Ok(()),
            Err(e) if e.is_retryable() => Err(JobFailure::retry(e.to_string(), e.retry_after())),
            Err(e) => Err(JobFailure::permanent(e.to_string())),
        }
    }

    /// Runs a `reconcile` job: an execution still `dispatched` after its deadline is settled
    /// from CXone's execution history (documented profile), or ends `timed_out` (the
    /// platform keeps no history to ask).
    pub async fn reconcile(&self, job: &Job, now_ms: i64) -> Result<(), JobFailure> {
        let key = job.correlation_id.as_str();
        let dispatched_at = job
            .payload
            .get("dispatchedAt")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let due = dispatched_at + i64::try_from(self.deadline.as_millis()).unwrap_or(0);
        if now_ms < due {
            // SQS delays top out at 15 minutes: come back later.
            let wait = Duration::from_millis(u64::try_from(due - now_ms).unwrap_or(0));
            return Err(JobFailure::retry(
                "the deadline has not passed yet",
                Some(wait),
            ));
        }
        self.settle(key, now_ms).await
    }

    /// The scheduled sweep (a `sweep` job, put on the jobs queue by a schedule): settles
    /// every execution still `dispatched` past its deadline, found in the sparse `due`
    /// index, so that none stays `dispatched` if its own reconcile job was lost. What fails
    /// is left for the next sweep.
    pub async fn sweep(&self, now_ms: i64) -> Result<(), JobFailure> {
        let overdue = match self.store.overdue(now_ms, SWEEP_LIMIT).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "the sweep could not read the due index; the next sweep will");
                return Ok(());
            }
        };
        let mut settled = 0;
        for key in &overdue {
            match self.settle(key, now_ms).await {
                Ok(()) => settled += 1,
                Err(f) => {
                    tracing::warn!(correlation_id = %key, reason = %f.reason, "the sweep could not settle an execution; the next sweep will")
                }
            }
        }
        if !overdue.is_empty() {
            tracing::info!(overdue = overdue.len(), settled, "sweep");
        }
        Ok(())
    }

    /// An execution past its deadline: settled from CXone's history where there is one,
    /// else `timed_out`. One that has moved on is left alone.
    async fn settle(&self, key: &str, now_ms: i64) -> Result<(), JobFailure> {
        let record = match self.store.get(key).await {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(()),
            Err(e) => {
                return Err(JobFailure::retry(e.to_string(), None));
            }
        };
        if record.status != ExecutionStatus::Dispatched {
            return Ok(());
        }
        // Where CXone keeps a history, it says how the execution ended.
        if let Some(id) = record.signal_execution_id.as_deref() {
            match self.cxone.execution(id).await {
                Ok(Some(history))
                    if matches!(
                        ExecutionStatus::parse(&history.status),
                        Some(ExecutionStatus::Completed | ExecutionStatus::Failed)
                    ) =>
                {
                    let status =
                        ExecutionStatus::parse(&history.status).unwrap_or(ExecutionStatus::Failed);
                    let error = (status == ExecutionStatus::Failed)
                        .then_some("failed in CXone (reconciled)");
                    return match self
                        .store
                        .callback(key, status, &history.outputs, error, Some(id), now_ms)
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(correlation_id = %key, status = %history.status, "execution reconciled from CXone's history");
                            Ok(())
                        }
                        Err(e) => Err(JobFailure::retry(e.to_string(), None)),
                    };
                }
                Ok(_) => {}
                Err(e) if e.is_retryable() => {
                    return Err(JobFailure::retry(e.to_string(), e.retry_after()));
                }
                Err(e) => {
                    tracing::warn!(correlation_id = %key, error = %e, "CXone's history could not be read")
                }
            }
        }
        match self.store.timed_out(key, now_ms).await {
            Ok(true) => {
                tracing::warn!(correlation_id = %key, "no completion callback before the deadline: timed_out");
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(JobFailure::retry(e.to_string(), None)),
        }
    }
}

fn data_map(root: &Value) -> Value {
    root.get("data").cloned().unwrap_or(Value::Null)
}

fn request_json(r: &SignalRequest) -> Value {
    json!({
        "definitionId": r.definition_id,
        "contactId": r.contact_id,
        "spawn": r.spawn.as_ref().map(|s| json!({"scriptId": s.script_id, "skillId": s.skill_id})),
        "data": r.data.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "metadata": r.metadata,
        "idempotencyKey": r.idempotency_key,
    })
}

fn request_from_json(v: &Value) -> Option<SignalRequest> {
    let data = v
        .get("data")?
        .as_array()?
        .iter()
        .map(|pair| Some((pair.get(0)?.as_str()?.to_owned(), pair.get(1)?.clone())))
        .collect::<Option<Vec<_>>>()?;
    Some(SignalRequest {
        definition_id: v.get("definitionId")?.as_str()?.to_owned(),
        contact_id: v
            .get("contactId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        spawn: match v.get("spawn") {
            None | Some(Value::Null) => None,
            Some(s) => Some(Spawn {
                script_id: s.get("scriptId")?.as_str()?.to_owned(),
                skill_id: s.get("skillId")?.as_str()?.to_owned(),
            }),
        },
        data,
        metadata: v.get("metadata").cloned().unwrap_or(Value::Null),
        idempotency_key: v
            .get("idempotencyKey")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// The answer to a repeat of a request whose execution moved past `pending` with no answer
/// recorded (a routed signal's record keeps none): its status as it is now, with CXone's
/// execution id and the last error where there are, never a status it has left.
fn unrecorded_answer(existing: &Execution) -> Value {
    let mut answer = json!({"status": existing.status, "correlationId": existing.correlation_id});
    if let Some(id) = &existing.signal_execution_id {
        answer["signalExecutionId"] = json!(id);
    }
    if let Some(error) = &existing.last_error {
        answer["lastError"] = json!(error);
    }
    answer
}

/// The status a saved answer is given again with: a refusal keeps its error's status, so
/// that asking again never turns it into a success; any other answer is 200.
fn replayed_status(answer: &Value) -> StatusCode {
    let code = answer.pointer("/error/code").and_then(Value::as_str);
    [
        ErrorCode::CxoneRejected,
        ErrorCode::CxoneNotFound,
        ErrorCode::CxoneRefused,
        ErrorCode::ContactNotActive,
        ErrorCode::InteractionNotFound,
        ErrorCode::InvalidPayload,
    ]
    .into_iter()
    .find(|c| Some(c.as_str()) == code)
    .map_or(StatusCode::OK, ErrorCode::status)
}

#[cfg(test)]
mod tests;
