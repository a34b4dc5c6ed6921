//! One Cognigy turn, read from whatever a flow sends: the flat shape, Cognigy's `input`
//! object (with or without `context`), or the Webhook endpoint's envelope; as JSON, a form
//! or multipart form data. Pure: no I/O.
//!
//! CognigyScript renders node arguments as strings, so a value is read for what it means:
//! `"0.87"` is a number, and `""`, `"null"` and `"undefined"` are absent.

use serde_json::{Map, Value};

use super::config::PreferContact;
use crate::error::{ApiError, ErrorCode};

/// Longest Cognigy session id taken from a turn.
pub const MAX_SESSION_ID_LEN: usize = 256;

/// The SIP headers CXone adds to a Cognigy voice call (matched case-insensitively).
pub const SIP_CONTACT: &str = "X-InContact-ContactId";
pub const SIP_MASTER: &str = "X-InContact-MasterId";

/// A contact id and where in the turn it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactId {
    pub id: String,
    /// `conversationId`, `context.data.spawnedContactId`, `input.data.contactId`,
    /// `sip:X-InContact-ContactId`, `session`, …
    pub source: String,
}

/// What one turn says.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// The contact the turn itself names, per the preference; `None` when it names none.
    pub contact: Option<ContactId>,
    pub session_id: Option<String>,
    /// Cognigy's `inputId` or `traceId`: one per turn, the same on an HTTP retry.
    pub turn_id: Option<String>,
    pub intent: Option<String>,
    /// The score; an intent without one (Cognigy's pattern rules) scores 1.
    pub confidence: Option<f64>,
    /// Cognigy found the intent negated ("I do *not* want to cancel").
    pub negated: bool,
    pub timestamp: Option<String>,
    /// A Webhook endpoint output that carries no intent data (plain bot text).
    pub no_intent_data: bool,
}

fn problem(field: &str, problem: &str) -> Value {
    serde_json::json!({"field": field, "problem": problem})
}

fn invalid(fields: Vec<Value>) -> ApiError {
    ApiError::new(ErrorCode::InvalidPayload, "the intent result is not valid")
        .with_detail("fields", Value::Array(fields))
}

/// A value as CognigyScript meant it: `None` for null, or a string that renders nothing.
pub fn present(value: Option<&Value>) -> Option<&Value> {
    match value? {
        Value::Null => None,
        Value::String(s) => {
            let t = s.trim();
            let nothing = t.is_empty()
                || t.eq_ignore_ascii_case("null")
                || t.eq_ignore_ascii_case("undefined");
            (!nothing).then_some(value?)
        }
        other => Some(other),
    }
}

fn at<'a>(root: &'a Value, path: &[&str]) -> Option<&'a Value> {
    present(path.iter().try_fold(root, |v, k| v.get(*k)))
}

/// Whether a flag is set: `true`, or a string rendering of it.
fn truthy(value: Option<&Value>) -> bool {
    match present(value) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// A string or a whole number, as text.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// The first contact id among `places` (name, value), checked.
fn first_contact(places: &[(String, Option<&Value>)]) -> Result<Option<ContactId>, Value> {
    for (source, value) in places {
        let Some(value) = present(*value) else {
            continue;
        };
        let Some(id) = text_of(value) else {
            return Err(problem(source, "must be a string or a whole number"));
        };
        if !crate::ids::is_path_id(&id) {
            return Err(problem(source, crate::ids::PATH_ID_RULE));
        }
        return Ok(Some(ContactId {
            id,
            source: source.clone(),
        }));
    }
    Ok(None)
}

/// Looks a key up in an object case-insensitively.
fn header<'a>(headers: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| match v {
            // A header repeated may arrive as a list: its first value.
            Value::Array(list) => list.first().unwrap_or(&Value::Null),
            other => other,
        })
}

