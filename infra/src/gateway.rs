//! The local API gateway: requests on the template's routes become API Gateway HTTP API
//! (payload format 2.0) events, and function results become HTTP responses, as the
//! deployed HTTP API does it. It also serves `GET /health`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::runtime_api::{FunctionHost, Health};
use crate::template::Template;

/// API Gateway's own limit on a request payload.
const MAX_PAYLOAD: usize = 10 * 1024 * 1024;

pub struct Gateway {
    /// `host:port` the gateway listens on; set as `Host`, as API Gateway sets its domain.
    pub authority: String,
    pub template: Template,
    pub hosts: BTreeMap<String, Arc<FunctionHost>>,
}

impl Gateway {
    /// `{"functions": {name: "ready"|"starting"|"init_failed"}, "errors": {name: cause}}`,
    /// and whether every function is ready.
    pub fn health(&self) -> (bool, Value) {
        let mut functions = serde_json::Map::new();
        let mut errors = serde_json::Map::new();
        let mut all_ready = true;
        for (name, host) in &self.hosts {
            let health = host.health();
            all_ready &= health == Health::Ready;
            if let Health::InitFailed(cause) = &health {
                errors.insert(name.clone(), cause.clone().into());
            }
            functions.insert(name.clone(), health.as_str().into());
        }
        let mut body = json!({ "functions": functions });
        if !errors.is_empty() {
            body["errors"] = Value::Object(errors);
        }
        (all_ready, body)
    }
}

pub fn router(gateway: Arc<Gateway>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(gateway)
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text }))).into_response()
}

async fn handle(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    if parts.method == Method::GET && path == "/health" {
        let (ready, body) = gateway.health();
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        return (status, axum::Json(body)).into_response();
    }
    let Some((route, params)) = gateway.template.route(parts.method.as_str(), &path) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let Some(host) = gateway.hosts.get(&route.function) else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let body = match axum::body::to_bytes(body, MAX_PAYLOAD).await {
        Ok(b) => b,
        Err(_) => return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
    };
    // API Gateway sets these itself; callers cannot choose them.
    if let Ok(v) = HeaderValue::from_str(&gateway.authority) {
        parts.headers.insert(header::HOST, v);
    }
    parts
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Ok(v) = HeaderValue::from_str(&peer.ip().to_string()) {
        parts.headers.insert("x-forwarded-for", v);
    }
    let request_id = cxbridge::ids::new_uuid();
    let event = build_event(EventInput {
        route_key: &route.key(),
        method: parts.method.as_str(),
        path: &path,
        query: parts.uri.query().unwrap_or_default(),
        headers: &parts.headers,
        path_parameters: &params,
        body: &body,
        source_ip: &peer.ip().to_string(),
        request_id: &request_id,
    });
    let payload = Bytes::from(event.to_string());
    let mut response = match host.invoke(payload).await {
        Ok(output) => into_response(&output),
        // A function error, a crash and a timeout all reach API Gateway as a failed
        // invocation, which it answers with a 500.
        Err(_) => message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("apigw-requestid", v);
    }
    response
}

pub struct EventInput<'a> {
    pub route_key: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub path_parameters: &'a [(String, String)],
    pub body: &'a [u8],
    pub source_ip: &'a str,
    pub request_id: &'a str,
}

/// Builds the payload-format-2.0 event for one request.
pub fn build_event(input: EventInput<'_>) -> Value {
    let mut headers = serde_json::Map::new();
    let mut cookies = Vec::new();
    for (name, value) in input.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == header::COOKIE {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), value.into());
            }
        }
    }

    let mut query = serde_json::Map::new();
    for (k, v) in form_urlencoded::parse(input.query.as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k.into_owned(), v.into_owned().into());
            }
        }
    }
    let path_parameters: serde_json::Map<String, Value> = input
        .path_parameters
        .iter()
        .map(|(k, v)| {
            let decoded = percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned();
            (k.clone(), decoded.into())
        })
        .collect();

    let content_type = input
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (body, encoded) = match std::str::from_utf8(input.body) {
        Ok(text) if is_textual(content_type) => (text.to_owned(), false),
        _ => (BASE64.encode(input.body), true),
    };

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let host = input
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let mut event = json!({
        "version": "2.0",
        "routeKey": input.route_key,
        "rawPath": input.path,
        "rawQueryString": input.query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or(host),
            "http": {
                "method": input.method,
                "path": input.path,
                "protocol": "HTTP/1.1",
                "sourceIp": input.source_ip,
                "userAgent": input.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default(),
            },
            "requestId": input.request_id,
            "routeKey": input.route_key,
            "stage": "$default",
            "time": httpdate(now),
            "timeEpoch": now,
        },
        "isBase64Encoded": encoded,
    });
    if !input.body.is_empty() {
        event["body"] = body.into();
    }
    if !cookies.is_empty() {
        event["cookies"] = cookies.into();
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !path_parameters.is_empty() {
        event["pathParameters"] = Value::Object(path_parameters);
    }
    event
}

