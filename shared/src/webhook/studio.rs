//! `POST /webhooks/studio`: a CXone Studio script's REST API action as a webhook sender.
//!
//! Studio cannot sign a request, so the sender presents a token (`X-API-Key` or
//! `Authorization: Bearer`, one of the secret's `studioTokens`). It sends JSON, or form
//! fields (`application/x-www-form-urlencoded`, its default unless the script sets the
//! headers), and retries a failed request with the same body: the delivery id comes from
//! the `X-Delivery-Id` header or, as Studio may not substitute variables into header values,
//! from a body field. It is never made up here, since a made-up id would turn each retry
//! into a new event.

use serde_json::{Map, Value};

use super::body::{self, BodyFormat};
use super::config::WebhookConfig;
use super::{Prepared, Sender, normalise, payload_hash, plan, valid_delivery_id};
use crate::error::{ApiError, ErrorCode};

/// The route key this module serves.
pub const ROUTE: &str = "POST /webhooks/studio";
pub const API_KEY_HEADER: &str = "x-api-key";
pub const AUTHORIZATION_HEADER: &str = "authorization";
pub const DELIVERY_ID_HEADER: &str = "x-delivery-id";
pub const EVENT_TYPE_HEADER: &str = "x-event-type";

/// What the function saw of a Studio request. Header values are raw bytes: a header that
/// is present decides, even when it is unusable.
#[derive(Debug, Clone, Copy, Default)]
pub struct StudioInbound<'a> {
    pub content_type: Option<&'a str>,
    pub api_key: Option<&'a [u8]>,
    pub authorization: Option<&'a [u8]>,
    pub delivery_id: Option<&'a [u8]>,
    pub event_type: Option<&'a [u8]>,
    pub body: &'a [u8],
}

/// The body types Studio sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudioFormat {
    Json,
    Form,
}

/// The body's format from its `Content-Type`; anything else is 415.
pub fn format_of(content_type: Option<&str>) -> Result<StudioFormat, ApiError> {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match media.as_str() {
        "application/json" => Ok(StudioFormat::Json),
        "application/x-www-form-urlencoded" => Ok(StudioFormat::Form),
        "" => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Content-Type is missing; send application/json or application/x-www-form-urlencoded",
        )),
        other => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Content-Type {other} is not supported; send application/json or application/x-www-form-urlencoded"
            ),
        )),
    }
}

/// 401, the same whatever was wrong with the credential.
pub fn unauthorized() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "send a Studio token as X-API-Key or Authorization: Bearer …",
    )
}

/// The token the request presents: `Authorization: Bearer <token>`, else `X-API-Key`.
pub fn credential<'a>(inbound: &StudioInbound<'a>) -> Option<&'a str> {
    let text = |v: &'a [u8]| std::str::from_utf8(v).ok();
    let bearer = inbound.authorization.and_then(text).and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(token)
    });
    bearer
        .or_else(|| inbound.api_key.and_then(text))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Parses the body into a JSON object: JSON as it is, form fields as strings.
