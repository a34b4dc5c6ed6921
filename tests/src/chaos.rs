//! The fault suite (`make chaos`, and a reduced run in `make test`): bad input on every
//! route, concurrent duplicates, CXone faults, AWS faults and the in-progress race, against
//! a local stack with an emulator of its own, which the suite may freeze. Every scenario
//! counts what a user would: answers, what reached CXone or a queue, what sits in the DLQ.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cxbridge_local::{EnvOverride, StackOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{TestStack, WebhookRequest, signal_parameters, unique};

/// How much of everything the suite sends.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Copies of one request sent at once.
    pub copies: usize,
    /// Signals sent through CXone's faults.
    pub cxone_items: usize,
    /// Webhooks sent while the emulator is frozen.
    pub frozen_webhooks: usize,
    /// Jobs in flight when the drainer is killed.
    pub drainer_jobs: usize,
    /// The longest any one scenario may take.
    pub scenario_limit: Duration,
}

impl Size {
    /// The run inside `make test`.
    pub const SMALL: Self = Self {
        copies: 20,
        cxone_items: 12,
        frozen_webhooks: 20,
        drainer_jobs: 6,
        scenario_limit: Duration::from_secs(300),
    };
    /// `make chaos`.
    pub const FULL: Self = Self {
        copies: 200,
        cxone_items: 60,
        frozen_webhooks: 100,
        drainer_jobs: 20,
        scenario_limit: Duration::from_secs(900),
    };
}

/// One scenario's figures.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub scenario: String,
    pub sent: usize,
    pub ok: usize,
    pub refused: usize,
    /// 5xx answers and timeouts, retries included.
    pub failed: usize,
    /// Accepted, and neither delivered nor dead-lettered with a reason.
    pub lost: usize,
    /// Delivered more than once.
    pub duplicated: usize,
    pub dead_lettered: usize,
    /// An answer other than the documented one (bad input), or a 2xx with nothing behind it.
    pub wrong: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    /// Secret and token values found in any log line or answer.
    pub leaks: usize,
    /// Function processes that exited on their own, or panicked.
    pub crashes: usize,
    /// 5xx answers to bad input.
    pub bad_input_5xx: usize,
    /// Work enqueued or sent to CXone for bad input.
    pub bad_input_work: usize,
    /// Scenarios that did not finish within their time limit.
    pub unfinished: Vec<String>,
}

impl Report {
    pub fn lost(&self) -> usize {
        self.rows.iter().map(|r| r.lost).sum()
    }

    pub fn duplicated(&self) -> usize {
        self.rows.iter().map(|r| r.duplicated).sum()
    }

    pub fn wrong(&self) -> usize {
        self.rows.iter().map(|r| r.wrong).sum()
    }

    /// Nothing lost, duplicated, leaked, crashed or answered wrongly, and every scenario
    /// finished.
    pub fn clean(&self) -> bool {
        self.lost() == 0
            && self.duplicated() == 0
            && self.wrong() == 0
            && self.leaks == 0
            && self.bad_input_5xx == 0
            && self.bad_input_work == 0
            && self.crashes == 0
            && self.unfinished.is_empty()
    }

    /// The table `make chaos` prints.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| scenario | sent | 2xx | 4xx | 5xx or timeout | lost | duplicated | dead-lettered | wrong answer |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.scenario,
                r.sent,
                r.ok,
                r.refused,
                r.failed,
                r.lost,
                r.duplicated,
                r.dead_lettered,
                r.wrong
            );
        }
        let _ = writeln!(
            out,
            "\nlost = {}, duplicated = {}, leaks = {}, 5xx on bad input = {}, work for bad input = {}, crashes = {}",
            self.lost(),
            self.duplicated(),
            self.leaks,
            self.bad_input_5xx,
            self.bad_input_work,
            self.crashes
        );
        if !self.unfinished.is_empty() {
            let _ = writeln!(out, "unfinished: {}", self.unfinished.join("; "));
        }
        out
    }
}

/// Where the checkout is, and the emulator the suite starts.
pub struct Setup {
    pub root: PathBuf,
    pub bin_dir: PathBuf,
    pub moto_server: PathBuf,
}

fn stack_options(setup: &Setup, aws_endpoint: Option<String>) -> StackOptions {
    let mut options = StackOptions::for_project(&setup.root);
    options.bin_dir = setup.bin_dir.clone();
    options.moto_server = setup.moto_server.clone();
    options.aws_endpoint = aws_endpoint;
    options.prefix = unique("chaos");
    options.log = cxbridge_local::log::LogSink::buffer();
    options.init_limit = Duration::from_secs(30);
    options.queue_overrides.visibility_timeout = Some(2);
    options.schedule_every = Some(Duration::from_secs(2));
    for o in [
        "*:CXBRIDGE_EXECUTION_DEADLINE_SECS=20",
        "*:CXBRIDGE_JOB_MAX_ATTEMPTS=10",
        "*:CXBRIDGE_JOB_LEASE_SECS=4",
    ] {
        if let Ok(o) = o.parse::<EnvOverride>() {
            options.env_overrides.push(o);
        }
    }
    options
}

async fn started(options: StackOptions) -> TestStack {
    crate::start(options).await
}

