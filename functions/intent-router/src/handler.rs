use std::time::Duration;

use cxbridge::app::{InitError, LiveDispatcher};
use cxbridge::cxone::{ContextSink, CxoneError};
use cxbridge::error::ErrorCode;
use cxbridge::http::{RequestMeta, json};
use cxbridge::idempotency::{Claim, DynamoDbIdempotencyStore, IdempotencyStore};
use cxbridge::intents::{self, IntentConfig, IntentResult};
use cxbridge::jobs::{Job, JobKind};
use cxbridge::secrets::SecretSource;
use cxbridge::{ApiError, Base, auth, clock};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// How long an identical result counts as a resend.
const DEDUP_TTL: Duration = Duration::from_secs(600);

pub struct App {
    pub base: Base,
    pub dispatcher: LiveDispatcher,
    pub intents: IntentConfig,
    pub dedup: DynamoDbIdempotencyStore,
}

impl App {
    pub async fn init() -> Result<Self, InitError> {
        let (base, dispatcher) = Base::init_with_dispatcher().await?;
        let intents = IntentConfig::from_env()?;
        let dedup = DynamoDbIdempotencyStore::new(
            base.aws.dynamodb.clone(),
            base.config.table.clone(),
            DEDUP_TTL,
        );
        Ok(Self {
            base,
            dispatcher,
            intents,
            dedup,
        })
    }
}

async fn authorise(app: &App, req: &Request) -> Result<(), ApiError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let token = header("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| header("x-api-key"))
        .unwrap_or_default();
    let secrets = app.base.secrets.current().await.map_err(|e| {
        ApiError::new(
            ErrorCode::DependencyUnavailable,
            "the Cognigy tokens cannot be read; retry later",
        )
        .with_cause(e)
    })?;
    if auth::matches_any(token.trim(), &secrets.cognigy_tokens) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Unauthorized,
            "send a Cognigy token as Authorization: Bearer … or X-API-Key",
        ))
    }
}

pub async fn handle(
    app: &'static App,
    req: Request,
    meta: RequestMeta,
) -> Result<Response<Body>, ApiError> {
    if meta.route != "POST /cognigy/intents" {
        return Err(ApiError::not_implemented(meta.route));
    }
    authorise(app, &req).await?;
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    let result = intents::parse(content_type, req.body().as_ref())?;

    let now = clock::now_ms();
    let hash = hex::encode(Sha256::digest(
        json!([
            result.interaction_id,
            result.intent,
            result.confidence,
            result.timestamp
        ])
        .to_string(),
    ));
    let key = format!("intent#{hash}");
    let until = req
        .lambda_context_ref()
        .and_then(|c| i64::try_from(c.deadline).ok())
        .filter(|d| *d > now)
        .unwrap_or(now + 10_000);
    let store_down = |e| {
        ApiError::new(
            ErrorCode::DependencyUnavailable,
            "the de-duplication store is unavailable; retry later",
        )
        .with_cause(e)
    };
    match app
        .dedup
        .claim(&key, &hash, now, until)
        .await
        .map_err(store_down)?
    {
        Claim::Acquired => {}
        Claim::Completed(saved) => {
            let status = saved["status"]
                .as_u64()
                .and_then(|s| StatusCode::from_u16(s as u16).ok())
                .unwrap_or(StatusCode::OK);
            return Ok(json(status, &saved["body"]));
        }
        Claim::InProgress | Claim::Conflict => {
            return Err(ApiError::new(
                ErrorCode::InProgress,
                "the same result is being routed; retry later",
            ));
        }
    }

    let outcome = route(app, &result, &hash, now).await;
    match &outcome {
        Ok((status, body)) => {
            let saved = json!({"status": status.as_u16(), "body": body});
            if let Err(e) = app.dedup.complete(&key, &hash, &saved, now).await {
                tracing::warn!(error = %e, "could not record the routed result");
            }
        }
        // A refused result may succeed later (the contact may appear): let a resend retry.
        Err(_) => {
            if let Err(e) = app.dedup.release(&key, until).await {
                tracing::warn!(error = %e, "could not release the result");
            }
        }
    }
    outcome.map(|(status, body)| json(status, &body))
}