///
/// A form-typed body that opens with `{` is a JSON object sent under Studio's default
/// `Content-Type` (a script that sets no headers declares a form), and is read as JSON: a
/// form encoder would have written `%7B`, so no real form body is taken for one.
pub fn parse(format: StudioFormat, raw: &[u8]) -> Result<Value, ApiError> {
    let opens_object = raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    match format {
        StudioFormat::Json => body::parse(BodyFormat::Json, raw),
        StudioFormat::Form if opens_object => body::parse(BodyFormat::Json, raw),
        StudioFormat::Form => parse_form(raw).map(Value::Object),
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One form-encoded name or value: `+` is a space, `%XX` a byte, anything else itself
/// (a `%` without two hex digits too, as browsers decode it). The bytes must be UTF-8.
fn decode_component(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => match (
                raw.get(i + 1).copied().and_then(hex_digit),
                raw.get(i + 2).copied().and_then(hex_digit),
            ) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Form fields as a flat object of strings; a repeated name keeps its first value.
///
/// A body that opens with `{` or `[` is JSON, not form fields (a form encoder would have
/// written `%7B`): it is refused rather than read as one meaningless field name.
pub fn parse_form(raw: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match raw.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(ApiError::new(ErrorCode::MalformedBody, "the body is empty")),
        Some(b'{' | b'[') => {
            return Err(ApiError::new(
                ErrorCode::MalformedBody,
                "the body is JSON, not form fields; a JSON body must be an object",
            ));
        }
        Some(_) => {}
    }
    let mut fields = Map::new();
    for (n, pair) in raw.split(|b| *b == b'&').enumerate() {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        let (Some(name), Some(value)) = (decode_component(name), decode_component(value)) else {
            return Err(ApiError::new(
                ErrorCode::MalformedBody,
                format!("form field {} is not UTF-8 text", n + 1),
            ));
        };
        if !name.is_empty() && !fields.contains_key(&name) {
            fields.insert(name, Value::String(value));
        }
    }
    Ok(fields)
}

/// Whether `id` is a Studio variable reference that was sent as it was written (`{name}`)
/// instead of its value; every request would then share one delivery id.
fn is_unsubstituted(id: &str) -> bool {
    id.strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .is_some_and(|name| {
            name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
        })
}

/// A scalar body field as text; numbers (Studio may send an id unquoted) become strings.
fn text_field(body: &Value, field: &str) -> Option<Result<String, ()>> {
    match body.get(field)? {
        Value::String(s) => Some(Ok(s.clone())),
        Value::Number(n) => Some(Ok(n.to_string())),
        Value::Null => None,
        _ => Some(Err(())),
    }
}

/// A header's text, unless it is a Studio variable sent as written (`{name}`): whether
/// Studio replaces variables in header values is not confirmed, so such a header counts as
/// absent and the body field serves instead.
fn replaced_header(raw: &[u8]) -> Result<Option<&str>, &str> {
    match std::str::from_utf8(raw).map(str::trim) {
        Ok(text) if is_unsubstituted(text) => Err(text),
        Ok(text) => Ok(Some(text)),
        Err(_) => Ok(None),
    }
}

/// The delivery id: the `X-Delivery-Id` header when present (and not an unreplaced Studio
/// variable), else the body field `field`. Without a usable one the request is refused;
/// none is ever generated.
pub fn delivery_id(header: Option<&[u8]>, body: &Value, field: &str) -> Result<String, ApiError> {
    let (given, source) = match header.map(replaced_header) {
        Some(Ok(text)) => (text.map(str::to_owned), "X-Delivery-Id".to_owned()),
        Some(Err(variable)) => (
            text_field(body, field).and_then(Result::ok),
            format!(
                "X-Delivery-Id is {variable}, a Studio variable that was not replaced by its value, so the body field {field}"
            ),
        ),
        None => (
            text_field(body, field).and_then(Result::ok),
            format!("X-Delivery-Id (or the body field {field})"),
        ),
    };
    let id = valid_delivery_id(given.as_deref(), &source)?;
    if is_unsubstituted(id) {
        return Err(ApiError::new(
            ErrorCode::MissingDeliveryId,
            format!("{source} is {id}, a Studio variable that was not replaced by its value"),
        ));
    }
    Ok(id.to_owned())
}

/// The event type: the `X-Event-Type` header when it has text (and is not an unreplaced
/// Studio variable), else the body field `field`.
pub fn event_type(header: Option<&[u8]>, body: &Value, field: &str) -> Option<String> {
    header
        .and_then(|raw| replaced_header(raw).ok().flatten())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            text_field(body, field)
                .and_then(Result::ok)
                .filter(|t| !t.trim().is_empty())
        })
}

