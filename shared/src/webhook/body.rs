//! Webhook bodies: JSON interaction events and XML (CXone Mpower) events.

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Value};

use crate::error::{ApiError, ErrorCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Xml,
}

/// The body's format from its `Content-Type`; anything else is 415.
pub fn format_of(content_type: Option<&str>) -> Result<BodyFormat, ApiError> {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match media.as_str() {
        "application/json" => Ok(BodyFormat::Json),
        "text/xml" | "application/xml" => Ok(BodyFormat::Xml),
        "" => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Content-Type is missing; send application/json, text/xml or application/xml",
        )),
        other => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Content-Type {other} is not supported; send application/json, text/xml or application/xml"
            ),
        )),
    }
}

/// Parses the body into a JSON value (XML is mapped to one, see [`xml_to_value`]).
pub fn parse(format: BodyFormat, body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(ErrorCode::MalformedBody, "the body is empty"));
    }
    match format {
        BodyFormat::Json => match serde_json::from_slice::<Value>(body) {
            Ok(value @ Value::Object(_)) => Ok(value),
            Ok(_) => Err(ApiError::new(
                ErrorCode::MalformedBody,
                "the JSON body must be an object",
            )),
            Err(e) => Err(ApiError::new(
                ErrorCode::MalformedBody,
                format!("the body is not valid JSON: {e}"),
            )),
        },
        BodyFormat::Xml => xml_to_value(body).map_err(|e| {
            ApiError::new(
                ErrorCode::MalformedBody,
                format!("the body is not valid XML: {e}"),
            )
        }),
    }
}

struct Element {
    name: String,
    fields: Map<String, Value>,
    text: String,
}

impl Element {
    fn open(start: &BytesStart<'_>) -> Result<Self, String> {
        let name = start.local_name().as_ref().to_owned();
        let mut fields = Map::new();
        for attr in start.attributes() {
            let attr = attr.map_err(|e| e.to_string())?;
            let key = format!("@{}", attr.key.local_name().as_ref());
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| e.to_string())?
                .into_owned();
            fields.insert(key, Value::String(value));
        }
        Ok(Self {
            name,
            fields,
            text: String::new(),
        })
    }

    fn close(self) -> Value {
        let text = self.text.trim();
        match (self.fields.is_empty(), text.is_empty()) {
            (true, true) => Value::Null,
            (true, false) => Value::String(text.to_owned()),
            (false, empty) => {
                let mut fields = self.fields;
                if !empty {
                    fields.insert("#text".into(), Value::String(text.to_owned()));
                }
                Value::Object(fields)
            }
        }
    }
}

fn attach(parent: &mut Map<String, Value>, name: String, value: Value) {
    match parent.get_mut(&name) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            parent.insert(name, value);
        }
    }
}

/// Maps an XML document to JSON: the root element becomes `{name: …}`, child elements
/// become fields (repeated ones an array), attributes `@name`, mixed text `#text`, and an
/// element with only text its string. No DTD or external entity is ever processed.
/// Deepest XML nesting accepted: deeper documents are refused before they can exhaust the
/// stack of anything that walks them.
pub const MAX_XML_DEPTH: usize = 64;

