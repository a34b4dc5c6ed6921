//! Webhook configuration: which JSONPath feeds which normalised field, per channel, and the
//! routing rules. Read once at init from `CXBRIDGE_WEBHOOK_CONFIG` (inline JSON, or `@path`
//! to a JSON file); anything not given falls back to the defaults below.

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use serde_json_path::JsonPath;

use crate::config::ConfigError;
use crate::targets::{TargetKind, Targets};

pub const CONFIG_VAR: &str = "CXBRIDGE_WEBHOOK_CONFIG";

/// How one channel's fields are found.
#[derive(Debug, Clone)]
pub struct ChannelMapping {
    /// Where the interaction id is; without one, CXone's `data.id`.
    pub interaction_id: Option<JsonPath>,
    pub event_type: JsonPath,
    pub occurred_at: JsonPath,
    /// Tried in order; the first non-empty string is the customer's identifier.
    pub customer: Vec<(JsonPath, String)>,
    pub context: BTreeMap<String, JsonPath>,
}

/// A routing condition over a dotted field of the normalised event.
#[derive(Debug, Clone)]
pub enum Condition {
    Equals(String, Value),
    Contains(String, String),
    Regex(String, Regex),
    Exists(String, bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A fan-out queue, by URL.
    Queue(String),
    /// A signal job on the jobs queue: the signal's name and, for each of its variables,
    /// the dotted field of the normalised event that feeds it.
    Signal {
        name: String,
        mapping: BTreeMap<String, String>,
    },
    /// A delivery job on the jobs queue for a named HTTPS or EventBridge target.
    Deliver(String),
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub priority: i64,
    pub when: Vec<Condition>,
    pub targets: Vec<Target>,
    /// Stop evaluating lower-priority routes once this one matches.
    pub stop: bool,
}

/// Which top-level body fields of a Studio request carry what its headers may not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudioFields {
    /// The delivery id when there is no `X-Delivery-Id` header.
    pub delivery_id: String,
    /// The event type when there is no `X-Event-Type` header.
    pub event_type: String,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub channels: BTreeMap<String, ChannelMapping>,
    /// Sorted by priority, lowest number first.
    pub routes: Vec<Route>,
    pub jobs_queue_url: String,
    pub studio: StudioFields,
    /// The named targets routes may send to.
    pub targets: Targets,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    channels: BTreeMap<String, RawChannel>,
    routes: Option<Vec<RawRoute>>,
    studio: Option<RawStudio>,
    targets: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawStudio {
    delivery_id_field: Option<String>,
    event_type_field: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawChannel {
    interaction_id: Option<String>,
    event_type: String,
    occurred_at: String,
    #[serde(default)]
    customer: Vec<RawCustomer>,
    #[serde(default)]
    context: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCustomer {
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    when: Vec<RawCondition>,
    targets: Vec<RawTarget>,
    #[serde(default)]
    stop: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    field: String,
    equals: Option<Value>,
    contains: Option<String>,
    regex: Option<String>,
    exists: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    queue: Option<String>,
    signal: Option<String>,
    /// A named target from `targets`.
    target: Option<String>,
    #[serde(default)]
    mapping: BTreeMap<String, String>,
}

/// The defaults: the interaction event (ARCHITECTURE.md, Routes) on voice, chat and SMS, Studio's contact
/// fields (as a script's REST API action sends them, in any of their usual spellings), and
/// one route that sends every accepted event to the `events` queue.
pub const DEFAULT_CONFIG: &str = r#"{
  "channels": {
    "voice": {
      "eventType": "$.eventType", "occurredAt": "$.timestamp",
      "customer": [{"path": "$.data.customer.phoneNumber", "type": "phone"}],
      "context": {"direction": "$.data.direction", "queue": "$.data.queue.name", "skill": "$.data.skill.name"}
    },
    "chat": {
      "eventType": "$.eventType", "occurredAt": "$.timestamp",
      "customer": [{"path": "$.data.customer.email", "type": "email"},
                   {"path": "$.data.customer.phoneNumber", "type": "phone"}],
      "context": {"direction": "$.data.direction", "queue": "$.data.queue.name", "skill": "$.data.skill.name",
                  "message": "$.data.message.body"}
    },
    "sms": {
      "eventType": "$.eventType", "occurredAt": "$.timestamp",
      "customer": [{"path": "$.data.customer.phoneNumber", "type": "phone"}],
      "context": {"direction": "$.data.direction", "queue": "$.data.queue.name", "skill": "$.data.skill.name",
                  "message": "$.data.message.body"}
    },
    "studio": {
      "interactionId": "$['contactId','ContactID','contactID']",
      "eventType": "$.eventType", "occurredAt": "$['timestamp','Timestamp','occurredAt']",
      "customer": [{"path": "$['ani','ANI']", "type": "phone"}],
      "context": {"skill": "$['skill','skillName','SkillName']", "agentId": "$['agentId','AgentID']",
                  "dnis": "$['dnis','DNIS']"}
    }
  },
  "routes": [{"name": "all-events", "priority": 1000, "targets": [{"queue": "events"}]}],
  "studio": {"deliveryIdField": "deliveryId", "eventTypeField": "eventType"}
}"#;

impl WebhookConfig {
    /// Reads `CXBRIDGE_WEBHOOK_CONFIG` over the defaults. Queue names `events` and `jobs`
    /// stand for the configured queues; any other queue must be an http(s) URL.
    pub fn from_env(events_queue_url: &str, jobs_queue_url: &str) -> Result<Self, ConfigError> {
        let custom = crate::config::json_document(CONFIG_VAR)?;
        Self::parse(custom.as_deref(), events_queue_url, jobs_queue_url)
    }

    /// Builds the configuration from an optional JSON document over the defaults.
    pub fn parse(
        custom: Option<&str>,
        events_queue_url: &str,
        jobs_queue_url: &str,
    ) -> Result<Self, ConfigError> {
        Self::parse_all(custom, events_queue_url, jobs_queue_url)
            .map_err(|problems| invalid(custom.unwrap_or(DEFAULT_CONFIG), problems.join("; ")))
    }

    /// Every problem in a document, for `cxbridge config check`: the targets and the
    /// routes' targets are all reported; a mistake elsewhere stops at the first.
    pub fn check(custom: &str) -> Vec<String> {
        Self::parse_all(
            Some(custom),
            "https://sqs.local/events",
            "https://sqs.local/jobs",
        )
        .err()
        .unwrap_or_default()
    }

    fn parse_all(
        custom: Option<&str>,
        events_queue_url: &str,
        jobs_queue_url: &str,
    ) -> Result<Self, Vec<String>> {
        let defaults: RawConfig =
            serde_json::from_str(DEFAULT_CONFIG).map_err(|e| bad(format!("(defaults): {e}")))?;
        let mut channels = defaults.channels;
        let mut routes = defaults.routes.unwrap_or_default();
        let mut studio = defaults.studio.unwrap_or(RawStudio {
            delivery_id_field: None,
            event_type_field: None,
        });
        let mut raw_targets = Vec::new();
        if let Some(text) = custom {
            let raw: RawConfig = serde_json::from_str(text).map_err(|e| vec![e.to_string()])?;
            raw_targets = raw.targets.unwrap_or_default();
            channels.extend(raw.channels);
            if let Some(custom_routes) = raw.routes {
                routes = custom_routes;
            }
            if let Some(custom_studio) = raw.studio {
                studio.delivery_id_field =
                    custom_studio.delivery_id_field.or(studio.delivery_id_field);
                studio.event_type_field =
                    custom_studio.event_type_field.or(studio.event_type_field);
            }
        }
        let studio_field = |name: &str, value: Option<String>| match value {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(bad(format!(
                "studio.{name} must name a top-level body field"
            ))),
        };
        let studio = StudioFields {
            delivery_id: studio_field("deliveryIdField", studio.delivery_id_field)?,
            event_type: studio_field("eventTypeField", studio.event_type_field)?,
        };

        let mut compiled_channels = BTreeMap::new();
        for (name, raw) in channels {
            let at = |field: &str, path: &str| {
                compile_path(path).map_err(|e| bad(format!("channels.{name}.{field}: {e}")))
            };
            let mut customer = Vec::new();
            for (i, c) in raw.customer.iter().enumerate() {
                if !matches!(c.kind.as_str(), "phone" | "email") {
                    return Err(bad(format!(
                        "channels.{name}.customer[{i}].type must be phone or email"
                    )));
                }
                customer.push((at(&format!("customer[{i}].path"), &c.path)?, c.kind.clone()));
            }
            let mut context = BTreeMap::new();
            for (key, path) in &raw.context {
                context.insert(key.clone(), at(&format!("context.{key}"), path)?);
            }
            let interaction_id = match &raw.interaction_id {
                Some(path) => Some(at("interactionId", path)?),
                None => None,
            };
            compiled_channels.insert(
                name.to_ascii_lowercase(),
                ChannelMapping {
                    interaction_id,
                    event_type: at("eventType", &raw.event_type)?,
                    occurred_at: at("occurredAt", &raw.occurred_at)?,
                    customer,
                    context,
                },
            );
        }

        // The named targets: every problem in them, and in the routes' targets, is
        // reported at once.
        let mut problems = Vec::new();
        let named = match crate::targets::parse_targets(&raw_targets) {
            Ok(named) => Some(named),
            Err(found) => {
                problems.extend(found);
                None
            }
        };
        let mut compiled_routes = Vec::new();
        for (r, raw) in routes.into_iter().enumerate() {
            let mut when = Vec::new();
            for (c, cond) in raw.when.into_iter().enumerate() {
                let here = format!("routes[{r}].when[{c}]");
                let field = cond.field;
                let condition = match (cond.equals, cond.contains, cond.regex, cond.exists) {
                    (Some(v), None, None, None) => Condition::Equals(field, v),
                    (None, Some(v), None, None) => Condition::Contains(field, v),
                    (None, None, Some(v), None) => Condition::Regex(
                        field,
                        Regex::new(&v).map_err(|e| bad(format!("{here}.regex: {e}")))?,
                    ),
                    (None, None, None, Some(v)) => Condition::Exists(field, v),
                    _ => {
                        return Err(bad(format!(
                            "{here} needs exactly one of equals, contains, regex or exists"
                        )));
                    }
                };
                when.push(condition);
            }
            let mut targets = Vec::new();
            for (t, target) in raw.targets.into_iter().enumerate() {
                let here = format!("routes[{r}].targets[{t}]");
                match (target.queue, target.signal, target.target) {
                    (Some(queue), None, None) => match queue.as_str() {
                        "events" => targets.push(Target::Queue(events_queue_url.to_owned())),
                        "jobs" => targets.push(Target::Queue(jobs_queue_url.to_owned())),
                        url if url.starts_with("https://") || url.starts_with("http://") => {
                            targets.push(Target::Queue(url.to_owned()));
                        }
                        other => problems.push(format!(
                            "{here}.queue {other:?} is neither events, jobs nor a queue URL"
                        )),
                    },
                    (None, Some(name), None) if !name.is_empty() => {
                        targets.push(Target::Signal {
                            name,
                            mapping: target.mapping,
                        });
                    }
                    (None, None, Some(name)) => match named.as_ref().map(|n| n.get(&name)) {
                        Some(Some(spec)) => targets.push(match &spec.kind {
                            TargetKind::Sqs { queue_url } => Target::Queue(queue_url.clone()),
                            _ => Target::Deliver(name),
                        }),
                        Some(None) => problems.push(format!(
                            "{here} names the target {name:?}, which targets does not declare"
                        )),
                        // The declarations have problems of their own, already reported.
                        None => {}
                    },
                    _ => problems.push(format!(
                        "{here} needs exactly one of queue, signal or target"
                    )),
                }
            }
            if targets.is_empty() && problems.is_empty() {
                problems.push(format!("routes[{r}] has no targets"));
            }
            compiled_routes.push(Route {
                name: raw.name,
                priority: raw.priority,
                when,
                targets,
                stop: raw.stop,
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        compiled_routes.sort_by_key(|r| r.priority);
        Ok(Self {
            channels: compiled_channels,
            routes: compiled_routes,
            jobs_queue_url: jobs_queue_url.to_owned(),
            studio,
            targets: named.unwrap_or_default(),
        })
    }
}

fn compile_path(path: &str) -> Result<JsonPath, String> {
    JsonPath::parse(path).map_err(|e| format!("invalid JSONPath {path:?}: {e}"))
}

fn bad(reason: String) -> Vec<String> {
    vec![reason]
}

fn invalid(value: &str, reason: String) -> ConfigError {
    let mut shown: String = value.chars().take(80).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    ConfigError::Invalid {
        var: CONFIG_VAR,
        value: shown,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: &str = "http://sqs/events";
    const JOBS: &str = "http://sqs/jobs";

    #[test]
    fn the_defaults_cover_voice_chat_sms_and_studio_and_route_everything_to_events() {
        let c = WebhookConfig::parse(None, EVENTS, JOBS).unwrap();
        assert_eq!(
            c.channels.keys().collect::<Vec<_>>(),
            ["chat", "sms", "studio", "voice"]
        );
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.routes[0].targets, [Target::Queue(EVENTS.into())]);
        assert_eq!(
            c.studio,
            StudioFields {
                delivery_id: "deliveryId".into(),
                event_type: "eventType".into()
            }
        );
        assert!(c.channels["studio"].interaction_id.is_some());
        assert!(c.channels["voice"].interaction_id.is_none());
    }

    #[test]
    fn studio_body_fields_can_be_renamed_one_at_a_time() {
        let c = WebhookConfig::parse(
            Some(r#"{"studio": {"deliveryIdField": "requestId"}}"#),
            EVENTS,
            JOBS,
        )
        .unwrap();
        assert_eq!(c.studio.delivery_id, "requestId");
        assert_eq!(c.studio.event_type, "eventType");
        assert_eq!(c.routes.len(), 1, "routes keep their default");
    }

    #[test]
    fn custom_routes_replace_the_default_and_are_sorted_by_priority() {
        let c = WebhookConfig::parse(
            Some(r#"{"routes": [
                {"name": "late", "priority": 20, "targets": [{"queue": "events"}]},
                {"name": "vip", "priority": 10, "when": [{"field": "context.queue", "regex": "^VIP"}],
                 "targets": [{"signal": "order-update", "mapping": {"customerId": "customer.identifier"}}], "stop": true}
            ]}"#),
            EVENTS,
            JOBS,
        )
        .unwrap();
        assert_eq!(
            c.routes.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["vip", "late"]
        );
        assert!(c.routes[0].stop);
        assert_eq!(c.channels.len(), 4, "channels keep their defaults");
    }

    #[test]
    fn mistakes_are_refused_with_where_they_are() {
        for (doc, expect) in [
            (
                r#"{"routes": [{"name": "x", "targets": [{"queue": "nowhere"}]}]}"#,
                "routes[0].targets[0].queue",
            ),
            (
                r#"{"routes": [{"name": "x", "when": [{"field": "a", "regex": "("}], "targets": [{"queue": "events"}]}]}"#,
                "routes[0].when[0].regex",
            ),
            (
                r#"{"routes": [{"name": "x", "when": [{"field": "a", "equals": 1, "exists": true}], "targets": [{"queue": "events"}]}]}"#,
                "exactly one of equals",
            ),
            (
                r#"{"routes": [{"name": "x", "targets": []}]}"#,
                "has no targets",
            ),
            (
                r#"{"channels": {"fax": {"eventType": "$.[", "occurredAt": "$.t"}}}"#,
                "channels.fax.eventType",
            ),
            (
                r#"{"channels": {"fax": {"eventType": "$.e", "occurredAt": "$.t", "customer": [{"path": "$.x", "type": "fax"}]}}}"#,
                "phone or email",
            ),
            (r#"{"rutes": []}"#, "unknown field"),
            (
                r#"{"studio": {"deliveryIdField": " "}}"#,
                "studio.deliveryIdField",
            ),
            (
                r#"{"channels": {"fax": {"interactionId": "$.[", "eventType": "$.e", "occurredAt": "$.t"}}}"#,
                "channels.fax.interactionId",
            ),
            (r#"{"studio": {"deliveryId": "x"}}"#, "unknown field"),
        ] {
            let err = WebhookConfig::parse(Some(doc), EVENTS, JOBS)
                .unwrap_err()
                .to_string();
            assert!(err.contains(CONFIG_VAR) && err.contains(expect), "{err}");
        }
    }
}
