//! Helpers for the end-to-end tests: each test gets a stack of its own (its own gateway
//! port, resource names and function processes) on the shared emulator that `make test`
//! starts, so tests run in parallel without seeing each other.
#![allow(clippy::expect_used, clippy::panic)]

pub mod chaos;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cxbridge_local::log::LogSink;
use cxbridge_local::{Stack, StackOptions};

/// The checkout's root.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the checkout")
        .to_path_buf()
}

/// Where cargo put the function binaries: beside this test binary's `deps/` folder.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let dir = exe.parent().expect("the test binary is in a folder");
    if dir.ends_with("deps") {
        dir.parent().expect("deps has a parent").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The emulator `make test` started.
pub fn aws_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .expect("AWS_ENDPOINT_URL is not set: run the tests with `make test`, which starts moto")
}

/// A short random name part, so that parallel tests never share a resource.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        cxbridge::ids::new_uuid().replace('-', "")[..10].to_owned()
    )
}

/// Options for a stack of this test's own.
pub fn options() -> StackOptions {
    let mut options = StackOptions::for_project(&project_root());
    options.bin_dir = bin_dir();
    options.aws_endpoint = Some(aws_endpoint());
    options.prefix = unique("t");
    options.log = LogSink::buffer();
    options.probe = true;
    // A busy parallel test run on two cores can slow an init well past Lambda's 10 s.
    options.init_limit = Duration::from_secs(30);
    // These tests were written against the integration guides' API: they say so, since
    // the platform is the default.
    options.profile = "documented".to_owned();
    // The deployed default routing (every event to `events`, no named targets); the
    // targets' tests take the local default with [`with_local_targets`].
    options.webhook_config = Some(cxbridge_local::bootstrap::EVENTS_ONLY_CONFIG.to_owned());
    options
}

/// `options` with the local stack's default routing: `events`, the HTTPS target `audit`
/// and the EventBridge target `bus`.
pub fn with_local_targets(mut options: StackOptions) -> StackOptions {
    options.webhook_config = None;
    options
}

/// Options for a stack of this test's own on the real platform's profile, the default.
pub fn platform_options() -> StackOptions {
    let mut options = options();
    options.profile = "incontact".to_owned();
    options
}

/// Starts a stack and waits until every function has either started or failed to.
pub async fn start(options: StackOptions) -> TestStack {
    let stack = Stack::start(options).await.expect("the local stack starts");
    tokio::time::timeout(Duration::from_secs(60), stack.settled())
        .await
        .expect("every function settles within 60 s");
    TestStack(stack)
}

/// A local stack started for one test, with the calls tests make against it: the gateway's
/// routes with the stack's credentials, the simulator's control API and journal, the
/// secret, and the `cxbridge` CLI. It derefs to the [`Stack`] for its URLs and resources.
pub struct TestStack(Stack);

impl std::ops::Deref for TestStack {
    type Target = Stack;
    fn deref(&self) -> &Stack {
        &self.0
    }
}

impl TestStack {
    /// Stops every process of the stack.
    pub async fn shutdown(self) {
        self.0.shutdown().await;
    }

    /// Waits until event-relay has sent on what every webhook accepted so far recorded in
    /// its outbox: from then on the queues hold all of it.
    pub async fn relayed(&self) {
        assert!(
            self.outbox_relayed(Duration::from_secs(20)).await,
            "event-relay did not catch up with the table's stream within 20 s"
        );
    }

    /// `POST /signals/{name}` with the stack's API key and an idempotency key.
    pub async fn post_signal(
        &self,
        name: &str,
        key: &str,
        body: &serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/signals/{name}", self.gateway_url))
            .header("x-api-key", &self.resources.secrets.api_key)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .expect("the gateway answers");
        answer(response).await
    }

    /// `GET /executions/{id}` with the stack's API key.
    pub async fn execution(&self, id: &str) -> (reqwest::StatusCode, serde_json::Value) {
        let response = reqwest::Client::new()
            .get(format!("{}/executions/{id}", self.gateway_url))
            .header("x-api-key", &self.resources.secrets.api_key)
            .send()
            .await
            .expect("the gateway answers");
        answer(response).await
    }

    /// Waits until the execution `id` has `status`, and returns its record.
    pub async fn wait_for_execution(&self, id: &str, status: &str) -> serde_json::Value {
        eventually(
            &format!("execution {id} to be {status}"),
            Duration::from_secs(20),
            || async {
                let (code, body) = self.execution(id).await;
                (code == reqwest::StatusCode::OK && body["status"] == status).then_some(body)
            },
        )
        .await
    }