/// API Gateway passes these content types as text; anything else arrives base64-encoded.
fn is_textual(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media.starts_with("text/")
        || media.ends_with("+json")
        || media.ends_with("+xml")
        || matches!(
            media.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-www-form-urlencoded"
        )
}

/// `22/Nov/2026:09:00:00 +0000`, the request-time format of API Gateway.
fn httpdate(epoch_ms: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = epoch_ms / 1000;
    let (year, month, day) = cxbridge::clock::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Maps a function result to HTTP as payload format 2.0 defines: a `statusCode` object is
/// a full response; any other JSON is a 200 with that JSON as the body.
pub fn into_response(output: &[u8]) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(output) else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let Some(status) = value.get("statusCode").and_then(Value::as_u64) else {
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(output.to_vec()))
            .unwrap_or_else(|_| {
                message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            });
    };
    let Some(status) = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
    else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let body = match value.get("body") {
        Some(Value::String(text)) if value.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            match BASE64.decode(text) {
                Ok(bytes) => bytes,
                Err(_) => {
                    return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
                }
            }
        }
        Some(Value::String(text)) => text.clone().into_bytes(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => other.to_string().into_bytes(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let out = response.headers_mut();
    let mut add = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
            out.append(n, v);
        }
    };
    if let Some(headers) = value.get("headers").and_then(Value::as_object) {
        for (k, v) in headers {
            if let Some(v) = v.as_str() {
                add(k, v);
            }
        }
    }
    for cookie in value
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(c) = cookie.as_str() {
            add("set-cookie", c);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_for(headers: &[(&str, &str)], query: &str, body: &[u8]) -> Value {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::try_from(*k).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        build_event(EventInput {
            route_key: "POST /signals/{name}",
            method: "POST",
            path: "/signals/order%20update",
            query,
            headers: &map,
            path_parameters: &[("name".into(), "order%20update".into())],
            body,
            source_ip: "127.0.0.1",
            request_id: "r-1",
        })
    }

    #[test]
    fn json_bodies_are_passed_as_text() {
        let e = event_for(&[("content-type", "application/json")], "", br#"{"a":1}"#);
        assert_eq!(e["body"], r#"{"a":1}"#);
        assert_eq!(e["isBase64Encoded"], false);
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["requestContext"]["http"]["method"], "POST");
    }

    #[test]
    fn binary_bodies_are_base64_encoded() {
        let e = event_for(
            &[("content-type", "application/octet-stream")],
            "",
            &[0, 159, 146, 150],
        );
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(
            BASE64.decode(e["body"].as_str().unwrap()).unwrap(),
            [0, 159, 146, 150]
        );
    }

    #[test]
    fn repeated_headers_and_query_values_are_joined_with_commas() {
        let e = event_for(
            &[("x-a", "1"), ("x-a", "2"), ("cookie", "s=1; t=2")],
            "q=a&q=b&sp=x%20y",
            b"",
        );
        assert_eq!(e["headers"]["x-a"], "1,2");
        assert_eq!(e["cookies"], json!(["s=1", "t=2"]));
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["queryStringParameters"]["q"], "a,b");
        assert_eq!(e["queryStringParameters"]["sp"], "x y");
        assert_eq!(e["rawQueryString"], "q=a&q=b&sp=x%20y");
        assert_eq!(e["pathParameters"]["name"], "order update");
        assert!(e.get("body").is_none());
    }

    #[test]
    fn request_times_use_the_gateway_format() {
        assert_eq!(httpdate(1_795_339_200_000), "22/Nov/2026:09:20:00 +0000");
        assert_eq!(httpdate(0), "01/Jan/1970:00:00:00 +0000");
    }

    #[tokio::test]
    async fn a_full_response_keeps_status_headers_cookies_and_binary_body() {
        let output = json!({
            "statusCode": 418,
            "headers": {"x-one": "1"},
            "multiValueHeaders": {"x-ignored": ["payload v1 only"]},
            "cookies": ["c=1"],
            "body": BASE64.encode([1, 2, 255]),
            "isBase64Encoded": true
        });
        let response = into_response(output.to_string().as_bytes());
        assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(response.headers()["x-one"], "1");
        assert!(response.headers().get("x-ignored").is_none());
        assert_eq!(response.headers()["set-cookie"], "c=1");
        let body = axum::body::to_bytes(response.into_body(), 100)
            .await
            .unwrap();
        assert_eq!(body.as_ref(), [1, 2, 255]);
    }

    #[tokio::test]
    async fn plain_json_output_becomes_a_200_and_garbage_a_500() {
        let ok = into_response(br#"{"hello":"world"}"#);
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            into_response(b"not json").status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
