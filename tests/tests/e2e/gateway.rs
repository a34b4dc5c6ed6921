use cxbridge_e2e::{options, start};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("response has no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_reaches_the_binary_intact_and_its_response_comes_back_intact() {
    let stack = start(options()).await;
    let body: Vec<u8> = (0..=255u8).rev().chain(0..=255u8).collect();

    let response = reqwest::Client::new()
        .post(format!(
            "{}/signals/order-update?b=2&a=1&a=3&sp=x%20y",
            stack.gateway_url
        ))
        .header("content-type", "application/octet-stream")
        .header("x-cxbridge-probe", "echo")
        .header("x-cxbridge-probe-status", "207")
        .header("x-custom", "kept")
        .header("cookie", "session=s1; theme=dark")
        .header("x-correlation-id", "e2e-transport-1")
        .body(body.clone())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::MULTI_STATUS);
    assert_eq!(header(&response, "x-correlation-id"), "e2e-transport-1");
    assert_eq!(
        header(&response, "content-type"),
        "application/octet-stream"
    );
    assert_eq!(header(&response, "x-probe-method"), "POST");
    assert_eq!(header(&response, "x-probe-path"), "/signals/order-update");
    assert_eq!(header(&response, "x-probe-query"), "b=2&a=1&a=3&sp=x%20y");
    let params: Value = serde_json::from_str(header(&response, "x-probe-path-parameters")).unwrap();
    assert_eq!(params, json!({"name": "order-update"}));
    let seen: Value = serde_json::from_str(header(&response, "x-probe-headers")).unwrap();
    assert_eq!(seen["x-custom"], "kept");
    assert_eq!(
        seen["cookie"], "session=s1; theme=dark",
        "cookies travel in the event's cookies list"
    );
    assert_eq!(seen["content-type"], "application/octet-stream");
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        body.as_slice(),
        "binary body round trip"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn get_routes_and_path_parameters_reach_the_binary() {
    let stack = start(options()).await;
    let response = reqwest::Client::new()
        .get(format!("{}/executions/corr-42", stack.gateway_url))
        .header("x-cxbridge-probe", "echo")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-probe-method"), "GET");
    let params: Value = serde_json::from_str(header(&response, "x-probe-path-parameters")).unwrap();
    assert_eq!(params, json!({"correlationId": "corr-42"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_refuses_an_unauthenticated_request_with_the_stable_error_body() {
    let stack = start(options()).await;
    let client = reqwest::Client::new();
    let expected = |key: &str| match key {
        "POST /webhooks/cxone" | "POST /callbacks/studio" => "missing_signature_header",
        _ => "unauthorized",
    };
    // Every route of the template, so that a route without a handler shows here.
    let routes: Vec<(String, String, &str)> = cxbridge_local::template::Template::load(
        &cxbridge_e2e::project_root().join("template.yaml"),
    )
    .unwrap()
    .routes
    .iter()
    .map(|r| {
        (
            r.method.clone(),
            r.path
                .replace("{name}", "order-update")
                .replace("{correlationId}", "abc"),
            expected(&r.key()),
        )
    })
    .collect();
    assert_eq!(routes.len(), 6);
    for (method, path, code) in routes {
        let response = client
            .request(
                method.parse().unwrap(),
                format!("{}{path}", stack.gateway_url),
            )
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            response.headers().contains_key("x-correlation-id"),
            "{path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{path}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_and_methods_get_the_gateway_not_found() {
    let stack = start(options()).await;
    let client = reqwest::Client::new();
    for (method, path) in [
        ("GET", "/webhooks/cxone"),
        ("POST", "/nowhere"),
        ("POST", "/signals/a/b"),
    ] {
        let response = client
            .request(
                method.parse().unwrap(),
                format!("{}{path}", stack.gateway_url),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"message": "Not Found"})
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_256_kib_is_refused_by_the_function_with_413() {
    let stack = start(options()).await;
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/cxone", stack.gateway_url))
        .header("content-type", "application/json")
        .body(vec![b' '; 256 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unhandled_function_error_becomes_a_500_and_is_logged() {
    let stack = start(options()).await;
    let response = reqwest::Client::new()
        .post(format!("{}/callbacks/studio", stack.gateway_url))
        .header("x-cxbridge-probe", "error")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"message": "Internal Server Error"})
    );
    let logs = stack.log.lines().join("\n");
    assert!(
        logs.contains("callback-verifier#1 invocation")
            && logs.contains(cxbridge::probe::UNHANDLED_ERROR),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invocation_past_its_timeout_fails_with_500_and_a_fresh_instance_serves_the_next() {
    let stack = start(options()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/webhooks/cxone", stack.gateway_url);
    // webhook-receiver's timeout in the template is 5 s.
    let slow = client
        .post(&url)
        .header("x-cxbridge-probe", "echo")
        .header("x-cxbridge-probe-delay-ms", "8000")
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        slow.json::<Value>().await.unwrap(),
        json!({"message": "Internal Server Error"})
    );
    assert!(
        stack
            .log
            .lines()
            .iter()
            .any(|l| l.contains("webhook-receiver#1 timed out"))
    );

    let next = client
        .post(&url)
        .header("x-cxbridge-probe", "echo")
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_request_logs_one_json_line_and_one_metrics_record() {
    let stack = start(options()).await;
    let correlation = cxbridge_e2e::unique("obs-");
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/cxone", stack.gateway_url))
        .header("content-type", "application/json")
        .header("x-correlation-id", &correlation)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let lines: Vec<Value> = cxbridge_e2e::eventually(
        "the request's log lines",
        std::time::Duration::from_secs(10),
        || async {
            let lines: Vec<Value> = stack
                .log
                .lines()
                .iter()
                .filter(|l| l.starts_with("webhook-receiver#") && l.contains(&correlation))
                .filter_map(|l| serde_json::from_str(l.split_once(" | ")?.1).ok())
                .collect();
            (lines.len() >= 2).then_some(lines)
        },
    )
    .await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let log = lines
        .iter()
        .find(|l| l["message"] == "request")
        .expect("a JSON request line");
    assert_eq!(log["route"], "POST /webhooks/cxone");
    assert_eq!(log["status"], 401);
    assert_eq!(log["code"], "missing_signature_header");
    assert!(
        log["latency_ms"].as_f64().is_some()
            && log["request_id"].as_str().is_some_and(|r| !r.is_empty())
    );
    let emf = lines
        .iter()
        .find(|l| l.get("_aws").is_some())
        .expect("an EMF record");
    assert_eq!(emf["_aws"]["CloudWatchMetrics"][0]["Namespace"], "cxbridge");
    assert_eq!(emf["Route"], "POST /webhooks/cxone");
    assert_eq!(emf["Outcome"], "missing_signature_header");
    assert_eq!(emf["Requests"], 1);
}
