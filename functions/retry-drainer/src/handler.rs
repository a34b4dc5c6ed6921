use aws_lambda_events::event::sqs::SqsMessage;
use cxbridge::app::{InitError, LiveDispatcher};
use cxbridge::jobs::{Job, JobKind};
use cxbridge::queue::{MessageQueue, OutboundMessage};
use cxbridge::signals::JobFailure;
use cxbridge::{Base, clock};

pub struct App {
    pub base: Base,
    pub dispatcher: LiveDispatcher,
}

impl App {
    pub async fn init() -> Result<Self, InitError> {
        let base = Base::init().await?;
        let dispatcher = base.dispatcher().await?;
        Ok(Self { base, dispatcher })
    }

    /// Moves a job that can never succeed to the DLQ, body unchanged, with the reason.
    async fn dead_letter(&self, message: &SqsMessage, reason: &str) -> Result<(), String> {
        let body = message.body.clone().unwrap_or_default();
        let id = message.message_id.clone().unwrap_or_default();
        let letter = OutboundMessage {
            body,
            attributes: vec![(
                "deadLetterReason".to_owned(),
                reason.chars().take(256).collect(),
            )],
            dedup_id: id.clone(),
            group_id: id,
            delay_seconds: None,
        };
        self.dispatcher
            .queue
            .send_all(&self.base.config.dlq_url, std::slice::from_ref(&letter))
            .await
            .map_err(|e| format!("could not dead-letter the job ({reason}): {e}"))?;
        tracing::warn!(message_id = ?message.message_id, %reason, "job dead-lettered");
        Ok(())
    }
}

/// Runs one job. Retryable failures come back after the visibility timeout; permanent ones
/// go to the DLQ with their reason.
pub async fn handle(app: &'static App, message: SqsMessage) -> Result<(), String> {
    let job: Job = match message.body.as_deref().map(serde_json::from_str) {
        Some(Ok(job)) => job,
        Some(Err(e)) => return app.dead_letter(&message, &format!("not a job: {e}")).await,
        None => return app.dead_letter(&message, "the message has no body").await,
    };
    let now = clock::now_ms();
    let outcome = match job.kind {
        JobKind::Signal => app.dispatcher.run_signal_job(&job, now).await,
        JobKind::Reconcile => app.dispatcher.reconcile(&job, now).await,
        JobKind::Context => Err(JobFailure {
            retryable: true,
            reason: "context jobs are not run yet".into(),
            retry_after: None,
        }),
    };
    match outcome {
        Ok(()) => Ok(()),
        Err(f) if f.retryable => Err(f.reason),
        Err(f) => app.dead_letter(&message, &f.reason).await,
    }
}
