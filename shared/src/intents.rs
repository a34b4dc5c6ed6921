//! Cognigy intent results (design §3.2): three body shapes into one [`IntentResult`], the
//! threshold and intent map, and the attributes that go to CXone.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::config::ConfigError;
use crate::error::{ApiError, ErrorCode};

pub const INTENTS_VAR: &str = "CXBRIDGE_INTENTS";

/// One intent result, whatever shape it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentResult {
    /// The CXone contact / interaction the result belongs to.
    pub interaction_id: String,
    pub intent: Option<String>,
    pub confidence: Option<f64>,
    pub timestamp: Option<String>,
    /// `flat`, `input` or `envelope`.
    pub shape: &'static str,
}

/// A signal an intent triggers: its definition and, per variable, the result field
/// (`interactionId`, `intent`, `confidence`, `timestamp`) that fills it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentSignal {
    pub name: String,
    #[serde(default)]
    pub mapping: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentRoute {
    #[serde(default)]
    pub attributes: Map<String, Value>,
    pub signal: Option<IntentSignal>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentConfig {
    /// Results under this confidence change nothing in CXone.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    #[serde(default)]
    pub intents: BTreeMap<String, IntentRoute>,
}

fn default_threshold() -> f64 {
    0.6
}

impl IntentConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let invalid = |value: String, reason: String| ConfigError::Invalid {
            var: INTENTS_VAR,
            value,
            reason,
        };
        let text = match std::env::var(INTENTS_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            None => {
                return Ok(Self {
                    threshold: default_threshold(),
                    intents: BTreeMap::new(),
                });
            }
            Some(v) => match v.trim().strip_prefix('@') {
                Some(path) => {
                    std::fs::read_to_string(path).map_err(|e| invalid(v.clone(), e.to_string()))?
                }
                None => v,
            },
        };
        let config: Self = serde_json::from_str(&text)
            .map_err(|e| invalid("(the JSON given)".into(), e.to_string()))?;
        if !(0.0..=1.0).contains(&config.threshold) {
            return Err(invalid(
                config.threshold.to_string(),
                "threshold must be from 0 to 1".into(),
            ));
        }
        for (intent, route) in &config.intents {
            for field in route.signal.iter().flat_map(|s| s.mapping.values()) {
                if !["interactionId", "intent", "confidence", "timestamp"].contains(&field.as_str())
                {
                    return Err(invalid(
                        field.clone(),
                        format!(
                            "intent {intent:?}: a signal variable can take interactionId, intent, confidence or timestamp"
                        ),
                    ));
                }
            }
        }
        Ok(config)
    }
}

fn problem(field: &str, problem: &str) -> Value {
    json!({"field": field, "problem": problem})
}

fn invalid(fields: Vec<Value>) -> ApiError {
    ApiError::new(ErrorCode::InvalidPayload, "the intent result is not valid")
        .with_detail("fields", Value::Array(fields))
}

fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn at<'a>(root: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(root, |v, k| v.get(*k))
        .filter(|v| !v.is_null())
}

/// Reads an optional intent name and score, recording what is wrong with them.
fn intent_and_score(
    intent: Option<&Value>,
    score: Option<&Value>,
    names: (&str, &str),
    errors: &mut Vec<Value>,
) -> (Option<String>, Option<f64>) {
    let intent = match intent {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(_) => {
            errors.push(problem(names.0, "must be a string or null"));
            None
        }
    };
    let score = match score {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if (0.0..=1.0).contains(&f) => Some(f),
            _ => {
                errors.push(problem(names.1, "must be between 0 and 1"));
                None
            }
        },
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(f) if (0.0..=1.0).contains(&f) => Some(f),
            _ => {
                errors.push(problem(names.1, "must be a number between 0 and 1"));
                None
            }
        },
        Some(_) => {
            errors.push(problem(names.1, "must be a number or null"));
            None
        }
    };
    (intent, score)
}