async fn route(
    app: &App,
    result: &IntentResult,
    hash: &str,
    now: i64,
) -> Result<(StatusCode, Value), ApiError> {
    let threshold = app.intents.threshold;
    let (Some(intent), Some(confidence)) = (result.intent.as_deref(), result.confidence) else {
        return Ok((
            StatusCode::OK,
            json!({"status": "below_threshold", "reason": "no intent was detected", "threshold": threshold}),
        ));
    };
    if confidence < threshold {
        return Ok((
            StatusCode::OK,
            json!({"status": "below_threshold", "intent": intent, "confidence": confidence, "threshold": threshold}),
        ));
    }
    let mapped = app.intents.intents.get(intent);
    let attributes = intents::attributes(result, mapped, now);
    let mut answer = match app
        .dispatcher
        .cxone
        .update_context(&result.interaction_id, &attributes)
        .await
    {
        Ok(()) => {
            json!({"status": "routed", "interactionId": result.interaction_id, "intent": intent, "confidence": confidence, "attributes": attributes})
        }
        Err(CxoneError::NotFound(_)) => {
            return Err(ApiError::new(
                ErrorCode::InteractionNotFound,
                format!(
                    "CXone does not know interaction {:?}",
                    result.interaction_id
                ),
            ));
        }
        Err(e) if e.is_retryable() => {
            let job = Job {
                version: cxbridge::jobs::JOB_VERSION,
                id: format!("intent:{hash}"),
                kind: JobKind::Context,
                correlation_id: format!("intent:{hash}"),
                attempt: 1,
                first_attempt_at: clock::rfc3339(now),
                last_attempt_at: Some(clock::rfc3339(now)),
                payload: json!({"interactionId": result.interaction_id, "attributes": attributes}),
                last_error: Some(e.to_string()),
                redriven: false,
            };
            let wait = app
                .base
                .config
                .retry
                .delay(1, e.retry_after(), cxbridge::jobs::jitter());
            let delay = i32::try_from(wait.as_secs_f64().ceil() as u64).unwrap_or(900);
            app.dispatcher
                .enqueue(&job, Some(delay))
                .await
                .map_err(|q| {
                    ApiError::new(
                        ErrorCode::DependencyUnavailable,
                        "CXone and the job queue are unavailable; retry later",
                    )
                    .with_cause(q)
                })?;
            json!({"status": "queued", "interactionId": result.interaction_id, "intent": intent, "confidence": confidence, "attributes": attributes})
        }
        Err(e) => {
            let code = if matches!(e, CxoneError::Invalid { .. }) {
                ErrorCode::CxoneRejected
            } else {
                ErrorCode::CxoneRefused
            };
            return Err(ApiError::new(
                code,
                format!("CXone refused the context update: {e}"),
            ));
        }
    };
    if let Some(signal) = mapped.and_then(|m| m.signal.as_ref()) {
        let data: serde_json::Map<String, Value> = signal
            .mapping
            .iter()
            .map(|(var, field)| (var.clone(), intents::field(result, field)))
            .collect();
        let body = json!({"data": data, "metadata": {"contactId": result.interaction_id, "sourceSystem": "cognigy"}});
        let key = format!("intent-{}-{}", &hash[..32], signal.name);
        answer["signal"] = match app
            .dispatcher
            .submit(&signal.name, Some(&key), body.to_string().as_bytes(), now)
            .await
        {
            Ok((_, reply)) => reply,
            Err(err) => json!({"status": "failed", "error": err.body()["error"]}),
        };
    }
    Ok((
        if answer["status"] == "queued" {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        },
        answer,
    ))
}
