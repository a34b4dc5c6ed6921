//! JSON logs on stdout, one object a line, as CloudWatch Logs ingests them.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber. The level comes from `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's
/// advanced logging controls), else `RUST_LOG`, else `info`. Calling it twice is harmless.
pub fn init() {
    let directive = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned())
        .to_ascii_lowercase();
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// Emits one CloudWatch Embedded Metric Format record on stdout, which CloudWatch Logs
/// turns into the metric `name` in namespace `cxbridge`, by function.
pub fn metric(function: &str, name: &str, value: f64) {
    let record = serde_json::json!({
        "_aws": {
            "Timestamp": crate::clock::now_ms(),
            "CloudWatchMetrics": [{
                "Namespace": "cxbridge",
                "Dimensions": [["Function"]],
                "Metrics": [{"Name": name, "Unit": "Count"}],
            }],
        },
        "Function": function,
        name: value,
    });
    println!("{record}");
}

/// The one EMF record of a request: `Requests` and `Latency` by route, and by route and
/// outcome (`accepted`, `duplicate`, `dispatched`, `queued`, `routed`, or the
/// error code), with the correlation id as a searchable property.
pub fn request_metrics(route: &str, outcome: &str, latency_ms: f64, correlation_id: &str) {
    let record = serde_json::json!({
        "_aws": {
            "Timestamp": crate::clock::now_ms(),
            "CloudWatchMetrics": [{
                "Namespace": "cxbridge",
                "Dimensions": [["Route"], ["Route", "Outcome"]],
                "Metrics": [
                    {"Name": "Requests", "Unit": "Count"},
                    {"Name": "Latency", "Unit": "Milliseconds"},
                ],
            }],
        },
        "Route": route,
        "Outcome": outcome,
        "Requests": 1,
        "Latency": latency_ms,
        "correlationId": correlation_id,
    });
    println!("{record}");
}

/// One EMF record of a named target's metric (`Delivered`, `Failed`, `Retried`, `Paused`,
/// and `DeliveryLatency` in milliseconds), by target.
pub fn target_metric(function: &str, target: &str, name: &str, value: f64) {
    let unit = if name == "DeliveryLatency" {
        "Milliseconds"
    } else {
        "Count"
    };
    let record = serde_json::json!({
        "_aws": {
            "Timestamp": crate::clock::now_ms(),
            "CloudWatchMetrics": [{
                "Namespace": "cxbridge",
                "Dimensions": [["Target"]],
                "Metrics": [{"Name": name, "Unit": unit}],
            }],
        },
        "Function": function,
        "Target": target,
        name: value,
    });
    println!("{record}");
}
