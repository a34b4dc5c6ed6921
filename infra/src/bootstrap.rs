//! Creates the template's table, queues and secret in the emulator, under a name prefix so
//! that several stacks can share one emulator without seeing each other's resources.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde::Serialize;

use crate::template::{Template, TemplateValue};

#[derive(Debug, Clone, Serialize)]
pub struct Queue {
    pub name: String,
    pub url: String,
    pub arn: String,
}

/// The generated local credentials, as written to the state file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecrets {
    /// The CXone credentials the simulator accepts; not written to the state file.
    #[serde(skip)]
    pub cxone: crate::simulator::SimCredentials,
    pub webhook: String,
    pub webhook_previous: String,
    pub callback: String,
    pub cognigy: String,
    pub api_key: String,
    /// The token Studio scripts present to `POST /webhooks/studio`.
    pub studio: String,
    /// Each local target's Standard Webhooks signing secret (`whsec_…`), by name.
    pub targets: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Resources {
    pub table: String,
    /// The local EventBridge bus the `bus` target puts events on; a rule forwards every
    /// cxbridge event on it to the `bus-events` queue.
    pub bus: String,
    /// By local name: `jobs`, `dlq`, `events`.
    pub queues: BTreeMap<String, Queue>,
    pub secret_id: String,
    pub secret_arn: String,
    pub secrets: LocalSecrets,
    refs: HashMap<String, String>,
    atts: HashMap<(String, String), String>,
}

/// Local settings that differ from the deployed ones so that retries happen in seconds.
#[derive(Debug, Clone, Default)]
pub struct QueueOverrides {
    pub visibility_timeout: Option<i64>,
    pub max_receive_count: Option<i64>,
}

impl Resources {
    /// Resolves a template value the way CloudFormation would for these resources.
    pub fn resolve(&self, value: &TemplateValue) -> Result<String> {
        match value {
            TemplateValue::Literal(s) => Ok(s.clone()),
            TemplateValue::Ref(id) => self
                .refs
                .get(id)
                .cloned()
                .ok_or_else(|| anyhow!("!Ref {id}: no such resource in the local stack")),
            TemplateValue::GetAtt(id, att) => self
                .atts
                .get(&(id.clone(), att.clone()))
                .cloned()
                .ok_or_else(|| anyhow!("!GetAtt {id}.{att}: not available in the local stack")),
            TemplateValue::If(condition, ..) => {
                bail!("!If {condition}: conditions are resolved with the parameters")
            }
        }
    }
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| anyhow!("no OS randomness: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// `whsec_` and the base64 of 32 random bytes: a Standard Webhooks signing secret.
fn random_whsec() -> Result<String> {
    use base64::Engine as _;
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).map_err(|e| anyhow!("no OS randomness: {e}"))?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(buf)
    ))
}

/// The local targets: an HTTPS target at the simulator's sink, and a bus.
pub const LOCAL_TARGETS: [&str; 2] = ["audit", "bus"];

