//! `POST /webhooks/studio` end to end: requests as a Studio script's REST API action sends
//! them, through the gateway and the real webhook-receiver, onto the stack's queues.

use std::time::Duration;

use cxbridge_e2e::{
    TestStack, eventually, platform_options, queue_depth, receive_all, sdk, start, take_all, unique,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const FORM: &str = "application/x-www-form-urlencoded";

/// A request to `/webhooks/studio`: headers as raw bytes, so that tests can send what a
/// misconfigured script would.
#[derive(Clone)]
struct StudioRequest {
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
}

impl StudioRequest {
    /// Form fields with the token as `X-API-Key` and the id as `X-Delivery-Id`, as Studio
    /// sends them by default.
    fn form(token: &str, delivery_id: &str, fields: &[(&str, &str)]) -> Self {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (name, value) in fields {
            body.append_pair(name, value);
        }
        Self {
            headers: vec![
                ("content-type", FORM.into()),
                ("x-api-key", token.into()),
                ("x-delivery-id", delivery_id.into()),
            ],
            body: body.finish().into_bytes(),
        }
    }

    /// A JSON body with the token as `X-API-Key` and no `X-Delivery-Id`.
    fn json(token: &str, body: &Value) -> Self {
        Self {
            headers: vec![
                ("content-type", b"application/json".to_vec()),
                ("x-api-key", token.into()),
            ],
            body: body.to_string().into_bytes(),
        }
    }

    fn set(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.retain(|(k, _)| *k != name);
        self.headers.push((name, value.into()));
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(k, _)| *k != name);
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    async fn send(&self, client: &reqwest::Client, gateway: &str) -> (StatusCode, Value) {
        let mut request = client
            .post(format!("{gateway}/webhooks/studio"))
            .body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(
                *name,
                reqwest::header::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        let response = request.send().await.expect("the gateway answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Studio's contact fields, spelt as its system variables are.
fn contact(contact_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ContactID", contact_id.to_owned()),
        ("ANI", "+15550100".to_owned()),
        ("DNIS", "8005550199".to_owned()),
        ("SkillName", "Billing Support".to_owned()),
        ("AgentID", "7001".to_owned()),
        ("eventType", "contact.routed".to_owned()),
        ("timestamp", "2026-11-22T09:00:00Z".to_owned()),
    ]
}

fn fields<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn depth(stack: &TestStack, sqs: &aws_sdk_sqs::Client, queue: &str) -> i64 {
    stack.relayed().await;
    queue_depth(sqs, &stack.resources.queues[queue].url).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_studio_form_request_lands_once_normalised_and_its_retry_is_a_duplicate() {
    let stack = start(platform_options()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let client = reqwest::Client::new();
    let events = &stack.resources.queues["events"].url;
    let token = &stack.resources.secrets.studio;
    let contact_id = unique("c-");
    let delivery = unique("d-");
    let request = StudioRequest::form(token, &delivery, &fields(&contact(&contact_id)));

    let (status, body) = request.send(&client, &stack.gateway_url).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"status": "accepted", "deliveryId": delivery}));

    stack.relayed().await;
    let landed = receive_all(&sqs, events).await;
    assert_eq!(landed.len(), 1, "exactly one event");
    let event: Value = serde_json::from_str(landed[0].body().unwrap()).unwrap();
    assert_eq!(
        event,
        json!({
            "deliveryId": delivery, "eventType": "contact.routed", "interactionId": contact_id,
            "channel": "studio", "occurredAt": "2026-11-22T09:00:00Z",
            "customer": {"identifier": "+15550100", "type": "phone"},
            "context": {"skill": "Billing Support", "agentId": "7001", "dnis": "8005550199"}
        })
    );
    let attributes = landed[0].message_attributes().unwrap();
    assert_eq!(
        attributes["deliveryId"].string_value(),
        Some(delivery.as_str())
    );
    assert_eq!(
        attributes["eventType"].string_value(),
        Some("contact.routed")
    );

    // Studio's retry: the same request again.
    let (status, body) = request.send(&client, &stack.gateway_url).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"status": "duplicate", "deliveryId": delivery}));

    // The same delivery id with another contact is not the same delivery.
    let other = StudioRequest::form(token, &delivery, &fields(&contact(&unique("c-"))));
    let (status, body) = other.send(&client, &stack.gateway_url).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_reused");

    assert_eq!(depth(&stack, &sqs, "events").await, 1, "nothing new");
    assert_eq!(depth(&stack, &sqs, "jobs").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_or_a_missing_delivery_id_is_refused_and_enqueues_nothing() {
    let stack = start(platform_options()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let client = reqwest::Client::new();
    let token = &stack.resources.secrets.studio;
    let pairs = contact(&unique("c-"));

    let wrong_key = StudioRequest::form("not-the-token", &unique("d-"), &fields(&pairs));
    let (status, body) = wrong_key.send(&client, &stack.gateway_url).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");

    let no_id = StudioRequest::form(token, "", &fields(&pairs)).without("x-delivery-id");
    let (status, body) = no_id.send(&client, &stack.gateway_url).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "missing_delivery_id");

    for queue in ["events", "jobs"] {
        assert_eq!(depth(&stack, &sqs, queue).await, 0, "{queue}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_with_the_delivery_id_in_the_body_and_a_bearer_token_is_accepted() {
    let stack = start(platform_options()).await;
    let sdk = sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let client = reqwest::Client::new();
    let events = &stack.resources.queues["events"].url;
    let token = stack.resources.secrets.studio.clone();
    let delivery = unique("d-");
    let contact_id = unique("c-");
    let body = json!({
        "deliveryId": delivery, "eventType": "contact.transferred", "contactId": contact_id,
        "ani": "+15550101", "dnis": "8005550199", "skill": "Sales", "agentId": "7002"
    });

    let bearer = StudioRequest::json(&token, &body)
        .without("x-api-key")
        .set("authorization", format!("Bearer {token}"));
    let (status, reply) = bearer.send(&client, &stack.gateway_url).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(reply, json!({"status": "accepted", "deliveryId": delivery}));
    stack.relayed().await;
    let landed = take_all(&sqs, events).await;
    assert_eq!(landed.len(), 1);
    let event: Value = serde_json::from_str(landed[0].body().unwrap()).unwrap();
    assert_eq!(event["deliveryId"], delivery.as_str());
    assert_eq!(event["eventType"], "contact.transferred");
    assert_eq!(event["interactionId"], contact_id.as_str());
    assert_eq!(event["channel"], "studio");
    assert_eq!(
        event["customer"],
        json!({"identifier": "+15550101", "type": "phone"})
    );
    assert_eq!(event["context"]["skill"], "Sales");

    // A JSON object under Studio's default form content type is read as JSON.
    let labelled_form = unique("d-");
    let mut as_form = body.clone();
    as_form["deliveryId"] = json!(labelled_form);
    let (status, reply) = StudioRequest::json(&token, &as_form)
        .set("content-type", FORM)
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(reply["deliveryId"], labelled_form.as_str());
    stack.relayed().await;
    let landed = take_all(&sqs, events).await;
    assert_eq!(landed.len(), 1);
    let event: Value = serde_json::from_str(landed[0].body().unwrap()).unwrap();
    assert_eq!(event["deliveryId"], labelled_form.as_str());
    assert_eq!(event["interactionId"], contact_id.as_str());

    // A header Studio left as written (`{deliveryId}`) gives way to the body field.
    let from_body = unique("d-");
    let mut unreplaced = body.clone();
    unreplaced["deliveryId"] = json!(from_body);
    let (status, reply) = StudioRequest::json(&token, &unreplaced)
        .set("x-delivery-id", "{deliveryId}")
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(reply["deliveryId"], from_body.as_str());
    stack.relayed().await;
    assert_eq!(take_all(&sqs, events).await.len(), 1);

    // The retry with X-API-Key instead is the same delivery.
    let (status, reply) = StudioRequest::json(&token, &body)
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["status"], "duplicate");

    // A CXone webhook under the same delivery id is a delivery of its own.
    let sample = cxbridge_local::samples::webhook("voice", &unique("r"), 1).unwrap();
    let (status, reply) = cxbridge_e2e::WebhookRequest::signed(
        &stack.resources.secrets.webhook,
        sample.content_type,
        &sample.body,
        &delivery,
        &sample.event_type,
    )
    .send(&client, &stack.gateway_url)
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");

    // A rotated Studio token works at once, without a restart.
    let mut document = stack.read_secret().await;
    let rotated = unique("studio-rotated-");
    document["studioTokens"] = json!([rotated, token]);
    stack.write_secret(&document).await;
    let fresh = json!({"deliveryId": unique("d-"), "contactId": unique("c-")});
    let (status, reply) = eventually(
        "the rotated token to be accepted",
        Duration::from_secs(15),
        || async {
            let out = StudioRequest::json(&rotated, &fresh)
                .send(&client, &stack.gateway_url)
                .await;
            (out.0 != StatusCode::UNAUTHORIZED).then_some(out)
        },
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    stack.relayed().await;
    let last: Vec<Value> = take_all(&sqs, events)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    let mut ids: Vec<&str> = last
        .iter()
        .map(|e| e["deliveryId"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![delivery.as_str(), fresh["deliveryId"].as_str().unwrap()];
    expected.sort_unstable();
    assert_eq!(
        ids, expected,
        "since the last read: the CXone webhook and the rotated-token Studio request"
    );
}

/// One refused request: what is sent, and the status and stable code it must get.
struct Case {
    name: &'static str,
    request: StudioRequest,
    status: StatusCode,
    code: &'static str,
}

/// A good Studio form request with `token`, under a new delivery id.
fn good_form(token: &str) -> StudioRequest {
    let pairs = contact("c-1");
    StudioRequest::form(token, &unique("d-"), &fields(&pairs))
}

/// Sends each case and checks its status and code, and that its answer names no token;
/// then that nothing reached a queue or the CXone simulator, and the logs hold no token.
async fn each_refused(stack: &TestStack, cases: Vec<Case>) {
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let client = reqwest::Client::new();
    let token = &stack.resources.secrets.studio;
    let baseline = stack.journal().await.len();
    for case in cases {
        let (status, body) = case.request.send(&client, &stack.gateway_url).await;
        let name = case.name;
        assert_eq!(status, case.status, "{name}: {body}");
        assert_eq!(body["error"]["code"], case.code, "{name}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}: {body}"
        );
        assert!(
            !body.to_string().contains(token),
            "{name}: the token leaked"
        );
    }
    for queue in ["events", "jobs"] {
        assert_eq!(depth(stack, &sqs, queue).await, 0, "{queue} got a message");
    }
    let journal = stack.journal().await;
    assert_eq!(
        journal.len(),
        baseline,
        "nothing reached the CXone simulator: {journal:?}"
    );
    let logs = stack.log.lines().join("\n");
    assert!(!logs.contains(token), "the token appears in the logs");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_studio_credentials_get_a_stable_code_and_enqueue_nothing() {
    let stack = start(platform_options()).await;
    let token = stack.resources.secrets.studio.clone();
    let signed = cxbridge_local::samples::signed_headers(
        &stack.resources.secrets.webhook,
        cxbridge::clock::now_secs(),
        &good_form(&token).body,
        &unique("d-"),
        "contact.routed",
    );
    let cases = vec![
        Case {
            name: "no credentials",
            request: good_form(&token).without("x-api-key"),
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
        },
        Case {
            name: "wrong X-API-Key",
            request: good_form(&token).set("x-api-key", "not-the-token"),
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
        },
        Case {
            name: "wrong bearer token",
            request: good_form(&token)
                .without("x-api-key")
                .set("authorization", "Bearer not-the-token"),
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
        },
        Case {
            name: "the token as Basic credentials",
            request: good_form(&token)
                .without("x-api-key")
                .set("authorization", format!("Basic {token}")),
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
        },
        Case {
            name: "the token without a scheme",
            request: good_form(&token)
                .without("x-api-key")
                .set("authorization", token.clone()),
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
        },
        Case {
            name: "a token with a character more",
            request: good_form(&token).set("x-api-key", format!("{token}0")),
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
        },
        Case {
            name: "a CXone signature instead of a token",
            request: signed
                .iter()
                .fold(good_form(&token).without("x-api-key"), |r, (k, v)| {
                    r.set(k, v.as_str())
                }),
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
        },
    ];
    each_refused(&stack, cases).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_studio_delivery_ids_get_a_stable_code_and_enqueue_nothing() {
    let stack = start(platform_options()).await;
    let token = stack.resources.secrets.studio.clone();
    let cases = vec![
        Case {
            name: "no delivery id in the header or the body",
            request: good_form(&token).without("x-delivery-id"),
            status: StatusCode::BAD_REQUEST,
            code: "missing_delivery_id",
        },
        Case {
            name: "an empty X-Delivery-Id",
            request: good_form(&token).set("x-delivery-id", ""),
            status: StatusCode::BAD_REQUEST,
            code: "missing_delivery_id",
        },
        Case {
            name: "a blank delivery id in the body",
            request: StudioRequest::json(&token, &json!({"deliveryId": "   ", "contactId": "c-1"})),
            status: StatusCode::BAD_REQUEST,
            code: "missing_delivery_id",
        },
        Case {
            name: "a delivery id that is not a string",
            request: StudioRequest::json(
                &token,
                &json!({"deliveryId": {"id": 1}, "contactId": "c-1"}),
            ),
            status: StatusCode::BAD_REQUEST,
            code: "missing_delivery_id",
        },
        Case {
            name: "a non-ASCII X-Delivery-Id",
            request: good_form(&token).set("x-delivery-id", "d\u{e9}-1".as_bytes()),
            status: StatusCode::BAD_REQUEST,
            code: "missing_delivery_id",
        },
        Case {
            name: "a non-ASCII delivery id in the body",
            request: StudioRequest::json(
                &token,
                &json!({"deliveryId": "d\u{e9}-1", "contactId": "c-1"}),
            ),
            status: StatusCode::BAD_REQUEST,
            code: "missing_delivery_id",
        },
        Case {
            name: "an overlong X-Delivery-Id",
            request: good_form(&token).set("x-delivery-id", "d".repeat(257)),
            status: StatusCode::BAD_REQUEST,
            code: "missing_delivery_id",
        },
        Case {
            name: "a Studio variable that was not replaced",
            request: good_form(&token).set("x-delivery-id", "{deliveryId}"),
            status: StatusCode::BAD_REQUEST,
            code: "missing_delivery_id",
        },
    ];
    each_refused(&stack, cases).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_studio_bodies_get_a_stable_code_and_enqueue_nothing() {
    let stack = start(platform_options()).await;
    let token = stack.resources.secrets.studio.clone();
    let cases = vec![
        Case {
            name: "text/plain",
            request: good_form(&token).set("content-type", "text/plain"),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
        },
        Case {
            name: "no Content-Type",
            request: good_form(&token).without("content-type"),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
        },
        Case {
            name: "XML, which only CXone's route takes",
            request: good_form(&token)
                .set("content-type", "application/xml")
                .body("<a>1</a>"),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
        },
        Case {
            name: "malformed JSON",
            request: StudioRequest::json(&token, &json!({})).body("{\"deliveryId\": \"d-1\", "),
            status: StatusCode::BAD_REQUEST,
            code: "malformed_body",
        },
        Case {
            name: "a JSON array",
            request: StudioRequest::json(&token, &json!([{"deliveryId": "d-1"}])),
            status: StatusCode::BAD_REQUEST,
            code: "malformed_body",
        },
        Case {
            name: "a JSON array under the form content type",
            request: StudioRequest::json(
                &token,
                &json!([{"deliveryId": "d-1", "contactId": "c-1"}]),
            )
            .set("content-type", FORM)
            .set("x-delivery-id", "d-json-as-form"),
            status: StatusCode::BAD_REQUEST,
            code: "malformed_body",
        },
        Case {
            name: "an empty body",
            request: good_form(&token).body(""),
            status: StatusCode::BAD_REQUEST,
            code: "malformed_body",
        },
        Case {
            name: "a form body that is not UTF-8",
            request: good_form(&token).body(&b"ContactID=\xff\xfe"[..]),
            status: StatusCode::BAD_REQUEST,
            code: "malformed_body",
        },
        Case {
            name: "percent-encoded bytes that are not UTF-8",
            request: good_form(&token).body("ContactID=%C3%28"),
            status: StatusCode::BAD_REQUEST,
            code: "malformed_body",
        },
        Case {
            name: "a body over 256 KiB",
            request: good_form(&token).body(format!("ContactID={}", "1".repeat(256 * 1024))),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
        },
    ];
    each_refused(&stack, cases).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_sends_studio_requests_that_are_accepted() {
    let stack = start(platform_options()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let cli = |args: &[&str], token: &str| {
        let mut command = tokio::process::Command::new(cxbridge_e2e::bin_dir().join("cxbridge"));
        command
            .args(["send", "webhook", "--channel", "studio"])
            .args(args)
            .arg("--to")
            .arg(format!("{}/webhooks/studio", stack.gateway_url))
            .args(["--token", token]);
        command
    };
    let token = stack.resources.secrets.studio.clone();
    for (args, count) in [(&["--count", "2"][..], 2), (&["--format", "json"][..], 1)] {
        let out = cli(args, &token).output().await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.contains(" 202 Accepted "))
                .count(),
            count,
            "{stdout}"
        );
    }
    stack.relayed().await;
    let landed = receive_all(&sqs, &stack.resources.queues["events"].url).await;
    assert_eq!(landed.len(), 3);
    for m in &landed {
        let event: Value = serde_json::from_str(m.body().unwrap()).unwrap();
        assert_eq!(event["channel"], "studio", "{event}");
        assert!(
            event["interactionId"]
                .as_str()
                .is_some_and(|id| id.starts_with("studio-")),
            "{event}"
        );
        assert_eq!(event["customer"]["type"], "phone", "{event}");
    }

    let refused = cli(&[], "wrong").output().await.unwrap();
    assert!(
        !refused.status.success(),
        "a refused request fails the command"
    );
    assert!(String::from_utf8_lossy(&refused.stdout).contains("401"));
}
