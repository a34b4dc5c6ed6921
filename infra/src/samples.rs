//! Sample CXone webhooks, as the `cxbridge send` command, the simulator and the tests send
//! them, and the headers that sign them; and sample requests of Studio's REST API action.

use serde_json::json;

/// One sample webhook: its content type, event type header and body.
#[derive(Debug, Clone)]
pub struct SampleWebhook {
    pub channel: String,
    pub content_type: &'static str,
    pub event_type: String,
    pub interaction_id: String,
    pub body: Vec<u8>,
}

pub const CHANNELS: [&str; 4] = ["voice", "chat", "sms", "xml"];

/// The channels `cxbridge send webhook` knows: CXone's, and `studio` for
/// `POST /webhooks/studio`.
pub const SEND_CHANNELS: [&str; 5] = ["voice", "chat", "sms", "xml", "studio"];

/// One sample request of a Studio script's REST API action.
#[derive(Debug, Clone)]
pub struct StudioSample {
    pub content_type: &'static str,
    pub contact_id: String,
    pub body: Vec<u8>,
}

/// The `n`th Studio sample under `run`: form fields in the spelling of Studio's system
/// variables (`ContactID`, `ANI`, …; Studio's default body type), or a JSON body with the
/// camel-case names a script would choose.
pub fn studio(run: &str, n: usize, json_body: bool) -> StudioSample {
    let contact_id = format!("studio-{run}-{n}");
    let timestamp = cxbridge::clock::rfc3339(cxbridge::clock::now_ms());
    let ani = format!("+1555030{:04}", n % 10_000);
    let (content_type, body) = if json_body {
        (
            "application/json",
            json!({
                "contactId": contact_id, "eventType": "contact.routed", "timestamp": timestamp,
                "ani": ani, "dnis": "8005550199", "skill": "Billing", "agentId": "7001"
            })
            .to_string(),
        )
    } else {
        (
            "application/x-www-form-urlencoded",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("ContactID", &contact_id)
                .append_pair("eventType", "contact.routed")
                .append_pair("timestamp", &timestamp)
                .append_pair("ANI", &ani)
                .append_pair("DNIS", "8005550199")
                .append_pair("SkillName", "Billing")
                .append_pair("AgentID", "7001")
                .finish(),
        )
    };
    StudioSample {
        content_type,
        contact_id,
        body: body.into_bytes(),
    }
}

/// The `n`th sample on `channel` (`voice`, `chat`, `sms` or `xml`), with a unique
/// interaction id under `run`.
pub fn webhook(channel: &str, run: &str, n: usize) -> Option<SampleWebhook> {
    let interaction_id = format!("{channel}-{run}-{n}");
    let timestamp = cxbridge::clock::rfc3339(cxbridge::clock::now_ms());
    let (content_type, event_type, body) = match channel {
        "voice" => (
            "application/json",
            "interaction.created",
            json!({
                "webhookId": "wh-local", "eventType": "interaction.created", "timestamp": timestamp,
                "data": {"id": interaction_id, "channelType": "voice", "direction": "inbound",
                         "customer": {"phoneNumber": format!("+1555010{:04}", n % 10_000)},
                         "queue": {"name": "Support"}, "skill": {"name": "Billing"}}
            })
            .to_string(),
        ),
        "chat" => (
            "application/json",
            "interaction.message",
            json!({
                "webhookId": "wh-local", "eventType": "interaction.message", "timestamp": timestamp,
                "data": {"id": interaction_id, "channelType": "chat", "direction": "inbound",
                         "customer": {"email": format!("customer{n}@example.com")},
                         "queue": {"name": "VIP Chat"}, "skill": {"name": "Sales"},
                         "message": {"body": format!("Hello, this is message {n}")}}
            })
            .to_string(),
        ),
        "sms" => (
            "application/json",
            "interaction.message",
            json!({
                "webhookId": "wh-local", "eventType": "interaction.message", "timestamp": timestamp,
                "data": {"id": interaction_id, "channelType": "sms", "direction": "inbound",
                         "customer": {"phoneNumber": format!("+1555020{:04}", n % 10_000)},
                         "queue": {"name": "SMS"}, "skill": {"name": "Support"},
                         "message": {"body": format!("STOP {n}")}}
            })
            .to_string(),
        ),
        "xml" => (
            "application/xml",
            "contact.state-changed",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                 <ContactEvent><ContactId>{interaction_id}</ContactId><State>Active</State>\
                 <Skill id=\"4001\">Support</Skill><Timestamp>{timestamp}</Timestamp></ContactEvent>"
            ),
        ),
        _ => return None,
    };
    Some(SampleWebhook {
        channel: channel.to_owned(),
        content_type,
        event_type: event_type.to_owned(),
        interaction_id,
        body: body.into_bytes(),
    })
}

/// The X-Nexus headers for `body`, signed with `secret` at `timestamp`.
pub fn signed_headers(
    secret: &str,
    timestamp: i64,
    body: &[u8],
    delivery_id: &str,
    event_type: &str,
) -> Vec<(&'static str, String)> {
    use cxbridge::webhook::signature::*;
    vec![
        (TIMESTAMP_HEADER, timestamp.to_string()),
        (SIGNATURE_HEADER, sign(secret.as_bytes(), timestamp, body)),
        (EVENT_TYPE_HEADER, event_type.to_owned()),
        (DELIVERY_ID_HEADER, delivery_id.to_owned()),
    ]
}
