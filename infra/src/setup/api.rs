//! The documented API's setup endpoints over HTTP: list, create, update, delete and the
//! integration targets' test, with CXone's retry rules: 429 waits for `Retry-After`, 5xx
//! and network failures are retried with backoff, a refused token is fetched again once,
//! and any other 4xx stops with CXone's answer.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use cxbridge::adapters::cxone::TokenFetcher;
#[cfg(test)]
use cxbridge::cxone::CxoneConfig;
use cxbridge::cxone::api::segment;
use cxbridge::cxone::error::{excerpt, retry_after};
use cxbridge::cxone::token::AccessToken;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::model::Kind;

/// Attempts for a 5xx or a network failure, the first included.
const SERVER_ATTEMPTS: u32 = 4;
/// How many 429s in a row are waited out.
const RATE_LIMIT_WAITS: u32 = 10;
/// The first backoff after a 5xx; it doubles.
const BACKOFF: Duration = Duration::from_millis(500);
/// How long to wait after a 429 without `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// How much longer than a target's timeout a test may take: CXone's own work around it.
const TEST_MARGIN: Duration = Duration::from_secs(5);
/// The longest `Retry-After` honoured before giving up.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// CXone refused a call for good (a 4xx other than 401 and 429).
#[derive(Debug)]
pub struct Refused {
    pub call: String,
    pub status: u16,
    pub body: Value,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: CXone refused it ({}): {}",
            self.call,
            self.status,
            excerpt(self.body.to_string().as_bytes())
        )
    }
}

impl std::error::Error for Refused {}

/// A client of the setup endpoints.
pub struct SetupApi {
    http: reqwest::Client,
    base: String,
    tokens: TokenFetcher,
    token: tokio::sync::Mutex<Option<AccessToken>>,
}

impl SetupApi {
    pub fn new(http: reqwest::Client, base: &str, tokens: TokenFetcher) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            tokens,
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// A token, fetched when there is none or `fresh` asks; a 429 or 5xx from the token
    /// endpoint is retried as any other call is.
    async fn bearer(&self, fresh: bool) -> Result<String> {
        let mut token = self.token.lock().await;
        if fresh || token.is_none() {
            let mut attempt = 0;
            let fetched = loop {
                attempt += 1;
                match self.tokens.fetch().await {
                    Ok(t) => break t,
                    Err(e) if e.is_retryable() && attempt < SERVER_ATTEMPTS => {
                        let backoff = BACKOFF * 2u32.pow(attempt - 1);
                        tokio::time::sleep(e.retry_after().unwrap_or(backoff).min(MAX_RETRY_AFTER))
                            .await;
                    }
                    Err(e) => bail!("cannot get a CXone token: {e}"),
                }
            };
            *token = Some(fetched);
        }
        Ok(token
            .as_ref()
            .map(|t| t.value.expose_secret().to_owned())
            .unwrap_or_default())
    }