    /// A sample webhook of `channel` (`cxbridge_local::samples`) under a new delivery id,
    /// signed now with the stack's webhook secret: the sample, its delivery id, and the
    /// request to send.
    pub fn sample_webhook(
        &self,
        channel: &str,
    ) -> (
        cxbridge_local::samples::SampleWebhook,
        String,
        WebhookRequest,
    ) {
        let sample = cxbridge_local::samples::webhook(channel, &unique("r"), 1)
            .expect("a channel the samples know");
        let delivery = unique("d-");
        let request = WebhookRequest::signed(
            &self.resources.secrets.webhook,
            sample.content_type,
            &sample.body,
            &delivery,
            &sample.event_type,
        );
        (sample, delivery, request)
    }

    /// Arms a fault in the CXone simulator, such as
    /// `{"match": "signal", "status": 503, "times": 1}`.
    pub async fn fault(&self, fault: serde_json::Value) {
        self.sim_control("faults", fault).await;
    }

    /// Posts to one of the simulator's control endpoints (`config`, `faults`, …).
    pub async fn sim_control(&self, what: &str, body: serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/_sim/{what}", self.cxone_url))
            .json(&body)
            .send()
            .await
            .expect("the simulator answers");
        assert!(r.status().is_success(), "{what}: {}", r.status());
    }

    /// Every request the stack's CXone simulator has received, oldest first.
    pub async fn journal(&self) -> Vec<serde_json::Value> {
        reqwest::get(format!("{}/_sim/requests", self.cxone_url))
            .await
            .expect("the simulator answers")
            .json()
            .await
            .expect("the journal is JSON")
    }

    /// The journal's requests whose path `keep` accepts.
    pub async fn requests(&self, keep: impl Fn(&str) -> bool) -> Vec<serde_json::Value> {
        self.journal()
            .await
            .into_iter()
            .filter(|e| e["path"].as_str().is_some_and(&keep))
            .collect()
    }

    /// The journal's requests whose path starts with `prefix`.
    pub async fn requests_under(&self, prefix: &str) -> Vec<serde_json::Value> {
        self.requests(|path| path.starts_with(prefix)).await
    }

    /// The stack's secret document, as its `AWSCURRENT` version holds it.
    pub async fn read_secret(&self) -> serde_json::Value {
        let client = aws_sdk_secretsmanager::Client::new(&sdk().await);
        let out = client
            .get_secret_value()
            .secret_id(&self.resources.secret_id)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .expect("the secret is read");
        serde_json::from_str(out.secret_string().expect("a string secret")).expect("JSON")
    }

    /// Writes a new current version of the stack's secret (a rotation).
    pub async fn write_secret(&self, document: &serde_json::Value) {
        aws_sdk_secretsmanager::Client::new(&sdk().await)
            .put_secret_value()
            .secret_id(&self.resources.secret_id)
            .secret_string(document.to_string())
            .send()
            .await
            .expect("the secret is written");
    }

