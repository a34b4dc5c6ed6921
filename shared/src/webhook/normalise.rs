//! One internal event from any webhook (ARCHITECTURE.md, Routes):
//! `{"deliveryId","eventType","interactionId","channel","occurredAt",
//!   "customer":{"identifier","type"},"context":{…}}`. Missing fields become null.

use serde_json::{Map, Value, json};
use serde_json_path::JsonPath;

use super::body::BodyFormat;
use super::config::{ChannelMapping, WebhookConfig};

/// The channel of every event from `POST /webhooks/studio`, and the mapping it is read by.
pub const STUDIO_CHANNEL: &str = "studio";

fn first<'a>(path: &JsonPath, body: &'a Value) -> Option<&'a Value> {
    path.query(body).first().filter(|v| !v.is_null())
}

fn field<'a>(body: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted
        .split('.')
        .try_fold(body, |v, key| v.get(key))
        .filter(|v| !v.is_null())
}

/// A scalar as a string (ids arrive as numbers from some tenants); anything else is null.
fn scalar_string(value: Option<&Value>) -> Value {
    match value {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Number(n)) => Value::String(n.to_string()),
        _ => Value::Null,
    }
}

pub fn normalise(
    config: &WebhookConfig,
    format: BodyFormat,
    body: &Value,
    delivery_id: &str,
    header_event_type: Option<&str>,
) -> Value {
    let header_event_type = header_event_type.map(|s| Value::String(s.to_owned()));
    if format == BodyFormat::Xml {
        return json!({
            "deliveryId": delivery_id,
            "eventType": header_event_type.unwrap_or(Value::Null),
            "interactionId": null,
            "channel": null,
            "occurredAt": null,
            "customer": null,
            "context": {"xml": body},
        });
    }
    let interaction_id = scalar_string(field(body, "data.id"));
    let channel = field(body, "data.channelType")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    let mapping = channel.as_deref().and_then(|c| config.channels.get(c));
    let (mapping, channel) = match (mapping, channel) {
        (Some(mapping), Some(channel)) => (mapping, channel),
        (_, channel) => {
            return json!({
                "deliveryId": delivery_id,
                "eventType": header_event_type.unwrap_or_else(|| scalar_string(field(body, "eventType"))),
                "interactionId": interaction_id,
                "channel": channel,
                "occurredAt": scalar_string(field(body, "timestamp")),
                "customer": null,
                "context": {"data": field(body, "data").cloned().unwrap_or(Value::Null)},
            });
        }
    };
    let interaction_id = match &mapping.interaction_id {
        Some(path) => scalar_string(first(path, body)),
        None => interaction_id,
    };
    mapped(
        mapping,
        body,
        delivery_id,
        channel,
        interaction_id,
        header_event_type,
    )
}

/// A Studio request's event: channel `studio`, read by the `studio` mapping. `event_type`
/// (from the `X-Event-Type` header or the configured body field) wins over the mapping's.
pub fn normalise_studio(
    config: &WebhookConfig,
    body: &Value,
    delivery_id: &str,
    event_type: Option<&str>,
) -> Value {
    let given = event_type.map(|s| Value::String(s.to_owned()));
    let Some(mapping) = config.channels.get(STUDIO_CHANNEL) else {
        return json!({
            "deliveryId": delivery_id,
            "eventType": given.unwrap_or(Value::Null),
            "interactionId": null,
            "channel": STUDIO_CHANNEL,
            "occurredAt": null,
            "customer": null,
            "context": {"body": body},
        });
    };
    let interaction_id = mapping
        .interaction_id
        .as_ref()
        .map_or(Value::Null, |path| scalar_string(first(path, body)));
    let mut event = mapped(
        mapping,
        body,
        delivery_id,
        STUDIO_CHANNEL.to_owned(),
        interaction_id,
        None,
    );
    if let Some(given) = given {
        event["eventType"] = given;
    }
    event
}

/// The normalised event of a body that `mapping` reads.
fn mapped(
    mapping: &ChannelMapping,
    body: &Value,
    delivery_id: &str,
    channel: String,
    interaction_id: Value,
    header_event_type: Option<Value>,
) -> Value {
    let customer = mapping.customer.iter().find_map(|(path, kind)| {
        first(path, body)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(|id| json!({"identifier": id, "type": kind}))
    });
    let context: Map<String, Value> = mapping
        .context
        .iter()
        .map(|(k, path)| (k.clone(), first(path, body).cloned().unwrap_or(Value::Null)))
        .collect();
    let event_type = match scalar_string(first(&mapping.event_type, body)) {
        Value::Null => header_event_type.unwrap_or(Value::Null),
        found => found,
    };
    json!({
        "deliveryId": delivery_id,
        "eventType": event_type,
        "interactionId": interaction_id,
        "channel": channel,
        "occurredAt": scalar_string(first(&mapping.occurred_at, body)),
        "customer": customer.unwrap_or(Value::Null),
        "context": context,
    })
}

