use std::sync::Arc;

use cxbridge::adapters::dynamodb::DynamoDbExecutionStore;
use cxbridge::adapters::secrets_manager::SecretsManagerSource;
use cxbridge::app::InitError;
use cxbridge::callbacks::{CallbackRequest, CallbackService};
use cxbridge::http::{Reply, RequestMeta, json};
use cxbridge::{Base, clock};
use lambda_http::Request;

const ROUTE: &str = "POST /callbacks/studio";

pub struct App {
    pub base: Base,
    pub service: CallbackService<Arc<SecretsManagerSource>, DynamoDbExecutionStore>,
}

impl App {
    pub async fn init() -> Result<Self, InitError> {
        let base = Base::init().await?;
        let config = &base.config;
        let store = DynamoDbExecutionStore::new(base.aws.dynamodb.clone(), config.table.clone());
        let service = CallbackService::new(
            config.callback_auth,
            config.signature_tolerance,
            base.secrets.clone(),
            store,
            config.secret_refresh_min_interval,
        );
        Ok(Self { base, service })
    }
}

pub async fn handle(app: &'static App, req: Request, meta: RequestMeta) -> Reply {
    meta.expect_route(ROUTE)?;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let request = CallbackRequest {
        signature: header("x-callback-signature-256"),
        timestamp: header("x-callback-timestamp"),
        token: header("x-callback-token"),
        body: req.body().as_ref(),
    };
    let (status, body) = app.service.receive(&request, clock::now_ms()).await?;
    Ok(json(status, &body))
}
