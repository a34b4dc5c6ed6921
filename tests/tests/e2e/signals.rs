//! Studio signals end to end: signal-dispatcher, the simulator, callback-verifier and the
//! drainer, through the local stack.

use std::time::Duration;

use cxbridge_e2e::{TestStack, eventually, options, start, unique};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// name, API key, path, body, expected status, expected code.
type Case<'a> = (
    &'a str,
    Option<&'a str>,
    &'a str,
    Vec<u8>,
    StatusCode,
    &'a str,
);

fn order(customer: &str) -> Value {
    json!({
        "data": {"customerId": customer, "orderId": "O-77", "updateType": "shipped", "priority": "high",
                 "timestamp": "2026-11-22T09:00:00Z", "address": {"city": "Leeds", "zip": "LS1 4AP"}},
        "metadata": {"sourceSystem": "shop", "contactId": "contact-42"}
    })
}

/// A stack whose webhook configuration routes chat events to the `order-update` signal.
fn routed_to_order_update() -> cxbridge_local::StackOptions {
    let routes = json!({"routes": [{"name": "chat-to-studio", "priority": 1,
        "when": [{"field": "channel", "equals": "chat"}],
        "targets": [{"signal": "order-update", "mapping": {
            "customerId": "customer.identifier", "orderId": "interactionId", "updateType": "eventType",
            "priority": "context.queue", "timestamp": "occurredAt",
            "address.city": "context.skill", "address.zip": "channel"}}]}]});
    cxbridge_e2e::with_webhook_config(options(), &routes)
}

