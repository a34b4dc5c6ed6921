use cxbridge::app::{InitError, LiveDispatcher};
use cxbridge::error::ErrorCode;
use cxbridge::http::{Reply, RequestMeta, json};
use cxbridge::secrets::{RefreshGate, check_with_rotation};
use cxbridge::{ApiError, Base, auth, clock};
use lambda_http::http::StatusCode;
use lambda_http::{Request, RequestExt};

pub struct App {
    pub base: Base,
    pub dispatcher: LiveDispatcher,
    refresh: RefreshGate,
}

impl App {
    pub async fn init() -> Result<Self, InitError> {
        let (base, dispatcher) = Base::init_with_dispatcher().await?;
        let refresh = RefreshGate::new(base.config.secret_refresh_min_interval);
        Ok(Self {
            base,
            dispatcher,
            refresh,
        })
    }
}

/// `X-API-Key` against the secret's `apiKeys`; a refused key re-reads the secret once
/// (rate-limited), so rotated keys work without a restart.
async fn authorise(app: &App, req: &Request) -> Result<(), ApiError> {
    let key = req
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    check_with_rotation(&app.base.secrets, &app.refresh, "the API keys", |secrets| {
        if auth::matches_any(key, &secrets.api_keys) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Unauthorized,
                "a valid X-API-Key header is required",
            ))
        }
    })
    .await
}

pub async fn handle(app: &'static App, req: Request, meta: RequestMeta) -> Reply {
    authorise(app, &req).await?;
    let param = |name: &str| {
        req.path_parameters_ref()
            .and_then(|p| p.first(name))
            .unwrap_or_default()
            .to_owned()
    };
    match meta.route.as_str() {
        "POST /signals/{name}" => {
            // The raw bytes: a key that is not ASCII is refused, not dropped.
            let key = req.headers().get("idempotency-key").map(|v| v.as_bytes());
            let (status, body) = app
                .dispatcher
                .submit(&param("name"), key, req.body().as_ref(), clock::now_ms())
                .await?;
            Ok(json(status, &body))
        }
        "GET /executions/{correlationId}" => {
            let view = app.dispatcher.execution(&param("correlationId")).await?;
            Ok(json(StatusCode::OK, &view))
        }
        other => Err(ApiError::not_implemented(other)),
    }
}