/// Where a turn may name its contact, in the order they are tried.
fn contact_places<'a>(
    explicit: &'a Value,
    input: Option<&'a Value>,
    prefer: PreferContact,
) -> Vec<(String, Option<&'a Value>)> {
    let ordered = |spawned: Vec<(String, Option<&'a Value>)>,
                   main: Vec<(String, Option<&'a Value>)>| match prefer {
        PreferContact::Spawned => [spawned, main].concat(),
        PreferContact::Main => [main, spawned].concat(),
    };
    let named = |root: Option<&'a Value>, prefix: &str, keys: &[&str]| {
        keys.iter()
            .map(|k| (format!("{prefix}{k}"), root.and_then(|r| r.get(*k))))
            .collect::<Vec<_>>()
    };
    // 1. An explicit field of the body.
    let mut places = named(
        Some(explicit),
        "",
        &["conversationId", "contactId", "interactionId"],
    );
    // 2. Cognigy's context, where NICE's extension and setup guide keep the ids.
    let context = explicit.get("context").and_then(|c| c.get("data"));
    places.extend(ordered(
        named(context, "context.data.", &["spawnedContactId"]),
        named(context, "context.data.", &["contactId"]),
    ));
    // 3. The input's data: the keys NICE's Studio templates and examples set.
    let data = input.and_then(|i| i.get("data"));
    places.extend(ordered(
        named(
            data,
            "input.data.",
            &["spawnedContactId", "spawnedContactID"],
        ),
        named(
            data,
            "input.data.",
            &[
                "contactId",
                "contactID",
                "ContactId",
                "masterContactId",
                "masterContactID",
            ],
        ),
    ));
    // 4. The SIP headers of a voice call's first turn.
    let headers = data
        .and_then(|d| {
            d.get("payload")
                .and_then(|p| p.get("sip"))
                .or_else(|| d.get("sip"))
        })
        .and_then(|s| s.get("headers"))
        .and_then(Value::as_object);
    let sip = |name: &str| vec![(format!("sip:{name}"), headers.and_then(|h| header(h, name)))];
    places.extend(ordered(sip(SIP_CONTACT), sip(SIP_MASTER)));
    places
}

/// Reads an optional intent name and score, recording what is wrong with them.
/// `rule_scores_one`: a missing score is a pattern rule's, which scores 1 (Cognigy's own
/// input object); otherwise it is a rendering that failed, and there is no score.
fn intent_and_score(
    intent: Option<&Value>,
    score: Option<&Value>,
    names: (&str, &str),
    rule_scores_one: bool,
    errors: &mut Vec<Value>,
) -> (Option<String>, Option<f64>) {
    let intent = match present(intent) {
        None => None,
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(_) => {
            errors.push(problem(names.0, "must be a string or null"));
            None
        }
    };
    let number = match present(score) {
        None => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Some(f),
            _ => {
                errors.push(problem(names.1, "must be a number between 0 and 1"));
                return (intent, None);
            }
        },
        Some(_) => {
            errors.push(problem(names.1, "must be a number or null"));
            return (intent, None);
        }
    };
    let score = match number {
        Some(f) if (0.0..=1.0).contains(&f) => Some(f),
        Some(_) => {
            errors.push(problem(names.1, "must be between 0 and 1"));
            None
        }
        // Cognigy's pattern rules set an intent without a score: they always score 1.
        None if rule_scores_one => intent.as_ref().map(|_| 1.0),
        None => None,
    };
    (intent, score)
}

/// `currentTime` or `timestamp`: a string, or Cognigy's time object (its `ISODate`).
fn timestamp(value: Option<&Value>, field: &str, errors: &mut Vec<Value>) -> Option<String> {
    let iso = |v: &Value| v.get("ISODate").and_then(Value::as_str).map(str::to_owned);
    match present(value) {
        None => None,
        Some(Value::Object(_)) => iso(value?),
        Some(Value::String(s)) if s.trim_start().starts_with('{') => {
            serde_json::from_str::<Value>(s).ok().as_ref().and_then(iso)
        }
        // How a flow renders an object into a string it did not mean to.
        Some(Value::String(s)) if s.trim() == "[object Object]" => None,
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(_) => {
            errors.push(problem(field, "must be a string or Cognigy's time object"));
            None
        }
    }
}

fn string_field(value: Option<&Value>) -> Option<String> {
    present(value).and_then(text_of).filter(|s| !s.is_empty())
}

