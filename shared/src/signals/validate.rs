//! Studio's strict typing, applied before anything is sent: every field error at once.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Map, Value};

use super::definitions::{NestedPolicy, SignalDefinition, VarType};

/// One field's problem, as the 422 body lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

fn problem(field: impl Into<String>, problem: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// RFC 3339 date-time: `2026-11-22T09:00:00Z`, optional fraction, `Z` or `±hh:mm`.
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let num =
        |r: std::ops::Range<usize>| s.get(r).and_then(|v| v.parse::<u32>().ok()).unwrap_or(99);
    if !(1..=12).contains(&num(5..7))
        || !(1..=31).contains(&num(8..10))
        || num(11..13) > 23
        || num(14..16) > 59
        || num(17..19) > 60
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits_len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits_len == 0 {
            return false;
        }
        rest = &fraction[digits_len..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

fn type_matches(kind: VarType, value: &Value) -> bool {
    match kind {
        VarType::String => value.is_string(),
        VarType::Number => value.is_number(),
        VarType::Boolean => value.is_boolean(),
        VarType::Datetime => value.as_str().is_some_and(is_rfc3339),
    }
}

pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn flatten(prefix: &str, object: &Map<String, Value>, out: &mut Vec<(String, Value)>) {
    for (key, value) in object {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) => flatten(&name, inner, out),
            other => out.push((name, other.clone())),
        }
    }
}

/// Checks `data` against `def` and returns the variables in declaration order.
pub fn validate(
    def: &SignalDefinition,
    data: &Value,
) -> Result<Vec<(String, Value)>, Vec<FieldError>> {
    let Some(object) = data.as_object() else {
        return Err(vec![problem(
            "data",
            format!("must be an object, not {}", describe(data)),
        )]);
    };
    let mut errors = Vec::new();
    let mut fields: Vec<(String, Value)> = Vec::new();
    for (key, value) in object {
        match (value, def.nested) {
            (Value::Object(inner), NestedPolicy::Flatten) => flatten(key, inner, &mut fields),
            (Value::Object(_) | Value::Array(_), NestedPolicy::Base64) => {
                fields.push((
                    key.clone(),
                    Value::String(STANDARD.encode(value.to_string())),
                ));
            }
            (Value::Object(_), NestedPolicy::Reject) => errors.push(problem(
                key,
                "nested objects are not allowed for this signal",
            )),
            _ => fields.push((key.clone(), value.clone())),
        }
    }
    for (name, value) in &fields {
        match def.variables.iter().find(|v| &v.name == name) {
            None => errors.push(problem(name, "is not a declared variable")),
            Some(v) if !type_matches(v.kind, value) => errors.push(problem(
                name,
                match v.kind {
                    VarType::Datetime if value.is_string() => {
                        "must be an RFC 3339 datetime".to_owned()
                    }
                    kind => format!("must be a {}, not {}", kind.as_str(), describe(value)),
                },
            )),
            Some(_) => {}
        }
    }
    for v in &def.variables {
        if !fields.iter().any(|(name, _)| name == &v.name) {
            errors.push(problem(&v.name, "is missing"));
        }
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        return Err(errors);
    }
    Ok(def
        .variables
        .iter()
        .filter_map(|v| fields.iter().find(|(n, _)| n == &v.name).cloned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cxone::Profile;
    use crate::signals::definitions::{DEFAULT_SIGNALS, parse};
    use serde_json::json;

    fn order_update() -> SignalDefinition {
        parse(DEFAULT_SIGNALS, Profile::Documented)
            .unwrap()
            .remove("order-update")
            .unwrap()
    }

    fn good() -> Value {
        json!({"customerId": "C1", "orderId": "O1", "updateType": "shipped", "priority": "high",
               "timestamp": "2026-11-22T09:00:00Z", "address": {"city": "Leeds", "zip": "LS1"}})
    }

    #[test]
    fn a_valid_payload_is_flattened_in_declaration_order() {
        let out = validate(&order_update(), &good()).unwrap();
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "customerId",
                "orderId",
                "updateType",
                "priority",
                "timestamp",
                "address.city",
                "address.zip"
            ]
        );
        assert_eq!(out[5].1, "Leeds");
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let mut bad = good();
        bad["priority"] = json!(1);
        bad["timestamp"] = json!("22/11/2026");
        bad["extra"] = json!("x");
        bad["address"] = json!({"city": "Leeds", "street": "Main"});
        bad.as_object_mut().unwrap().remove("orderId");
        let errors = validate(&order_update(), &bad).unwrap_err();
        assert_eq!(
            errors,
            vec![
                problem("address.street", "is not a declared variable"),
                problem("address.zip", "is missing"),
                problem("extra", "is not a declared variable"),
                problem("orderId", "is missing"),
                problem("priority", "must be a string, not a number"),
                problem("timestamp", "must be an RFC 3339 datetime"),
            ]
        );
    }

    #[test]
    fn the_base64_and_reject_policies_treat_nested_objects_as_declared() {
        let base64 = parse(
            r#"{"s": {"nested": "base64", "variables": [{"name": "order", "type": "string"}]}}"#,
            Profile::Documented,
        )
        .unwrap()
        .remove("s")
        .unwrap();
        let out = validate(&base64, &json!({"order": {"id": 7}})).unwrap();
        assert_eq!(out[0].1, json!(STANDARD.encode(r#"{"id":7}"#)));

        let reject = parse(
            r#"{"s": {"nested": "reject", "variables": [{"name": "order", "type": "string"}]}}"#,
            Profile::Documented,
        )
        .unwrap()
        .remove("s")
        .unwrap();
        let errors = validate(&reject, &json!({"order": {"id": 7}})).unwrap_err();
        assert_eq!(
            errors[0].problem,
            "nested objects are not allowed for this signal"
        );
    }

    #[test]
    fn datetimes_are_rfc_3339() {
        for ok in [
            "2026-11-22T09:00:00Z",
            "2026-11-22t09:00:00.123+05:30",
            "2026-02-28T23:59:60-00:00",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "2026-11-22",
            "2026-13-01T00:00:00Z",
            "2026-11-22T09:00:00",
            "2026-11-22T09:00:00.Z",
            "2026-11-22T25:00:00Z",
            "ünïcödé-strïng-that-is-long",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }
}
