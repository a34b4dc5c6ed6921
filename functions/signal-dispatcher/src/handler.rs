use cxbridge::app::{InitError, LiveDispatcher};
use cxbridge::error::ErrorCode;
use cxbridge::http::{RequestMeta, json};
use cxbridge::secrets::SecretSource;
use cxbridge::signals::store::ExecutionStore;
use cxbridge::{ApiError, Base, auth, clock};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};

pub struct App {
    pub base: Base,
    pub dispatcher: LiveDispatcher,
}

impl App {
    pub async fn init() -> Result<Self, InitError> {
        let (base, dispatcher) = Base::init_with_dispatcher().await?;
        Ok(Self { base, dispatcher })
    }
}

async fn authorise(app: &App, req: &Request) -> Result<(), ApiError> {
    let secrets = app.base.secrets.current().await.map_err(|e| {
        ApiError::new(
            ErrorCode::DependencyUnavailable,
            "the API keys cannot be read; retry later",
        )
        .with_cause(e)
    })?;
    let key = req
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth::matches_any(key, &secrets.api_keys) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Unauthorized,
            "a valid X-API-Key header is required",
        ))
    }
}

pub async fn handle(
    app: &'static App,
    req: Request,
    meta: RequestMeta,
) -> Result<Response<Body>, ApiError> {
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
            let id = param("correlationId");
            let id = cxbridge::signals::execution_id(&id)?;
            let found = app.dispatcher.store.get(id).await.map_err(|e| {
                ApiError::new(
                    ErrorCode::DependencyUnavailable,
                    "the execution store is unavailable; retry later",
                )
                .with_cause(e)
            })?;
            match found {
                Some(execution) => Ok(json(StatusCode::OK, &execution.view())),
                None => Err(ApiError::new(
                    ErrorCode::ExecutionNotFound,
                    format!("no execution with correlation id {id:?}"),
                )),
            }
        }
        other => Err(ApiError::not_implemented(other)),
    }
}
