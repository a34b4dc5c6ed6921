//! The real platform's profile end to end: spawn and contact signals, the success
//! statuses the platform may answer, ended contacts, client authentication, and refused
//! spawn requests, through the local stack.

use cxbridge_e2e::{
    TestStack, platform_options, queue_depth, sdk, signal_parameters, start, unique,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn order_created(customer: &str) -> Value {
    json!({
        "data": {"customerId": customer, "orderId": "O-1001", "priority": "high"},
        "metadata": {"sourceSystem": "erp"}
    })
}

fn order_update(contact: &str) -> Value {
    json!({
        "data": {"customerId": "C-1", "orderId": "O-77", "updateType": "shipped", "priority": "high",
                 "timestamp": "2026-11-22T09:00:00Z", "address": {"city": "Leeds", "zip": "LS1 4AP"}},
        "metadata": {"sourceSystem": "shop", "contactId": contact}
    })
}

async fn post(stack: &TestStack, signal: &str, key: &str, body: &Value) -> (StatusCode, Value) {
    stack.post_signal(signal, key, body).await
}

/// The journal's platform calls whose path ends with `suffix`.
async fn calls(stack: &TestStack, suffix: &str) -> Vec<Value> {
    stack
        .requests(|path| path.starts_with("/inContactAPI/") && path.ends_with(suffix))
        .await
}

async fn depth(stack: &TestStack, queue: &str) -> i64 {
    stack.relayed().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    queue_depth(&sqs, &stack.resources.queues[queue].url).await
}

#[tokio::test(flavor = "multi_thread")]
async fn order_created_spawns_the_configured_script_once_and_the_callback_completes_it() {
    let stack = start(platform_options()).await;
    assert_eq!(stack.state()["profile"], "incontact");
    let key = unique("spawn-");
    let (status, body) = post(&stack, "order-created", &key, &order_created("C-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"status": "dispatched", "correlationId": key}));

    let spawned = calls(&stack, "/start").await;
    assert_eq!(spawned.len(), 1, "exactly one spawn: {spawned:?}");
    assert_eq!(
        spawned[0]["path"],
        "/inContactAPI/services/v30.0/scripts/4100101/start"
    );
    let sent: Value = serde_json::from_str(spawned[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"scriptId": "4100101", "skillId": "4200202",
               "parameters": format!("{key}|C-1|O-1001|high")})
    );
    assert!(
        calls(&stack, "/signal").await.is_empty(),
        "no contact was signalled"
    );

    // The script reports back as a Studio REST action does, with the callback token.
    let record = stack.wait_for_execution(&key, "completed").await;
    assert_eq!(record["signal"], "order-created");
    assert_eq!(record["outputs"], json!({"result": "ok"}));

    // The same request again is a duplicate: nothing more reaches CXone.
    let (again, again_body) = post(&stack, "order-created", &key, &order_created("C-1")).await;
    assert_eq!(again, StatusCode::OK, "{again_body}");
    assert_eq!(calls(&stack, "/start").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn order_update_signals_that_contact_exactly_once() {
    let stack = start(platform_options()).await;
    let key = unique("upd-");
    let (status, body) = post(&stack, "order-update", &key, &order_update("contact-42")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "dispatched");
    let signalled = calls(&stack, "/signal").await;
    assert_eq!(signalled.len(), 1);
    assert_eq!(
        signalled[0]["path"],
        "/inContactAPI/services/v30.0/interactions/contact-42/signal"
    );
    let params = signal_parameters(&signalled[0]);
    assert_eq!(params[0], ("p1".to_owned(), key.clone()));
    assert_eq!(params[1], ("p2".to_owned(), "C-1".to_owned()));
    assert_eq!(params.len(), 8);
    assert!(calls(&stack, "/start").await.is_empty());
    stack.wait_for_execution(&key, "completed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn whichever_2xx_the_platform_answers_the_execution_is_dispatched_then_completed() {
    let stack = start(platform_options()).await;
    // The callback is held back until each execution has been seen as dispatched.
    stack
        .sim_control("config", json!({"callbackDelayMs": 600_000}))
        .await;
    let mut keys = Vec::new();
    for status in [200, 202, 204] {
        stack
            .sim_control(
                "config",
                json!({"signalStatus": status, "spawnStatus": status}),
            )
            .await;
        for (signal, body) in [
            ("order-update", order_update("contact-7")),
            ("order-created", order_created("C-7")),
        ] {
            let key = unique(&format!("s{status}-"));
            let (code, answer) = post(&stack, signal, &key, &body).await;
            assert_eq!(code, StatusCode::ACCEPTED, "{signal} {status}: {answer}");
            assert_eq!(answer["status"], "dispatched", "{signal} {status}");
            stack.wait_for_execution(&key, "dispatched").await;
            keys.push(key);
        }
    }
    let answered: Vec<u64> = stack
        .requests_under("/inContactAPI/")
        .await
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(answered, [200, 200, 202, 202, 204, 204]);

    // Each token-mode callback, as Studio's REST action sends it, completes its execution.
    for key in &keys {
        let response = reqwest::Client::new()
            .post(format!("{}/callbacks/studio", stack.gateway_url))
            .header("x-callback-token", &stack.resources.secrets.callback)
            .json(
                &json!({"correlationId": key, "status": "completed", "outputs": {"ticket": "T-1"}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let record = stack.wait_for_execution(key, "completed").await;
        assert_eq!(record["outputs"], json!({"ticket": "T-1"}));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_to_an_ended_contact_fails_for_good_and_is_never_retried() {
    let stack = start(platform_options()).await;
    let ended = reqwest::Client::new()
        .post(format!("{}/_sim/contacts/contact-9/end", stack.cxone_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), StatusCode::OK);
    let key = unique("ended-");
    let (status, body) = post(&stack, "order-update", &key, &order_update("contact-9")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "contact_not_active");
    let record = stack.wait_for_execution(&key, "failed").await;
    let reason = record["lastError"].as_str().unwrap();
    assert!(
        reason.starts_with("contact_not_active: ") && reason.contains("404"),
        "{record}"
    );
    assert_eq!(
        depth(&stack, "jobs").await,
        0,
        "nothing was queued to retry"
    );
    assert_eq!(depth(&stack, "dlq").await, 0);
    assert_eq!(calls(&stack, "/signal").await.len(), 1, "one call only");
    // Its repeat gets the same answer, status and body, without another call.
    let (again, again_body) = post(&stack, "order-update", &key, &order_update("contact-9")).await;
    assert_eq!((again, &again_body), (StatusCode::NOT_FOUND, &body));
    assert_eq!(calls(&stack, "/signal").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_contact_that_ends_before_the_retry_fails_the_job_for_good_with_its_code() {
    let stack = start(cxbridge_e2e::quick_redelivery(platform_options())).await;
    // The first attempt meets a 503 (a fault comes before the contact is looked up); by
    // the retry the contact has ended.
    stack
        .fault(json!({"match": "signal", "status": 503, "times": 1}))
        .await;
    let ended = reqwest::Client::new()
        .post(format!("{}/_sim/contacts/contact-8/end", stack.cxone_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), StatusCode::OK);
    let key = unique("late-end-");
    let (status, body) = post(&stack, "order-update", &key, &order_update("contact-8")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("queued"))
    );
    let record = stack.wait_for_execution(&key, "failed").await;
    assert!(
        record["lastError"]
            .as_str()
            .unwrap()
            .starts_with("contact_not_active: "),
        "{record}"
    );
    let answered: Vec<u64> = calls(&stack, "/signal")
        .await
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(answered, [503, 404], "retried once, then never again");
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let dead = cxbridge_e2e::eventually(
        "the job in the DLQ",
        std::time::Duration::from_secs(20),
        || async {
            let m = cxbridge_e2e::receive_all(&sqs, &stack.resources.queues["dlq"].url).await;
            (!m.is_empty()).then_some(m)
        },
    )
    .await;
    assert_eq!(dead.len(), 1, "the job is dead-lettered with its reason");
    let reason = dead[0].message_attributes().unwrap()["deadLetterReason"]
        .string_value()
        .unwrap();
    assert!(reason.contains("contact_not_active: "), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_request_authenticates_the_client_in_the_form_or_by_basic_as_configured() {
    for auth in ["post", "basic"] {
        let mut opts = platform_options();
        opts.env_overrides.push(cxbridge_e2e::setting(&format!(
            "*:CXBRIDGE_CXONE_CLIENT_AUTH={auth}"
        )));
        let stack = start(opts).await;
        let key = unique("auth-");
        let (status, body) = post(&stack, "order-created", &key, &order_created("C-2")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{auth}: {body}");
        let tokens: Vec<Value> = stack
            .journal()
            .await
            .into_iter()
            .filter(|e| e["path"] == "/auth/token")
            .collect();
        assert!(!tokens.is_empty(), "{auth}");
        let secrets = &stack.resources.secrets.cxone;
        for token in tokens {
            let form = cxbridge_e2e::form_fields(token["body"].as_str().unwrap());
            assert_eq!(form["grant_type"], "password", "{auth}");
            let header = token["headers"].get("authorization");
            if auth == "post" {
                assert_eq!(header, None, "post: no Authorization header");
                assert_eq!(form["client_id"], secrets.client_id.as_str());
                assert_eq!(form["client_secret"], secrets.client_secret.as_str());
            } else {
                assert!(
                    header.unwrap().as_str().unwrap().starts_with("Basic "),
                    "basic: {token}"
                );
                assert!(!form.contains_key("client_id"), "basic: {token}");
                assert!(!form.contains_key("client_secret"), "basic: {token}");
            }
        }
    }
}

/// One refused request: what is sent, and the status and code it must get.
struct BadSpawn {
    name: &'static str,
    signal: &'static str,
    api_key: Option<&'static str>,
    idempotency_key: Option<String>,
    content_type: &'static str,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
}

fn bad(name: &'static str, body: Value, status: StatusCode, code: &'static str) -> BadSpawn {
    BadSpawn {
        name,
        signal: "order-created",
        api_key: None,
        idempotency_key: None,
        content_type: "application/json",
        body: body.to_string().into_bytes(),
        status,
        code,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_spawn_signals_get_a_stable_code_and_nothing_is_sent_or_queued() {
    let stack = start(platform_options()).await;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let data = |extra: Value| {
        let mut body = order_created("C-1");
        for (k, v) in extra.as_object().unwrap() {
            body["data"][k] = v.clone();
        }
        body
    };
    let cases = vec![
        BadSpawn {
            api_key: Some("none"),
            ..bad(
                "no API key",
                order_created("C-1"),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            )
        },
        BadSpawn {
            api_key: Some("not-the-key"),
            ..bad(
                "a wrong API key",
                order_created("C-1"),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            )
        },
        BadSpawn {
            signal: "order-cancelled",
            ..bad(
                "an unknown signal",
                order_created("C-1"),
                StatusCode::NOT_FOUND,
                "signal_not_found",
            )
        },
        BadSpawn {
            body: b"{\"data\": ".to_vec(),
            ..bad(
                "a body cut short",
                json!({}),
                StatusCode::BAD_REQUEST,
                "malformed_body",
            )
        },
        bad(
            "an array body",
            json!([order_created("C-1")]),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        bad(
            "a missing variable",
            json!({"data": {"customerId": "C-1", "orderId": "O-1"}}),
            unprocessable,
            "invalid_payload",
        ),
        bad(
            "an undeclared variable",
            data(json!({"coupon": "X"})),
            unprocessable,
            "invalid_payload",
        ),
        bad(
            "a number where a string is declared",
            data(json!({"priority": 1})),
            unprocessable,
            "invalid_payload",
        ),
        bad(
            "a nested object under the reject policy",
            data(json!({"orderId": {"id": "O-1"}})),
            unprocessable,
            "invalid_payload",
        ),
        bad(
            "a value holding the parameter separator",
            data(json!({"orderId": "O-1|O-2"})),
            unprocessable,
            "invalid_payload",
        ),
        bad(
            "metadata that is not an object",
            json!({"data": {"customerId": "C-1", "orderId": "O-1", "priority": "high"}, "metadata": "erp"}),
            unprocessable,
            "invalid_payload",
        ),
        bad(
            "data that is not an object",
            json!({"data": "C-1,O-1,high"}),
            unprocessable,
            "invalid_payload",
        ),
        BadSpawn {
            idempotency_key: Some("k".repeat(129)),
            ..bad(
                "an idempotency key over 128 characters",
                order_created("C-1"),
                StatusCode::BAD_REQUEST,
                "bad_request",
            )
        },
        BadSpawn {
            idempotency_key: Some("erp|1001".into()),
            ..bad(
                "an idempotency key holding the parameter separator",
                order_created("C-1"),
                StatusCode::BAD_REQUEST,
                "bad_request",
            )
        },
        BadSpawn {
            idempotency_key: Some("key with spaces".into()),
            ..bad(
                "an idempotency key with spaces",
                order_created("C-1"),
                StatusCode::BAD_REQUEST,
                "bad_request",
            )
        },
    ];
    assert!(cases.len() >= 15);
    let http = reqwest::Client::new();
    for case in &cases {
        let mut request = http
            .post(format!("{}/signals/{}", stack.gateway_url, case.signal))
            .header("content-type", case.content_type)
            .header(
                "idempotency-key",
                case.idempotency_key
                    .clone()
                    .unwrap_or_else(|| unique("bad-")),
            )
            .body(case.body.clone());
        match case.api_key {
            None => request = request.header("x-api-key", &stack.resources.secrets.api_key),
            Some("none") => {}
            Some(other) => request = request.header("x-api-key", other),
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (case.status, Some(case.code)),
            "{}: {body}",
            case.name
        );
    }
    let platform_calls: Vec<Value> = stack.requests_under("/inContactAPI/").await;
    assert!(platform_calls.is_empty(), "sent: {platform_calls:?}");
    assert_eq!(depth(&stack, "jobs").await, 0, "nothing was queued");
}

/// The status CXone answered each spawn-script call with, in order.
async fn spawn_statuses(stack: &TestStack) -> Vec<u64> {
    calls(stack, "/start")
        .await
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spawn_that_meets_503s_is_queued_and_the_drainer_starts_the_script_once() {
    let stack = start(cxbridge_e2e::quick_redelivery(platform_options())).await;
    stack
        .fault(json!({"match": "spawn", "status": 503, "times": 2}))
        .await;
    let key = unique("sq-");
    let (status, body) = post(&stack, "order-created", &key, &order_created("C-3")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"status": "queued", "correlationId": key}));
    let record = stack.wait_for_execution(&key, "completed").await;
    assert_eq!(record["attempts"], 3);
    assert_eq!(spawn_statuses(&stack).await, [503, 503, 202]);
    // Every attempt carried the same script, skill and parameters.
    for call in calls(&stack, "/start").await {
        let sent: Value = serde_json::from_str(call["body"].as_str().unwrap()).unwrap();
        assert_eq!(sent["skillId"], "4200202");
        assert_eq!(sent["parameters"], format!("{key}|C-3|O-1001|high"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spawn_whose_attempts_are_spent_is_dead_lettered_with_its_reason() {
    let stack = start(cxbridge_e2e::quick_redelivery(platform_options())).await;
    stack
        .fault(json!({"match": "spawn", "status": 500, "times": 4}))
        .await;
    let key = unique("sd-");
    let (status, body) = post(&stack, "order-created", &key, &order_created("C-4")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("queued"))
    );
    let record = cxbridge_e2e::eventually(
        "the spawn to be dead-lettered",
        std::time::Duration::from_secs(60),
        || async {
            let (_, record) = stack.execution(&key).await;
            (record["status"] == "dead_lettered").then_some(record)
        },
    )
    .await;
    assert_eq!(record["attempts"], 4);
    assert!(
        record["lastError"]
            .as_str()
            .unwrap()
            .contains("gave up after 4 attempts"),
        "{record}"
    );
    assert_eq!(spawn_statuses(&stack).await, [500, 500, 500, 500]);
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let dead = cxbridge_e2e::receive_all(&sqs, &stack.resources.queues["dlq"].url).await;
    assert_eq!(dead.len(), 1);
    let job: Value = serde_json::from_str(dead[0].body().unwrap()).unwrap();
    assert_eq!(job["correlationId"], key.as_str());
    assert_eq!(job["payload"]["request"]["spawn"]["scriptId"], "4100101");
}
