use std::sync::Arc;

use cxbridge::adapters::dynamodb::DynamoDbIdempotencyStore;
use cxbridge::adapters::dynamodb::DynamoDbSessionMemory;
use cxbridge::adapters::secrets_manager::SecretsManagerSource;
use cxbridge::app::{InitError, LiveDispatcher};
use cxbridge::http::{Reply, RequestMeta, invocation_deadline, json};
use cxbridge::intents::{
    ANONYMOUS_DEDUP_TTL, DEDUP_TTL, IntentConfig, IntentRequest, IntentRouter,
};
use cxbridge::{Base, clock};
use lambda_http::Request;

const ROUTE: &str = "POST /cognigy/intents";

pub struct App {
    pub base: Base,
    pub router: IntentRouter<
        Arc<SecretsManagerSource>,
        DynamoDbIdempotencyStore,
        DynamoDbSessionMemory,
        LiveDispatcher,
    >,
}

impl App {
    pub async fn init() -> Result<Self, InitError> {
        let (base, dispatcher) = Base::init_with_dispatcher().await?;
        let intents = IntentConfig::from_env()?;
        intents.check_profile(dispatcher.profile)?;
        let config = &base.config;
        let store = |ttl| {
            DynamoDbIdempotencyStore::new(base.aws.dynamodb.clone(), config.table.clone(), ttl)
        };
        let sessions = DynamoDbSessionMemory::new(
            base.aws.dynamodb.clone(),
            config.table.clone(),
            intents.session_ttl(),
        );
        let router = IntentRouter::new(
            intents,
            dispatcher.profile,
            base.secrets.clone(),
            store(DEDUP_TTL),
            store(ANONYMOUS_DEDUP_TTL),
            sessions,
            dispatcher,
            config.secret_refresh_min_interval,
        );
        Ok(Self { base, router })
    }
}

pub async fn handle(app: &'static App, req: Request, meta: RequestMeta) -> Reply {
    meta.expect_route(ROUTE)?;
    let headers = req.headers();
    let request = IntentRequest {
        content_type: headers.get("content-type").and_then(|v| v.to_str().ok()),
        authorization: headers.get("authorization").map(|v| v.as_bytes()),
        api_key: headers.get("x-api-key").map(|v| v.as_bytes()),
        body: req.body().as_ref(),
    };
    let now_ms = clock::now_ms();
    // The claim lasts as long as this invocation may run.
    let in_progress_until = invocation_deadline(&req, now_ms);
    let answer = app
        .router
        .route(&request, now_ms, in_progress_until)
        .await?;
    Ok(json(answer.status, &answer.body))
}
