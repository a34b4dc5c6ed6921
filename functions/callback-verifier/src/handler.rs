use cxbridge::adapters::dynamodb::DynamoDbExecutionStore;
use cxbridge::app::InitError;
use cxbridge::config::CallbackAuth;
use cxbridge::error::ErrorCode;
use cxbridge::http::{RequestMeta, json};
use cxbridge::secrets::{RefreshGate, SecretSource};
use cxbridge::signals::parse_callback;
use cxbridge::signals::store::{CallbackOutcome, ExecutionStore};
use cxbridge::webhook::signature::{self, Signed};
use cxbridge::{ApiError, Base, auth, clock};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;

pub struct App {
    pub base: Base,
    pub store: DynamoDbExecutionStore,
    refresh: RefreshGate,
}

impl App {
    pub async fn init() -> Result<Self, InitError> {
        let base = Base::init().await?;
        let store =
            DynamoDbExecutionStore::new(base.aws.dynamodb.clone(), base.config.table.clone());
        let refresh = RefreshGate::new(base.config.secret_refresh_min_interval);
        Ok(Self {
            base,
            store,
            refresh,
        })
    }

    /// Checks the callback's proof of origin; a mismatch re-reads the secret once
    /// (rate-limited), so rotated callback secrets work without a restart.
    async fn authenticate(&self, req: &Request) -> Result<(), ApiError> {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let unavailable = |e: cxbridge::secrets::SecretError| {
            ApiError::new(
                ErrorCode::DependencyUnavailable,
                "the callback secrets cannot be read; retry later",
            )
            .with_cause(e)
        };
        let config = &self.base.config;
        let names = signature::CALLBACK_HEADERS;
        let signed = Signed {
            headers: names,
            signature: header(names.signature),
            timestamp: header(names.timestamp),
            body: req.body().as_ref(),
        };
        let now = clock::now_secs();
        let tolerance = config.signature_tolerance.as_secs();
        if config.callback_auth == CallbackAuth::Hmac {
            signature::precheck(&signed, now, tolerance)
                .map_err(|e| ApiError::new(e.code(), e.to_string()))?;
        }
        let check = |secrets: &cxbridge::secrets::Secrets| match config.callback_auth {
            CallbackAuth::Hmac => {
                signature::verify(&signed, &secrets.callback_secrets, now, tolerance)
                    .map(|_| ())
                    .map_err(|e| ApiError::new(e.code(), e.to_string()))
            }
            CallbackAuth::Token => {
                if auth::matches_any(
                    header("x-callback-token").unwrap_or_default(),
                    &secrets.callback_secrets,
                ) {
                    Ok(())
                } else {
                    Err(ApiError::new(
                        ErrorCode::Unauthorized,
                        "a valid X-Callback-Token header is required",
                    ))
                }
            }
        };
        let first = check(&*self.base.secrets.current().await.map_err(unavailable)?);
        match first {
            Err(_) if self.refresh.allow() => {
                check(&*self.base.secrets.refresh().await.map_err(unavailable)?)
            }
            other => other,
        }
    }
}

pub async fn handle(
    app: &'static App,
    req: Request,
    meta: RequestMeta,
) -> Result<Response<Body>, ApiError> {
    if meta.route != "POST /callbacks/studio" {
        return Err(ApiError::not_implemented(meta.route));
    }
    app.authenticate(&req).await?;
    let callback = parse_callback(req.body().as_ref())?;
    let outcome = app
        .store
        .callback(
            &callback.correlation_id,
            callback.status,
            &callback.outputs,
            callback.error.as_deref(),
            callback.signal_execution_id.as_deref(),
            clock::now_ms(),
        )
        .await
        .map_err(|e| {
            ApiError::new(
                ErrorCode::DependencyUnavailable,
                "the execution store is unavailable; retry later",
            )
            .with_cause(e)
        })?;
    match outcome {
        CallbackOutcome::Recorded => Ok(json(
            StatusCode::OK,
            &json!({"status": "recorded", "correlationId": callback.correlation_id}),
        )),
        CallbackOutcome::Duplicate => Ok(json(
            StatusCode::OK,
            &json!({"status": "duplicate", "correlationId": callback.correlation_id}),
        )),
        CallbackOutcome::NotFound => Err(ApiError::new(
            ErrorCode::ExecutionNotFound,
            format!(
                "no execution with correlation id {:?}",
                callback.correlation_id
            ),
        )),
    }
}
