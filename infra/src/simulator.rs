//! The CXone simulator: both API profiles, a journal of every request, fault injection,
//! Studio completion callbacks, and signed webhooks on demand (ARCHITECTURE.md, Local stack and simulator).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use crate::samples;

/// The credentials the simulator accepts (the same ones the stack puts in the secret).
#[derive(Debug, Clone)]
pub struct SimCredentials {
    pub client_id: String,
    pub client_secret: String,
    pub access_key_id: String,
    pub access_key_secret: String,
}

/// A declared signal variable: its name and Studio type.
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    pub kind: String,
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    /// `documented` or `incontact`.
    pub profile: String,
    pub credentials: SimCredentials,
    /// Signal definitions known to the documented API.
    pub definitions: HashMap<String, Vec<Variable>>,
    /// Where completion callbacks and sample webhooks go.
    pub gateway: Option<String>,
    pub callback_secret: Option<String>,
    pub webhook_secret: Option<String>,
}

/// The local default definitions, as the documented API knows them: `order-update` and
/// `order-created`.
pub fn default_definitions() -> HashMap<String, Vec<Variable>> {
    let variables = |vars: &[(&str, &str)]| -> Vec<Variable> {
        vars.iter()
            .map(|(n, k)| Variable {
                name: (*n).to_owned(),
                kind: (*k).to_owned(),
            })
            .collect()
    };
    HashMap::from([
        (
            "order-update".to_owned(),
            variables(&[
                ("customerId", "string"),
                ("orderId", "string"),
                ("updateType", "string"),
                ("priority", "string"),
                ("timestamp", "datetime"),
                ("address.city", "string"),
                ("address.zip", "string"),
            ]),
        ),
        (
            "order-created".to_owned(),
            variables(&[
                ("customerId", "string"),
                ("orderId", "string"),
                ("priority", "string"),
            ]),
        ),
    ])
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fault {
    #[serde(rename = "match")]
    matches: String,
    status: u16,
    #[serde(default = "one")]
    times: u32,
    retry_after: Option<u64>,
    delay_ms: Option<u64>,
    /// A body to answer with instead of the usual one.
    body: Option<String>,
    /// Applies to each matching request with this chance (default: always).
    probability: Option<f64>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone)]
struct SimConfig {
    token_ttl: u64,
    callback_delay_ms: u64,
    callback_status: String,
    /// What an accepted platform signal answers: unconfirmed, so a test chooses among the
    /// plausible 200, 202 and 204.
    signal_status: u16,
    /// The same for an accepted spawn-script call.
    spawn_status: u16,
    /// The longest URL the API takes before answering 414: the platform's limit is not
    /// documented, so a test may set one (none by default).
    max_url_length: Option<usize>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            token_ttl: 3600,
            callback_delay_ms: 200,
            callback_status: "completed".to_owned(),
            signal_status: 202,
            spawn_status: 202,
            max_url_length: None,
        }
    }
}

impl SimConfig {
    fn as_json(&self) -> Value {
        json!({
            "tokenTtl": self.token_ttl,
            "callbackDelayMs": self.callback_delay_ms,
            "callbackStatus": self.callback_status,
            "signalStatus": self.signal_status,
            "spawnStatus": self.spawn_status,
            "maxUrlLength": self.max_url_length,
        })
    }
}

/// The tenant's name, as the `tenant` claim carries it (its id is the `tenantId` claim).
const TENANT_NAME: &str = "perm_cxbridge_local";

struct Sim {
    options: SimOptions,
    base: String,
    tenant_id: String,
    journal: Mutex<Vec<Value>>,
    faults: Mutex<Vec<Fault>>,
    config: Mutex<SimConfig>,
    tokens: Mutex<HashMap<String, i64>>,
    executions: Arc<Mutex<HashMap<String, Value>>>,
    /// Platform contacts marked as ended: a signal to one answers 404.
    ended: Mutex<std::collections::HashSet<String>>,
    /// Numbers the contacts that spawned scripts start.
    spawned: std::sync::atomic::AtomicU64,
    /// Webhook subscriptions, routing rules and integration targets (documented API).
    setup: Mutex<crate::sim_setup::SetupStore>,
    http: reqwest::Client,
}

