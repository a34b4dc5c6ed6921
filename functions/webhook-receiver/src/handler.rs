use std::sync::Arc;

use cxbridge::adapters::dynamodb::DynamoDbIdempotencyStore;
use cxbridge::adapters::secrets_manager::SecretsManagerSource;
use cxbridge::app::InitError;
use cxbridge::http::{Reply, RequestMeta, json};
use cxbridge::webhook::signature::{
    DELIVERY_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use cxbridge::webhook::studio::{self, StudioInbound};
use cxbridge::webhook::{Inbound, Outcome, Receiver};
use cxbridge::{ApiError, Base, clock};
use lambda_http::Request;
use lambda_http::http::StatusCode;

const CXONE_ROUTE: &str = "POST /webhooks/cxone";

pub struct App {
    pub base: Base,
    pub receiver: Receiver<Arc<SecretsManagerSource>, DynamoDbIdempotencyStore>,
}

impl App {
    pub async fn init() -> Result<Self, InitError> {
        let base = Base::init().await?;
        let config = &base.config;
        let webhook = base.webhook_config().await?;
        let receiver = Receiver::new(
            webhook,
            base.secrets.clone(),
            DynamoDbIdempotencyStore::new(
                base.aws.dynamodb.clone(),
                config.table.clone(),
                config.idempotency_ttl,
            ),
            config.signature_tolerance,
            config.secret_refresh_min_interval,
        );
        Ok(Self { base, receiver })
    }
}

/// `POST /webhooks/studio` is Studio's REST API action, `POST /webhooks/cxone` a signed
/// webhook; no other route reaches this function.
pub async fn handle(app: &'static App, req: Request, meta: RequestMeta) -> Reply {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let raw = |name: &str| req.headers().get(name).map(|v| v.as_bytes());
    let now_ms = clock::now_ms();
    if meta.route != studio::ROUTE && meta.route != CXONE_ROUTE {
        return Err(ApiError::not_implemented(meta.route));
    }
    let outcome = if meta.route == studio::ROUTE {
        let inbound = StudioInbound {
            content_type: header("content-type"),
            api_key: raw(studio::API_KEY_HEADER),
            authorization: raw(studio::AUTHORIZATION_HEADER),
            delivery_id: raw(studio::DELIVERY_ID_HEADER),
            event_type: raw(studio::EVENT_TYPE_HEADER),
            body: req.body().as_ref(),
        };
        app.receiver.receive_studio(&inbound, now_ms).await?
    } else {
        let inbound = Inbound {
            content_type: header("content-type"),
            signature: header(SIGNATURE_HEADER),
            timestamp: header(TIMESTAMP_HEADER),
            event_type: header(EVENT_TYPE_HEADER),
            delivery_id: header(DELIVERY_ID_HEADER),
            body: req.body().as_ref(),
        };
        app.receiver.receive(&inbound, now_ms).await?
    };
    Ok(match outcome {
        Outcome::Accepted(body) => json(StatusCode::ACCEPTED, &body),
        Outcome::Duplicate(body) => json(StatusCode::OK, &body),
    })
}
