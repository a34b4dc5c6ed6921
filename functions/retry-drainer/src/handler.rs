use aws_lambda_events::event::sqs::SqsMessage;
use cxbridge::app::{InitError, LiveDeliverer, LiveDispatcher};
use cxbridge::jobs::{Job, JobKind, jitter};
use cxbridge::queue::{MessageQueue, OutboundMessage};
use cxbridge::signals::store::ExecutionStore;
use cxbridge::{Base, clock};

pub struct App {
    pub base: Base,
    pub dispatcher: LiveDispatcher,
    pub deliverer: LiveDeliverer,
}

const FUNCTION: &str = "retry-drainer";

impl App {
    pub async fn init() -> Result<Self, InitError> {
        let (base, dispatcher) = Base::init_with_dispatcher().await?;
        let targets = base.webhook_config().await?.targets;
        let deliverer = base.deliverer(targets, FUNCTION);
        Ok(Self {
            base,
            dispatcher,
            deliverer,
        })
    }

    async fn send(
        &self,
        queue: &str,
        body: String,
        attributes: Vec<(String, String)>,
        delay: Option<i32>,
        dedup: String,
    ) -> Result<(), String> {
        let message = OutboundMessage {
            body,
            attributes,
            dedup_id: dedup.clone(),
            group_id: dedup,
            delay_seconds: delay,
        };
        self.dispatcher
            .queue
            .send_all(queue, std::slice::from_ref(&message))
            .await
            .map_err(|e| e.to_string())
    }

    /// Moves a job to the DLQ with its reason, attempts and attempt times, and says so in
    /// the log and in a metric.
    async fn dead_letter(
        &self,
        message: &SqsMessage,
        job: Option<&Job>,
        reason: &str,
    ) -> Result<(), String> {
        let id = message.message_id.clone().unwrap_or_default();
        let (body, mut attributes) = match job {
            Some(job) => (
                cxbridge::queue::sqs_json(job),
                vec![
                    ("attempts".to_owned(), job.attempt.to_string()),
                    ("firstAttemptAt".to_owned(), job.first_attempt_at.clone()),
                    (
                        "lastAttemptAt".to_owned(),
                        job.last_attempt_at.clone().unwrap_or_default(),
                    ),
                ],
            ),
            None => (message.body.clone().unwrap_or_default(), Vec::new()),
        };
        if let Some(target) = job.and_then(cxbridge::targets::deliver::Delivery::of) {
            attributes.push(("target".to_owned(), target.target.to_owned()));
        }
        attributes.push((
            "deadLetterReason".to_owned(),
            reason.chars().take(256).collect(),
        ));
        attributes.retain(|(_, v)| !v.is_empty());
        self.send(
            &self.base.config.dlq_url,
            body,
            attributes,
            None,
            id.clone(),
        )
        .await
        .map_err(|e| format!("could not dead-letter the job ({reason}): {e}"))?;
        tracing::warn!(message_id = %id, correlation_id = ?job.map(|j| &j.correlation_id), attempts = ?job.map(|j| j.attempt), %reason, "job dead-lettered");
        cxbridge::telemetry::metric(FUNCTION, "JobsDeadLettered", 1.0);
        Ok(())
    }
}

/// Runs one job. A retryable failure is sent back to the jobs queue as attempt + 1 with a
/// backoff delay, and this message is reported done; when attempts run out, or on a
/// permanent failure, the job goes to the DLQ.
///
/// Waiting by re-sending with `DelaySeconds` (rather than `ChangeMessageVisibility`) keeps
/// the attempt count, the last error and the attempt times in the job itself, where the DLQ
/// and the operator see them, and works the same on every queue. A crash between the send
/// and the delete leaves two copies; the execution record's attempt claim runs only one.
pub async fn handle(app: &'static App, message: SqsMessage) -> Result<(), String> {
    let job: Job = match message.body.as_deref().map(serde_json::from_str) {
        Some(Ok(job)) => job,
        Some(Err(e)) => {
            return app
                .dead_letter(&message, None, &format!("not a job: {e}"))
                .await;
        }
        None => {
            return app
                .dead_letter(&message, None, "the message has no body")
                .await;
        }
    };
    let now = clock::now_ms();
    let outcome = match job.kind {
        JobKind::Signal => app.dispatcher.run_signal_job(&job, now).await,
        JobKind::Reconcile => app.dispatcher.reconcile(&job, now).await,
        JobKind::Sweep => app.dispatcher.sweep(now).await,
        JobKind::Context => app.dispatcher.run_context_job(&job, now).await,
        JobKind::Delivery => app.deliverer.run(&job, now).await,
    };
    let failure = match outcome {
        Ok(()) => return Ok(()),
        Err(f) if f.hold => return Err(f.reason),
        Err(f) => f,
    };
    // This copy is settled only once what replaces it (its retry, its parked copy or its
    // DLQ copy) is sent: if that send fails, the message comes back and runs again.
    let original = job.clone();
    let replaced = match failure.park {
        Some(wait) => park(app, job, wait).await,
        None => retry_or_dead_letter(app, &message, job, failure, now).await,
    };
    if replaced.is_ok() {
        match original.kind {
            JobKind::Delivery => app.deliverer.settle(&original, now).await,
            JobKind::Context => app.dispatcher.settle_run(&original, now).await,
            _ => {}
        }
    }
    replaced
}