/// The value of a dotted field (`customer.identifier`) of a normalised event.
pub fn event_field<'a>(event: &'a Value, dotted: &str) -> Option<&'a Value> {
    field(event, dotted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WebhookConfig {
        WebhookConfig::parse(None, "http://q/events", "http://q/jobs").unwrap()
    }

    #[test]
    fn a_chat_event_is_normalised_with_the_email_as_customer() {
        let body = json!({
            "webhookId": "w1", "eventType": "interaction.created", "timestamp": "2026-11-22T09:00:00Z",
            "data": {"id": "int-1", "channelType": "chat", "direction": "inbound",
                     "customer": {"email": "a@example.com"}, "queue": {"name": "VIP"},
                     "skill": {"name": "Sales"}, "message": {"body": "hi"}}
        });
        let event = normalise(&config(), BodyFormat::Json, &body, "d-1", Some("ignored"));
        assert_eq!(
            event,
            json!({
                "deliveryId": "d-1", "eventType": "interaction.created", "interactionId": "int-1",
                "channel": "chat", "occurredAt": "2026-11-22T09:00:00Z",
                "customer": {"identifier": "a@example.com", "type": "email"},
                "context": {"direction": "inbound", "queue": "VIP", "skill": "Sales", "message": "hi"}
            })
        );
    }

    #[test]
    fn missing_fields_become_null() {
        let body = json!({"data": {"channelType": "VOICE"}});
        let event = normalise(&config(), BodyFormat::Json, &body, "d-2", None);
        assert_eq!(event["channel"], "voice");
        assert_eq!(event["interactionId"], Value::Null);
        assert_eq!(event["eventType"], Value::Null);
        assert_eq!(event["customer"], Value::Null);
        assert_eq!(event["context"]["queue"], Value::Null);
    }

    #[test]
    fn a_numeric_interaction_id_becomes_a_string() {
        let body = json!({"data": {"id": 42, "channelType": "sms", "customer": {"phoneNumber": "+15550100"}}});
        let event = normalise(&config(), BodyFormat::Json, &body, "d", None);
        assert_eq!(event["interactionId"], "42");
        assert_eq!(
            event["customer"],
            json!({"identifier": "+15550100", "type": "phone"})
        );
    }

    #[test]
    fn other_channels_fall_back_with_the_header_event_type() {
        let body = json!({"eventType": "x", "data": {"id": "e-1", "channelType": "email", "subject": "s"}});
        let event = normalise(
            &config(),
            BodyFormat::Json,
            &body,
            "d",
            Some("email.received"),
        );
        assert_eq!(event["eventType"], "email.received");
        assert_eq!(event["channel"], "email");
        assert_eq!(event["interactionId"], "e-1");
        assert_eq!(event["context"]["data"]["subject"], "s");
    }

    #[test]
    fn xml_events_fall_back_with_the_header_event_type() {
        let body = json!({"Event": {"ContactId": "9"}});
        let event = normalise(
            &config(),
            BodyFormat::Xml,
            &body,
            "d",
            Some("contact.ended"),
        );
        assert_eq!(event["eventType"], "contact.ended");
        assert_eq!(event["context"]["xml"]["Event"]["ContactId"], "9");
    }

    #[test]
    fn studio_fields_are_read_in_each_of_their_spellings() {
        let spellings = [
            json!({"contactId": "1", "ani": "+1", "dnis": "8", "skill": "S", "agentId": "A",
                   "timestamp": "2026-11-22T09:00:00Z"}),
            json!({"ContactID": "1", "ANI": "+1", "DNIS": "8", "SkillName": "S", "AgentID": "A",
                   "Timestamp": "2026-11-22T09:00:00Z"}),
            json!({"contactID": 1, "ANI": "+1", "DNIS": "8", "skillName": "S", "AgentID": "A",
                   "occurredAt": "2026-11-22T09:00:00Z"}),
        ];
        for body in spellings {
            let event = normalise_studio(&config(), &body, "d", Some("contact.routed"));
            assert_eq!(
                event,
                json!({
                    "deliveryId": "d", "eventType": "contact.routed", "interactionId": "1",
                    "channel": "studio", "occurredAt": "2026-11-22T09:00:00Z",
                    "customer": {"identifier": "+1", "type": "phone"},
                    "context": {"skill": "S", "agentId": "A", "dnis": "8"}
                }),
                "{body}"
            );
        }
    }

    #[test]
    fn a_studio_body_without_contact_fields_keeps_nulls_and_the_body_event_type() {
        let event = normalise_studio(&config(), &json!({"eventType": "custom"}), "d", None);
        assert_eq!(event["channel"], "studio");
        assert_eq!(event["eventType"], "custom");
        assert_eq!(event["interactionId"], Value::Null);
        assert_eq!(event["customer"], Value::Null);
        assert_eq!(
            event["context"],
            json!({"skill": null, "agentId": null, "dnis": null})
        );
    }

    #[test]
    fn a_cxone_channel_may_name_where_its_interaction_id_is() {
        let config = WebhookConfig::parse(
            Some(
                r#"{"channels": {"email": {"interactionId": "$.data.contact.id",
                     "eventType": "$.eventType", "occurredAt": "$.timestamp"}}}"#,
            ),
            "http://q/events",
            "http://q/jobs",
        )
        .unwrap();
        let body =
            json!({"data": {"id": "outer", "channelType": "email", "contact": {"id": "inner"}}});
        let event = normalise(&config, BodyFormat::Json, &body, "d", None);
        assert_eq!(event["interactionId"], "inner");
    }
}
