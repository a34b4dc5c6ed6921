//! The CXone simulator: both API profiles, a journal of every request, fault injection,
//! Studio completion callbacks, and signed webhooks on demand (ARCHITECTURE.md, Local stack
//! and simulator). This module holds the server, its routing and the journal; `tokens` the
//! token endpoints, `profiles` the two APIs' calls, `control` the `/_sim` control API.

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

mod control;
mod profiles;
mod tokens;

use tokens::form;

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
}