/// Sends a failed job back as its next attempt after a backoff, or to the DLQ when it may
/// not be retried.
async fn retry_or_dead_letter(
    app: &'static App,
    message: &SqsMessage,
    mut job: Job,
    failure: cxbridge::signals::JobFailure,
    now: i64,
) -> Result<(), String> {
    // A delivery is retried by its target's own policy.
    let target = (job.kind == JobKind::Delivery)
        .then(|| app.deliverer.spec(&job))
        .flatten()
        .map(|t| (t.name.clone(), t.retry));
    let policy = app.base.config.retry;
    job.attempt += 1;
    job.last_attempt_at = Some(clock::rfc3339(now));
    job.last_error = Some(failure.reason.clone());
    job.redriven = false;
    let counted = job.kind != JobKind::Reconcile;
    let may_retry = match &target {
        Some((_, retry)) => retry.may_retry(job.attempt),
        None => !counted || policy.may_retry(job.attempt),
    };
    if failure.retryable && may_retry {
        let wait = match &target {
            Some((name, retry)) => {
                cxbridge::telemetry::target_metric(FUNCTION, name, "Retried", 1.0);
                retry.delay_after(job.attempt, failure.retry_after, jitter())
            }
            None => policy.delay(job.attempt, failure.retry_after, jitter()),
        };
        let delay = i32::try_from(wait.as_secs_f64().ceil() as u64).unwrap_or(900);
        let dedup = format!("{}:{}", job.id, job.attempt);
        tracing::info!(correlation_id = %job.correlation_id, attempt = job.attempt, delay_s = delay, reason = %failure.reason, "job will be retried");
        let body = cxbridge::queue::sqs_json(&job);
        return app
            .send(
                &app.base.config.jobs_queue_url,
                body,
                vec![("kind".into(), "retry".into())],
                Some(delay),
                dedup,
            )
            .await;
    }
    let reason = if failure.retryable {
        format!("gave up after {} attempts: {}", job.attempt, failure.reason)
    } else {
        failure.reason.clone()
    };
    app.dead_letter(message, Some(&job), &reason).await?;
    if failure.retryable
        && let Err(e) = app
            .dispatcher
            .store
            .failed(&job.correlation_id, "dead_lettered", &reason, None, now)
            .await
    {
        tracing::warn!(correlation_id = %job.correlation_id, error = %e, "could not mark the execution dead_lettered");
    }
    Ok(())
}

/// Sends a delivery for a paused target back to wait, its attempts unspent: the park
/// counts toward its run number instead, so that this copy can run when it comes back.
async fn park(app: &'static App, mut job: Job, wait: std::time::Duration) -> Result<(), String> {
    let parks = job
        .payload
        .get("parks")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
        + 1;
    if let Some(p) = job.payload.as_object_mut() {
        p.insert("parks".to_owned(), parks.into());
    }
    let delay = i32::try_from(wait.as_secs().clamp(1, 900)).unwrap_or(900);
    tracing::info!(job_id = %job.id, parks, delay_s = delay, "delivery parked: its target is paused");
    let dedup = format!("{}:park:{parks}", job.id);
    app.send(
        &app.base.config.jobs_queue_url,
        cxbridge::queue::sqs_json(&job),
        vec![("kind".into(), "parked".into())],
        Some(delay),
        dedup,
    )
    .await
}
