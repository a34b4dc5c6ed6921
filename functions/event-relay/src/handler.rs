use cxbridge::adapters::dynamodb::DynamoDbRelayProgress;
use cxbridge::adapters::sqs::SqsMessageQueue;
use cxbridge::app::InitError;
use cxbridge::relay::{Relay, Relayed, StreamEvent};
use cxbridge::{Base, clock};

pub struct App {
    pub relay: Relay<SqsMessageQueue, DynamoDbRelayProgress>,
}

impl App {
    pub async fn init() -> Result<Self, InitError> {
        let base = Base::init().await?;
        let relay = Relay {
            queue: SqsMessageQueue::new(base.aws.sqs.clone()),
            progress: DynamoDbRelayProgress::new(
                base.aws.dynamodb.clone(),
                base.config.table.clone(),
            ),
        };
        Ok(Self { relay })
    }
}

/// Relays one batch of stream records (`cxbridge::relay`).
pub async fn handle(app: &'static App, event: StreamEvent) -> Relayed {
    app.relay.relay(&event, clock::now_ms()).await
}
