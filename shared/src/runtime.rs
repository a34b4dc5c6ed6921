//! Glue between a function's `main` and the Lambda Runtime API.

use std::convert::Infallible;
use std::future::Future;
use std::time::Instant;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_http::{Body, Request, Response};
use lambda_runtime::{LambdaEvent, service_fn};
use lambda_runtime_api_client::body::Body as ApiBody;

use crate::error::ApiError;
use crate::http::RequestMeta;
use crate::{http, probe, telemetry};

pub type Error = lambda_runtime::Error;

/// Builds the app once. On failure the cause is logged and reported to the Runtime API's
/// `/init/error`, as Lambda expects, and the error is returned for `main` to exit with.
pub async fn init<T: Send + Sync + 'static, E, Fut>(build: Fut) -> Result<&'static T, Error>
where
    Fut: Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    if let Err(err) = telemetry::init() {
        tracing::error!(error = %err, "init failed");
        report_init_error(&err).await;
        return Err(Box::new(err));
    }
    match build.await {
        // The app lives as long as the process; leaking it lets handlers borrow it freely.
        Ok(app) => Ok(Box::leak(Box::new(app))),
        Err(err) => {
            tracing::error!(error = %err, "init failed");
            report_init_error(&err).await;
            Err(Box::new(err))
        }
    }
}

async fn report_init_error(err: &(dyn std::error::Error + 'static)) {
    let diagnostic = serde_json::json!({
        "errorType": "Runtime.InitError",
        "errorMessage": err.to_string(),
    });
    let request = ::http::Request::builder()
        .method("POST")
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", "Runtime.InitError")
        .header("content-type", "application/json")
        .body(ApiBody::from(diagnostic.to_string()));
    let client = lambda_runtime_api_client::PooledClient::builder().build();
    match request {
        Ok(request) => {
            if let Err(e) = client.call(request).await {
                tracing::error!(error = %e, "could not report the init error to the runtime API");
            }
        }
        Err(e) => tracing::error!(error = %e, "could not build the init error report"),
    }
}

/// Serves API Gateway HTTP API (payload v2) requests with `handler`, through the shared
/// edge in [`http::serve`].
pub async fn run_http<A, H, Fut>(
    app: &'static A,
    probe_enabled: bool,
    handler: H,
) -> Result<(), Error>
where
    A: Sync + 'static,
    H: Fn(&'static A, Request, RequestMeta) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, ApiError>> + Send,
{
    lambda_http::run(service_fn(move |req: Request| async move {
        if probe_enabled && probe::is_unhandled_error(&req) {
            return Err(Error::from(probe::UNHANDLED_ERROR));
        }
        Ok(http::serve(req, probe_enabled, |req, meta| handler(app, req, meta)).await)
    }))
    .await
}

/// Serves SQS batches: `handler` runs each message, and the ones it fails are reported as
/// `batchItemFailures` so that only they come back after the visibility timeout.
pub async fn run_sqs<A, H, Fut>(
    app: &'static A,
    probe_enabled: bool,
    handler: H,
) -> Result<(), Error>
where
    A: Sync + 'static,
    H: Fn(&'static A, SqsMessage) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Infallible>(run_batch(event.payload, probe_enabled, |m| handler(app, m)).await)
    }))
    .await
}

/// The batch plumbing, apart from any one message's work.
pub async fn run_batch<F, Fut>(event: SqsEvent, probe_enabled: bool, handler: F) -> SqsBatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    let records = event.records.len();
    let mut response = SqsBatchResponse::default();
    let mut succeeded = Vec::new();
    for message in event.records {
        let id = message.message_id.clone().unwrap_or_default();
        let probed = probe_enabled
            .then(|| message.body.as_deref().and_then(probe::job_outcome))
            .flatten();
        let outcome = match probed {
            Some(outcome) => outcome,
            None => handler(message).await,
        };
        match outcome {
            Ok(()) => succeeded.push(id),
            Err(reason) => {
                tracing::warn!(message_id = %id, %reason, "message failed; it will be retried");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
    }
    let failures = response.batch_item_failures.len();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let succeeded = succeeded.join(",");
    tracing::info!(route = "sqs jobs", records, failures, %succeeded, latency_ms, "batch");
    response
}

/// Serves DynamoDB stream batches: `handler` sends them on, and the record to retry from,
/// if any, is reported as the one `batchItemFailures` entry, so that Lambda retries the
/// shard from there and never repeats what came before it.
pub async fn run_stream<A, H, Fut>(app: &'static A, handler: H) -> Result<(), Error>
where
    A: Sync + 'static,
    H: Fn(&'static A, crate::relay::StreamEvent) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = crate::relay::Relayed> + Send,
{
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<crate::relay::StreamEvent>| async move {
            let started = Instant::now();
            let records = event.payload.records.len();
            let relayed = handler(app, event.payload).await;
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            tracing::info!(
                route = "table stream",
                records,
                sent = relayed.sent,
                skipped = relayed.skipped,
                retry_from = relayed.retry_from.as_deref().unwrap_or(""),
                latency_ms,
                "batch"
            );
            let mut response = SqsBatchResponse::default();
            if let Some(seq) = relayed.retry_from {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = seq;
                response.batch_item_failures.push(failure);
            }
            Ok::<_, Infallible>(response)
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_owned());
        m.body = Some(body.to_owned());
        m
    }

    #[tokio::test]
    async fn only_failed_messages_are_reported() {
        let mut event = SqsEvent::default();
        event.records = vec![message("a", "ok"), message("b", "bad"), message("c", "ok")];
        let response = run_batch(event, false, |m| async move {
            if m.body.as_deref() == Some("ok") {
                Ok(())
            } else {
                Err("bad".to_owned())
            }
        })
        .await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["b"]);
    }

    #[tokio::test]
    async fn probe_messages_are_only_honoured_when_enabled() {
        let mut event = SqsEvent::default();
        event.records = vec![message("p", r#"{"probe":"ok"}"#)];
        let off = run_batch(event.clone(), false, |_| async { Err("no".to_owned()) }).await;
        assert_eq!(off.batch_item_failures.len(), 1);
        let on = run_batch(event, true, |_| async { Err("no".to_owned()) }).await;
        assert!(on.batch_item_failures.is_empty());
    }
}
