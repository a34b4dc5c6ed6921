//! Local diagnostics: with `CXBRIDGE_PROBE` on (the local stack sets it; deployments never
//! do), a function echoes a request marked `x-cxbridge-probe: echo`, fails one marked
//! `x-cxbridge-probe: error` as an unhandled error, and runs SQS messages
//! of the form `{"probe":"ok"|"fail"}`. This lets the stack's transport be proven end to end
//! through the real binaries without pretending any business route works.

use std::time::Duration;

use http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};

pub const PROBE_HEADER: &str = "x-cxbridge-probe";
/// Status the echo answers with (default 200).
pub const STATUS_HEADER: &str = "x-cxbridge-probe-status";
/// Milliseconds the echo holds the instance busy before answering (at most 10 s).
pub const DELAY_HEADER: &str = "x-cxbridge-probe-delay-ms";

const MAX_DELAY: Duration = Duration::from_secs(10);

/// What a function reports to the Runtime API's `…/error` for `x-cxbridge-probe: error`.
pub const UNHANDLED_ERROR: &str = "the probe asked for an unhandled error";

/// `x-cxbridge-probe: error`: the handler fails as an unhandled error would, so that the
/// Runtime API's error path can be seen end to end.
pub fn is_unhandled_error(req: &Request) -> bool {
    req.headers()
        .get(PROBE_HEADER)
        .is_some_and(|v| v.as_bytes() == b"error")
}

pub fn is_echo(req: &Request) -> bool {
    req.headers()
        .get(PROBE_HEADER)
        .is_some_and(|v| v.as_bytes() == b"echo")
}

/// Answers with the request body as the (binary) response body, and what the function saw
/// of the request in `x-probe-*` headers.
pub async fn echo(req: Request) -> Response<Body> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let status = header(STATUS_HEADER)
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let delay = header(DELAY_HEADER)
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or_default()
        .min(MAX_DELAY);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
            )
        })
        .collect();
    let path_parameters: serde_json::Map<String, serde_json::Value> = req
        .path_parameters_ref()
        .map(|p| p.iter().map(|(k, v)| (k.to_owned(), v.into())).collect())
        .unwrap_or_default();
    let described = [
        ("x-probe-method", req.method().to_string()),
        ("x-probe-path", req.uri().path().to_owned()),
        (
            "x-probe-query",
            req.uri().query().unwrap_or_default().to_owned(),
        ),
        (
            "x-probe-headers",
            serde_json::Value::Object(headers).to_string(),
        ),
        (
            "x-probe-path-parameters",
            serde_json::Value::Object(path_parameters).to_string(),
        ),
        ("x-probe-pid", std::process::id().to_string()),
    ];

    let mut response = Response::new(Body::Binary(req.body().as_ref().to_vec()));
    *response.status_mut() = status;
    let out = response.headers_mut();
    out.insert(
        "content-type",
        HeaderValue::from_static("application/octet-stream"),
    );
    for (name, value) in described {
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.insert(name, value);
        }
    }
    response
}

/// The outcome a probe SQS message asks for, or `None` if the message is not a probe.
pub fn job_outcome(body: &str) -> Option<Result<(), String>> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    match value.get("probe")?.as_str()? {
        "ok" => Some(Ok(())),
        "fail" => Some(Err("probe asked to fail".to_owned())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_jobs_are_recognised_and_others_are_not() {
        assert_eq!(job_outcome(r#"{"probe":"ok"}"#), Some(Ok(())));
        assert!(matches!(job_outcome(r#"{"probe":"fail"}"#), Some(Err(_))));
        assert_eq!(job_outcome(r#"{"kind":"signal"}"#), None);
        assert_eq!(job_outcome("not json"), None);
    }
}