/// A running simulator.
pub struct Simulator {
    pub url: String,
    task: JoinHandle<()>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Simulator {
    pub async fn start(options: SimOptions) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let sim = Arc::new(Sim {
            options,
            base: url.clone(),
            tenant_id: "11ee0000-0000-4000-8000-00000000c0de".to_owned(),
            journal: Mutex::default(),
            faults: Mutex::default(),
            config: Mutex::default(),
            tokens: Mutex::default(),
            executions: Arc::default(),
            ended: Mutex::default(),
            spawned: std::sync::atomic::AtomicU64::new(700_000_000),
            setup: Mutex::default(),
            http: reqwest::Client::new(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(sim)
            .into_make_service_with_connect_info::<SocketAddr>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, task })
    }
}

fn now_ms() -> i64 {
    cxbridge::clock::now_ms()
}

fn reply(status: StatusCode, body: Value) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/json"),
    );
    (status, headers, body.to_string().into_bytes())
}

fn error(status: StatusCode, code: &str, message: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    reply(status, json!({"error": code, "error_description": message}))
}

fn empty(status: StatusCode) -> (StatusCode, HeaderMap, Vec<u8>) {
    (status, HeaderMap::new(), Vec::new())
}

/// Whether a path is a target sink's: `/_sim/targets/{name}`.
fn is_sink(path: &str) -> bool {
    path.strip_prefix("/_sim/targets/")
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// Which fault `match` a request falls under.
fn kind(method: &Method, path: &str) -> &'static str {
    if is_sink(path) {
        "target"
    } else if path == "/api/v2/oauth/token" || path == "/auth/token" {
        "token"
    } else if crate::setup::Kind::of_path(path).is_some() {
        "setup"
    } else if path.ends_with("/context") {
        "context"
    } else if path.starts_with("/inContactAPI/") && path.ends_with("/start") {
        if method == Method::POST {
            "spawn"
        } else {
            "other"
        }
    } else if path.starts_with("/api/v2/signals") || path.ends_with("/signal") {
        if method == Method::POST {
            "signal"
        } else {
            "other"
        }
    } else {
        "other"
    }
}

async fn handle(State(sim): State<Arc<Sim>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 4 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let received_at = now_ms();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();

    let sink = parts.method == Method::POST && is_sink(&path);
    let (status, headers, out) = if sink {
        sim.sink(&path).await
    } else if path.starts_with("/_sim/") {
        sim.control(&parts.method, &path, &body).await
    } else {
        sim.api(&parts.method, &path, &query, &parts.headers, &body)
            .await
    };

    if !path.starts_with("/_sim/") || sink {
        let header_map: Map<String, Value> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into(),
                )
            })
            .collect();
        let entry = json!({
            "method": parts.method.as_str(),
            "path": path,
            "query": query,
            "headers": header_map,
            "body": String::from_utf8_lossy(&body),
            "receivedAt": received_at,
            "status": status.as_u16(),
        });
        if let Ok(mut journal) = sim.journal.lock() {
            journal.push(entry);
        }
    }
    let mut response = Response::new(Body::from(out));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// HTTP Basic client credentials, each part form-urldecoded after base64 as RFC 6749
