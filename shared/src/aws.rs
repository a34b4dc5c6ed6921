//! AWS clients, all built from one `SdkConfig` at cold start.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig, timeout::TimeoutConfig};

/// Loads the shared SDK configuration: region and credentials from the usual chain, and an
/// endpoint override from `AWS_ENDPOINT_URL` (the local stack points it at its emulator).
/// Timeouts are short because every caller of these functions has a deadline of its own
/// (`CXBRIDGE_AWS_ATTEMPT_TIMEOUT_MS`, default 1000, and `CXBRIDGE_AWS_TIMEOUT_MS`, default
/// 2000, change them; the local stack, whose emulator is slower than AWS, relaxes them).
pub async fn load_sdk_config() -> SdkConfig {
    let ms = |var: &str, default: u64| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|v| *v > 0)
            .map_or(Duration::from_millis(default), Duration::from_millis)
    };
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(500))
        .operation_attempt_timeout(ms("CXBRIDGE_AWS_ATTEMPT_TIMEOUT_MS", 1000))
        .operation_timeout(ms("CXBRIDGE_AWS_TIMEOUT_MS", 2000))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
    if let Some(url) = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The AWS service clients a function may use. Cloning is cheap (they share one connection
/// pool), and building them does no I/O.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl AwsClients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
        }
    }
}