async fn post_signal(stack: &TestStack, key: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/signals/order-update", stack.gateway_url))
        .header("x-api-key", &stack.resources.secrets.api_key)
        .json(body);
    if let Some(k) = key {
        request = request.header("idempotency-key", k);
    }
    let response = request.send().await.unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// The signals that reached CXone, on either profile.
async fn signals_sent(stack: &TestStack) -> Vec<Value> {
    stack
        .requests(|path| path.starts_with("/api/v2/signals/") || path.ends_with("/signal"))
        .await
        .into_iter()
        .filter(|e| e["method"] == "POST")
        .collect()
}

async fn execution(stack: &TestStack, id: &str) -> (StatusCode, Value) {
    stack.execution(id).await
}

fn signed_callback(secret: &str, body: &Value, ts: i64) -> reqwest::RequestBuilder {
    let text = body.to_string();
    let signature = cxbridge::webhook::signature::sign(secret.as_bytes(), ts, text.as_bytes());
    reqwest::Client::new()
        .post("http://placeholder")
        .header("content-type", "application/json")
        .header("x-callback-timestamp", ts.to_string())
        .header("x-callback-signature-256", signature)
        .body(text)
}

async fn send(stack: &TestStack, builder: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let mut request = builder.build().unwrap();
    *request.url_mut() = format!("{}/callbacks/studio", stack.gateway_url)
        .parse()
        .unwrap();
    let response = reqwest::Client::new().execute(request).await.unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dispatch_reaches_cxone_flattened_and_its_callback_completes_the_execution() {
    let stack = start(options()).await;
    let key = unique("order-");
    let (status, body) = post_signal(&stack, Some(&key), &order("C-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "dispatched");
    assert_eq!(body["correlationId"], key.as_str());
    let execution_id = body["signalExecutionId"].as_str().unwrap().to_owned();

    let sent = signals_sent(&stack).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["path"], "/api/v2/signals/order-update");
    assert_eq!(sent[0]["headers"]["idempotency-key"], key.as_str());
    let payload: Value = serde_json::from_str(sent[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(payload["data"]["address.city"], "Leeds");
    assert_eq!(payload["data"]["address.zip"], "LS1 4AP");
    assert!(payload["data"].get("address").is_none(), "flattened");
    assert_eq!(payload["metadata"]["correlationId"], key.as_str());

    let done = stack.wait_for_execution(&key, "completed").await;
    assert_eq!(done["outputs"], json!({"result": "ok"}));
    assert_eq!(done["signalExecutionId"], execution_id.as_str());
    assert_eq!(done["signal"], "order-update");
    assert_eq!(done["attempts"], 1);
}

/// An order-update request whose body is `order("C-1")` changed by `edit`.
fn order_with(edit: &dyn Fn(&mut Value)) -> Value {
    let mut body = order("C-1");
    edit(&mut body);
    body
}

/// Sends each case and checks its status and code, and that nothing reached CXone.
async fn each_refused(stack: &TestStack, cases: Vec<Case<'_>>) {
    let client = reqwest::Client::new();
    for (name, api_key, path, body, status, code) in cases {
        let url = format!("{}{path}", stack.gateway_url);
        let mut request = if path.starts_with("/executions") {
            client.get(url)
        } else {
            client.post(url).body(body)
        };
        request = request.header("content-type", "application/json");
        if let Some(k) = api_key {
            request = request.header("x-api-key", k);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        assert!(
            signals_sent(stack).await.is_empty(),
            "{name}: something reached CXone"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_requests_are_refused_with_their_code_and_nothing_reaches_cxone() {
    let stack = start(options()).await;
    let key = stack.resources.secrets.api_key.clone();
    let cases: Vec<Case<'_>> = vec![
        (
            "no API key",
            None,
            "/signals/order-update",
            order("x").to_string().into(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "wrong API key",
            Some("nope"),
            "/signals/order-update",
            order("x").to_string().into(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "unknown signal",
            Some(&key),
            "/signals/no-such-signal",
            order("x").to_string().into(),
            StatusCode::NOT_FOUND,
            "signal_not_found",
        ),
        (
            "malformed JSON",
            Some(&key),
            "/signals/order-update",
            b"{\"data\": ".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            "body not an object",
            Some(&key),
            "/signals/order-update",
            b"[1]".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            "no data",
            Some(&key),
            "/signals/order-update",
            json!({"metadata": {}}).to_string().into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
        ),
        (
            "data not an object",
            Some(&key),
            "/signals/order-update",
            json!({"data": "x"}).to_string().into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
        ),
        (
            "execution without API key",
            None,
            "/executions/x",
            Vec::new(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "unknown execution",
            Some(&key),
            "/executions/never-seen",
            Vec::new(),
            StatusCode::NOT_FOUND,
            "execution_not_found",
        ),
    ];
    each_refused(&stack, cases).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn payloads_that_break_the_definition_are_refused_listing_every_problem() {
    let stack = start(options()).await;
    let key = stack.resources.secrets.api_key.clone();
    let with = order_with;
    let cases: Vec<Case<'_>> = vec![
        (
            "missing key",
            Some(&key),
            "/signals/order-update",
            with(&|b| {
                b["data"].as_object_mut().unwrap().remove("customerId");
            })
            .to_string()
            .into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
        ),
        (
            "unknown key",
            Some(&key),
            "/signals/order-update",
            with(&|b| b["data"]["coupon"] = json!("X"))
                .to_string()
                .into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
        ),
        (
            "number for string",
            Some(&key),
            "/signals/order-update",
            with(&|b| b["data"]["priority"] = json!(1))
                .to_string()
                .into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
        ),
        (
            "boolean for string",
            Some(&key),
            "/signals/order-update",
            with(&|b| b["data"]["orderId"] = json!(true))
                .to_string()
                .into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
        ),
        (
            "null value",
            Some(&key),
            "/signals/order-update",
            with(&|b| b["data"]["updateType"] = Value::Null)
                .to_string()
                .into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
        ),
        (
            "bad datetime",
            Some(&key),
            "/signals/order-update",
            with(&|b| b["data"]["timestamp"] = json!("22/11/2026"))
                .to_string()
                .into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
        ),
        (
            "undeclared nested key",
            Some(&key),
            "/signals/order-update",
            with(&|b| b["data"]["address"]["street"] = json!("Main"))
                .to_string()
                .into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
        ),
        (
            "nested value of the wrong type",
            Some(&key),
            "/signals/order-update",
            with(&|b| b["data"]["address"]["zip"] = json!(12345))
                .to_string()
                .into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
        ),
        (
            "metadata not an object",
            Some(&key),
            "/signals/order-update",
            with(&|b| b["metadata"] = json!("m")).to_string().into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
        ),
    ];
    each_refused(&stack, cases).await;

    // Every problem is listed at once.
    let (status, body) = post_signal(
        &stack,
        None,
        &with(&|b| {
            b["data"]["priority"] = json!(1);
            b["data"]["extra"] = json!("x");
            b["data"].as_object_mut().unwrap().remove("orderId");
        }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["extra", "orderId", "priority"]);
    assert!(signals_sent(&stack).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_key_answers_the_first_result_and_a_reused_key_is_refused() {
    let stack = start(options()).await;
    let key = unique("dup-");
    let (first_status, first) = post_signal(&stack, Some(&key), &order("C-1")).await;
    assert_eq!(first_status, StatusCode::ACCEPTED);
    let (status, again) = post_signal(&stack, Some(&key), &order("C-1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first, "the first answer");
    let (status, body) = post_signal(&stack, Some(&key), &order("C-2")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "idempotency_key_reused");

    // metadata.correlationId is the key when no header is given.
    let mut by_metadata = order("C-3");
    by_metadata["metadata"]["correlationId"] = json!(unique("meta-"));
    let (s1, b1) = post_signal(&stack, None, &by_metadata).await;
    let (s2, b2) = post_signal(&stack, None, &by_metadata).await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::OK));
    assert_eq!(b1, b2);
    assert_eq!(
        b1["correlationId"],
        by_metadata["metadata"]["correlationId"]
    );
    assert_eq!(
        signals_sent(&stack).await.len(),
        2,
        "CXone was reached once per key"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_dispatches_reach_cxone_once_per_key() {
    let mut opts = options();
    opts.max_instances = 4;
    let stack = std::sync::Arc::new(start(opts).await);
    let mut distinct = tokio::task::JoinSet::new();
    for i in 0..20 {
        let stack = stack.clone();
        distinct.spawn(async move {
            post_signal(
                &stack,
                Some(&unique(&format!("k{i}-"))),
                &order(&format!("C-{i}")),
            )
            .await
        });
    }
    for (status, body) in distinct.join_all().await {
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    assert_eq!(signals_sent(&stack).await.len(), 20);

    let shared = unique("shared-");
    let mut same = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (stack, shared) = (stack.clone(), shared.clone());
        same.spawn(async move { post_signal(&stack, Some(&shared), &order("C-shared")).await });
    }
    for (status, body) in same.join_all().await {
        let ok = status == StatusCode::ACCEPTED
            || status == StatusCode::OK
            || (status == StatusCode::SERVICE_UNAVAILABLE
                && body["error"]["code"] == "in_progress");
        assert!(ok, "{status}: {body}");
    }
    assert_eq!(
        signals_sent(&stack).await.len(),
        21,
        "the shared key reached CXone once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn callbacks_are_verified_recorded_once_and_never_move_an_execution_backwards() {
    let stack = start(options()).await;
    // Keep the simulator's own callback out of the way.
    stack
        .sim_control("config", json!({"callbackDelayMs": 600000}))
        .await;
    let key = unique("cb-");
    assert_eq!(
        post_signal(&stack, Some(&key), &order("C-1")).await.0,
        StatusCode::ACCEPTED
    );
    let secret = stack.resources.secrets.callback.clone();
    let now = cxbridge::clock::now_secs();
    let completed =
        json!({"correlationId": key, "status": "completed", "outputs": {"tracking": "T-1"}});

    let (status, body) = send(&stack, signed_callback("wrong-secret", &completed, now)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("signature_mismatch"))
    );
    let (status, body) = send(&stack, signed_callback(&secret, &completed, now - 600)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("timestamp_too_old"))
    );
    let unknown = json!({"correlationId": "nobody", "status": "completed", "outputs": {}});
    let (status, body) = send(&stack, signed_callback(&secret, &unknown, now)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("execution_not_found"))
    );
    let (status, body) = send(
        &stack,
        signed_callback(&secret, &json!({"status": "done"}), now),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );

    let (status, body) = send(&stack, signed_callback(&secret, &completed, now)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("recorded"))
    );
    let (status, body) = send(&stack, signed_callback(&secret, &completed, now)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    let failed = json!({"correlationId": key, "status": "failed", "outputs": {}, "error": "late"});
    let (status, body) = send(&stack, signed_callback(&secret, &failed, now)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );

    let (_, record) = execution(&stack, &key).await;
    assert_eq!(
        record["status"], "completed",
        "completed then failed stays completed"
    );
    assert_eq!(record["outputs"], json!({"tracking": "T-1"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn callbacks_in_token_mode_need_the_token() {
    let mut opts = options();
    opts.env_overrides.push(cxbridge_e2e::setting(
        "callback-verifier:CXBRIDGE_CALLBACK_AUTH=token",
    ));
    let stack = start(opts).await;
    stack
        .sim_control("config", json!({"callbackDelayMs": 600000}))
        .await;
    let key = unique("tok-");
    assert_eq!(
        post_signal(&stack, Some(&key), &order("C-1")).await.0,
        StatusCode::ACCEPTED
    );
    let body = json!({"correlationId": key, "status": "failed", "outputs": {}, "error": "customer hung up"});
    let request = |token: &str| {
        reqwest::Client::new()
            .post("http://placeholder")
            .header("content-type", "application/json")
            .header("x-callback-token", token)
            .body(body.to_string())
    };
    let (status, reply) = send(&stack, request("not-it")).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (status, reply) = send(&stack, request(&stack.resources.secrets.callback)).await;
    assert_eq!(
        (status, reply["status"].as_str()),
        (StatusCode::OK, Some("recorded"))
    );
    let (_, record) = execution(&stack, &key).await;
    assert_eq!(record["status"], "failed");
    assert_eq!(record["lastError"], "customer hung up");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_execution_whose_callback_never_comes_times_out_after_the_deadline() {
    // The simulator keeps the execution running (its callback is far off), so the history
    // cannot settle it either.
    let mut opts = options();
    opts.env_overrides
        .push("*:CXBRIDGE_EXECUTION_DEADLINE_SECS=2".parse().unwrap());
    opts.queue_overrides.visibility_timeout = Some(2);
    let stack = start(opts).await;
    stack
        .sim_control("config", json!({"callbackDelayMs": 600000}))
        .await;
    let key = unique("late-");
    assert_eq!(
        post_signal(&stack, Some(&key), &order("C-1")).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(execution(&stack, &key).await.1["status"], "dispatched");
    let record = stack.wait_for_execution(&key, "timed_out").await;
    assert!(record["lastError"].as_str().unwrap().contains("deadline"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_execution_whose_reconcile_job_was_lost_is_timed_out_by_the_scheduled_sweep() {
    let mut opts = options();
    opts.env_overrides
        .push("*:CXBRIDGE_EXECUTION_DEADLINE_SECS=2".parse().unwrap());
    // signal-dispatcher's jobs queue does not exist: its reconcile job cannot be enqueued.
    let lost = format!(
        "{}/123456789012/{}",
        cxbridge_e2e::aws_endpoint().trim_end_matches('/'),
        unique("gone-")
    );
    opts.env_overrides.push(cxbridge_e2e::setting(&format!(
        "signal-dispatcher:CXBRIDGE_JOBS_QUEUE_URL={lost}"
    )));
    opts.schedule_every = Some(Duration::from_secs(1));
    let stack = start(opts).await;
    stack
        .sim_control("config", json!({"callbackDelayMs": 600000}))
        .await;
    let key = unique("swept-");
    assert_eq!(
        post_signal(&stack, Some(&key), &order("C-1")).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(execution(&stack, &key).await.1["status"], "dispatched");
    eventually(
        "the reconcile job to be lost",
        Duration::from_secs(10),
        || async {
            stack
                .log
                .lines()
                .iter()
                .any(|l| l.contains("could not schedule the deadline check"))
                .then_some(())
        },
    )
    .await;
    let record = stack.wait_for_execution(&key, "timed_out").await;
    assert!(record["lastError"].as_str().unwrap().contains("deadline"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retryable_cxone_failure_is_queued_and_the_drainer_dispatches_it() {
    let mut opts = options();
    opts.queue_overrides.visibility_timeout = Some(2);
    let stack = start(opts).await;
    stack
        .fault(json!({"match": "signal", "status": 503, "times": 1}))
        .await;
    let key = unique("q-");
    let (status, body) = post_signal(&stack, Some(&key), &order("C-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"status": "queued", "correlationId": key}));
    let done = stack.wait_for_execution(&key, "completed").await;
    assert_eq!(done["attempts"], 2);
    let sent = signals_sent(&stack).await;
    assert_eq!(
        sent.iter()
            .map(|e| e["status"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [503, 202]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_cxone_failure_is_a_stable_4xx_and_the_execution_fails() {
    let stack = start(options()).await;
    stack
        .fault(
            json!({"match": "signal", "status": 400, "body": "{\"error\":\"script not found\"}"}),
        )
        .await;
    let key = unique("p-");
    let (status, body) = post_signal(&stack, Some(&key), &order("C-1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "cxone_rejected");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("script not found"),
        "{body}"
    );
    let (_, record) = execution(&stack, &key).await;
    assert_eq!(record["status"], "failed");
    let (status, again) = post_signal(&stack, Some(&key), &order("C-1")).await;
    assert_eq!(
        (status, &again),
        (StatusCode::UNPROCESSABLE_ENTITY, &body),
        "a repeat gets the first answer, with its status"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_the_platform_the_dispatch_is_a_p1_to_p9_signal_on_the_contact() {
    let mut opts = options();
    opts.profile = "incontact".into();
    let stack = start(opts).await;
    let key = unique("pf-");
    let (status, body) = post_signal(&stack, Some(&key), &order("C-9")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"status": "dispatched", "correlationId": key}));
    let sent = signals_sent(&stack).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["path"],
        "/inContactAPI/services/v30.0/interactions/contact-42/signal"
    );
    let params = cxbridge_e2e::signal_parameters(&sent[0]);
    assert_eq!(
        params,
        [
            ("p1", key.as_str()),
            ("p2", "C-9"),
            ("p3", "O-77"),
            ("p4", "shipped"),
            ("p5", "high"),
            ("p6", "2026-11-22T09:00:00Z"),
            ("p7", "Leeds"),
            ("p8", "LS1 4AP"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    let mut no_contact = order("C-9");
    no_contact["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("contactId");
    let (status, body) = post_signal(&stack, None, &no_contact).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["fields"][0]["field"], "metadata.contactId");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_callback_is_reconciled_from_the_execution_history() {
    let mut opts = options();
    opts.env_overrides
        .push("*:CXBRIDGE_EXECUTION_DEADLINE_SECS=2".parse().unwrap());
    opts.queue_overrides.visibility_timeout = Some(2);
    let stack = start(opts).await;
    // The execution completes in CXone, but its callback never reaches the gateway.
    stack
        .sim_control(
            "config",
            json!({"callbackStatus": "lost", "callbackDelayMs": 100}),
        )
        .await;
    let key = unique("lost-");
    assert_eq!(
        post_signal(&stack, Some(&key), &order("C-1")).await.0,
        StatusCode::ACCEPTED
    );
    let record = stack.wait_for_execution(&key, "completed").await;
    assert_eq!(record["outputs"], json!({"result": "ok"}));
    let asked = stack
        .journal()
        .await
        .iter()
        .filter(|e| {
            e["method"] == "GET"
                && e["path"]
                    .as_str()
                    .unwrap()
                    .starts_with("/api/v2/signals/executions/")
        })
        .count();
    assert_eq!(asked, 1, "the history was read once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_routed_to_a_signal_is_dispatched_by_the_drainer_with_the_same_code() {
    let stack = start(routed_to_order_update()).await;
    let (sample, delivery, request) = stack.sample_webhook("chat");
    let (status, body) = request
        .send(&reqwest::Client::new(), &stack.gateway_url)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let correlation = format!("{delivery}:order-update");
    let record = stack.wait_for_execution(&correlation, "completed").await;
    assert_eq!(record["signal"], "order-update");
    let sent = signals_sent(&stack).await;
    assert_eq!(sent.len(), 1);
    let payload: Value = serde_json::from_str(sent[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(payload["data"]["orderId"], sample.interaction_id.as_str());
    assert_eq!(payload["data"]["customerId"], "customer1@example.com");
    assert_eq!(payload["metadata"]["correlationId"], correlation.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_routed_signal_whose_key_a_request_already_used_is_dead_lettered_and_never_sent() {
    let stack = start(routed_to_order_update()).await;
    let (_, delivery, request) = stack.sample_webhook("chat");
    let correlation = format!("{delivery}:order-update");
    // A request takes the key first, for another order.
    let (status, body) = post_signal(&stack, Some(&correlation), &order("C-9")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = request
        .send(&reqwest::Client::new(), &stack.gateway_url)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let sqs = aws_sdk_sqs::Client::new(&cxbridge_e2e::sdk().await);
    let dlq = &stack.resources.queues["dlq"].url;
    let dead = eventually(
        "the routed job in the DLQ",
        Duration::from_secs(30),
        || async {
            let m = cxbridge_e2e::receive_all(&sqs, dlq).await;
            (!m.is_empty()).then_some(m)
        },
    )
    .await;
    assert_eq!(dead.len(), 1);
    let reason = dead[0].message_attributes().unwrap()["deadLetterReason"]
        .string_value()
        .unwrap();
    assert!(reason.starts_with("idempotency_key_reused: "), "{reason}");
    let sent = signals_sent(&stack).await;
    assert_eq!(sent.len(), 1, "only the request's signal reached CXone");
    let payload: Value = serde_json::from_str(sent[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(payload["data"]["customerId"], "C-9");
    let record = stack.wait_for_execution(&correlation, "completed").await;
    assert_eq!(record["attempts"], 1, "{record}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_left_pending_by_a_dispatcher_that_died_is_taken_over_once_its_claim_lapses() {
    // Let the CXone call outlive the function, so that the function dies mid-dispatch.
    let slow = "signal-dispatcher:CXBRIDGE_CXONE_TIMEOUT_MS=20000";
    let stack = start(cxbridge_e2e::with_setting(options(), slow)).await;
    // CXone hangs past signal-dispatcher's 10 s timeout: the instance is stopped before it
    // can record an answer, and the caller gets a 500.
    stack
        .fault(json!({"match": "signal", "status": 200, "delayMs": 15000, "times": 1}))
        .await;
    let key = unique("stuck-");
    let (status, _) = post_signal(&stack, Some(&key), &order("C-1")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(execution(&stack, &key).await.1["status"], "pending");
    let (status, body) = post_signal(&stack, Some(&key), &order("C-1")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("in_progress"))
    );

    let (status, body) = eventually(
        "the retry to take the key over",
        Duration::from_secs(60),
        || async {
            let (status, body) = post_signal(&stack, Some(&key), &order("C-1")).await;
            (body["error"]["code"] != "in_progress").then_some((status, body))
        },
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "dispatched");
    let delivered: Vec<Value> = signals_sent(&stack)
        .await
        .into_iter()
        .filter(|e| e["status"] == 202)
        .collect();
    assert_eq!(delivered.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cold_start_takes_the_shared_cxone_token_read_beside_the_secret() {
    let mut opts = options();
    let app = unique("sd");
    opts.env_overrides.push(cxbridge_local::EnvOverride {
        function: "signal-dispatcher".into(),
        key: "AWS_SDK_UA_APP_ID".into(),
        value: app.clone(),
    });
    let stack = start(opts).await;
    let host = stack.hosts["signal-dispatcher"].clone();
    let token_requests = || async {
        stack
            .journal()
            .await
            .iter()
            .filter(|e| e["path"] == "/api/v2/oauth/token")
            .count()
    };
    // signal-dispatcher's AWS calls so far, by operation.
    let calls = || cxbridge_e2e::aws_calls(&stack.aws_endpoint, &app);
    let delta = |before: &std::collections::BTreeMap<String, i64>,
                 after: &std::collections::BTreeMap<String, i64>| {
        after
            .iter()
            .map(|(op, n)| (op.clone(), n - before.get(op).copied().unwrap_or(0)))
            .filter(|(_, n)| *n != 0)
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    // The functions that call CXone fetched (or waited for) one shared token at init.
    let (status, body) = post_signal(&stack, Some(&unique("order-")), &order("C-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let fetched = token_requests().await;
    assert!(fetched >= 1, "a token was fetched at init");

    // What a dispatch costs a warm instance...
    let before_warm = calls().await;
    let (status, body) = post_signal(&stack, Some(&unique("order-")), &order("C-2")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let before_cold = calls().await;
    let warm = delta(&before_warm, &before_cold);
    // The budget's grant and the claim, the dispatch's record, the deadline check's job:
    // the grant is written over the version this instance wrote last, with no read.
    let expected_warm: std::collections::BTreeMap<String, i64> = [
        ("DynamoDB_20120810.PutItem", 2),
        ("DynamoDB_20120810.UpdateItem", 1),
        ("AmazonSQS.SendMessageBatch", 1),
    ]
    .into_iter()
    .map(|(op, n)| (op.to_owned(), n))
    .collect();
    assert_eq!(warm, expected_warm, "a warm dispatch's calls");

    // ...and what it costs a new process: its init adds the secret, the jobs queue's
    // warm-up and one read of the shared token, all at once; the table needs no warm-up
    // call of its own, and the token found there spares CXone a token request. Its first
    // grant of the outbound budget is written over no known version of the budget's item,
    // so that put fails once and returns the item, and the next put takes the grant.
    let inits = host.init_durations().len();
    assert!(host.recycle(Duration::from_secs(10)).await);
    let (status, body) = post_signal(&stack, Some(&unique("order-")), &order("C-3")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        host.init_durations().len(),
        inits + 1,
        "a new process served the signal"
    );
    let cold = delta(&before_cold, &calls().await);
    let init = delta(&warm, &cold);
    let expected: std::collections::BTreeMap<String, i64> = [
        "DynamoDB_20120810.GetItem",
        "DynamoDB_20120810.PutItem",
        "AmazonSQS.GetQueueAttributes",
        "secretsmanager.GetSecretValue",
    ]
    .into_iter()
    .map(|op| (op.to_owned(), 1))
    .collect();
    assert_eq!(init, expected, "warm {warm:?}, cold {cold:?}");
    assert_eq!(token_requests().await, fetched, "no new token request");
    assert_eq!(signals_sent(&stack).await.len(), 3);
}
