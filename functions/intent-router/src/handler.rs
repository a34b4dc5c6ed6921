use std::sync::Arc;

use cxbridge::adapters::dynamodb::DynamoDbIdempotencyStore;
use cxbridge::adapters::dynamodb::DynamoDbSessionMemory;
use cxbridge::adapters::secrets_manager::SecretsManagerSource;
use cxbridge::app::{InitError, LiveDispatcher};
use cxbridge::http::{RequestMeta, json};
use cxbridge::intents::{
    ANONYMOUS_DEDUP_TTL, DEDUP_TTL, IntentConfig, IntentRequest, IntentRouter,
};
use cxbridge::{ApiError, Base, clock};
use lambda_http::{Body, Request, RequestExt, Response};

const ROUTE: &str = "POST /cognigy/intents";

/// How long a claimed turn stays in progress when the invocation has no deadline.
const DEFAULT_IN_PROGRESS_MS: i64 = 10_000;

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

pub async fn handle(
    app: &'static App,
    req: Request,
    meta: RequestMeta,
) -> Result<Response<Body>, ApiError> {
    if meta.route != ROUTE {
        return Err(ApiError::not_implemented(meta.route));
    }
    let headers = req.headers();
    let request = IntentRequest {
        content_type: headers.get("content-type").and_then(|v| v.to_str().ok()),
        authorization: headers.get("authorization").map(|v| v.as_bytes()),
        api_key: headers.get("x-api-key").map(|v| v.as_bytes()),
        body: req.body().as_ref(),
    };
    let now_ms = clock::now_ms();
    // The claim lasts as long as this invocation may run.
    let in_progress_until = req
        .lambda_context_ref()
        .and_then(|c| i64::try_from(c.deadline).ok())
        .filter(|d| *d > now_ms)
        .unwrap_or(now_ms + DEFAULT_IN_PROGRESS_MS);
    let answer = app
        .router
        .route(&request, now_ms, in_progress_until)
        .await?;
    Ok(json(answer.status, &answer.body))
}
