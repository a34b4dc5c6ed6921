//! The Runtime API's calls, as an instance's process makes them: `invocation/next`,
//! `…/response`, `…/error` and `init/error`.

use super::*;

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"errorType": error_type, "errorMessage": message})),
    )
        .into_response()
}

pub(super) async fn next(State(instance): State<Arc<Instance>>) -> Response {
    if !instance.ready.swap(true, Ordering::SeqCst) {
        let pid = instance.pid.lock().ok().and_then(|p| *p);
        let init = instance
            .spawned
            .lock()
            .ok()
            .and_then(|s| *s)
            .map(|s| s.elapsed());
        instance.host.mark_ready(instance.no, pid, init);
    }
    if instance.dying.load(Ordering::SeqCst) {
        // Never answer a dying instance: any answer but an invocation would be a protocol
        // error, and it is about to be stopped.
        return std::future::pending().await;
    }
    let Some(invocation) = instance.host.take_work(instance.no).await else {
        // Shutting down: the process is about to be stopped.
        return std::future::pending().await;
    };
    let Invocation {
        request_id,
        payload,
        reply,
    } = invocation;
    // As in Lambda, the timeout runs from when the instance takes the invocation.
    let deadline_ms = epoch_ms() + instance.host.config.timeout.as_millis() as u64;
    if let Ok(mut in_flight) = instance.in_flight.lock() {
        in_flight.insert(request_id.clone(), reply);
    }

    // Lambda stops an environment whose invocation outlives its deadline.
    let watchdog = instance.clone();
    let watched = request_id.clone();
    tokio::spawn(async move {
        let wait = deadline_ms.saturating_sub(epoch_ms());
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if let Some(reply) = watchdog.take_reply(&watched) {
            watchdog.host.log.line(format!(
                "cxbridge-local: {}#{} timed out on {watched}; stopping it",
                watchdog.host.name(),
                watchdog.no
            ));
            let _ = reply.send(Err(InvokeError::TimedOut));
            watchdog.stop();
        }
    });

    let name = instance.host.name();
    let arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}");
    let trace = format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        deadline_ms / 1000,
        &request_id.replace('-', "")[..24],
        &request_id.replace('-', "")[..16]
    );
    (
        StatusCode::OK,
        [
            ("lambda-runtime-aws-request-id", request_id),
            ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
            ("lambda-runtime-invoked-function-arn", arn),
            ("lambda-runtime-trace-id", trace),
            ("content-type", "application/json".to_owned()),
        ],
        payload,
    )
        .into_response()
}

/// Delivers an instance's answer to the invocation waiting for it.
fn settle(instance: &Instance, id: &str, result: Result<Bytes, InvokeError>) -> Response {
    match instance.take_reply(id) {
        Some(reply) => {
            let _ = reply.send(result);
            accepted()
        }
        None => api_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "unknown or expired request id",
        ),
    }
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"status": "OK"})),
    )
        .into_response()
}

pub(super) async fn respond(
    State(instance): State<Arc<Instance>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    settle(&instance, &id, Ok(body))
}

pub(super) async fn fail(
    State(instance): State<Arc<Instance>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, message) = diagnostic(&headers, &body);
    instance.host.log.line(format!(
        "cxbridge-local: {}#{} invocation {id} failed: {error_type}: {message}",
        instance.host.name(),
        instance.no
    ));
    settle(
        &instance,
        &id,
        Err(InvokeError::Function {
            error_type,
            message,
        }),
    )
}

pub(super) async fn init_error(
    State(instance): State<Arc<Instance>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, message) = diagnostic(&headers, &body);
    if let Ok(mut slot) = instance.init_error.lock() {
        *slot = Some(format!("{error_type}: {message}"));
    }
    accepted()
}

fn diagnostic(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error_type = parsed
        .get("errorType")
        .and_then(|v| v.as_str())
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
        })
        .unwrap_or("Unhandled")
        .to_owned();
    let message = parsed
        .get("errorMessage")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (error_type, message)
}