fn from_input(input: &Value, shape: &'static str) -> Result<IntentResult, ApiError> {
    let mut errors = Vec::new();
    let mapper = at(input, &["nlu", "intentMapperResults"]);
    let (intent, score) = intent_and_score(
        input
            .get("intent")
            .filter(|v| !v.is_null())
            .or_else(|| mapper.and_then(|m| m.get("finalIntentName"))),
        input
            .get("intentScore")
            .filter(|v| !v.is_null())
            .or_else(|| mapper.and_then(|m| m.get("finalIntentScore"))),
        ("input.intent", "input.intentScore"),
        &mut errors,
    );
    let contact = id_of(at(input, &["data", "contactId"]))
        .or_else(|| id_of(at(input, &["data", "spawnedContactId"])))
        .or_else(|| {
            id_of(at(
                input,
                &["data", "payload", "sip", "headers", "X-InContact-ContactId"],
            ))
        });
    if contact.is_none() {
        errors.push(problem("input.data.contactId", "no CXone contact id (input.data.contactId, spawnedContactId or the X-InContact-ContactId SIP header)"));
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    Ok(IntentResult {
        interaction_id: contact.unwrap_or_default(),
        intent,
        confidence: score,
        timestamp: input
            .get("currentTime")
            .and_then(Value::as_str)
            .map(str::to_owned),
        shape,
    })
}

fn from_flat(body: &Value, shape: &'static str) -> Result<IntentResult, ApiError> {
    let mut errors = Vec::new();
    let (intent, score) = intent_and_score(
        body.get("intent"),
        body.get("confidence"),
        ("intent", "confidence"),
        &mut errors,
    );
    let contact = id_of(body.get("conversationId"))
        .or_else(|| id_of(body.get("contactId")))
        .or_else(|| id_of(body.get("interactionId")));
    if contact.is_none() {
        errors.push(problem("conversationId", "is missing"));
    }
    let timestamp = match body.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(problem("timestamp", "must be a string"));
            None
        }
    };
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    Ok(IntentResult {
        interaction_id: contact.unwrap_or_default(),
        intent,
        confidence: score,
        timestamp,
        shape,
    })
}

/// Parses a body of any accepted shape, as JSON or as a form.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<IntentResult, ApiError> {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let value: Value = match media.as_str() {
        "application/json" => serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                ErrorCode::MalformedBody,
                format!("the body is not valid JSON: {e}"),
            )
        })?,
        "application/x-www-form-urlencoded" => {
            let mut map = Map::new();
            for (k, v) in form_urlencoded::parse(body) {
                // A form field may carry a JSON object (Cognigy's "input" in a form body).
                let value = if v.trim_start().starts_with('{') {
                    serde_json::from_str(&v).unwrap_or(Value::String(v.into_owned()))
                } else {
                    Value::String(v.into_owned())
                };
                map.insert(k.into_owned(), value);
            }
            Value::Object(map)
        }
        "" => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "Content-Type is missing; send application/json or application/x-www-form-urlencoded",
            ));
        }
        other => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "Content-Type {other} is not supported; send application/json or application/x-www-form-urlencoded"
                ),
            ));
        }
    };
    if !value.is_object() {
        return Err(ApiError::new(
            ErrorCode::MalformedBody,
            "the body must be a JSON object",
        ));
    }
    if let Some(output) = value.get("AIOutput") {
        if value.get("sessionId").and_then(Value::as_str).is_none() {
            return Err(invalid(vec![problem(
                "sessionId",
                "is missing from the envelope",
            )]));
        }
        let inner = output
            .get("data")
            .filter(|d| d.is_object())
            .unwrap_or(output);
        return match inner.get("input") {
            Some(input) => from_input(input, "envelope"),
            None => from_flat(inner, "envelope"),
        };
    }
    match value.get("input") {
        Some(input) if input.is_object() => from_input(input, "input"),
        Some(_) => Err(invalid(vec![problem("input", "must be an object")])),
        None => from_flat(&value, "flat"),
    }
}