/// Everything after authentication that needs no I/O.
pub fn prepare(
    config: &WebhookConfig,
    inbound: &StudioInbound<'_>,
    now_ms: i64,
) -> Result<Prepared, ApiError> {
    let format = format_of(inbound.content_type)?;
    let parsed = parse(format, inbound.body)?;
    let delivery_id = delivery_id(inbound.delivery_id, &parsed, &config.studio.delivery_id)?;
    let event_type = event_type(inbound.event_type, &parsed, &config.studio.event_type);
    let event = normalise::normalise_studio(config, &parsed, &delivery_id, event_type.as_deref());
    let (event_text, outbox) = plan(config, Sender::Studio, &event, &delivery_id, now_ms)?;
    Ok(Prepared {
        sender: Sender::Studio,
        delivery_id,
        verified: None,
        payload_hash: payload_hash(inbound.body),
        event,
        event_text,
        outbox,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> WebhookConfig {
        WebhookConfig::parse(None, "http://q/events", "http://q/jobs").unwrap()
    }

    #[test]
    fn json_and_form_bodies_are_accepted_and_nothing_else() {
        assert_eq!(
            format_of(Some("application/json; charset=utf-8")).unwrap(),
            StudioFormat::Json
        );
        assert_eq!(
            format_of(Some("Application/X-WWW-Form-Urlencoded")).unwrap(),
            StudioFormat::Form
        );
        for bad in [
            None,
            Some(""),
            Some("text/plain"),
            Some("application/xml"),
            Some("multipart/form-data; boundary=x"),
        ] {
            let err = format_of(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::UnsupportedMediaType, "{bad:?}");
        }
    }

    #[test]
    fn form_fields_become_a_flat_object_of_strings() {
        let form = b"ContactID=5012&ANI=%2B15550100&SkillName=Billing+Support&empty=&flag\
                     &&ContactID=other&note=100%&caf%C3%A9=cr%c3%a8me";
        assert_eq!(
            parse(StudioFormat::Form, form).unwrap(),
            json!({
                "ContactID": "5012", "ANI": "+15550100", "SkillName": "Billing Support",
                "empty": "", "flag": "", "note": "100%", "café": "crème"
            })
        );
    }

    #[test]
    fn form_bodies_that_are_not_utf8_or_empty_are_malformed() {
        for bad in [
            &b"a=%FF"[..],
            b"a=\xff",
            b"%C3=x",
            b"",
            b"  \n",
            b" {\"deliveryId\":",
            b"[1]",
        ] {
            let err = parse(StudioFormat::Form, bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::MalformedBody, "{bad:?}");
        }
    }

    #[test]
    fn a_json_object_under_the_form_type_is_read_as_json() {
        assert_eq!(
            parse(StudioFormat::Form, b" {\"deliveryId\":\"d-1\",\"n\":2}").unwrap(),
            json!({"deliveryId": "d-1", "n": 2})
        );
    }

    #[test]
    fn json_bodies_must_be_objects() {
        assert_eq!(
            parse(StudioFormat::Json, b"{\"a\":1}").unwrap(),
            json!({"a": 1})
        );
        for bad in [&b"[1]"[..], b"{\"a\":", b"", b"\"x\""] {
            assert_eq!(
                parse(StudioFormat::Json, bad).unwrap_err().code,
                ErrorCode::MalformedBody
            );
        }
    }

    #[test]
    fn the_token_is_a_bearer_token_or_the_api_key() {
        let with = |authorization: Option<&'static str>, api_key: Option<&'static str>| {
            let inbound = StudioInbound {
                authorization: authorization.map(str::as_bytes),
                api_key: api_key.map(str::as_bytes),
                ..StudioInbound::default()
            };
            credential(&inbound)
        };
        assert_eq!(with(Some("Bearer t-1"), None), Some("t-1"));
        assert_eq!(with(Some("bearer  t-1 "), None), Some("t-1"));
        assert_eq!(with(None, Some(" k-1")), Some("k-1"));
        assert_eq!(with(Some("Bearer t-1"), Some("k-1")), Some("t-1"));
        assert_eq!(with(Some("Basic dTpw"), Some("k-1")), Some("k-1"));
        assert_eq!(with(Some("Basic dTpw"), None), None);
        assert_eq!(with(Some("Bearer "), None), None);
        assert_eq!(with(None, Some("")), None);
        assert_eq!(with(None, None), None);
        let binary = StudioInbound {
            api_key: Some(b"\xff\xfe"),
            ..StudioInbound::default()
        };
        assert_eq!(credential(&binary), None);
    }

    #[test]
    fn the_delivery_id_comes_from_the_header_else_the_body_field() {
        let body = json!({"deliveryId": "from-body", "requestId": 42});
        assert_eq!(
            delivery_id(Some(b" from-header "), &body, "deliveryId").unwrap(),
            "from-header"
        );
        assert_eq!(delivery_id(None, &body, "deliveryId").unwrap(), "from-body");
        assert_eq!(delivery_id(None, &body, "requestId").unwrap(), "42");
        assert_eq!(
            delivery_id(Some(b"{3F2504E0-4F89-11D3-9A0C-0305E82C3301}"), &body, "x").unwrap(),
            "{3F2504E0-4F89-11D3-9A0C-0305E82C3301}",
            "a GUID in braces is a value"
        );
    }

    #[test]
    fn a_missing_or_unusable_delivery_id_is_refused_and_never_made_up() {
        let body = json!({"deliveryId": "from-body", "blank": "  ", "object": {"a": 1},
                          "accented": "dé", "long": "d".repeat(257), "null": null});
        for unreplaced in [&b"{deliveryId}"[..], b"{contact.id}"] {
            let err = delivery_id(Some(unreplaced), &body, "absent").unwrap_err();
            assert_eq!(err.code, ErrorCode::MissingDeliveryId, "{unreplaced:?}");
        }
        // (The body's own deliveryId is not read while the header is a real value.)
        let header_cases: [&[u8]; 4] = [b"", b"   ", b"d\xc3\xa9", b"a b"];
        for header in header_cases {
            let err = delivery_id(Some(header), &body, "deliveryId").unwrap_err();
            assert_eq!(err.code, ErrorCode::MissingDeliveryId, "{header:?}");
        }
        for field in ["absent", "blank", "object", "accented", "long", "null"] {
            let err = delivery_id(None, &body, field).unwrap_err();
            assert_eq!(err.code, ErrorCode::MissingDeliveryId, "{field}");
            assert!(err.message.contains(field), "{}", err.message);
        }
        assert!(
            delivery_id(Some(&[b'd'; 256]), &body, "x").is_ok(),
            "256 characters is the limit"
        );
        assert!(delivery_id(None, &json!({"id": "{deliveryId}"}), "id").is_err());
    }

    #[test]
    fn an_unreplaced_header_variable_gives_way_to_the_body_field() {
        let body = json!({"deliveryId": "from-body", "eventType": "contact.routed"});
        assert_eq!(
            delivery_id(Some(b"{deliveryId}"), &body, "deliveryId").unwrap(),
            "from-body"
        );
        let err = delivery_id(Some(b"{deliveryId}"), &json!({}), "deliveryId").unwrap_err();
        assert_eq!(err.code, ErrorCode::MissingDeliveryId);
        assert!(err.message.contains("not replaced"), "{}", err.message);
        assert_eq!(
            event_type(Some(b"{eventType}"), &body, "eventType").as_deref(),
            Some("contact.routed")
        );
    }

    #[test]
    fn the_event_type_comes_from_the_header_else_the_body_field() {
        let body = json!({"eventType": "contact.routed", "kind": 7});
        assert_eq!(
            event_type(Some(b"contact.ended"), &body, "eventType").as_deref(),
            Some("contact.ended")
        );
        assert_eq!(
            event_type(Some(b" "), &body, "eventType").as_deref(),
            Some("contact.routed")
        );
        assert_eq!(event_type(None, &body, "kind").as_deref(), Some("7"));
        assert_eq!(event_type(None, &body, "missing"), None);
    }

    #[test]
    fn a_studio_form_body_is_normalised_by_the_studio_mapping() {
        let raw = b"ContactID=5012&ANI=%2B15550100&DNIS=8005550199&SkillName=Billing\
                    &AgentID=7001&eventType=contact.routed&timestamp=2026-11-22T09%3A00%3A00Z";
        let inbound = StudioInbound {
            content_type: Some("application/x-www-form-urlencoded"),
            delivery_id: Some(b"5012-1"),
            body: raw,
            ..StudioInbound::default()
        };
        let prepared = prepare(&config(), &inbound, 1_800_000_000_000).unwrap();
        assert_eq!(
            prepared.event,
            json!({
                "deliveryId": "5012-1", "eventType": "contact.routed", "interactionId": "5012",
                "channel": "studio", "occurredAt": "2026-11-22T09:00:00Z",
                "customer": {"identifier": "+15550100", "type": "phone"},
                "context": {"skill": "Billing", "agentId": "7001", "dnis": "8005550199"}
            })
        );
        assert_eq!(prepared.sender, Sender::Studio);
        assert!(prepared.verified.is_none());
        assert_eq!(prepared.messages().unwrap().len(), 1);
        assert_eq!(prepared.messages().unwrap()[0].0, "http://q/events");
    }

    #[test]
    fn a_studio_json_body_with_its_id_and_type_in_fields_is_normalised_alike() {
        let raw = json!({"deliveryId": "5013-1", "eventType": "contact.routed",
                         "contactId": 5013, "ani": "+15550101", "dnis": "8005550199",
                         "skill": "Sales", "agentId": "7002"})
        .to_string();
        let inbound = StudioInbound {
            content_type: Some("application/json"),
            event_type: Some(b"contact.transferred"),
            body: raw.as_bytes(),
            ..StudioInbound::default()
        };
        let event = prepare(&config(), &inbound, 1_800_000_000_000)
            .unwrap()
            .event;
        assert_eq!(event["deliveryId"], "5013-1");
        assert_eq!(event["eventType"], "contact.transferred", "the header wins");
        assert_eq!(event["interactionId"], "5013");
        assert_eq!(event["occurredAt"], Value::Null);
        assert_eq!(
            event["customer"],
            json!({"identifier": "+15550101", "type": "phone"})
        );
        assert_eq!(
            event["context"],
            json!({"skill": "Sales", "agentId": "7002", "dnis": "8005550199"})
        );
    }

    #[test]
    fn studio_ids_stay_apart_from_cxone_ids_downstream() {
        assert_ne!(
            Sender::Studio.key("studio:x"),
            Sender::Cxone.key("studio:x")
        );
        // The ids the queues and signal jobs see are one-to-one across both senders.
        let ids = [
            "x",
            "studio:x",
            "cxone:x",
            "cxone:studio:x",
            "a|b",
            "a%7Cb",
            "%",
        ];
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            for sender in [Sender::Cxone, Sender::Studio] {
                let scoped = sender.scoped(id).into_owned();
                assert!(!scoped.contains('|'), "{scoped}");
                assert!(seen.insert(scoped.clone()), "{id} collides as {scoped}");
            }
        }
        assert_eq!(
            Sender::Cxone.scoped("d-1"),
            "d-1",
            "plain CXone ids are unchanged"
        );
        assert!(Sender::Cxone.key("x").starts_with("delivery#"));
        assert!(Sender::Studio.key("x").starts_with("studio-delivery#"));
        let config = WebhookConfig::parse(
            Some(
                r#"{"routes": [{"name": "all", "targets": [{"queue": "events"},
                     {"signal": "order-update", "mapping": {"customerId": "customer.identifier"}}]}]}"#,
            ),
            "http://q/events",
            "http://q/jobs",
        )
        .unwrap();
        let inbound = StudioInbound {
            content_type: Some("application/json"),
            delivery_id: Some(b"d-1"),
            body: br#"{"contactId":"c-1","ani":"+15550100"}"#,
            ..StudioInbound::default()
        };
        let prepared = prepare(&config, &inbound, 1_800_000_000_000).unwrap();
        let job: crate::jobs::Job =
            serde_json::from_str(&prepared.messages().unwrap()[1].1[0].body).unwrap();
        assert_eq!(job.correlation_id, "studio:d-1:order-update");
        assert_eq!(job.payload["metadata"]["sourceSystem"], "cxone-studio");
        assert_eq!(job.payload["metadata"]["deliveryId"], "d-1");
        assert_eq!(job.payload["data"]["customerId"], "+15550100");
    }
}
