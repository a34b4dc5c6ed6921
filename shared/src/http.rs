//! The HTTP edge shared by every API function: correlation ids, the body limit, the error
//! mapping and the one log line per request.

use std::future::Future;
use std::time::Instant;

use http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::error::{ApiError, ErrorCode};
use crate::{ids, probe, telemetry};

/// Largest request body accepted (ARCHITECTURE.md, Routes): 256 KiB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// What the edge learnt about a request before the handler sees it.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// Echoed from `x-correlation-id` when the caller sent a usable one, else generated.
    pub correlation_id: String,
    /// The API Gateway route key, such as `POST /signals/{name}`.
    pub route: String,
}

/// Runs `handler` for one request and turns whatever it returns into a response with the
/// correlation id set. Never fails: every error becomes its stable body.
pub async fn serve<F, Fut>(req: Request, probe_enabled: bool, handler: F) -> Response<Body>
where
    F: FnOnce(Request, RequestMeta) -> Fut,
    Fut: Future<Output = Result<Response<Body>, ApiError>>,
{
    let started = Instant::now();
    let meta = RequestMeta {
        correlation_id: req
            .headers()
            .get(CORRELATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(ids::accept_correlation_id)
            .map_or_else(ids::new_uuid, str::to_owned),
        route: route_of(&req),
    };
    let request_id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    let method = req.method().to_string();
    let correlation_id = meta.correlation_id.clone();
    let route = meta.route.clone();

    let outcome = if req.body().len() > MAX_BODY_BYTES {
        Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        ))
    } else if probe_enabled && probe::is_echo(&req) {
        Ok(probe::echo(req).await)
    } else {
        handler(req, meta).await
    };

    let (mut response, error) = match outcome {
        Ok(response) => (response, None),
        Err(err) => (error_response(&err), Some(err)),
    };
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }

    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let outcome = match &error {
        Some(e) => e.code.as_str().to_owned(),
        None => serde_json::from_slice::<serde_json::Value>(response.body().as_ref())
            .ok()
            .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_owned))
            .unwrap_or_else(|| status.to_string()),
    };
    telemetry::request_metrics(&route, &outcome, latency_ms, &correlation_id);
    let code = error.as_ref().map(|e| e.code.as_str());
    let cause = error.as_ref().and_then(ApiError::cause_chain);
    match status {
        500.. => {
            tracing::error!(%route, %method, status, latency_ms, %correlation_id, %request_id, code, cause, "request")
        }
        400.. => {
            tracing::warn!(%route, %method, status, latency_ms, %correlation_id, %request_id, code, cause, "request")
        }
        _ => {
            tracing::info!(%route, %method, status, latency_ms, %correlation_id, %request_id, "request")
        }
    }
    response
}

fn route_of(req: &Request) -> String {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref()
        && let Some(key) = ctx.route_key.as_deref()
    {
        return key.to_owned();
    }
    format!("{} {}", req.method(), req.uri().path())
}

/// A JSON response.
/// What a route handler returns: its response, or the error the edge answers with.
pub type Reply = Result<Response<Body>, ApiError>;

impl RequestMeta {
    /// Refuses a route this function does not serve (`not_implemented`), so a route key
    /// the template gives it by mistake cannot reach the wrong logic.
    pub fn expect_route(&self, route: &str) -> Result<(), ApiError> {
        if self.route == route {
            Ok(())
        } else {
            Err(ApiError::not_implemented(&self.route))
        }
    }
}

/// How long the invocation serving `req` may run: its deadline (epoch ms), or 10 s from
/// `now_ms` when it has none. A claim made for the request lasts until then, as
/// Powertools' idempotency does.
pub fn invocation_deadline(req: &Request, now_ms: i64) -> i64 {
    const WITHOUT_DEADLINE_MS: i64 = 10_000;
    req.lambda_context_ref()
        .and_then(|c| i64::try_from(c.deadline).ok())
        .filter(|d| *d > now_ms)
        .unwrap_or(now_ms + WITHOUT_DEADLINE_MS)
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The stable error body for `err`.
pub fn error_response(err: &ApiError) -> Response<Body> {
    let mut response = json(err.status(), &err.body());
    if let Some(secs) = err.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Vec<u8>, correlation: Option<&str>) -> Request {
        let mut builder = http::Request::builder()
            .method("POST")
            .uri("https://example.com/webhooks/cxone");
        if let Some(c) = correlation {
            builder = builder.header(CORRELATION_HEADER, c);
        }
        builder.body(Body::Binary(body)).unwrap()
    }

    fn body_json(response: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(response.body().as_ref()).unwrap()
    }

    #[tokio::test]
    async fn a_usable_correlation_id_is_echoed() {
        let response = serve(
            request(vec![1, 2], Some("abc-1")),
            false,
            |_, meta| async move {
                assert_eq!(meta.correlation_id, "abc-1");
                Err(ApiError::not_implemented(meta.route))
            },
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(response.headers()[CORRELATION_HEADER], "abc-1");
        assert_eq!(body_json(&response)["error"]["code"], "not_implemented");
    }

    #[tokio::test]
    async fn an_unusable_correlation_id_is_replaced() {
        let response = serve(request(vec![], Some("bad id")), false, |_, _| async {
            Ok(json(StatusCode::OK, &serde_json::json!({})))
        })
        .await;
        let echoed = response.headers()[CORRELATION_HEADER].to_str().unwrap();
        assert_ne!(echoed, "bad id");
        assert_eq!(echoed.len(), 36);
    }

    #[tokio::test]
    async fn a_body_over_256_kib_is_refused_before_the_handler_runs() {
        let response = serve(
            request(vec![0; MAX_BODY_BYTES + 1], None),
            false,
            |_, _| async { panic!("handler must not run") },
        )
        .await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body_json(&response)["error"]["code"], "payload_too_large");
    }

    #[tokio::test]
    async fn a_body_of_exactly_256_kib_reaches_the_handler() {
        let response = serve(
            request(vec![0; MAX_BODY_BYTES], None),
            false,
            |req, _| async move {
                Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({"len": req.body().len()}),
                ))
            },
        )
        .await;
        assert_eq!(body_json(&response)["len"], MAX_BODY_BYTES);
    }

    #[tokio::test]
    async fn the_probe_header_is_ignored_unless_enabled() {
        let req = http::Request::builder()
            .uri("https://example.com/x")
            .header(probe::PROBE_HEADER, "echo")
            .body(Body::Empty)
            .unwrap();
        let response = serve(req, false, |_, meta| async move {
            Err(ApiError::not_implemented(meta.route))
        })
        .await;
        assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
    }
}