pub fn xml_to_value(body: &[u8]) -> Result<Value, String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Value> = None;
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("{e} at byte {}", reader.buffer_position()))?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err("more than one root element".into());
                }
                if stack.len() >= MAX_XML_DEPTH {
                    return Err(format!(
                        "elements are nested deeper than {MAX_XML_DEPTH} levels"
                    ));
                }
                stack.push(Element::open(&start)?);
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err("more than one root element".into());
                }
                let element = Element::open(&start)?;
                let name = element.name.clone();
                let value = element.close();
                match stack.last_mut() {
                    Some(parent) => attach(&mut parent.fields, name, value),
                    None => root = Some(Value::Object(Map::from_iter([(name, value)]))),
                }
            }
            Event::End(_) => {
                let element = stack.pop().ok_or("an end tag without a start tag")?;
                let name = element.name.clone();
                let value = element.close();
                match stack.last_mut() {
                    Some(parent) => attach(&mut parent.fields, name, value),
                    None => root = Some(Value::Object(Map::from_iter([(name, value)]))),
                }
            }
            Event::Text(text) => {
                let decoded = text.xml10_content();
                match stack.last_mut() {
                    Some(element) => element.text.push_str(&decoded),
                    None if decoded.trim().is_empty() => {}
                    None => return Err("text outside the root element".into()),
                }
            }
            Event::GeneralRef(reference) => {
                let name = reference.xml10_content();
                let resolved = match name.as_ref() {
                    "lt" => "<".to_owned(),
                    "gt" => ">".to_owned(),
                    "amp" => "&".to_owned(),
                    "apos" => "'".to_owned(),
                    "quot" => "\"".to_owned(),
                    other => match reference.resolve_char_ref().map_err(|e| e.to_string())? {
                        Some(c) => c.to_string(),
                        None => return Err(format!("unknown entity &{other};")),
                    },
                };
                if let Some(element) = stack.last_mut() {
                    element.text.push_str(&resolved);
                }
            }
            Event::CData(data) => {
                if let Some(element) = stack.last_mut() {
                    element.text.push_str(&data.xml10_content());
                }
            }
            Event::DocType(_) => return Err("a DOCTYPE is not allowed".into()),
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    root.ok_or_else(|| "no root element".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types_map_to_formats_and_others_are_415() {
        assert_eq!(
            format_of(Some("application/json; charset=utf-8")).unwrap(),
            BodyFormat::Json
        );
        assert_eq!(format_of(Some("Text/XML")).unwrap(), BodyFormat::Xml);
        assert_eq!(format_of(Some("application/xml")).unwrap(), BodyFormat::Xml);
        for bad in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let err = format_of(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::UnsupportedMediaType, "{bad:?}");
        }
    }

    #[test]
    fn malformed_json_names_the_parser_problem() {
        let err = parse(BodyFormat::Json, b"{\"a\":").unwrap_err();
        assert_eq!(err.code, ErrorCode::MalformedBody);
        assert!(
            err.message.starts_with("the body is not valid JSON: "),
            "{}",
            err.message
        );
        assert_eq!(
            parse(BodyFormat::Json, b"[1]").unwrap_err().code,
            ErrorCode::MalformedBody
        );
        assert_eq!(
            parse(BodyFormat::Json, b"  ").unwrap_err().message,
            "the body is empty"
        );
    }

    #[test]
    fn xml_maps_to_json() {
        let xml = br#"<?xml version="1.0"?>
            <Event type="contact">
              <ContactId>42</ContactId>
              <Skill id="7">Sales &amp; Service</Skill>
              <Tag>a</Tag><Tag>b</Tag>
              <Empty/>
              <Note><![CDATA[<raw>]]></Note>
            </Event>"#;
        assert_eq!(
            xml_to_value(xml).unwrap(),
            json!({"Event": {
                "@type": "contact",
                "ContactId": "42",
                "Skill": {"@id": "7", "#text": "Sales & Service"},
                "Tag": ["a", "b"],
                "Empty": null,
                "Note": "<raw>"
            }})
        );
    }

    #[test]
    fn malformed_xml_is_refused() {
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_XML_DEPTH + 1),
            "</a>".repeat(MAX_XML_DEPTH + 1)
        );
        for bad in [
            deep.as_bytes(),
            &b"<a><b></a>"[..],
            b"<a>",
            b"<a></a><b></b>",
            b"text",
            b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            b"<a>&unknown;</a>",
        ] {
            let err = parse(BodyFormat::Xml, bad).unwrap_err();
            assert_eq!(
                err.code,
                ErrorCode::MalformedBody,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let ok = format!(
            "{}{}",
            "<a>".repeat(MAX_XML_DEPTH),
            "</a>".repeat(MAX_XML_DEPTH)
        );
        assert!(parse(BodyFormat::Xml, ok.as_bytes()).is_ok());
    }
}
