//! What the adapter tests share: the emulator `make test` starts, and a table shaped like
//! the template's, of each test's own.
#![allow(clippy::unwrap_used, dead_code)]

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use cxbridge::aws::{AwsClients, load_sdk_config};

/// The emulator, with timeouts relaxed for a busy parallel test run.
pub async fn emulator() -> aws_config::SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty()),
        "AWS_ENDPOINT_URL is not set: run the tests with `make test`, which starts moto"
    );
    let settings = cxbridge::aws::AwsSettings::from_env().unwrap();
    let config = load_sdk_config(&settings).await;
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(std::time::Duration::from_secs(10))
        .operation_timeout(std::time::Duration::from_secs(20))
        .build();
    config.into_builder().timeout_config(timeouts).build()
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .unwrap()
}

fn attribute(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .unwrap()
}

/// A global secondary index as the template declares it: a hash and a range key.
fn index(name: &str, hash: &str, range: &str, projection: ProjectionType) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash))
        .key_schema(key(range, KeyType::Range))
        .projection(Projection::builder().projection_type(projection).build())
        .build()
        .unwrap()
}

/// A new table keyed by `pk`, named from `prefix`; with `due_index`, the template's
/// sparse `due` index too.
pub async fn table(prefix: &str, due_index: bool) -> (Client, String) {
    table_with(prefix, due_index, false).await
}

/// A new table with the template's delivery-log index `log`.
pub async fn table_with_log(prefix: &str) -> (Client, String) {
    table_with(prefix, false, true).await
}

async fn table_with(prefix: &str, due_index: bool, log_index: bool) -> (Client, String) {
    let client = AwsClients::new(&emulator().await).dynamodb;
    let table = format!("{prefix}-{}", cxbridge::ids::new_uuid());
    let mut create = client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk", ScalarAttributeType::S))
        .key_schema(key("pk", KeyType::Hash));
    if due_index {
        create = create
            .attribute_definitions(attribute("dueShard", ScalarAttributeType::S))
            .attribute_definitions(attribute("dueAt", ScalarAttributeType::N))
            .global_secondary_indexes(index("due", "dueShard", "dueAt", ProjectionType::KeysOnly));
    }
    if log_index {
        create = create
            .attribute_definitions(attribute("logKey", ScalarAttributeType::S))
            .attribute_definitions(attribute("logAt", ScalarAttributeType::S))
            .global_secondary_indexes(index("log", "logKey", "logAt", ProjectionType::All));
    }
    create.send().await.unwrap();
    (client, table)
}

/// The item at `pk`, read consistently, if there is one.
pub async fn maybe_item(
    client: &Client,
    table: &str,
    pk: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    client
        .get_item()
        .table_name(table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(pk.to_owned()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// The item at `pk`, which must exist.
pub async fn item(
    client: &Client,
    table: &str,
    pk: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    maybe_item(client, table, pk).await.unwrap()
}
