//! The body of an intent result, in each form Cognigy's HTTP Request node sends: JSON,
//! a URL-encoded form (the node's default for POST), multipart form data (its "Form-Data"
//! payload type, one part per key), or JSON under `text/plain` (its "Text" type).

use serde_json::{Map, Value};

use crate::error::{ApiError, ErrorCode};
use crate::webhook::body::{self, BodyFormat};
use crate::webhook::studio::parse_form;

const ACCEPTED: &str =
    "send application/json, application/x-www-form-urlencoded or multipart/form-data";

fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::MalformedBody, message)
}

fn opens_object(raw: &[u8]) -> bool {
    raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// A field that carries a JSON object (Cognigy's `input` or `context` in a form) is read
/// as one; every other field stays a string.
fn with_objects(fields: Map<String, Value>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| {
                let value = match &v {
                    Value::String(s) if s.trim_start().starts_with('{') => {
                        serde_json::from_str::<Value>(s)
                            .ok()
                            .filter(Value::is_object)
                            .unwrap_or(v)
                    }
                    _ => v,
                };
                (k, value)
            })
            .collect(),
    )
}

/// Parses a body into a JSON object.
pub fn read(content_type: Option<&str>, raw: &[u8]) -> Result<Value, ApiError> {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match media.as_str() {
        "application/json" => body::parse(BodyFormat::Json, raw),
        m if m.starts_with("application/") && m.ends_with("+json") => {
            body::parse(BodyFormat::Json, raw)
        }
        // A JSON object under a form or text type: a node whose content type was left at
        // its default. A form encoder would have written `%7B`.
        "application/x-www-form-urlencoded" | "text/plain" if opens_object(raw) => {
            body::parse(BodyFormat::Json, raw)
        }
        "application/x-www-form-urlencoded" => parse_form(raw).map(with_objects),
        "multipart/form-data" => multipart(content_type.unwrap_or_default(), raw).map(with_objects),
        "" => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type is missing; {ACCEPTED}"),
        )),
        other => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type {other} is not supported; {ACCEPTED}"),
        )),
    }
}

/// The value of a `;`-separated parameter such as `boundary=…` or `name="…"`.
fn parameter<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"'))
    })
}

fn line_break(text: &str) -> Option<&str> {
    text.strip_prefix("\r\n")
        .or_else(|| text.strip_prefix('\n'))
}

/// `multipart/form-data` (RFC 7578): each part's `name` and its text. The first part of a
/// name wins, as in a form. A delimiter counts only at the start of a line (RFC 2046), so
/// a value may hold the boundary text elsewhere.
fn multipart(content_type: &str, raw: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let boundary = parameter(content_type, "boundary")
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(|| malformed("multipart/form-data needs a boundary of 1 to 70 characters"))?;
    let text = std::str::from_utf8(raw).map_err(|_| malformed("the form data is not UTF-8"))?;
    let delimiter = format!("--{boundary}");
    let mut starts = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find(&delimiter) {
        let at = from + found;
        if at == 0 || text[..at].ends_with('\n') {
            starts.push(at);
        }
        from = at + delimiter.len();
    }
    let closed = starts
        .last()
        .is_some_and(|last| text[last + delimiter.len()..].starts_with("--"));
    if !closed {
        return Err(malformed(
            "the form data does not end with its closing boundary",
        ));
    }
    let mut fields = Map::new();
    for pair in starts.windows(2) {
        let (at, next) = (pair[0], pair[1]);
        let rest = &text[at + delimiter.len()..next];
        if rest.starts_with("--") {
            break;
        }
        // Transport padding, then the line break that ends the delimiter line.
        let part = line_break(rest.trim_start_matches([' ', '\t']))
            .ok_or_else(|| malformed("a form-data boundary is not followed by a line break"))?;
        // The line break before the next delimiter belongs to it.
        let part = part.strip_suffix('\n').unwrap_or(part);
        let part = part.strip_suffix('\r').unwrap_or(part);
        let (head, value) = part
            .split_once("\r\n\r\n")
            .or_else(|| part.split_once("\n\n"))
            .ok_or_else(|| malformed("a form-data part has no headers"))?;
        let name = head
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case("content-disposition")
                    .then(|| parameter(value, "name"))?
            })
            .ok_or_else(|| malformed("a form-data part has no name"))?;
        if !name.is_empty() && !fields.contains_key(name) {
            fields.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTIPART: &str = "multipart/form-data; boundary=\"XyZ\"";

    #[test]
    fn multipart_parts_become_fields_and_an_object_part_is_json() {
        let raw = "preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"intent\"\r\n\r\ncancel\r\n--XyZ\r\ncontent-disposition: form-data; name=confidence\r\n\r\n0.9\r\n--XyZ\r\nContent-Disposition: form-data; name=\"context\"\r\nContent-Type: application/json\r\n\r\n{\"data\":{\"contactId\":\"7\"}}\r\n--XyZ--\r\n";
        let v = read(Some(MULTIPART), raw.as_bytes()).unwrap();
        assert_eq!(v["intent"], "cancel");
        assert_eq!(v["confidence"], "0.9");
        assert_eq!(v["context"]["data"]["contactId"], "7");
    }

    #[test]
    fn the_boundary_inside_a_value_and_padding_after_a_boundary_are_allowed() {
        let raw = "--b  \r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nsee --b here\nand --b\r\n--b\r\nContent-Disposition: form-data; name=\"x\"\n\n1\n--b--";
        let v = read(Some("multipart/form-data; boundary=b"), raw.as_bytes()).unwrap();
        assert_eq!(v["text"], "see --b here\nand --b");
        assert_eq!(v["x"], "1");
    }

    #[test]
    fn an_empty_multipart_value_is_an_empty_string() {
        let raw = "--b\r\nContent-Disposition: form-data; name=\"intent\"\r\n\r\n\r\n--b--";
        let v = read(Some("multipart/form-data; boundary=b"), raw.as_bytes()).unwrap();
        assert_eq!(v["intent"], "");
    }

    #[test]
    fn broken_multipart_is_malformed() {
        for (ct, raw) in [
            ("multipart/form-data", "--b\r\n\r\nx\r\n--b--"),
            ("multipart/form-data; boundary=b", "no parts here"),
            (
                "multipart/form-data; boundary=b",
                "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx",
            ),
            (
                "multipart/form-data; boundary=b",
                "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--",
            ),
        ] {
            let err = read(Some(ct), raw.as_bytes()).unwrap_err();
            assert_eq!(err.code, ErrorCode::MalformedBody, "{raw:?}");
        }
    }

    #[test]
    fn forms_json_and_types() {
        let v = read(
            Some("application/x-www-form-urlencoded"),
            b"intent=billing&input=%7B%22intent%22%3Anull%7D",
        )
        .unwrap();
        assert_eq!(v["intent"], "billing");
        assert!(v["input"].is_object());
        let v = read(Some("text/plain; charset=utf-8"), br#" {"intent":"x"}"#).unwrap();
        assert_eq!(v["intent"], "x");
        assert_eq!(
            read(Some("text/plain"), b"billing").unwrap_err().code,
            ErrorCode::UnsupportedMediaType
        );
        assert_eq!(
            read(None, b"{}").unwrap_err().code,
            ErrorCode::UnsupportedMediaType
        );
        assert_eq!(
            read(Some("application/json"), b"[1]").unwrap_err().code,
            ErrorCode::MalformedBody
        );
    }
}