/// Runs every scenario and returns the figures.
pub async fn run(setup: &Setup, size: Size) -> Report {
    // The platform profile, the default, with an emulator of the suite's own.
    let stack = Arc::new(started(stack_options(setup, None)).await);
    let mut answers = Answers::default();
    let mut report = Report::default();

    let limit = size.scenario_limit;
    let bad = bounded(
        limit,
        "bad input",
        &mut report,
        bad_input(&stack, &mut answers),
    )
    .await;
    if let Some((row, fives, work)) = bad {
        report.rows.push(row);
        report.bad_input_5xx = fives;
        report.bad_input_work = work;
    }
    let rows = [
        bounded(
            limit,
            "duplicate webhooks",
            &mut report,
            duplicate_webhooks(&stack, size, &mut answers),
        )
        .await,
        bounded(
            limit,
            "duplicate signals",
            &mut report,
            duplicate_signals(&stack, size, &mut answers),
        )
        .await,
        bounded(
            limit,
            "duplicate turns",
            &mut report,
            duplicate_turns(&stack, size, &mut answers),
        )
        .await,
        bounded(
            limit,
            "CXone faults",
            &mut report,
            cxone_faults(&stack, size, &mut answers),
        )
        .await,
        bounded(
            limit,
            "frozen emulator",
            &mut report,
            frozen_emulator(&stack, size, &mut answers),
        )
        .await,
        bounded(
            limit,
            "in-progress race",
            &mut report,
            in_progress_race(&stack, &mut answers),
        )
        .await,
        bounded(
            limit,
            "drainer killed",
            &mut report,
            drainer_killed(&stack, size, &mut answers),
        )
        .await,
        // A queue that refuses messages needs routes of its own: a second stack on the
        // same emulator.
        bounded(
            limit,
            "refusing queue",
            &mut report,
            queue_refuses(setup, &stack.aws_endpoint, &mut answers),
        )
        .await,
    ];
    report.rows.extend(rows.into_iter().flatten());

    report.leaks = leaks(&stack, &answers);
    report.crashes = crashes(&stack);
    report
}

/// Runs one scenario, at most for `limit`; one that does not finish is named in the report
/// (and makes it unclean) instead of holding up the rest.
async fn bounded<T>(
    limit: Duration,
    name: &str,
    report: &mut Report,
    scenario: impl Future<Output = T>,
) -> Option<T> {
    let out = tokio::time::timeout(limit, scenario).await.ok();
    if out.is_none() {
        report
            .unfinished
            .push(format!("{name} (over {} s)", limit.as_secs()));
    }
    out
}

/// The suite's HTTP client: no request waits longer than 30 s.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default()
}

/// The emulator's process group, stopped (SIGSTOP) until this is dropped, even when the
/// scenario that froze it is cut short.
struct Frozen(u32);

