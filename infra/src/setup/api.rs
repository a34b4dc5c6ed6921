//! The documented API's setup endpoints over HTTP: list, create, update, delete and the
//! integration targets' test, with CXone's retry rules: 429 waits for `Retry-After`, 5xx
//! and network failures are retried with backoff, a refused token is fetched again once,
//! and any other 4xx stops with CXone's answer.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use cxbridge::cxone::error::retry_after;
use cxbridge::cxone::token::{AccessToken, TokenFetcher};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::model::Kind;

/// Attempts for a 5xx or a network failure, the first included.
const SERVER_ATTEMPTS: u32 = 4;
/// Attempts for 429s in a row, the first included.
const RATE_LIMIT_ATTEMPTS: u32 = 10;
/// The first backoff after a 5xx; it doubles.
const BACKOFF: Duration = Duration::from_millis(500);
/// How long to wait after a 429 without `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
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
            excerpt(&self.body.to_string())
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

fn excerpt(body: &str) -> String {
    let one_line: String = body.chars().filter(|c| !c.is_control()).take(500).collect();
    if one_line.is_empty() {
        "(no body)".into()
    } else {
        one_line
    }
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

    async fn bearer(&self, fresh: bool) -> Result<String> {
        let mut token = self.token.lock().await;
        if fresh || token.is_none() {
            let fetched = self
                .tokens
                .fetch()
                .await
                .map_err(|e| anyhow!("cannot get a CXone token: {e}"))?;
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
        let url = format!("{}{path}", self.base);
        let (mut server_failures, mut limited, mut refreshed) = (0, 0, false);
        loop {
            let bearer = self.bearer(false).await?;
            let mut request = self.http.request(method.clone(), &url).bearer_auth(&bearer);
            if let Some(body) = body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            let response = match request.send().await {
                Ok(r) => r,
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
                    if limited >= RATE_LIMIT_ATTEMPTS || wait > MAX_RETRY_AFTER {
                        bail!("{method} {path}: CXone kept answering 429 (rate limited)");
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
                            excerpt(&text)
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

    /// Runs an integration target's health test: CXone's report of it.
    pub async fn test(&self, id: &str) -> Result<Value> {
        let path = format!("{}/{}/test", Kind::IntegrationTarget.path(), segment(id));
        let (_, body) = self.call(Method::POST, &path, Some(&json!({}))).await?;
        Ok(body)
    }
}

fn segment(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
