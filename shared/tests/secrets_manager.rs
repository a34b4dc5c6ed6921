//! Adapter tests: `SecretsManagerSource` against the AWS emulator that `make test` starts.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use cxbridge::aws::AwsClients;

mod common;

use cxbridge::adapters::secrets_manager::SecretsManagerSource;
use cxbridge::secrets::{SecretError, SecretSource};
use secrecy::ExposeSecret;

async fn client() -> Client {
    AwsClients::new(&common::emulator().await).secrets
}

fn unique(name: &str) -> String {
    format!("{name}-{}", cxbridge::ids::new_uuid())
}

fn document(current: &str) -> String {
    serde_json::json!({"webhookSecrets": [current, "previous"], "apiKeys": ["k"]}).to_string()
}

async fn create(client: &Client, current: &str) -> String {
    let name = unique("adapter");
    client
        .create_secret()
        .name(&name)
        .secret_string(document(current))
        .send()
        .await
        .unwrap();
    name
}

async fn rotate(client: &Client, name: &str, current: &str) {
    client
        .put_secret_value()
        .secret_id(name)
        .secret_string(document(current))
        .send()
        .await
        .unwrap();
}

fn first_webhook_secret(s: &cxbridge::secrets::Secrets) -> String {
    s.webhook_secrets[0].expose_secret().to_owned()
}

/// The first webhook secret `source` serves now.
async fn served(source: &SecretsManagerSource) -> String {
    first_webhook_secret(&source.current().await.unwrap())
}

/// The first webhook secret a forced read of `source` gets.
async fn reread(source: &SecretsManagerSource) -> String {
    first_webhook_secret(&source.refresh().await.unwrap())
}

#[tokio::test]
async fn the_current_version_is_read_and_cached_until_refreshed() {
    let client = client().await;
    let name = create(&client, "one").await;
    let source = SecretsManagerSource::new(client.clone(), name.clone(), Duration::from_secs(3600));

    assert_eq!(served(&source).await, "one");
    rotate(&client, &name, "two").await;
    assert_eq!(
        served(&source).await,
        "one",
        "within the TTL the cached secret is served"
    );
    assert_eq!(reread(&source).await, "two");
    assert_eq!(served(&source).await, "two");
}

#[tokio::test]
async fn an_expired_cache_reads_the_new_current_version() {
    let client = client().await;
    let name = create(&client, "one").await;
    let source = SecretsManagerSource::new(client.clone(), name.clone(), Duration::ZERO);
    assert_eq!(served(&source).await, "one");
    rotate(&client, &name, "two").await;
    assert_eq!(served(&source).await, "two");
}

#[tokio::test]
async fn a_missing_secret_is_not_found_and_not_retryable() {
    let source =
        SecretsManagerSource::new(client().await, unique("missing"), Duration::from_secs(60));
    let err = source.current().await.unwrap_err();
    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_secret_that_is_not_the_expected_document_is_malformed_and_not_quoted() {
    let client = client().await;
    let name = unique("malformed");
    client
        .create_secret()
        .name(&name)
        .secret_string(r#"{"webhookSecrets": "hunter2"}"#)
        .send()
        .await
        .unwrap();
    let err = SecretsManagerSource::new(client, name, Duration::from_secs(60))
        .current()
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Malformed { .. }), "{err}");
    assert!(!err.to_string().contains("hunter2"));
}

#[tokio::test]
async fn an_unreachable_service_is_unavailable_and_retryable() {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "a", "b", None, None, "t",
        ))
        .build();
    let source = SecretsManagerSource::new(
        Client::from_conf(config),
        "x".into(),
        Duration::from_secs(60),
    );
    let err = source.current().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}
