//! JSON logs on stdout, one object a line, as CloudWatch Logs ingests them.

use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, Env, process_env};

/// Installs the JSON subscriber. The level comes from `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's
/// advanced logging controls; its `FATAL` is `error`), else `RUST_LOG`, else `info`. A level
/// that cannot be read is refused by name, as any configuration variable is, after `info`
/// is installed so that the refusal is logged. Calling it twice is harmless.
pub fn init() -> Result<(), ConfigError> {
    let env = Env::new(&process_env);
    let (var, level) = match env.optional(LAMBDA_LEVEL) {
        Ok(None) => (RUST_LOG, env.optional(RUST_LOG)),
        found => (LAMBDA_LEVEL, found),
    };
    let (filter, refused) = match level {
        Ok(None) => (EnvFilter::new("info"), None),
        Ok(Some(level)) => {
            let directive = level.to_ascii_lowercase().replace("fatal", "error");
            match EnvFilter::try_new(&directive) {
                Ok(filter) => (filter, None),
                Err(e) => (
                    EnvFilter::new("info"),
                    Some(Env::invalid(
                        var,
                        level,
                        format!("not a log level or filter: {e}"),
                    )),
                ),
            }
        }
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
    refused.map_or(Ok(()), Err)
}

const LAMBDA_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";
const RUST_LOG: &str = "RUST_LOG";

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