#[allow(clippy::too_many_arguments)]
pub async fn bootstrap(
    dynamodb: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    secrets: &aws_sdk_secretsmanager::Client,
    events: &aws_sdk_eventbridge::Client,
    template: &Template,
    prefix: &str,
    overrides: &QueueOverrides,
) -> Result<Resources> {
    let mut refs = HashMap::new();
    let mut atts = HashMap::new();

    let [table_spec] = template.tables.as_slice() else {
        return Err(anyhow!("the template must declare exactly one table"));
    };
    let table = format!("{prefix}-table");
    let mut create = dynamodb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&table_spec.hash_key)
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(&table_spec.hash_key)
                .key_type(KeyType::Hash)
                .build()?,
        );
    let mut defined = vec![table_spec.hash_key.clone()];
    for index in &table_spec.indexes {
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(&index.name)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::from(index.projection.as_str()))
                    .build(),
            );
        let keys = std::iter::once((&index.hash, KeyType::Hash))
            .chain(index.range.iter().map(|r| (r, KeyType::Range)));
        for ((name, kind), key_type) in keys {
            gsi = gsi.key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(key_type)
                    .build()?,
            );
            if !defined.contains(name) {
                defined.push(name.clone());
                create = create.attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(name)
                        .attribute_type(ScalarAttributeType::from(kind.as_str()))
                        .build()?,
                );
            }
        }
        create = create.global_secondary_indexes(gsi.build()?);
    }
    if let Some(view) = &table_spec.stream_view_type {
        create = create.stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::from(view.as_str()))
                .build()?,
        );
    }
    create
        .send()
        .await
        .with_context(|| format!("cannot create table {table}"))?;
    if let Some(attribute) = &table_spec.ttl_attribute {
        dynamodb
            .update_time_to_live()
            .table_name(&table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attribute)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await
            .with_context(|| format!("cannot enable TTL on {table}"))?;
    }
    refs.insert(table_spec.logical_id.clone(), table.clone());

    // Dead-letter targets first, so that their ARNs exist for the redrive policies.
    let mut ordered: Vec<_> = template.queues.iter().collect();
    ordered.sort_by_key(|q| q.redrive.is_some());
    let mut queues = BTreeMap::new();
    for spec in ordered {
        let name = format!("{prefix}-{}", spec.local_name());
        let mut request = sqs.create_queue().queue_name(&name);
        if let Some(v) = overrides.visibility_timeout.or(spec.visibility_timeout) {
            request = request.attributes(QueueAttributeName::VisibilityTimeout, v.to_string());
        }
        if let Some(v) = spec.retention {
            request = request.attributes(QueueAttributeName::MessageRetentionPeriod, v.to_string());
        }
        if let Some(v) = spec.max_message_size {
            request = request.attributes(QueueAttributeName::MaximumMessageSize, v.to_string());
        }
        if let Some((target, count)) = &spec.redrive {
            let target_arn = atts
                .get(&(target.clone(), "Arn".to_owned()))
                .ok_or_else(|| {
                    anyhow!(
                        "queue {} redrives to unknown queue {target}",
                        spec.logical_id
                    )
                })?;
            let count = overrides.max_receive_count.unwrap_or(*count);
            let policy = serde_json::json!({"deadLetterTargetArn": target_arn, "maxReceiveCount": count.to_string()});
            request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let (url, arn) = created(sqs, request, &name).await?;
        refs.insert(spec.logical_id.clone(), url.clone());
        atts.insert((spec.logical_id.clone(), "Arn".to_owned()), arn.clone());
        atts.insert(
            (spec.logical_id.clone(), "QueueName".to_owned()),
            name.clone(),
        );
        atts.insert(
            (spec.logical_id.clone(), "QueueUrl".to_owned()),
            url.clone(),
        );
        queues.insert(spec.local_name(), Queue { name, url, arn });
    }

    let [secret_logical_id] = template.secrets.as_slice() else {
        return Err(anyhow!("the template must declare exactly one secret"));
    };
    let local = LocalSecrets {
        cxone: crate::simulator::SimCredentials {
            client_id: format!("local-client-{}", random_hex(4)?),
            client_secret: random_hex(24)?,
            access_key_id: format!("LOCALKEY{}", random_hex(8)?.to_ascii_uppercase()),
            // Characters that form encoding must carry intact.
            access_key_secret: format!("{}+/={}", random_hex(12)?, random_hex(4)?),
        },
        webhook: random_hex(32)?,
        webhook_previous: random_hex(32)?,
        callback: random_hex(32)?,
        cognigy: random_hex(24)?,
        api_key: random_hex(24)?,
        studio: random_hex(24)?,
        targets: BTreeMap::from([("audit".to_owned(), random_whsec()?)]),
    };
    let target_credentials: serde_json::Map<String, serde_json::Value> = local
        .targets
        .iter()
        .map(|(name, secret)| {
            (
                name.clone(),
                serde_json::json!({"signingSecrets": [secret]}),
            )
        })
        .collect();
    let document = serde_json::json!({
                "cxone": {
            "clientId": local.cxone.client_id,
            "clientSecret": local.cxone.client_secret,
            "accessKeyId": local.cxone.access_key_id,
            "accessKeySecret": local.cxone.access_key_secret,
        },
        "webhookSecrets": [local.webhook, local.webhook_previous],
        "callbackSecrets": [local.callback],
        "cognigyTokens": [local.cognigy],
        "apiKeys": [local.api_key],
        "studioTokens": [local.studio],
        "targets": target_credentials,
    });
    let secret_id = format!("{prefix}/credentials");
    let created = secrets
        .create_secret()
        .name(&secret_id)
        .secret_string(document.to_string())
        .send()
        .await
        .with_context(|| format!("cannot create secret {secret_id}"))?;
    let secret_arn = created.arn.unwrap_or_else(|| secret_id.clone());
    refs.insert(secret_logical_id.clone(), secret_arn.clone());

    let bus = local_bus(events, sqs, prefix, &mut queues).await?;

    Ok(Resources {
        table,
        bus,
        queues,
        secret_id,
        secret_arn,
        secrets: local,
        refs,
        atts,
    })
}