/// The attributes a result sets: the defaults, then the intent map's.
pub fn attributes(
    result: &IntentResult,
    route: Option<&IntentRoute>,
    now_ms: i64,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("cognigyDetectedIntent".into(), json!(result.intent));
    out.insert("cognigyIntentConfidence".into(), json!(result.confidence));
    out.insert("routedAt".into(), json!(crate::clock::rfc3339(now_ms)));
    if let Some(route) = route {
        for (k, v) in &route.attributes {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// The field of a result a signal variable asks for.
pub fn field(result: &IntentResult, name: &str) -> Value {
    match name {
        "interactionId" => json!(result.interaction_id),
        "intent" => json!(result.intent),
        "confidence" => json!(result.confidence),
        "timestamp" => json!(result.timestamp),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_ct() -> Option<&'static str> {
        Some("application/json")
    }

    #[test]
    fn the_flat_shape_parses() {
        let r = parse(json_ct(), br#"{"conversationId":"c-1","intent":"billing","confidence":0.91,"timestamp":"2026-11-22T09:00:00Z"}"#).unwrap();
        assert_eq!(
            (
                r.interaction_id.as_str(),
                r.intent.as_deref(),
                r.confidence,
                r.shape
            ),
            ("c-1", Some("billing"), Some(0.91), "flat")
        );
    }

    #[test]
    fn cognigys_input_object_parses_with_the_mapper_fallback_and_sip_contact() {
        let body = br#"{"input":{"intent":null,"intentScore":null,
            "nlu":{"intentMapperResults":{"finalIntentName":"cancel","finalIntentScore":0.8}},
            "data":{"payload":{"sip":{"headers":{"X-InContact-ContactId":"5550001"}}}}}}"#;
        let r = parse(json_ct(), body).unwrap();
        assert_eq!(
            (
                r.interaction_id.as_str(),
                r.intent.as_deref(),
                r.confidence,
                r.shape
            ),
            ("5550001", Some("cancel"), Some(0.8), "input")
        );
        let spawned =
            br#"{"input":{"intent":"x","intentScore":0.5,"data":{"spawnedContactId":77}}}"#;
        assert_eq!(parse(json_ct(), spawned).unwrap().interaction_id, "77");
    }

    #[test]
    fn the_webhook_envelope_parses() {
        let body = br#"{"userId":"u","sessionId":"s","AIOutput":{"data":{"conversationId":"c-9","intent":"sales","confidence":0.7}}}"#;
        let r = parse(json_ct(), body).unwrap();
        assert_eq!((r.interaction_id.as_str(), r.shape), ("c-9", "envelope"));
    }

    #[test]
    fn a_form_body_parses() {
        let r = parse(
            Some("application/x-www-form-urlencoded"),
            b"conversationId=c-2&intent=billing&confidence=0.75",
        )
        .unwrap();
        assert_eq!(
            (r.interaction_id.as_str(), r.confidence),
            ("c-2", Some(0.75))
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let err = parse(json_ct(), br#"{"intent":5,"confidence":2}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPayload);
        let fields: Vec<String> = err.body()["error"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(fields, ["intent", "confidence", "conversationId"]);
        assert_eq!(
            parse(Some("text/plain"), b"x").unwrap_err().code,
            ErrorCode::UnsupportedMediaType
        );
        assert_eq!(
            parse(json_ct(), b"{").unwrap_err().code,
            ErrorCode::MalformedBody
        );
    }

    #[test]
    fn the_default_attributes_come_first_and_the_map_adds_to_them() {
        let r = IntentResult {
            interaction_id: "c".into(),
            intent: Some("billing".into()),
            confidence: Some(0.9),
            timestamp: None,
            shape: "flat",
        };
        let route: IntentRoute =
            serde_json::from_value(json!({"attributes": {"queue": "Billing"}})).unwrap();
        let a = attributes(&r, Some(&route), 0);
        assert_eq!(a["cognigyDetectedIntent"], "billing");
        assert_eq!(a["cognigyIntentConfidence"], 0.9);
        assert_eq!(a["routedAt"], "1970-01-01T00:00:00.000Z");
        assert_eq!(a["queue"], "Billing");
    }
}