/// Reads a turn from a parsed body.
pub fn read(body: &Value, prefer: PreferContact) -> Result<Turn, ApiError> {
    let Some(root) = body.as_object() else {
        return Err(ApiError::new(
            ErrorCode::MalformedBody,
            "the body must be a JSON object",
        ));
    };
    let mut errors = Vec::new();
    let mut explicit = body;
    let mut envelope_session = None;
    let mut envelope_trace = None;
    if let Some(output) = root.get("AIOutput") {
        envelope_session = match root.get("sessionId").and_then(text_of) {
            Some(s) if !s.is_empty() => Some(s),
            _ => {
                return Err(invalid(vec![problem(
                    "sessionId",
                    "is missing from the envelope",
                )]));
            }
        };
        envelope_trace = string_field(output.get("traceId"));
        match output.get("data").filter(|d| d.is_object()) {
            Some(data) if data.get("input").is_some() || data.get("intent").is_some() => {
                explicit = data;
            }
            _ => {
                return Ok(Turn {
                    contact: None,
                    session_id: envelope_session,
                    turn_id: envelope_trace,
                    intent: None,
                    confidence: None,
                    negated: false,
                    timestamp: None,
                    no_intent_data: true,
                });
            }
        }
    }
    // Cognigy's input object: under `input`, or as the body itself.
    let input = match explicit.get("input") {
        Some(i) if i.is_object() => Some(i),
        Some(_) => return Err(invalid(vec![problem("input", "must be an object")])),
        None if explicit.get("intentScore").is_some() || explicit.get("nlu").is_some() => {
            Some(explicit)
        }
        None => None,
    };

    // An explicit `intent` beside an embedded input wins, as an explicit contact id does.
    let explicit_intent = !std::ptr::eq(explicit, input.unwrap_or(explicit))
        && present(explicit.get("intent")).is_some();
    let (intent, confidence, negated, time) = match input.filter(|_| !explicit_intent) {
        Some(input) => {
            let mapper = at(input, &["nlu", "intentMapperResults"]);
            let mapped_negated = truthy(mapper.and_then(|m| m.get("finalIntentNegated")));
            // Name and score come as a pair: both from the input, or both from the mapper.
            let (intent, score, from_mapper) = if present(input.get("intent")).is_some() {
                let (i, s) = intent_and_score(
                    input.get("intent"),
                    input.get("intentScore"),
                    ("input.intent", "input.intentScore"),
                    true,
                    &mut errors,
                );
                (i, s, false)
            } else {
                let (i, s) = intent_and_score(
                    mapper.and_then(|m| m.get("finalIntentName")),
                    mapper.and_then(|m| m.get("finalIntentScore")),
                    (
                        "input.nlu.intentMapperResults.finalIntentName",
                        "input.nlu.intentMapperResults.finalIntentScore",
                    ),
                    true,
                    &mut errors,
                );
                (i, s, true)
            };
            let mapper_name = mapper
                .and_then(|m| present(m.get("finalIntentName")))
                .and_then(Value::as_str)
                .map(str::trim);
            let negated = mapped_negated
                && (from_mapper || mapper_name.is_none() || mapper_name == intent.as_deref());
            let time = timestamp(input.get("currentTime"), "input.currentTime", &mut errors)
                .or_else(|| timestamp(explicit.get("timestamp"), "timestamp", &mut errors));
            (intent, score, negated, time)
        }
        None => {
            let score_field = if present(explicit.get("confidence")).is_none()
                && present(explicit.get("intentScore")).is_some()
            {
                "intentScore"
            } else {
                "confidence"
            };
            let (intent, score) = intent_and_score(
                explicit.get("intent"),
                explicit.get(score_field),
                ("intent", score_field),
                false,
                &mut errors,
            );
            let time = timestamp(explicit.get("timestamp"), "timestamp", &mut errors)
                .or_else(|| timestamp(explicit.get("currentTime"), "currentTime", &mut errors));
            // `{{input.nlu.intentMapperResults.finalIntentNegated}}`, rendered.
            (intent, score, truthy(explicit.get("negated")), time)
        }
    };

    let contact = match first_contact(&contact_places(explicit, input, prefer)) {
        Ok(c) => c,
        Err(p) => {
            errors.push(p);
            None
        }
    };
    let session_id = input
        .and_then(|i| string_field(i.get("sessionId")))
        .or_else(|| string_field(explicit.get("sessionId")))
        .or(envelope_session);
    if let Some(s) = &session_id {
        let plain = s.bytes().all(|b| b.is_ascii_graphic());
        if s.len() > MAX_SESSION_ID_LEN || !plain {
            errors.push(problem(
                "sessionId",
                &format!("must be 1 to {MAX_SESSION_ID_LEN} printable characters"),
            ));
        }
    }
    let turn_id = ["inputId", "traceId"]
        .iter()
        .find_map(|k| {
            input
                .and_then(|i| string_field(i.get(*k)))
                .or_else(|| string_field(explicit.get(*k)))
        })
        .or(envelope_trace);
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    Ok(Turn {
        contact,
        session_id,
        turn_id,
        intent,
        confidence,
        negated,
        timestamp: time,
        no_intent_data: false,
    })
}