/// Sends a `CreateQueue` and returns the queue's URL and ARN.
async fn created(
    sqs: &aws_sdk_sqs::Client,
    request: aws_sdk_sqs::operation::create_queue::builders::CreateQueueFluentBuilder,
    name: &str,
) -> Result<(String, String)> {
    let url = request
        .send()
        .await
        .with_context(|| format!("cannot create queue {name}"))?
        .queue_url
        .ok_or_else(|| anyhow!("queue {name} was created without a URL"))?;
    let arn = queue_arn(sqs, &url, name).await?;
    Ok((url, arn))
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str, name: &str) -> Result<String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| anyhow!("queue {name} has no ARN"))
}

/// The local bus, `{prefix}-local`, and its rule: every event from `cxbridge` goes to the
/// `bus-events` queue, where a user (or a test) sees what the `bus` target put.
async fn local_bus(
    events: &aws_sdk_eventbridge::Client,
    sqs: &aws_sdk_sqs::Client,
    prefix: &str,
    queues: &mut BTreeMap<String, Queue>,
) -> Result<String> {
    let bus = format!("{prefix}-local");
    events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .with_context(|| format!("cannot create the event bus {bus}"))?;
    let name = format!("{prefix}-bus-events");
    let (url, arn) = created(sqs, sqs.create_queue().queue_name(&name), &name).await?;
    let rule = format!("{prefix}-to-bus-events");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(r#"{"source": ["cxbridge"]}"#)
        .send()
        .await
        .with_context(|| format!("cannot create the rule {rule}"))?;
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("bus-events")
                .arn(&arn)
                .build()?,
        )
        .send()
        .await
        .with_context(|| format!("cannot point the rule {rule} at {name}"))?;
    queues.insert("bus-events".to_owned(), Queue { name, url, arn });
    Ok(bus)
}

/// The deployed default routing, for a stack that should have no named targets: every
/// accepted event to `events`.
pub const EVENTS_ONLY_CONFIG: &str =
    r#"{"routes": [{"name": "all-events", "priority": 1000, "targets": [{"queue": "events"}]}]}"#;

/// The local stack's webhook configuration: every accepted event goes to `events`, to the
/// HTTPS target `audit` (the simulator's sink) and to the bus.
pub fn local_webhook_config(simulator_url: &str, bus: &str) -> String {
    serde_json::json!({
        "targets": [
            {"name": "audit", "type": "https", "url": format!("{simulator_url}/_sim/targets/audit"),
             "timeoutMs": 5000, "retry": {"maxRetries": 3, "backoff": "exponential", "delayMs": 500},
             "breaker": {"failures": 5, "cooldownSecs": 10}},
            {"name": "bus", "type": "eventbridge", "bus": bus, "source": "cxbridge", "detailType": "CXone event"}
        ],
        "routes": [{"name": "all-events", "priority": 1000,
                    "targets": [{"queue": "events"}, {"target": "audit"}, {"target": "bus"}]}]
    })
    .to_string()
}
