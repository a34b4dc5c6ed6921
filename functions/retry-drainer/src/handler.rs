use aws_lambda_events::event::sqs::SqsMessage;
use cxbridge::adapters::sqs::SqsMessageQueue;
use cxbridge::app::{InitError, LiveDrainer, LiveJobs};
use cxbridge::drainer::Drainer;
use cxbridge::{Base, clock, jobs};

pub struct App {
    pub base: Base,
    pub drainer: LiveDrainer,
}

const FUNCTION: &str = "retry-drainer";

impl App {
    pub async fn init() -> Result<Self, InitError> {
        let (base, dispatcher) = Base::init_with_dispatcher().await?;
        let targets = base.webhook_config().await?.targets;
        let deliverer = base.deliverer(targets, FUNCTION);
        let drainer = Drainer {
            runner: LiveJobs {
                dispatcher,
                deliverer,
            },
            queue: SqsMessageQueue::new(base.aws.sqs.clone()),
            jobs_url: base.config.jobs_queue_url.clone(),
            dlq_url: base.config.dlq_url.clone(),
            policy: base.config.retry,
            function: FUNCTION,
        };
        Ok(Self { base, drainer })
    }
}

/// Runs one job from `jobs` (`cxbridge::drainer`): an error leaves the message on the
/// queue, to come back after its visibility timeout.
pub async fn handle(app: &'static App, message: SqsMessage) -> Result<(), String> {
    let id = message.message_id.as_deref().unwrap_or_default();
    app.drainer
        .handle(id, message.body.as_deref(), clock::now_ms(), jobs::jitter())
        .await
}
