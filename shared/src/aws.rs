//! AWS clients, all built from one `SdkConfig` at cold start.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig, timeout::TimeoutConfig};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::{ConfigError, Env, process_env, vars};

/// Amazon Trust Services' roots: every AWS service endpoint chains to one of them.
const AMAZON_TRUST_ROOTS: &str = include_str!("amazon-trust-roots.pem");

/// Whether the AWS clients should also load the system's root store: when asked to, or
/// when an endpoint or proxy in `env` is a custom HTTPS one, whose certificate may come
/// from any CA (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`, `HTTPS_PROXY` and the
/// other `*_PROXY` variables).
fn wants_native_roots<K: AsRef<str>, V: AsRef<str>>(
    asked: bool,
    env: impl IntoIterator<Item = (K, V)>,
) -> bool {
    asked
        || env.into_iter().any(|(key, value)| {
            let key = key.as_ref().to_ascii_uppercase();
            let custom = key == "AWS_ENDPOINT_URL"
                || key.starts_with("AWS_ENDPOINT_URL_")
                || key.ends_with("_PROXY");
            custom
                && value
                    .as_ref()
                    .trim()
                    .to_ascii_lowercase()
                    .starts_with("https://")
        })
}

/// The HTTP client behind every AWS client: the SDK's own (hyper, rustls with aws-lc,
/// proxy settings from the environment), trusting Amazon Trust Services' roots. The
/// SDK's default loads and parses the system's whole certificate store when the first
/// connection opens, which is most of a cold start's time in process.
pub fn http_client(native_roots: bool) -> SharedHttpClient {
    let trust = TrustStore::empty()
        .with_native_roots(native_roots)
        .with_pem_certificate(AMAZON_TRUST_ROOTS.as_bytes());
    let context = TlsContext::builder().with_trust_store(trust).build();
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
        if let Ok(context) = &context {
            connector = connector.tls_context(context.clone());
        }
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// How cxbridge's AWS clients are set up, read through the one configuration reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// Trust the system's root certificates besides Amazon's
    /// (`CXBRIDGE_AWS_NATIVE_ROOTS`; custom HTTPS endpoints and proxies turn it on anyway).
    pub native_roots: bool,
    /// One attempt's deadline (`CXBRIDGE_AWS_ATTEMPT_TIMEOUT_MS`, default 1000).
    pub attempt_timeout: Duration,
    /// A call's deadline, retries included (`CXBRIDGE_AWS_TIMEOUT_MS`, default 2000).
    pub timeout: Duration,
    /// `AWS_ENDPOINT_URL`: every service at one endpoint (the local stack's emulator).
    pub endpoint: Option<String>,
}

impl AwsSettings {
    /// Short timeouts, because every caller of these functions has a deadline of its own;
    /// the local stack, whose emulator is slower than AWS, relaxes them.
    pub fn read(env: Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            native_roots: env.flag(vars::AWS_NATIVE_ROOTS)?.unwrap_or(false),
            attempt_timeout: env
                .millis(vars::AWS_ATTEMPT_TIMEOUT_MS, 1, 60_000)?
                .unwrap_or(Duration::from_millis(1000)),
            timeout: env
                .millis(vars::AWS_TIMEOUT_MS, 1, 300_000)?
                .unwrap_or(Duration::from_millis(2000)),
            endpoint: env.url(vars::AWS_ENDPOINT_URL)?,
        })
    }

    /// [`Self::read`] from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(Env::new(&process_env))
    }
}

/// Loads the shared SDK configuration: region and credentials from the usual chain, the
/// endpoint, timeouts and trust store from `settings`.
pub async fn load_sdk_config(settings: &AwsSettings) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(500))
        .operation_attempt_timeout(settings.attempt_timeout)
        .operation_timeout(settings.timeout)
        .build();
    let native_roots = wants_native_roots(settings.native_roots, std::env::vars());
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .http_client(http_client(native_roots));
    if let Some(url) = &settings.endpoint {
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
    pub events: aws_sdk_eventbridge::Client,
}

impl AwsClients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            events: aws_sdk_eventbridge::Client::new(config),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_roots_only_when_asked_or_for_a_custom_https_endpoint_or_proxy() {
        let none: [(&str, &str); 0] = [];
        assert!(!wants_native_roots(false, none));
        assert!(wants_native_roots(true, none));
        assert!(!wants_native_roots(
            false,
            [
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
                ("HTTPS_PROXY", "http://proxy.internal:3128"),
                ("SSL_CERT_FILE", "https://not-an-endpoint")
            ]
        ));
        assert!(wants_native_roots(
            false,
            [("AWS_ENDPOINT_URL", " HTTPS://vpce.example.internal")]
        ));
        assert!(wants_native_roots(
            false,
            [("AWS_ENDPOINT_URL_DYNAMODB", "https://localhost:4566")]
        ));
        assert!(wants_native_roots(
            false,
            [("https_proxy", "https://proxy.internal:3128")]
        ));
    }

    #[test]
    fn the_amazon_roots_parse_into_a_tls_connector() {
        assert_eq!(
            AMAZON_TRUST_ROOTS
                .matches("-----BEGIN CERTIFICATE-----")
                .count(),
            5
        );
        // Building a connector parses every root; a malformed one would panic here.
        let context = TlsContext::builder()
            .with_trust_store(TrustStore::empty().with_pem_certificate(AMAZON_TRUST_ROOTS))
            .build()
            .expect("a TLS context");
        let _connector = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context)
            .build();
    }
}