impl Frozen {
    fn new(pid: u32) -> Self {
        signal_group(pid, "STOP");
        Self(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal_group(self.0, "CONT");
    }
}

/// Every answer body the suite saw, for the secret scan.
#[derive(Default)]
struct Answers(Vec<String>);

impl Answers {
    fn keep(&mut self, body: &Value) {
        self.0.push(body.to_string());
    }
}

/// An answer: the status, or `None` for a timeout.
type Outcome = (Option<StatusCode>, Value);

async fn send(request: reqwest::RequestBuilder) -> Outcome {
    match request.send().await {
        Ok(r) => {
            let status = r.status();
            (Some(status), r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (None, Value::Null),
    }
}

/// What CXone does with a webhook: gives up after 1 s, retries 5xx and timeouts (here up
/// to `attempts` times, a second apart), and never retries a 4xx. Returns every outcome.
async fn like_cxone(
    client: &reqwest::Client,
    attempts: usize,
    build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for _ in 0..attempts {
        let outcome = send(build(client).timeout(Duration::from_secs(1))).await;
        let retry = outcome.0.is_none_or(|s| s.is_server_error());
        outcomes.push(outcome);
        if !retry {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    outcomes
}

fn count(row: &mut Row, outcomes: &[Outcome]) {
    for (status, _) in outcomes {
        row.sent += 1;
        match status {
            Some(s) if s.is_success() => row.ok += 1,
            Some(s) if s.is_client_error() => row.refused += 1,
            _ => row.failed += 1,
        }
    }
}

fn succeeded(outcomes: &[Outcome]) -> bool {
    outcomes
        .last()
        .is_some_and(|(s, _)| s.is_some_and(|s| s.is_success()))
}

async fn sqs(stack: &TestStack) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&cxbridge_local::stack::emulator_config(&stack.aws_endpoint).await)
}

/// Every message on a queue once event-relay has sent what every accepted webhook
/// recorded, each once, none deleted.
async fn messages(stack: &TestStack, queue: &str) -> Vec<Value> {
    stack.relayed().await;
    let url = &stack.resources.queues[queue].url;
    crate::receive_all(&sqs(stack).await, url)
        .await
        .iter()
        .filter_map(|m| serde_json::from_str(m.body().unwrap_or_default()).ok())
        .collect()
}

/// Platform signals CXone accepted, by their `p1`.
async fn accepted_signals(stack: &TestStack) -> HashMap<String, usize> {
    let mut by_p1 = HashMap::new();
    for e in stack.requests(|path| path.ends_with("/signal")).await {
        if e["status"]
            .as_u64()
            .is_some_and(|s| (200..300).contains(&s))
        {
            let p1 = signal_parameters(&e)
                .into_iter()
                .find(|(k, _)| k == "p1")
                .map(|(_, v)| v)
                .unwrap_or_default();
            *by_p1.entry(p1).or_insert(0) += 1;
        }
    }
    by_p1
}

/// Calls that act on CXone (not token fetches).
async fn cxone_actions(stack: &TestStack) -> usize {
    stack
        .journal()
        .await
        .iter()
        .filter(|e| {
            let p = e["path"].as_str().unwrap_or_default();
            p.starts_with("/inContactAPI/") || (p.starts_with("/api/v2/") && !p.contains("/oauth/"))
        })
        .count()
}

fn webhook(stack: &TestStack, body: &Value, delivery_id: &str) -> WebhookRequest {
    WebhookRequest::signed(
        &stack.resources.secrets.webhook,
        "application/json",
        body.to_string().as_bytes(),
        delivery_id,
        "interaction.created",
    )
}

fn chat(contact: &str) -> Value {
    json!({"eventType": "interaction.created", "data": {"id": contact, "channelType": "chat",
           "customer": {"email": "a@example.com"}, "queue": {"name": "VIP"}}})
}

fn post_webhook(
    stack: &TestStack,
    request: &WebhookRequest,
) -> impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static + use<> {
    let url = format!("{}/webhooks/cxone", stack.gateway_url);
    let (content_type, body, headers) = (
        request.content_type.clone(),
        request.body.clone(),
        request.headers.clone(),
    );
    move |client| {
        let mut r = client
            .post(&url)
            .header("content-type", &content_type)
            .body(body.clone());
        for (k, v) in &headers {
            r = r.header(k, v);
        }
        r
    }
}

fn order_update(contact: &str) -> Value {
    json!({
        "data": {"customerId": "C-1", "orderId": "O-77", "updateType": "shipped", "priority": "high",
                 "timestamp": "2026-11-22T09:00:00Z", "address": {"city": "Leeds", "zip": "LS1 4AP"}},
        "metadata": {"sourceSystem": "chaos", "contactId": contact}
    })
}

fn post_signal(
    stack: &TestStack,
    key: &str,
    body: &Value,
) -> impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static + use<> {
    let url = format!("{}/signals/order-update", stack.gateway_url);
    let (api_key, key, body) = (
        stack.resources.secrets.api_key.clone(),
        key.to_owned(),
        body.clone(),
    );
    move |client| {
        client
            .post(&url)
            .header("x-api-key", &api_key)
            .header("idempotency-key", &key)
            .json(&body)
    }
}

/// One bad request: where, what, and the documented answer.
struct Bad {
    what: &'static str,
    request: reqwest::RequestBuilder,
    status: u16,
    code: &'static str,
}

fn bad_requests(stack: &TestStack, client: &reqwest::Client) -> Vec<Bad> {
    let g = &stack.gateway_url;
    let s = &stack.resources.secrets;
    let mut out = Vec::new();
    let mut add = |what, request, status, code| {
        out.push(Bad {
            what,
            request,
            status,
            code,
        });
    };
    // POST /webhooks/cxone
    let good = webhook(stack, &chat("5012"), &unique("bad-"));
    let hook = |r: &WebhookRequest| post_webhook(stack, r)(client);
    add(
        "webhook without a signature",
        hook(&good.clone().without("x-nexus-signature-256")),
        401,
        "missing_signature_header",
    );
    add(
        "webhook without a timestamp",
        hook(&good.clone().without("x-nexus-timestamp")),
        401,
        "missing_signature_header",
    );
    add(
        "webhook with a malformed signature",
        hook(&good.clone().set("x-nexus-signature-256", "sha256=zz")),
        401,
        "malformed_signature",
    );
    add(
        "webhook signed with sha1",
        hook(&good.clone().set("x-nexus-signature-256", "sha1=abcd")),
        401,
        "malformed_signature",
    );
    add(
        "webhook with a word for a timestamp",
        hook(&good.clone().set("x-nexus-timestamp", "soon")),
        401,
        "timestamp_not_numeric",
    );
    add(
        "webhook from an hour ago",
        hook(&good.clone().set(
            "x-nexus-timestamp",
            &(cxbridge::clock::now_secs() - 3600).to_string(),
        )),
        401,
        "timestamp_too_old",
    );
    add(
        "webhook from an hour ahead",
        hook(&good.clone().set(
            "x-nexus-timestamp",
            &(cxbridge::clock::now_secs() + 3600).to_string(),
        )),
        401,
        "timestamp_in_future",
    );
    add(
        "webhook signed with another secret",
        hook(&webhook_with_secret("not-the-secret", &chat("5012"))),
        401,
        "signature_mismatch",
    );
    add(
        "webhook without a delivery id",
        hook(&good.clone().without("x-nexus-delivery-id")),
        400,
        "missing_delivery_id",
    );
    add(
        "webhook with a 300-character delivery id",
        hook(&webhook(stack, &chat("5012"), &"d".repeat(300))),
        400,
        "missing_delivery_id",
    );
    add(
        "webhook with a delivery id with a space",
        hook(&good.clone().set("x-nexus-delivery-id", "a b")),
        400,
        "missing_delivery_id",
    );
    let signed_text = |text: &str, ct: &str| {
        let mut r = WebhookRequest::signed(
            &s.webhook,
            ct,
            text.as_bytes(),
            &unique("bad-"),
            "interaction.created",
        );
        r.content_type = ct.to_owned();
        r
    };
    add(
        "webhook with broken JSON",
        hook(&signed_text("{not json", "application/json")),
        400,
        "malformed_body",
    );
    add(
        "webhook with a JSON array",
        hook(&signed_text("[1,2]", "application/json")),
        400,
        "malformed_body",
    );
    add(
        "webhook with an empty body",
        hook(&signed_text("", "application/json")),
        400,
        "malformed_body",
    );
    add(
        "webhook with broken XML",
        hook(&signed_text("<a><b></a>", "application/xml")),
        400,
        "malformed_body",
    );
    add(
        "webhook as text/plain",
        hook(&signed_text("{}", "text/plain")),
        415,
        "unsupported_media_type",
    );
    add(
        "webhook as a form",
        hook(&signed_text("a=1", "application/x-www-form-urlencoded")),
        415,
        "unsupported_media_type",
    );
    add(
        "webhook over 256 KiB",
        hook(&signed_text(
            &format!("{{\"a\":\"{}\"}}", "x".repeat(270_000)),
            "application/json",
        )),
        413,
        "payload_too_large",
    );
    let control = format!("<E><Id>1</Id><N>{}</N></E>", "\u{1}".repeat(60_000));
    add(
        "webhook whose event outgrows a queue message",
        hook(&signed_text(&control, "application/xml")),
        413,
        "payload_too_large",
    );
    add(
        "GET on the webhook route (API Gateway's 404)",
        client.get(format!("{g}/webhooks/cxone")),
        404,
        "",
    );

    // POST /webhooks/studio
    let studio = |token: Option<&str>, id: Option<&str>, ct: &str, body: &str| {
        let mut r = client
            .post(format!("{g}/webhooks/studio"))
            .header("content-type", ct)
            .body(body.to_owned());
        if let Some(t) = token {
            r = r.header("x-api-key", t);
        }
        if let Some(i) = id {
            r = r.header("x-delivery-id", i);
        }
        r
    };
    let form = "application/x-www-form-urlencoded";
    add(
        "Studio without a token",
        studio(None, Some("s-1"), form, "ContactID=1"),
        401,
        "unauthorized",
    );
    add(
        "Studio with a wrong token",
        studio(Some("wrong"), Some("s-1"), form, "ContactID=1"),
        401,
        "unauthorized",
    );
    add(
        "Studio without a delivery id",
        studio(Some(&s.studio), None, form, "ContactID=1"),
        400,
        "missing_delivery_id",
    );
    add(
        "Studio with an empty form",
        studio(Some(&s.studio), Some("s-2"), form, ""),
        400,
        "malformed_body",
    );
    add(
        "Studio with broken JSON",
        studio(Some(&s.studio), Some("s-3"), "application/json", "{oops"),
        400,
        "malformed_body",
    );
    add(
        "Studio with a JSON string",
        studio(Some(&s.studio), Some("s-4"), "application/json", "\"x\""),
        400,
        "malformed_body",
    );
    add(
        "Studio as XML",
        studio(Some(&s.studio), Some("s-5"), "application/xml", "<a/>"),
        415,
        "unsupported_media_type",
    );
    add(
        "Studio over 256 KiB",
        studio(
            Some(&s.studio),
            Some("s-6"),
            form,
            &format!("a={}", "x".repeat(270_000)),
        ),
        413,
        "payload_too_large",
    );

    // POST /signals/{name}
    let signal = |name: &str, key: Option<&[u8]>, api: Option<&str>, body: String| {
        let mut r = client
            .post(format!("{g}/signals/{name}"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(k) = key {
            r = r.header(
                "idempotency-key",
                reqwest::header::HeaderValue::from_bytes(k)
                    .unwrap_or(reqwest::header::HeaderValue::from_static("x")),
            );
        }
        if let Some(a) = api {
            r = r.header("x-api-key", a);
        }
        r
    };
    let ok_body = order_update("4001").to_string();
    let api = Some(s.api_key.as_str());
    add(
        "signal without an API key",
        signal("order-update", Some(b"k1"), None, ok_body.clone()),
        401,
        "unauthorized",
    );
    add(
        "signal with a wrong API key",
        signal("order-update", Some(b"k1"), Some("nope"), ok_body.clone()),
        401,
        "unauthorized",
    );
    add(
        "signal that is not defined",
        signal("no-such", Some(b"k2"), api, ok_body.clone()),
        404,
        "signal_not_found",
    );
    add(
        "signal with broken JSON",
        signal("order-update", Some(b"k3"), api, "{".into()),
        400,
        "malformed_body",
    );
    add(
        "signal with a JSON array",
        signal("order-update", Some(b"k4"), api, "[]".into()),
        400,
        "malformed_body",
    );
    add(
        "signal with data missing",
        signal(
            "order-update",
            Some(b"k5"),
            api,
            json!({"metadata": {"contactId": "4001"}}).to_string(),
        ),
        422,
        "invalid_payload",
    );
    let mut wrong_type = order_update("4001");
    wrong_type["data"]["priority"] = json!(5);
    add(
        "signal with a number for a string",
        signal("order-update", Some(b"k6"), api, wrong_type.to_string()),
        422,
        "invalid_payload",
    );
    let mut extra = order_update("4001");
    extra["data"]["unknown"] = json!("x");
    add(
        "signal with an undeclared variable",
        signal("order-update", Some(b"k7"), api, extra.to_string()),
        422,
        "invalid_payload",
    );
    let mut bad_date = order_update("4001");
    bad_date["data"]["timestamp"] = json!("yesterday");
    add(
        "signal with a bad datetime",
        signal("order-update", Some(b"k8"), api, bad_date.to_string()),
        422,
        "invalid_payload",
    );
    add(
        "signal with metadata a string",
        signal(
            "order-update",
            Some(b"k9"),
            api,
            json!({"data": {}, "metadata": "x"}).to_string(),
        ),
        422,
        "invalid_payload",
    );
    add(
        "signal with no contact id",
        signal(
            "order-update",
            Some(b"k10"),
            api,
            json!({"data": order_update("1")["data"], "metadata": {}}).to_string(),
        ),
        422,
        "invalid_payload",
    );
    add(
        "signal to contact ..",
        signal(
            "order-update",
            Some(b"k11"),
            api,
            order_update("..").to_string(),
        ),
        422,
        "invalid_payload",
    );
    add(
        "signal to contact .",
        signal(
            "order-update",
            Some(b"k12"),
            api,
            order_update(".").to_string(),
        ),
        422,
        "invalid_payload",
    );
    add(
        "signal to a contact with a slash",
        signal(
            "order-update",
            Some(b"k13"),
            api,
            order_update("1/../2").to_string(),
        ),
        422,
        "invalid_payload",
    );
    add(
        "signal to a 66,000-character contact",
        signal(
            "order-update",
            Some(b"k14"),
            api,
            order_update(&"7".repeat(66_000)).to_string(),
        ),
        422,
        "invalid_payload",
    );
    add(
        "signal with a non-ASCII key",
        signal("order-update", Some("clé".as_bytes()), api, ok_body.clone()),
        400,
        "bad_request",
    );
    add(
        "signal with a 3,000-character key",
        signal(
            "order-update",
            Some("k".repeat(3000).as_bytes()),
            api,
            ok_body.clone(),
        ),
        400,
        "bad_request",
    );
    add("signal with an object correlationId", signal("order-update", None, api, json!({"data": order_update("1")["data"], "metadata": {"contactId": "4001", "correlationId": {"a": 1}}}).to_string()), 422, "invalid_payload");
    add(
        "signal with a | in a spawn key",
        signal(
            "order-created",
            Some(b"a|b"),
            api,
            json!({"data": {"customerId": "C", "orderId": "O", "priority": "high"}}).to_string(),
        ),
        400,
        "bad_request",
    );

    // GET /executions/{id}
    let exec = |id: &str, api: Option<&str>| {
        let mut r = client.get(format!("{g}/executions/{id}"));
        if let Some(a) = api {
            r = r.header("x-api-key", a);
        }
        r
    };
    add(
        "execution without an API key",
        exec("x", None),
        401,
        "unauthorized",
    );
    add(
        "execution that does not exist",
        exec("nothing-here", api),
        404,
        "execution_not_found",
    );
    add(
        "execution with a 3,000-character id",
        exec(&"x".repeat(3000), api),
        400,
        "bad_request",
    );

    // POST /callbacks/studio (a token on the platform)
    let callback = |token: Option<&str>, body: String| {
        let mut r = client
            .post(format!("{g}/callbacks/studio"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            r = r.header("x-callback-token", t);
        }
        r
    };
    let cb = Some(s.callback.as_str());
    add(
        "callback without a token",
        callback(
            None,
            json!({"correlationId": "c", "status": "completed"}).to_string(),
        ),
        401,
        "unauthorized",
    );
    add(
        "callback with a wrong token",
        callback(
            Some("nope"),
            json!({"correlationId": "c", "status": "completed"}).to_string(),
        ),
        401,
        "unauthorized",
    );
    add(
        "callback with broken JSON",
        callback(cb, "{".into()),
        400,
        "malformed_body",
    );
    add(
        "callback with no correlation id",
        callback(cb, json!({"status": "completed"}).to_string()),
        400,
        "bad_request",
    );
    add(
        "callback with an unknown status",
        callback(
            cb,
            json!({"correlationId": "c", "status": "done"}).to_string(),
        ),
        400,
        "bad_request",
    );
    add(
        "callback with outputs a list",
        callback(
            cb,
            json!({"correlationId": "c", "status": "completed", "outputs": []}).to_string(),
        ),
        400,
        "bad_request",
    );
    add(
        "callback with a 3,000-character id",
        callback(
            cb,
            json!({"correlationId": "c".repeat(3000), "status": "completed"}).to_string(),
        ),
        400,
        "bad_request",
    );
    add(
        "callback for no execution",
        callback(
            cb,
            json!({"correlationId": unique("none-"), "status": "completed"}).to_string(),
        ),
        404,
        "execution_not_found",
    );

    // POST /cognigy/intents
    let intent = |auth: Option<&str>, ct: &str, body: String| {
        let mut r = client
            .post(format!("{g}/cognigy/intents"))
            .header("content-type", ct)
            .body(body);
        if let Some(a) = auth {
            r = r.header("x-api-key", a);
        }
        r
    };
    let cg = Some(s.cognigy.as_str());
    let turn = |contact: &str| {
        json!({"contactId": contact, "intent": "cancel", "intentScore": 0.9, "inputId": unique("i-")}).to_string()
    };
    add(
        "intent without a token",
        intent(None, "application/json", turn("700123")),
        401,
        "unauthorized",
    );
    add(
        "intent with a wrong token",
        intent(Some("nope"), "application/json", turn("700123")),
        401,
        "unauthorized",
    );
    add(
        "intent with broken JSON",
        intent(cg, "application/json", "{".into()),
        400,
        "malformed_body",
    );
    add(
        "intent as XML",
        intent(cg, "application/xml", "<a/>".into()),
        415,
        "unsupported_media_type",
    );
    add(
        "intent to contact ..",
        intent(cg, "application/json", turn("..")),
        422,
        "invalid_payload",
    );
    add(
        "intent to a 66,000-character contact",
        intent(cg, "application/json", turn(&"7".repeat(66_000))),
        422,
        "invalid_payload",
    );
    add("intent with a score of \"high\"", intent(cg, "application/json", json!({"contactId": "700123", "intent": "cancel", "intentScore": "high", "inputId": unique("i-")}).to_string()), 422, "invalid_payload");

    // Anything else
    add(
        "a route that does not exist (API Gateway's 404)",
        client.get(format!("{g}/nowhere")),
        404,
        "",
    );
    add(
        "DELETE on signals (API Gateway's 404)",
        client.delete(format!("{g}/signals/order-update")),
        404,
        "",
    );
    out
}

fn webhook_with_secret(secret: &str, body: &Value) -> WebhookRequest {
    WebhookRequest::signed(
        secret,
        "application/json",
        body.to_string().as_bytes(),
        &unique("bad-"),
        "interaction.created",
    )
}

/// Jobs on the queue that carry work: the schedule's sweep jobs come and go on their own.
async fn work_jobs(stack: &TestStack) -> usize {
    messages(stack, "jobs")
        .await
        .iter()
        .filter(|j| j["kind"] != "sweep")
        .count()
}

/// Every bad request gets its documented 4xx, and nothing is enqueued or sent.
async fn bad_input(stack: &TestStack, answers: &mut Answers) -> (Row, usize, usize) {
    let client = client();
    let mut row = Row {
        scenario: "bad input on every route".into(),
        ..Row::default()
    };
    let mut fives = 0;
    let events_before = messages(stack, "events").await.len();
    let jobs_before = work_jobs(stack).await;
    let actions_before = cxone_actions(stack).await;
    for bad in bad_requests(stack, &client) {
        let (status, body) = send(bad.request).await;
        answers.keep(&body);
        count(&mut row, &[(status, body.clone())]);
        if status.is_none_or(|s| s.is_server_error()) {
            fives += 1;
        }
        // An empty code is API Gateway's own answer to a route it does not have.
        let code = match bad.code {
            "" => body["message"].as_str().unwrap_or("?"),
            _ => body["error"]["code"].as_str().unwrap_or_default(),
        };
        let expected = match bad.code {
            "" => "Not Found",
            other => other,
        };
        if status.map(|s| s.as_u16()) != Some(bad.status) || code != expected {
            row.wrong += 1;
            eprintln!(
                "chaos: {}: expected {} {}, got {status:?} {body}",
                bad.what, bad.status, bad.code
            );
        }
    }
    let work = messages(stack, "events")
        .await
        .len()
        .saturating_sub(events_before)
        + work_jobs(stack).await.saturating_sub(jobs_before)
        + cxone_actions(stack).await.saturating_sub(actions_before);
    (row, fives, work)
}

/// Copies of one signed webhook at once, and the same signed request under new ids.
async fn duplicate_webhooks(stack: &Arc<TestStack>, size: Size, answers: &mut Answers) -> Row {
    let mut row = Row {
        scenario: format!("{} copies of a webhook, and 5 replays", size.copies),
        ..Row::default()
    };
    let delivery = unique("dup-");
    let request = webhook(stack, &chat(&unique("c")), &delivery);
    let build = Arc::new(post_webhook(stack, &request));
    let client = client();
    let mut copies = tokio::task::JoinSet::new();
    for _ in 0..size.copies {
        let (build, client) = (build.clone(), client.clone());
        copies.spawn(async move { like_cxone(&client, 10, |c| build(c)).await });
    }
    for outcomes in copies.join_all().await {
        for (_, body) in &outcomes {
            answers.keep(body);
        }
        count(&mut row, &outcomes);
    }
    // The same signature under new delivery ids: replays, refused.
    for _ in 0..5 {
        let replay = request
            .clone()
            .set("x-nexus-delivery-id", &unique("replay-"));
        let outcome = send(post_webhook(stack, &replay)(&client)).await;
        if outcome.0 != Some(StatusCode::CONFLICT) {
            row.wrong += 1;
        }
        answers.keep(&outcome.1);
        count(&mut row, &[outcome]);
    }
    let landed = messages(stack, "events")
        .await
        .iter()
        .filter(|e| e["deliveryId"] == delivery.as_str())
        .count();
    tally(&mut row, landed, 0);
    row
}

/// Task results in the order the tasks were spawned (a join set yields them as they end).
fn in_order<T>(mut results: Vec<(usize, T)>) -> Vec<T> {
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// `delivered` copies of one accepted item: none is lost, more than one is duplicated.
fn tally(row: &mut Row, delivered: usize, dead_lettered: usize) {
    row.dead_lettered += dead_lettered;
    match delivered {
        0 if dead_lettered == 0 => row.lost += 1,
        0 | 1 => {}
        n => row.duplicated += n - 1,
    }
}

async fn duplicate_signals(stack: &Arc<TestStack>, size: Size, answers: &mut Answers) -> Row {
    let mut row = Row {
        scenario: format!("{} copies of a signal", size.copies),
        ..Row::default()
    };
    let key = unique("dup-sig-");
    let build = Arc::new(post_signal(stack, &key, &order_update("4100")));
    let client = client();
    let mut copies = tokio::task::JoinSet::new();
    for _ in 0..size.copies {
        let (build, client) = (build.clone(), client.clone());
        copies.spawn(async move { like_cxone(&client, 10, |c| build(c)).await });
    }
    for outcomes in copies.join_all().await {
        for (_, body) in &outcomes {
            answers.keep(body);
        }
        count(&mut row, &outcomes);
    }
    let delivered = accepted_signals(stack)
        .await
        .get(&key)
        .copied()
        .unwrap_or(0);
    tally(&mut row, delivered, 0);
    row
}

async fn duplicate_turns(stack: &Arc<TestStack>, size: Size, answers: &mut Answers) -> Row {
    let mut row = Row {
        scenario: format!("{} copies of a Cognigy turn", size.copies),
        ..Row::default()
    };
    let contact = format!(
        "7{}",
        &unique("")[..6]
            .bytes()
            .map(|b| (b % 10).to_string())
            .collect::<String>()
    );
    let body = json!({"contactId": contact, "intent": "cancel", "intentScore": 0.93, "inputId": unique("in-"), "sessionId": unique("s-")});
    let url = format!("{}/cognigy/intents", stack.gateway_url);
    let token = stack.resources.secrets.cognigy.clone();
    let build =
        Arc::new(move |c: &reqwest::Client| c.post(&url).header("x-api-key", &token).json(&body));
    let client = client();
    let mut copies = tokio::task::JoinSet::new();
    for _ in 0..size.copies {
        let (build, client) = (build.clone(), client.clone());
        // Cognigy's HTTP request node: a timeout of its own, and a retry on a 5xx.
        copies.spawn(async move {
            like_cxone(&client, 10, |c| build(c).timeout(Duration::from_secs(8))).await
        });
    }
    for outcomes in copies.join_all().await {
        for (_, body) in &outcomes {
            answers.keep(body);
        }
        count(&mut row, &outcomes);
    }
    // The mapped action goes to CXone as one signal on the contact, p1 = the action.
    let on_contact = format!("/interactions/{contact}/signal");
    let delivered = stack
        .requests(|path| path.contains(&on_contact))
        .await
        .iter()
        .filter(|e| {
            e["status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s))
        })
        .count();
    tally(&mut row, delivered, 0);
    row
}

/// Executions' states, by correlation id.
async fn execution_status(stack: &TestStack, key: &str) -> String {
    stack.execution(key).await.1["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until every key's execution is settled (delivered or given up), for at most
/// `limit`.
async fn settle(stack: &TestStack, keys: &[String], limit: Duration) -> HashMap<String, String> {
    let deadline = Instant::now() + limit;
    let mut states = HashMap::new();
    loop {
        states.clear();
        for key in keys {
            states.insert(key.clone(), execution_status(stack, key).await);
        }
        let open = states
            .values()
            .filter(|s| matches!(s.as_str(), "pending" | ""))
            .count();
        if open == 0 || Instant::now() > deadline {
            return states;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// 1 when the execution ended in the DLQ with its reason (`dead_lettered` after its
/// attempts, `failed` at once on a permanent error).
fn given_up(states: &HashMap<String, String>, key: &str) -> usize {
    usize::from(
        states
            .get(key)
            .is_some_and(|s| s == "dead_lettered" || s == "failed"),
    )
}

/// Signals through 429s with `Retry-After`, 500s, answers slower than the client waits,
/// and a token endpoint that fails: each is delivered once, or dead-lettered with a reason.
async fn cxone_faults(stack: &Arc<TestStack>, size: Size, answers: &mut Answers) -> Row {
    let mut row = Row {
        scenario: format!("{} signals through CXone's faults", size.cxone_items),
        ..Row::default()
    };
    let n = size.cxone_items as u32;
    // A 401 from the API makes the client drop its token, so the next fetch meets the
    // token endpoint's faults.
    stack
        .fault(json!({"match": "signal", "status": 401, "times": 1}))
        .await;
    stack
        .fault(json!({"match": "token", "status": 500, "times": 2}))
        .await;
    stack
        .fault(json!({"match": "token", "status": 401, "times": 1}))
        .await;
    stack
        .fault(json!({"match": "signal", "status": 429, "retryAfter": 1, "times": n / 3 + 1}))
        .await;
    stack
        .fault(json!({"match": "signal", "status": 500, "times": n / 3 + 1}))
        .await;
    stack
        .fault(json!({"match": "signal", "status": 200, "delayMs": 12_000, "times": n / 4 + 1}))
        .await;
    let client = client();
    let keys: Vec<String> = (0..size.cxone_items).map(|_| unique("cx-")).collect();
    let mut sends = tokio::task::JoinSet::new();
    for (i, key) in keys.iter().enumerate() {
        let build = post_signal(stack, key, &order_update("4200"));
        let client = client.clone();
        sends.spawn(async move {
            (
                i,
                send(build(&client).timeout(Duration::from_secs(30))).await,
            )
        });
    }
    let outcomes = in_order(sends.join_all().await);
    for o in &outcomes {
        answers.keep(&o.1);
    }
    count(&mut row, &outcomes);
    let states = settle(stack, &keys, Duration::from_secs(240)).await;
    let delivered = accepted_signals(stack).await;
    for (key, (status, _)) in keys.iter().zip(&outcomes) {
        let accepted = status.is_some_and(|s| s.is_success());
        let got = delivered.get(key).copied().unwrap_or(0);
        if accepted {
            tally(&mut row, got, given_up(&states, key));
        } else if got > 0 {
            // Not accepted, yet sent: the answer was wrong.
            eprintln!("chaos: {key} was answered {status:?}, yet CXone accepted it {got} time(s)");
            row.wrong += 1;
        }
    }
    faults_spent(stack, Duration::from_secs(30)).await;
    row
}

/// Sends and freezes: the emulator the suite started is stopped (SIGSTOP) for three
/// seconds while webhooks arrive, then resumed.
async fn frozen_emulator(stack: &Arc<TestStack>, size: Size, answers: &mut Answers) -> Row {
    let mut row = Row {
        scenario: format!(
            "{} webhooks with the emulator frozen for 3 s",
            size.frozen_webhooks
        ),
        ..Row::default()
    };
    let Some(pid) = stack.emulator_pid() else {
        row.wrong += 1;
        return row;
    };
    let client = client();
    let ids: Vec<String> = (0..size.frozen_webhooks).map(|_| unique("frz-")).collect();
    let mut sends = tokio::task::JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        let build = post_webhook(stack, &webhook(stack, &chat(&format!("9{i}")), id));
        let client = client.clone();
        let start = Duration::from_millis(50 * i as u64);
        sends.spawn(async move {
            tokio::time::sleep(start).await;
            (i, like_cxone(&client, 15, |c| build(c)).await)
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frozen = Frozen::new(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(frozen);
    let results = in_order(sends.join_all().await);
    let landed = messages(stack, "events").await;
    for (id, outcomes) in ids.iter().zip(&results) {
        for (_, body) in outcomes {
            answers.keep(body);
        }
        count(&mut row, outcomes);
        let copies = landed
            .iter()
            .filter(|e| e["deliveryId"] == id.as_str())
            .count();
        if succeeded(outcomes) {
            tally(&mut row, copies, 0);
        } else if copies > 0 {
            // Enqueued, yet never answered 2xx: the sender was told to retry (5xx or
            // timeout) each time, which is allowed; counted only if enqueued twice.
            tally(&mut row, copies, 0);
        }
        // A request never answered 2xx must have had a 5xx or a timeout every time.
        if !succeeded(outcomes)
            && outcomes
                .iter()
                .any(|(s, _)| s.is_some_and(|s| s.is_client_error()))
        {
            row.wrong += 1;
        }
    }
    row
}

/// Sends `signal` to the process group `pid` leads. The group is given after `--`: procps
/// `kill` reads a bare `-PID` as options, and can end up signalling every process.
fn signal_group(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pid}")])
        .status();
}

/// The race of a slow first copy: CXone gives up on it after 1 s and sends it again while
/// it still holds the claim, then the first copy fails. The retry must get an answer that
/// CXone retries, and the event must land once.
async fn in_progress_race(stack: &Arc<TestStack>, answers: &mut Answers) -> Row {
    let mut row = Row {
        scenario: "a retry while the first copy runs (emulator frozen 2 s)".into(),
        ..Row::default()
    };
    let Some(pid) = stack.emulator_pid() else {
        row.wrong += 1;
        return row;
    };
    let id = unique("race-");
    let build = Arc::new(post_webhook(stack, &webhook(stack, &chat("8100"), &id)));
    let client = client();
    // The first copy claims the delivery, then the emulator freezes under it.
    let first = {
        let (build, client) = (build.clone(), client.clone());
        tokio::spawn(async move { like_cxone(&client, 15, |c| build(c)).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let frozen = Frozen::new(pid);
    let second = {
        let (build, client) = (build.clone(), client.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            like_cxone(&client, 15, |c| build(c)).await
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(frozen);
    let mut any_ok = false;
    for outcomes in [
        first.await.unwrap_or_default(),
        second.await.unwrap_or_default(),
    ] {
        for (_, body) in &outcomes {
            answers.keep(body);
        }
        if outcomes
            .iter()
            .any(|(s, b)| s == &Some(StatusCode::CONFLICT) && b["error"]["code"] == "in_progress")
        {
            row.wrong += 1;
        }
        any_ok |= succeeded(&outcomes);
        count(&mut row, &outcomes);
    }
    let copies = messages(stack, "events")
        .await
        .iter()
        .filter(|e| e["deliveryId"] == id.as_str())
        .count();
    if any_ok {
        tally(&mut row, copies, 0);
    }
    row
}

/// The drainer is killed while its jobs hang in CXone; each job is delivered once.
async fn drainer_killed(stack: &Arc<TestStack>, size: Size, answers: &mut Answers) -> Row {
    let mut row = Row {
        scenario: format!(
            "{} jobs with the drainer killed mid-batch",
            size.drainer_jobs
        ),
        ..Row::default()
    };
    let n = size.drainer_jobs as u32;
    // Each request's own attempt fails, so the work becomes jobs; the drainer's attempts
    // then hang in CXone long enough to be killed.
    stack
        .fault(json!({"match": "signal", "status": 503, "times": n}))
        .await;
    let client = client();
    let keys: Vec<String> = (0..size.drainer_jobs).map(|_| unique("drn-")).collect();
    let mut outcomes = Vec::new();
    for key in &keys {
        let o = send(post_signal(stack, key, &order_update("4300"))(&client)).await;
        answers.keep(&o.1);
        outcomes.push(o);
    }
    count(&mut row, &outcomes);
    stack
        .fault(json!({"match": "signal", "status": 200, "delayMs": 4000, "times": n}))
        .await;
    // Once some of the drainer's calls hang, kill every drainer process.
    let deadline = Instant::now() + Duration::from_secs(30);
    while armed(stack).await >= u64::from(n) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(host) = stack.hosts.get("retry-drainer") {
        for pid in host.pids() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
    let states = settle(stack, &keys, Duration::from_secs(120)).await;
    let delivered = accepted_signals(stack).await;
    for (key, (status, _)) in keys.iter().zip(&outcomes) {
        if status.is_some_and(|s| s.is_success()) {
            tally(
                &mut row,
                delivered.get(key).copied().unwrap_or(0),
                given_up(&states, key),
            );
        }
    }
    faults_spent(stack, Duration::from_secs(30)).await;
    row
}

/// Faults still armed in the simulator (their remaining `times`).
async fn armed(stack: &TestStack) -> u64 {
    let url = format!("{}/_sim/faults", stack.cxone_url);
    let faults: Vec<Value> = match client().get(url).send().await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    faults.iter().filter_map(|f| f["times"].as_u64()).sum()
}

/// Waits (at most `limit`) until every armed fault has been met, so that none is left for
/// the next scenario.
async fn faults_spent(stack: &TestStack, limit: Duration) {
    let deadline = Instant::now() + limit;
    while armed(stack).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A route to a second queue that refuses messages (it does not exist yet): the webhook is
/// 503 until it does, and then each target has the event once.
async fn queue_refuses(setup: &Setup, aws_endpoint: &str, answers: &mut Answers) -> Row {
    let mut row = Row {
        scenario: "a target queue refusing messages".into(),
        ..Row::default()
    };
    let name = unique("refusing-");
    let url = format!("{}/123456789012/{name}", aws_endpoint.trim_end_matches('/'));
    let mut options = stack_options(setup, Some(aws_endpoint.to_owned()));
    options.env_overrides.push(EnvOverride {
        function: "webhook-receiver".into(),
        key: "CXBRIDGE_WEBHOOK_CONFIG".into(),
        value:
            json!({"routes": [{"name": "both", "targets": [{"queue": "events"}, {"queue": url}]}]})
                .to_string(),
    });
    let stack = started(options).await;
    let client = client();
    let ids: Vec<String> = (0..5).map(|_| unique("ref-")).collect();
    let mut first = Vec::new();
    for id in &ids {
        let o = send(post_webhook(&stack, &webhook_same(&stack, id))(&client)).await;
        answers.keep(&o.1);
        first.push(o);
    }
    count(&mut row, &first);
    let sqs = sqs(&stack).await;
    let _ = sqs.create_queue().queue_name(&name).send().await;
    for id in &ids {
        let outcomes = like_cxone(&client, 10, |c| {
            post_webhook(&stack, &webhook_same(&stack, id))(c)
        })
        .await;
        for (_, body) in &outcomes {
            answers.keep(body);
        }
        count(&mut row, &outcomes);
    }
    let events = messages(&stack, "events").await;
    let other: Vec<Value> = crate::receive_all(&sqs, &url)
        .await
        .iter()
        .filter_map(|m| serde_json::from_str(m.body().unwrap_or_default()).ok())
        .collect();
    for id in &ids {
        for queue in [&events, &other] {
            let copies = queue
                .iter()
                .filter(|e| e["deliveryId"] == id.as_str())
                .count();
            tally(&mut row, copies, 0);
        }
    }
    stack.shutdown().await;
    row
}

/// The webhook for delivery `id`: its body names the id, so that two deliveries never
/// share a signature, and a retry has the same body (signed anew).
fn webhook_same(stack: &TestStack, id: &str) -> WebhookRequest {
    let mut body = chat("5100");
    body["data"]["reference"] = json!(id);
    webhook(stack, &body, id)
}

/// Secret and token values in any log line or answer body.
fn leaks(stack: &TestStack, answers: &Answers) -> usize {
    let s = &stack.resources.secrets;
    let secrets = [
        s.webhook.as_str(),
        s.webhook_previous.as_str(),
        s.callback.as_str(),
        s.cognigy.as_str(),
        s.api_key.as_str(),
        s.studio.as_str(),
        s.cxone.client_secret.as_str(),
        s.cxone.access_key_secret.as_str(),
    ];
    let lines = stack.log.lines();
    secrets
        .iter()
        .filter(|v| v.len() >= 8)
        .map(|secret| {
            lines.iter().filter(|l| l.contains(secret)).count()
                + answers.0.iter().filter(|a| a.contains(secret)).count()
        })
        .sum()
}

/// Function processes that exited on their own or panicked (a process the suite killed
/// is not counted).
fn crashes(stack: &TestStack) -> usize {
    stack
        .log
        .lines()
        .iter()
        .filter(|l| l.contains("panicked") || l.contains("exited (exit status"))
        .count()
}