    /// One call, retried as CXone's rules say; the status and the JSON body of its answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        self.call_within(method, path, body, None).await
    }

    /// [`Self::call`], waiting up to `timeout` for the answer instead of the client's own
    /// limit. Such a call is not sent again when it times out: it may have done its work.
    async fn call_within(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let (mut server_failures, mut limited, mut refreshed) = (0, 0, false);
        loop {
            let bearer = self.bearer(false).await?;
            let mut request = self.http.request(method.clone(), &url).bearer_auth(&bearer);
            if let Some(limit) = timeout {
                request = request.timeout(limit);
            }
            if let Some(body) = body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) if e.is_timeout() && timeout.is_some() => {
                    bail!(
                        "{method} {path}: no answer within {} ms",
                        timeout.unwrap_or_default().as_millis()
                    );
                }
                Err(e) => {
                    server_failures += 1;
                    if server_failures >= SERVER_ATTEMPTS {
                        bail!("{method} {path}: CXone cannot be reached: {e}");
                    }
                    tokio::time::sleep(BACKOFF * 2u32.pow(server_failures - 1)).await;
                    continue;
                }
            };
            let status = response.status().as_u16();
            let wait = retry_after(response.headers(), cxbridge::clock::now_ms());
            let text = response.text().await.unwrap_or_default();
            match status {
                200..=299 => {
                    let parsed = if text.trim().is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text)
                            .map_err(|e| anyhow!("{method} {path}: the answer is not JSON: {e}"))?
                    };
                    return Ok((status, parsed));
                }
                401 if !refreshed => {
                    refreshed = true;
                    self.bearer(true).await?;
                }
                429 => {
                    limited += 1;
                    let wait = wait.unwrap_or(DEFAULT_RETRY_AFTER);
                    if wait > MAX_RETRY_AFTER {
                        bail!(
                            "{method} {path}: CXone asked to wait {} s (429 with Retry-After), longer than the {} s this command waits; run it again later",
                            wait.as_secs(),
                            MAX_RETRY_AFTER.as_secs()
                        );
                    }
                    if limited > RATE_LIMIT_WAITS {
                        bail!(
                            "{method} {path}: CXone still answered 429 after {RATE_LIMIT_WAITS} waits"
                        );
                    }
                    eprintln!(
                        "… CXone answered 429; waiting {} ms as Retry-After asks",
                        wait.as_millis()
                    );
                    tokio::time::sleep(wait).await;
                }
                500..=599 => {
                    server_failures += 1;
                    if server_failures >= SERVER_ATTEMPTS {
                        bail!(
                            "{method} {path}: CXone answered {status} {} times: {}",
                            SERVER_ATTEMPTS,
                            excerpt(text.as_bytes())
                        );
                    }
                    let backoff = BACKOFF * 2u32.pow(server_failures - 1);
                    tokio::time::sleep(wait.unwrap_or(backoff).max(backoff)).await;
                }
                _ => {
                    return Err(Refused {
                        call: format!("{method} {path}"),
                        status,
                        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
                    }
                    .into());
                }
            }
        }
    }

    /// Every object of `kind`.
    pub async fn list(&self, kind: Kind) -> Result<Vec<Value>> {
        let (_, body) = self.call(Method::GET, kind.path(), None).await?;
        match body.get("items") {
            Some(Value::Array(items)) => Ok(items.clone()),
            _ => bail!("GET {}: the answer has no items list", kind.path()),
        }
    }

    /// Creates an object; its id.
    pub async fn create(&self, kind: Kind, object: &Value) -> Result<String> {
        let (_, body) = self.call(Method::POST, kind.path(), Some(object)).await?;
        body.get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("POST {}: the answer has no id", kind.path()))
    }

    pub async fn update(&self, kind: Kind, id: &str, object: &Value) -> Result<()> {
        let path = format!("{}/{}", kind.path(), segment(id));
        self.call(Method::PUT, &path, Some(object))
            .await
            .map(|_| ())
    }

    pub async fn delete(&self, kind: Kind, id: &str) -> Result<()> {
        let path = format!("{}/{}", kind.path(), segment(id));
        self.call(Method::DELETE, &path, None).await.map(|_| ())
    }

    /// Runs an integration target's health test: CXone's report of it. CXone waits up to
    /// the target's own timeout (`timeout_ms`), so this call waits that long and more.
    pub async fn test(&self, id: &str, timeout_ms: u64) -> Result<Value> {
        let path = format!("{}/{}/test", Kind::IntegrationTarget.path(), segment(id));
        let limit = Duration::from_millis(timeout_ms) + TEST_MARGIN;
        let (_, body) = self
            .call_within(Method::POST, &path, Some(&json!({})), Some(limit))
            .await?;
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};
    use cxbridge::secrets::CxoneCredentials;

    use super::*;

    /// A CXone that answers from a script, one status per call, and counts tokens.
    #[derive(Default)]
    struct Script {
        answers: Vec<(u16, Value)>,
        calls: Vec<String>,
        tokens: usize,
    }

    type Shared = Arc<Mutex<Script>>;

    async fn token(State(s): State<Shared>) -> axum::Json<Value> {
        let n = {
            let mut s = s.lock().unwrap();
            s.tokens += 1;
            s.tokens
        };
        axum::Json(
            json!({"access_token": format!("t-{n}"), "token_type": "bearer", "expires_in": 3600}),
        )
    }

    async fn answer(
        State(s): State<Shared>,
        headers: HeaderMap,
    ) -> (StatusCode, axum::Json<Value>) {
        let mut s = s.lock().unwrap();
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        s.calls.push(bearer);
        let (status, body) = if s.answers.is_empty() {
            (200, json!({"items": []}))
        } else {
            s.answers.remove(0)
        };
        (StatusCode::from_u16(status).unwrap(), axum::Json(body))
    }

    async fn scripted(answers: Vec<(u16, Value)>) -> (SetupApi, Shared) {
        let shared: Shared = Arc::new(Mutex::new(Script {
            answers,
            ..Script::default()
        }));
        let app = axum::Router::new()
            .route("/api/v2/oauth/token", post(token))
            .route("/api/v2/webhooks", get(answer).post(answer))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let config = Arc::new(
            CxoneConfig::from_lookup(|k| match k {
                "CXBRIDGE_CXONE_PROFILE" => Some("documented".into()),
                "CXBRIDGE_CXONE_API_BASE" => Some(base.clone()),
                "CXBRIDGE_CXONE_TOKEN_URL" => Some(format!("{base}/api/v2/oauth/token")),
                _ => None,
            })
            .unwrap(),
        );
        let credentials = CxoneCredentials {
            client_id: Some("id".to_owned().into()),
            client_secret: Some("secret".to_owned().into()),
            ..CxoneCredentials::default()
        };
        let http = reqwest::Client::new();
        let tokens = TokenFetcher::new(http.clone(), config, credentials);
        (SetupApi::new(http, &base, tokens), shared)
    }

    #[tokio::test]
    async fn a_5xx_is_retried_and_a_refused_token_is_fetched_again_once() {
        let (api, script) = scripted(vec![
            (503, json!({})),
            (401, json!({})),
            (200, json!({"items": [{"id": "w-1"}]})),
        ])
        .await;
        let items = api.list(Kind::Webhook).await.unwrap();
        assert_eq!(items, [json!({"id": "w-1"})]);
        let s = script.lock().unwrap();
        assert_eq!(s.calls, ["Bearer t-1", "Bearer t-1", "Bearer t-2"]);
        assert_eq!(s.tokens, 2);
    }

    #[tokio::test]
    async fn another_4xx_stops_at_once_with_cxones_answer() {
        let fields = json!({"error": "validation_failed", "fields": [{"field": "url", "problem": "must be HTTPS"}]});
        let (api, script) = scripted(vec![(422, fields.clone()), (200, json!({"id": "x"}))]).await;
        let err = api
            .create(Kind::Webhook, &json!({"name": "w"}))
            .await
            .unwrap_err();
        let refused = err.downcast_ref::<Refused>().unwrap();
        assert_eq!((refused.status, &refused.body), (422, &fields));
        assert!(err.to_string().contains("must be HTTPS"), "{err}");
        assert_eq!(script.lock().unwrap().calls.len(), 1);
    }

    #[tokio::test]
    async fn four_5xx_in_a_row_give_up_with_the_status_and_cxones_answer() {
        let (api, script) = scripted(vec![
            (500, json!({"e": 1})),
            (502, json!({"e": 2})),
            (503, json!({"e": 3})),
            (504, json!({"e": 4})),
        ])
        .await;
        let err = api.list(Kind::Webhook).await.unwrap_err().to_string();
        assert!(err.contains("answered 504 4 times"), "{err}");
        assert_eq!(script.lock().unwrap().calls.len(), 4);
    }
}