/// Where a contact id can be given, for the message when none was.
pub const CONTACT_PLACES: &str = "conversationId or contactId, context.data.spawnedContactId or contactId, input.data.contactId or spawnedContactId, the X-InContact-ContactId or X-InContact-MasterId SIP header, or an earlier turn of the same sessionId";

/// 422 for a routable turn that names no contact and whose session recorded none.
pub fn no_contact(session_id: Option<&str>) -> ApiError {
    let why = match session_id {
        Some(_) => "no CXone contact id, and no earlier turn of this session recorded one",
        None => "no CXone contact id, and no sessionId to look an earlier turn up by",
    };
    invalid(vec![
        serde_json::json!({"field": "contactId", "problem": why, "lookedIn": CONTACT_PLACES}),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn turn(body: Value) -> Turn {
        read(&body, PreferContact::Spawned).unwrap()
    }

    #[test]
    fn cognigy_time_objects_and_rendered_ones_give_the_iso_date_or_nothing() {
        let iso = "2026-12-01T10:00:00.000Z";
        for (value, expected) in [
            (json!({"ISODate": iso, "year": 2026}), Some(iso)),
            (json!(format!("{{\"ISODate\":\"{iso}\"}}")), Some(iso)),
            (json!("[object Object]"), None),
            (json!(""), None),
            (json!(iso), Some(iso)),
        ] {
            let t = turn(json!({"input": {"currentTime": value.clone()}}));
            assert_eq!(t.timestamp.as_deref(), expected, "{value}");
        }
    }

    #[test]
    fn sip_headers_match_in_any_case_and_a_repeated_one_gives_its_first_value() {
        let t = turn(json!({"input": {"data": {"payload": {"sip": {"headers": {
            "x-incontact-masterid": "2", "X-INCONTACT-CONTACTID": ["1", "9"]}}}}}}));
        assert_eq!(t.contact.unwrap().id, "1");
        let t = read(
            &json!({"input": {"data": {"sip": {"headers": {"X-InContact-MasterId": 2, "X-InContact-ContactId": 1}}}}}),
            PreferContact::Main,
        )
        .unwrap();
        let c = t.contact.unwrap();
        assert_eq!(
            (c.id.as_str(), c.source.as_str()),
            ("2", "sip:X-InContact-MasterId")
        );
    }

    #[test]
    fn ids_scores_and_flags_rendered_as_strings_are_read_for_what_they_mean() {
        let t = turn(json!({"input": {"intent": " cancel ", "intentScore": "0.5",
            "inputId": 42, "sessionId": "undefined",
            "nlu": {"intentMapperResults": {"finalIntentName": "cancel", "finalIntentNegated": "true"}}}}));
        assert_eq!(t.intent.as_deref(), Some("cancel"));
        assert_eq!(t.confidence, Some(0.5));
        assert_eq!(t.turn_id.as_deref(), Some("42"));
        assert_eq!(t.session_id, None);
        assert!(t.negated);
        // The mapper's negation belongs to its own intent, not to another.
        let t = turn(json!({"input": {"intent": "billing",
            "nlu": {"intentMapperResults": {"finalIntentName": "cancel", "finalIntentNegated": true}}}}));
        assert!(!t.negated);
    }

    #[test]
    fn a_contact_id_must_be_a_plain_id() {
        for bad in [
            json!("."),
            json!(".."),
            json!("a/b"),
            json!("a b"),
            json!(1.5),
            json!(true),
            json!("x".repeat(129)),
        ] {
            let err = read(&json!({"contactId": bad.clone()}), PreferContact::Spawned).unwrap_err();
            assert_eq!(
                err.body()["error"]["fields"][0]["field"],
                "contactId",
                "{bad}"
            );
        }
        for good in [
            json!("700123"),
            json!(700123),
            json!("a.b:c_d-1"),
            json!("x".repeat(128)),
        ] {
            assert!(
                turn(json!({"contactId": good.clone()})).contact.is_some(),
                "{good}"
            );
        }
    }
}