/// §2.3.1 has it.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |part: &str| -> String {
        form_urlencoded::parse(format!("v={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// The client's credentials by whichever method it used: `client_secret_basic` or
/// `client_secret_post` (both are advertised). `None` when it used neither, or both.
fn client_credentials(
    headers: &HeaderMap,
    fields: &HashMap<String, String>,
) -> Option<(String, String)> {
    let posted = fields
        .get("client_id")
        .zip(fields.get("client_secret"))
        .map(|(i, s)| (i.clone(), s.clone()));
    match (basic(headers), posted) {
        (Some(b), None) => Some(b),
        (None, Some(p)) => Some(p),
        _ => None,
    }
}

fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn type_ok(kind: &str, value: &Value) -> bool {
    match kind {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "datetime" => value.as_str().is_some_and(is_datetime),
        _ => false,
    }
}

/// RFC 3339 date-time, as Studio's datetime variables take it.
fn is_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && b[16] == b':'
        && [0..4, 5..7, 8..10, 11..13, 14..16, 17..19]
            .iter()
            .all(|r| b[r.clone()].iter().all(u8::is_ascii_digit))
        && (s.ends_with('Z') || s.ends_with('z') || s[19..].contains('+') || s[19..].contains('-'))
}

impl Sim {
    fn executions_handle(&self) -> Arc<Mutex<HashMap<String, Value>>> {
        self.executions.clone()
    }

    /// Whether `path` is an authenticated endpoint of this simulator's profile.
    fn is_api(&self, path: &str) -> bool {
        if self.options.profile == "documented" {
            path.starts_with("/api/v2/signals/")
                || path.starts_with("/api/v2/interactions/interactions/")
                || crate::setup::Kind::of_path(path).is_some()
        } else {
            path.starts_with("/inContactAPI/services/v")
        }
    }

    fn issue_token(&self) -> Value {
        let ttl = self.config.lock().map(|c| c.token_ttl).unwrap_or(3600);
        let exp = now_ms() / 1000 + i64::try_from(ttl).unwrap_or(3600);
        // Like the platform's, the access token is a JWT carrying the tenant's id and name.
        let jwt = |claims: Value| {
            format!(
                "{}.{}.unsigned",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            )
        };
        let token = if self.options.profile == "incontact" {
            jwt(json!({
                "iss": self.base, "sub": "api-user", "jti": cxbridge::ids::new_uuid(),
                "tenantId": self.tenant_id, "tenant": TENANT_NAME, "exp": exp,
            }))
        } else {
            format!("sim-{}", cxbridge::ids::new_uuid())
        };
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(
                token.clone(),
                now_ms() + i64::try_from(ttl).unwrap_or(3600) * 1000,
            );
        }
        let mut out = json!({"access_token": token, "token_type": "Bearer", "expires_in": ttl});
        if self.options.profile == "incontact" {
            out["id_token"] = json!(jwt(json!({
                "iss": self.base, "sub": "api-user", "aud": self.options.credentials.client_id,
                "tenantId": self.tenant_id, "tenant": TENANT_NAME, "exp": exp,
            })));
            out["refresh_token"] = json!(format!("refresh-{}", cxbridge::ids::new_uuid()));
            out["issued_token_type"] = json!("urn:ietf:params:oauth:token-type:access_token");
        }
        out
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        self.tokens
            .lock()
            .ok()
            .and_then(|t| t.get(token).copied())
            .is_some_and(|expires| expires > now_ms())
    }

    fn take_fault(&self, kind: &str) -> Option<Fault> {
        let mut faults = self.faults.lock().ok()?;
        let index = faults.iter().position(|f| {
            f.times > 0 && (f.matches == kind || (f.matches == "any" && kind != "target"))
        })?;
        if let Some(p) = faults[index].probability {
            let mut b = [0u8; 4];
            let _ = getrandom::fill(&mut b);
            if f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX) >= p {
                return None;
            }
        }
        let fault = faults[index].clone();
        faults[index].times -= 1;
        if faults[index].times == 0 {
            faults.remove(index);
        }
        Some(fault)
    }

    /// The answer an armed fault of `kind` gives, after its delay; `None` when no fault
    /// applies, or when it only delays.
    async fn fault_answer(&self, kind: &str) -> Option<(StatusCode, HeaderMap, Vec<u8>)> {
        let fault = self.take_fault(kind)?;
        if let Some(ms) = fault.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if fault.status < 300 && fault.body.is_none() {
            return None;
        }
        let status =
            StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut h = HeaderMap::new();
        if let Some(secs) = fault.retry_after
            && let Ok(v) = secs.to_string().parse()
        {
            h.insert("retry-after", v);
        }
        let out = fault.body.unwrap_or_else(|| {
            json!({"error": "injected_fault", "status": fault.status}).to_string()
        });
        Some((status, h, out.into_bytes()))
    }

    /// A target sink, `POST /_sim/targets/{name}`: takes any delivery (journalled with its
    /// headers and body by the caller), or answers as an armed `target` fault says.
    async fn sink(&self, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        if let Some(answer) = self.fault_answer("target").await {
            return answer;
        }
        let name = path.trim_start_matches("/_sim/targets/");
        reply(StatusCode::OK, json!({"received": true, "sink": name}))
    }

    async fn api(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        if let Some(answer) = self.fault_answer(kind(method, path)).await {
            return answer;
        }
        let limit = self.config.lock().ok().and_then(|c| c.max_url_length);
        let length =
            self.base.len() + path.len() + if query.is_empty() { 0 } else { 1 + query.len() };
        if limit.is_some_and(|max| length > max) {
            return error(
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                "the request URL is too long",
            );
        }
        let documented = self.options.profile == "documented";
        match (method.as_str(), path) {
            ("POST", "/api/v2/oauth/token") if documented => self.documented_token(headers, body),
            ("GET", "/.well-known/openid-configuration") if !documented => reply(
                StatusCode::OK,
                json!({
                    "issuer": self.base,
                    "token_endpoint": format!("{}/auth/token", self.base),
                    "authorization_endpoint": format!("{}/auth/authorize", self.base),
                    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                    "grant_types_supported": ["password", "refresh_token", "authorization_code"],
                }),
            ),
            ("POST", "/auth/token") if !documented => self.platform_token(headers, body),
            ("GET", "/.well-known/cxone-configuration") if !documented => {
                let tenant = form(query.as_bytes())
                    .remove("tenantId")
                    .unwrap_or_default();
                if tenant == self.tenant_id {
                    reply(
                        StatusCode::OK,
                        json!({
                            "private": false,
                            "area": "na1",
                            "cluster": "C32",
                            "domain": "niceincontact.com",
                            "acdDomain": "niceincontact.com",
                            "uhDomain": "nice-incontact.com",
                            "api_endpoint": self.base,
                            "ui_endpoint": self.base,
                            "auth_endpoint": self.base,
                            "tenantId": tenant,
                        }),
                    )
                } else {
                    error(StatusCode::NOT_FOUND, "tenant_not_found", "no such tenant")
                }
            }
            (_, p) if !self.is_api(p) => {
                error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
            }
            _ if !self.authorised(headers) => error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is missing, unknown or expired",
            ),
            (m, p) if documented && crate::setup::Kind::of_path(p).is_some() => {
                self.setup_call(m, p, body).await
            }
            ("POST", p) if documented && p.starts_with("/api/v2/signals/") => {
                self.documented_signal(&p["/api/v2/signals/".len()..], body)
            }
            ("GET", p) if documented && p.starts_with("/api/v2/signals/executions/") => {
                let id = &p["/api/v2/signals/executions/".len()..];
                match self.executions.lock().ok().and_then(|e| e.get(id).cloned()) {
                    Some(execution) => reply(StatusCode::OK, execution),
                    None => error(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "no such signal execution",
                    ),
                }
            }
            ("POST", p)
                if documented
                    && p.starts_with("/api/v2/interactions/interactions/")
                    && p.ends_with("/context") =>
            {
                let id = p
                    .strip_prefix("/api/v2/interactions/interactions/")
                    .and_then(|rest| rest.strip_suffix("/context"))
                    .unwrap_or_default();
                if id.is_empty() || id.contains('/') {
                    return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
                }
                if id.starts_with("unknown") {
                    return error(
                        StatusCode::NOT_FOUND,
                        "interaction_not_found",
                        "no such interaction",
                    );
                }
                match serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|b| b.get("attributes").cloned())
                {
                    Some(Value::Object(attributes)) => reply(
                        StatusCode::OK,
                        json!({"interactionId": id, "attributes": attributes}),
                    ),
                    _ => error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "attributes must be an object",
                    ),
                }
            }
            ("POST", p)
                if !documented
                    && p.starts_with("/inContactAPI/services/v")
                    && p.ends_with("/signal") =>
            {
                self.platform_signal(p, query, body)
            }
            ("POST", p)
                if !documented
                    && p.starts_with("/inContactAPI/services/v")
                    && p.ends_with("/start") =>
            {
                self.platform_spawn(p, query, body)
            }
            _ => error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
        }
    }

    fn documented_token(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let fields = form(body);
        let (id, secret) = client_credentials(headers, &fields).unwrap_or_default();
        if fields.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "use client_credentials",
            );
        }
        let c = &self.options.credentials;
        if id != c.client_id || secret != c.client_secret {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unknown client or wrong secret",
            );
        }
        reply(StatusCode::OK, self.issue_token())
    }

    fn platform_token(&self, headers: &HeaderMap, body: &[u8]) -> (StatusCode, HeaderMap, Vec<u8>) {
        let fields = form(body);
        let c = &self.options.credentials;
        if client_credentials(headers, &fields)
            != Some((c.client_id.clone(), c.client_secret.clone()))
        {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unknown client or wrong secret (client_secret_basic or client_secret_post)",
            );
        }
        if fields.get("grant_type").map(String::as_str) != Some("password") {
            return error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "use the password grant",
            );
        }
        if fields.get("username") != Some(&c.access_key_id)
            || fields.get("password") != Some(&c.access_key_secret)
        {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_grant",
                "unknown access key or wrong secret",
            );
        }
        reply(StatusCode::OK, self.issue_token())
    }

    fn documented_signal(&self, id: &str, body: &[u8]) -> (StatusCode, HeaderMap, Vec<u8>) {
        let Some(variables) = self.options.definitions.get(id) else {
            return error(
                StatusCode::NOT_FOUND,
                "definition_not_found",
                "no such signal definition",
            );
        };
        let Ok(payload) = serde_json::from_slice::<Value>(body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body is not JSON",
            );
        };
        let Some(data) = payload.get("data").and_then(Value::as_object) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "data must be an object",
            );
        };
        let mut problems = Vec::new();
        for v in variables {
            match data.get(&v.name) {
                None => problems.push(format!("{} is missing", v.name)),
                Some(value) if !type_ok(&v.kind, value) => {
                    problems.push(format!("{} must be a {}", v.name, v.kind))
                }
                Some(_) => {}
            }
        }
        for key in data.keys() {
            if !variables.iter().any(|v| &v.name == key) {
                problems.push(format!("{key} is not a declared variable"));
            }
        }
        if !problems.is_empty() {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_signal", "errors": problems}),
            );
        }
        let execution_id = cxbridge::ids::new_uuid();
        let metadata = payload.get("metadata").cloned().unwrap_or(Value::Null);
        let execution = json!({
            "signalExecutionId": execution_id, "definitionId": id, "status": "running",
            "data": data, "metadata": metadata, "createdAt": cxbridge::clock::rfc3339(now_ms()),
        });
        if let Ok(mut e) = self.executions.lock() {
            e.insert(execution_id.clone(), execution);
        }
        self.schedule_callback(execution_id.clone(), metadata);
        reply(
            StatusCode::ACCEPTED,
            json!({"signalExecutionId": execution_id}),
        )
    }

    /// The platform's signal call. Parameters may come in the query (as the API spec has
    /// it), in a JSON body (as NICE's SDK sends them), or both (as the Cognigy extension
    /// does); all are accepted.
    fn platform_signal(
        &self,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let Some(rest) = path
            .strip_prefix("/inContactAPI/services/v")
            .and_then(|r| r.strip_suffix("/signal"))
        else {
            return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        };
        let Some((version, contact)) = rest.split_once("/interactions/") else {
            return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        };
        if !version.ends_with(".0") || contact.is_empty() || contact.contains('/') {
            return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        }
        let ended = self.ended.lock().is_ok_and(|e| e.contains(contact));
        if contact.starts_with("unknown") || ended {
            return error(
                StatusCode::NOT_FOUND,
                "contact_not_found",
                "no such active contact",
            );
        }
        let mut params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        if !body.is_empty() {
            match serde_json::from_slice::<Map<String, Value>>(body) {
                Ok(map) => params.extend(map.into_iter().map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, text)
                })),
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "the body is not a JSON object",
                    );
                }
            }
        }
        let allowed: Vec<String> = (1..=9).map(|i| format!("p{i}")).collect();
        if let Some((bad, _)) = params.iter().find(|(k, _)| !allowed.contains(k)) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                &format!("{bad} is not one of p1-p9"),
            );
        }
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        // NICE's Cognigy convention (`p1` = an action such as Escalate, or cxbridge's
        // `updateContext`, `p2` = the attributes as JSON) tells the script what to do; it
        // reports nothing back.
        let action = param("p2")
            .and_then(|p2| serde_json::from_str::<Value>(&p2).ok())
            .is_some_and(|p2| p2.get("cognigyDetectedIntent").is_some());
        let status = self.config.lock().map(|c| c.signal_status).unwrap_or(202);
        if !action {
            self.completes(param("p1"));
        }
        match status {
            200 => reply(StatusCode::OK, json!({})),
            other => empty(StatusCode::from_u16(other).unwrap_or(StatusCode::ACCEPTED)),
        }
    }

    /// The platform's spawn-script call: a JSON body `{"scriptId","skillId","parameters"}`
    /// as NICE's SDK sends it, or `skillId` and `parameters` in the query; the parameters
    /// one pipe-delimited string (an array is taken too).
    fn platform_spawn(
        &self,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let Some((version, script)) = path
            .strip_prefix("/inContactAPI/services/v")
            .and_then(|r| r.strip_suffix("/start"))
            .and_then(|r| r.split_once("/scripts/"))
        else {
            return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        };
        if !version.ends_with(".0") || script.is_empty() || script.contains('/') {
            return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        }
        if script.starts_with("unknown") {
            return error(StatusCode::NOT_FOUND, "script_not_found", "no such script");
        }
        let mut fields = form(query.as_bytes());
        if !body.is_empty() {
            let Ok(map) = serde_json::from_slice::<Map<String, Value>>(body) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the body is not a JSON object",
                );
            };
            // The id may come as a string or a number; either must name the path's script.
            let named = |id: &Value| match id {
                Value::String(s) => s.as_str() == script,
                Value::Number(n) => n.to_string() == script,
                _ => false,
            };
            if map.get("scriptId").is_some_and(|id| !named(id)) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "scriptId in the body is not the script in the path",
                );
            }
            for (k, v) in map {
                let text = match v {
                    Value::String(s) => s,
                    Value::Array(items) => items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join("|"),
                    other => other.to_string(),
                };
                fields.insert(k, text);
            }
        }
        if fields.get("skillId").is_none_or(String::is_empty) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "skillId is required",
            );
        }
        let first = fields
            .get("parameters")
            .and_then(|p| p.split('|').next())
            .map(str::to_owned);
        let status = self.config.lock().map(|c| c.spawn_status).unwrap_or(202);
        let contact = self
            .spawned
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.completes(first);
        match status {
            204 => empty(StatusCode::NO_CONTENT),
            other => reply(
                StatusCode::from_u16(other).unwrap_or(StatusCode::ACCEPTED),
                json!({"contactId": contact}),
            ),
        }
    }

    /// A webhook, routing rule or integration target call; a target's test calls the
    /// target with a signed `integration.test` event, as CXone would.
    async fn setup_call(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        use crate::sim_setup::SetupAnswer;
        let now = cxbridge::clock::rfc3339(now_ms());
        let answer = match self.setup.lock() {
            Ok(mut store) => store.handle(method, path, body, &now),
            Err(_) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the setup store is unavailable",
                );
            }
        };
        let (id, name, endpoint, timeout_ms) = match answer {
            SetupAnswer::Reply(status, value) => return reply(status, value),
            SetupAnswer::NoContent => return empty(StatusCode::NO_CONTENT),
            SetupAnswer::Test {
                id,
                name,
                endpoint,
                timeout_ms,
            } => (id, name, endpoint, timeout_ms),
        };
        let delivery = format!("test-{}", cxbridge::ids::new_uuid());
        let event = json!({"eventType": "integration.test", "data": {"id": delivery, "targetId": id, "targetName": name}}).to_string();
        let mut request = self
            .http
            .post(&endpoint)
            .timeout(Duration::from_millis(timeout_ms))
            .header("content-type", "application/json")
            .body(event.clone());
        if let Some(secret) = &self.options.webhook_secret {
            for (header, value) in crate::samples::signed_headers(
                secret,
                cxbridge::clock::now_secs(),
                event.as_bytes(),
                &delivery,
                "integration.test",
            ) {
                request = request.header(header, value);
            }
        }
        let started = std::time::Instant::now();
        let report = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                json!({
                    "success": (200..300).contains(&status),
                    "statusCode": status,
                    "latencyMs": started.elapsed().as_millis() as u64,
                    "responseBody": text.chars().take(1000).collect::<String>(),
                })
            }
            Err(e) => json!({
                "success": false,
                "latencyMs": started.elapsed().as_millis() as u64,
                "error": format!("cannot reach {endpoint}: {e}"),
            }),
        };
        reply(StatusCode::OK, report)
    }

    /// After an accepted platform signal or spawn whose first parameter is a correlation
    /// id, the script reports back as a Studio REST action would: a token-mode callback.
    fn completes(&self, correlation_id: Option<String>) {
        let Some(id) = correlation_id.filter(|c| !c.is_empty()) else {
            return;
        };
        self.schedule_callback(
            format!("platform-{}", cxbridge::ids::new_uuid()),
            json!({"correlationId": id}),
        );
    }

    fn schedule_callback(&self, execution_id: String, metadata: Value) {
        let target = self
            .options
            .gateway
            .clone()
            .zip(self.options.callback_secret.clone());
        let config = self.config.lock().map(|c| c.clone()).unwrap_or_default();
        let http = self.http.clone();
        let sim = self.executions_handle();
        let platform = self.options.profile == "incontact";
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(config.callback_delay_ms)).await;
            // The execution ends in the history; a "lost" callback is never sent.
            let ended = if config.callback_status == "lost" {
                "completed"
            } else {
                config.callback_status.as_str()
            };
            if let Ok(mut executions) = sim.lock()
                && let Some(e) = executions.get_mut(&execution_id)
            {
                e["status"] = json!(ended);
                e["outputs"] = json!({"result": "ok"});
            }
            let Some((gateway, secret)) = target.filter(|_| config.callback_status != "lost")
            else {
                return;
            };
            let body = json!({
                "correlationId": metadata.get("correlationId"),
                "signalExecutionId": (!platform).then_some(execution_id),
                "status": config.callback_status,
                "outputs": {"result": "ok"},
            })
            .to_string();
            let post = http
                .post(format!("{gateway}/callbacks/studio"))
                .header("content-type", "application/json");
            // Studio's REST action cannot sign: on the platform the callback brings a token.
            let post = if platform {
                post.header("x-callback-token", secret)
            } else {
                let ts = cxbridge::clock::now_secs();
                let signature =
                    cxbridge::webhook::signature::sign(secret.as_bytes(), ts, body.as_bytes());
                post.header("x-callback-timestamp", ts.to_string())
                    .header("x-callback-signature-256", signature)
            };
            let _ = post.body(body).send().await;
        });
    }

    async fn control(
        &self,
        method: &Method,
        path: &str,
        body: &Bytes,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match (method.as_str(), path) {
            ("GET", "/_sim/requests") => {
                // Entries are written when answered; the journal is in arrival order.
                let mut journal = self.journal.lock().map(|j| j.clone()).unwrap_or_default();
                journal.sort_by_key(|e| e["receivedAt"].as_i64().unwrap_or(0));
                reply(StatusCode::OK, Value::Array(journal))
            }
            ("GET", "/_sim/faults") => {
                let armed: Vec<Value> = self
                    .faults
                    .lock()
                    .map(|f| f.iter().map(|f| json!({"match": f.matches, "status": f.status, "times": f.times})).collect())
                    .unwrap_or_default();
                reply(StatusCode::OK, Value::Array(armed))
            }
            ("POST", "/_sim/faults") => match serde_json::from_value::<Fault>(parsed) {
                Ok(fault)
                    if [
                        "token", "signal", "spawn", "context", "setup", "target", "any",
                    ]
                    .contains(&fault.matches.as_str()) =>
                {
                    if let Ok(mut f) = self.faults.lock() {
                        f.push(fault);
                    }
                    reply(StatusCode::CREATED, json!({"status": "armed"}))
                }
                Ok(_) => error(
                    StatusCode::BAD_REQUEST,
                    "bad_fault",
                    "match must be token, signal, spawn, context, setup, target or any",
                ),
                Err(e) => error(StatusCode::BAD_REQUEST, "bad_fault", &e.to_string()),
            },
            ("POST", "/_sim/config") => {
                if let Ok(mut c) = self.config.lock() {
                    if let Some(v) = parsed.get("tokenTtl").and_then(Value::as_u64) {
                        c.token_ttl = v.clamp(1, 86_400);
                    }
                    if let Some(v) = parsed.get("callbackDelayMs").and_then(Value::as_u64) {
                        c.callback_delay_ms = v;
                    }
                    if let Some(v) = parsed.get("callbackStatus").and_then(Value::as_str) {
                        c.callback_status = v.to_owned();
                    }
                }
                match parsed.get("maxUrlLength") {
                    None => {}
                    Some(Value::Null) => {
                        if let Ok(mut c) = self.config.lock() {
                            c.max_url_length = None;
                        }
                    }
                    Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
                        Some(n) => {
                            if let Ok(mut c) = self.config.lock() {
                                c.max_url_length = Some(n);
                            }
                        }
                        None => {
                            return error(
                                StatusCode::BAD_REQUEST,
                                "bad_config",
                                "maxUrlLength must be a whole number of characters, or null",
                            );
                        }
                    },
                }
                for (key, slot) in [("signalStatus", 0), ("spawnStatus", 1)] {
                    let Some(v) = parsed.get(key) else { continue };
                    let Some(status) = v
                        .as_u64()
                        .and_then(|s| u16::try_from(s).ok())
                        .filter(|s| (200..300).contains(s))
                    else {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "bad_config",
                            &format!("{key} must be a 2xx status such as 200, 202 or 204"),
                        );
                    };
                    if let Ok(mut c) = self.config.lock() {
                        if slot == 0 {
                            c.signal_status = status;
                        } else {
                            c.spawn_status = status;
                        }
                    }
                }
                let c = self.config.lock().map(|c| c.clone()).unwrap_or_default();
                reply(StatusCode::OK, c.as_json())
            }
            ("PATCH", p) if p.starts_with("/_sim/setup/") => {
                let Some((kind, name)) = p["/_sim/setup/".len()..].split_once('/') else {
                    return error(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "use /_sim/setup/{kind}/{name}",
                    );
                };
                let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
                let changed = self
                    .setup
                    .lock()
                    .map_err(|_| "the setup store is unavailable".to_owned())
                    .and_then(|mut s| s.tamper(kind, &name, &parsed));
                match changed {
                    Ok(object) => reply(StatusCode::OK, object),
                    Err(e) => error(StatusCode::NOT_FOUND, "not_found", &e),
                }
            }
            ("POST", p) if p.starts_with("/_sim/contacts/") && p.ends_with("/end") => {
                let id = p
                    .strip_prefix("/_sim/contacts/")
                    .and_then(|r| r.strip_suffix("/end"))
                    .unwrap_or_default();
                if id.is_empty() || id.contains('/') {
                    return error(StatusCode::NOT_FOUND, "not_found", "no such contact");
                }
                if let Ok(mut ended) = self.ended.lock() {
                    ended.insert(id.to_owned());
                }
                reply(StatusCode::OK, json!({"contactId": id, "state": "ended"}))
            }
            ("POST", "/_sim/reset") => {
                if let Ok(mut j) = self.journal.lock() {
                    j.clear();
                }
                if let Ok(mut s) = self.setup.lock() {
                    s.clear();
                }
                if let Ok(mut f) = self.faults.lock() {
                    f.clear();
                }
                if let Ok(mut c) = self.config.lock() {
                    *c = SimConfig::default();
                }
                if let Ok(mut t) = self.tokens.lock() {
                    t.clear();
                }
                if let Ok(mut e) = self.executions.lock() {
                    e.clear();
                }
                if let Ok(mut e) = self.ended.lock() {
                    e.clear();
                }
                reply(StatusCode::OK, json!({"status": "reset"}))
            }
            ("POST", "/_sim/webhooks") => self.send_webhooks(&parsed).await,
            _ => error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such control endpoint",
            ),
        }
    }

    async fn send_webhooks(&self, request: &Value) -> (StatusCode, HeaderMap, Vec<u8>) {
        let (Some(gateway), Some(secret)) = (
            self.options.gateway.as_deref(),
            self.options.webhook_secret.as_deref(),
        ) else {
            return error(
                StatusCode::CONFLICT,
                "no_gateway",
                "this simulator was started without a gateway to send to",
            );
        };
        let channel = request
            .get("channel")
            .and_then(Value::as_str)
            .unwrap_or("voice");
        let count = request
            .get("count")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .min(1000) as usize;
        let run = cxbridge::ids::new_uuid()[..8].to_owned();
        let mut results = Vec::new();
        for n in 1..=count {
            let Some(sample) = samples::webhook(channel, &run, n) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_channel",
                    "channel must be voice, chat, sms or xml",
                );
            };
            let delivery_id = cxbridge::ids::new_uuid();
            let mut post = self
                .http
                .post(format!("{gateway}/webhooks/cxone"))
                .header("content-type", sample.content_type)
                .body(sample.body.clone());
            for (k, v) in samples::signed_headers(
                secret,
                cxbridge::clock::now_secs(),
                &sample.body,
                &delivery_id,
                &sample.event_type,
            ) {
                post = post.header(k, v);
            }
            let status = match post.send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            results.push(json!({"deliveryId": delivery_id, "interactionId": sample.interaction_id, "status": status}));
        }
        reply(StatusCode::OK, json!({"sent": results}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_follow_rfc_3339() {
        assert!(is_datetime("2026-11-22T09:00:00Z"));
        assert!(is_datetime("2026-11-22T09:00:00.123+01:00"));
        assert!(!is_datetime("2026-11-22"));
        assert!(!is_datetime("yesterday at noon, roughly"));
    }
}