    /// Runs the `cxbridge` binary against the stack (through its state file).
    pub async fn cli(&self, args: &[&str]) -> Run {
        let state = std::env::temp_dir().join(format!("{}.json", unique("cxbridge-state-")));
        self.write_state(&state).expect("the state file is written");
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let output = tokio::task::spawn_blocking(move || {
            let mut command = std::process::Command::new(bin_dir().join("cxbridge"));
            command
                .args(&args)
                .env("CXBRIDGE_STATE", &state)
                .current_dir(project_root());
            for var in [
                "CXBRIDGE_CXONE_PROFILE",
                "CXBRIDGE_CXONE_API_BASE",
                "CXBRIDGE_CXONE_TOKEN_URL",
                "CXBRIDGE_SECRET_ID",
                "CXBRIDGE_URL",
            ] {
                command.env_remove(var);
            }
            let output = command.output().expect("the cxbridge binary runs");
            let _ = std::fs::remove_file(&state);
            output
        })
        .await
        .expect("the CLI's thread ends");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A gateway answer's status and JSON body (`null` when the body is not JSON).
pub async fn answer(response: reqwest::Response) -> (reqwest::StatusCode, serde_json::Value) {
    (
        response.status(),
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A form-urlencoded text (a query, or a form body) as a map of its fields.
pub fn form_fields(text: &str) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

/// An environment override, `function:KEY=VALUE` (`*` for every function).
pub fn setting(text: &str) -> cxbridge_local::EnvOverride {
    text.parse().expect("function:KEY=VALUE")
}

/// `options` with one more environment override, `function:KEY=VALUE`.
pub fn with_setting(mut options: StackOptions, text: &str) -> StackOptions {
    options.env_overrides.push(setting(text));
    options
}

/// `options` with webhook-receiver's routing and targets (`CXBRIDGE_WEBHOOK_CONFIG`) set
/// to `config`.
pub fn with_webhook_config(mut options: StackOptions, config: &serde_json::Value) -> StackOptions {
    options.env_overrides.push(cxbridge_local::EnvOverride {
        function: "webhook-receiver".into(),
        key: "CXBRIDGE_WEBHOOK_CONFIG".into(),
        value: config.to_string(),
    });
    options
}

/// Options whose queues hand a failed job back after 2 s, so retries run in seconds.
pub fn quick_redelivery(mut options: StackOptions) -> StackOptions {
    options.queue_overrides.visibility_timeout = Some(2);
    options
}

/// The `p1`…`p9` of a platform signal in the simulator's journal, wherever they came:
/// the query, the JSON body, or both.
pub fn signal_parameters(entry: &serde_json::Value) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> =
        form_urlencoded::parse(entry["query"].as_str().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    if let Ok(serde_json::Value::Object(body)) =
        serde_json::from_str::<serde_json::Value>(entry["body"].as_str().unwrap_or_default())
    {
        params.extend(body.into_iter().map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        }));
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    params
}

/// SDK configuration for the emulator.
pub async fn sdk() -> aws_config::SdkConfig {
    cxbridge_local::stack::emulator_config(&aws_endpoint()).await
}

/// Messages on a queue right now: visible, in flight and delayed.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> i64 {
    cxbridge_local::poller::queue_depth(sqs, url)
        .await
        .expect("queue attributes")
}

/// Receives every message on a queue (with a short wait), deleting none: each test owns
/// its queues, so what is returned is everything that was sent.
pub async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(if all.is_empty() { 1 } else { 0 })
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        let batch = out.messages.unwrap_or_default();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

/// Receives every message on a queue and deletes each, so that a later read sees only
/// what arrived since, however long the test runs.
pub async fn take_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let messages = receive_all(sqs, url).await;
    for m in &messages {
        if let Some(handle) = m.receipt_handle() {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(handle)
                .send()
                .await
                .expect("delete");
        }
    }
    messages
}

/// A request to the webhook route, signed as CXone signs it.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub content_type: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl WebhookRequest {
    /// Signed now with `secret`, as CXone signs a delivery.
    pub fn signed(
        secret: &str,
        content_type: &str,
        body: &[u8],
        delivery_id: &str,
        event_type: &str,
    ) -> Self {
        let now = cxbridge::clock::now_secs();
        Self::signed_at(secret, content_type, body, delivery_id, event_type, now)
    }

    /// Signed at `now` (epoch seconds): a retry signed afresh, without waiting for the
    /// clock to move.
    pub fn signed_at(
        secret: &str,
        content_type: &str,
        body: &[u8],
        delivery_id: &str,
        event_type: &str,
        now: i64,
    ) -> Self {
        Self {
            content_type: content_type.to_owned(),
            body: body.to_vec(),
            headers: cxbridge_local::samples::signed_headers(
                secret,
                now,
                body,
                delivery_id,
                event_type,
            )
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        }
    }

    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(k, _)| k != name);
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(k, _)| k != name);
        self
    }

    pub async fn send(
        &self,
        client: &reqwest::Client,
        gateway: &str,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = client
            .post(format!("{gateway}/webhooks/cxone"))
            .body(self.body.clone());
        if !self.content_type.is_empty() {
            request = request.header("content-type", &self.content_type);
        }
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        let response = request.send().await.expect("the gateway answers");
        let status = response.status();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }
}

/// A table shaped like the stack's (key `pk`, a stream of new images), for tests that need
/// one of their own.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        StreamSpecification, StreamViewType,
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("a valid attribute definition"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("a valid key schema"),
        )
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .expect("a valid stream specification"),
        )
        .send()
        .await
        .expect("the table is created");
}

/// The AWS calls the emulator has served for SDK app id `app` (a function's
/// `AWS_SDK_UA_APP_ID`), by operation, e.g. `DynamoDB_20120810.PutItem`.
pub async fn aws_calls(aws_endpoint: &str, app: &str) -> std::collections::BTreeMap<String, i64> {
    let all: std::collections::BTreeMap<String, i64> =
        reqwest::get(format!("{aws_endpoint}/_cxbridge/calls"))
            .await
            .expect("the emulator answers")
            .json()
            .await
            .expect("call counts as JSON");
    let prefix = format!("{app} ");
    all.into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_owned(), v)))
        .collect()
}

/// What a CLI run printed and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The standard output, once the run is known to have ended with `code`.
    pub fn expect(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "{}{}", self.stdout, self.stderr);
        &self.stdout
    }
}
