//! The CXone API client: signals and context updates, for both profiles, under the
//! outbound budget, with one retry on a refused token.

use std::future::Future;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::config::{CxoneConfig, MAX_URL_LEN, Profile, SignalBody};
use super::error::{CxoneError, excerpt};
use super::rate::RateBudget;
use super::token::{AccessToken, TokenSource, retry_after};
use secrecy::ExposeSecret;

/// At most this many `p` parameters reach an `incontact` signal.
pub const MAX_SIGNAL_PARAMETERS: usize = 9;

/// A signal to trigger a Studio script.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalRequest {
    /// Signal definition (documented profile).
    pub definition_id: String,
    /// The contact whose script receives the signal (incontact profile).
    pub contact_id: Option<String>,
    /// Variables in declaration order: the order becomes `p1`…`p9` on the platform.
    pub data: Vec<(String, Value)>,
    pub metadata: Value,
    /// Sent as the `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

/// CXone accepted a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalAccepted {
    /// Returned by the documented API; the platform answers with no body.
    pub signal_execution_id: Option<String>,
}

/// What CXone's execution history says of a signal execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionHistory {
    pub status: String,
    pub outputs: Value,
}

/// Port: triggers Studio scripts.
pub trait CxoneSignals: Send + Sync {
    /// The execution's state in CXone's history; `None` where the API keeps none (the
    /// platform profile).
    fn execution(
        &self,
        signal_execution_id: &str,
    ) -> impl Future<Output = Result<Option<ExecutionHistory>, CxoneError>> + Send;

    fn signal(
        &self,
        request: &SignalRequest,
    ) -> impl Future<Output = Result<SignalAccepted, CxoneError>> + Send;
}

/// Port: sets attributes on an interaction's context.
pub trait ContextSink: Send + Sync {
    fn update_context(
        &self,
        interaction_id: &str,
        attributes: &Map<String, Value>,
    ) -> impl Future<Output = Result<(), CxoneError>> + Send;
}

/// The action name sent as `p1` when a context update travels as a platform signal.
pub const CONTEXT_ACTION: &str = "updateContext";

/// Builds the HTTP client every CXone call shares (one connection pool, fixed timeouts).
pub fn http_client(config: &CxoneConfig) -> Result<reqwest::Client, CxoneError> {
    reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .timeout(config.timeout)
        .user_agent(concat!("cxbridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CxoneError::Invalid {
            status: None,
            detail: format!("cannot build the HTTP client: {e}"),
        })
}

/// [`CxoneSignals`] and [`ContextSink`] over HTTP.
pub struct HttpCxoneClient<T, R> {
    http: reqwest::Client,
    config: Arc<CxoneConfig>,
    tokens: T,
    budget: R,
}

/// A request, built afresh for each attempt (a retry needs a new token).
enum Call {
    Get { url: reqwest::Url },
    Json { url: reqwest::Url, body: Value },
    Empty { url: reqwest::Url },
}

fn parameter(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn url(base: &str, path: &str) -> Result<reqwest::Url, CxoneError> {
    reqwest::Url::parse(&format!("{base}{path}")).map_err(|e| CxoneError::Invalid {
        status: None,
        detail: format!("bad CXone URL {base}{path}: {e}"),
    })
}

fn segment(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl<T: TokenSource, R: RateBudget> HttpCxoneClient<T, R> {
    pub fn new(http: reqwest::Client, config: Arc<CxoneConfig>, tokens: T, budget: R) -> Self {
        Self {
            http,
            config,
            tokens,
            budget,
        }
    }

    /// Fetches (or loads the shared) token ahead of the first call.
    pub async fn warm(&self) {
        if let Err(e) = self.tokens.token().await {
            tracing::warn!(error = %e, "could not get a CXone token at init; the first call will try again");
        }
    }

    fn base(&self, token: &AccessToken) -> Result<String, CxoneError> {
        self.config
            .api_base
            .clone()
            .or_else(|| token.api_base.clone())
            .ok_or_else(|| CxoneError::Invalid {
                status: None,
                detail: "no CXone API base is known".into(),
            })
    }

    /// Sends a call: budget, token, `Accept: application/json`, and on a 401 one more try
    /// with a new token. Returns the body of a 2xx answer.
    async fn send(
        &self,
        build: impl Fn(&str) -> Result<Call, CxoneError>,
    ) -> Result<Vec<u8>, CxoneError> {
        self.send_with(None, build).await
    }

    /// [`Self::send`], with an `Idempotency-Key` header.
    async fn send_with(
        &self,
        idempotency_key: Option<&str>,
        build: impl Fn(&str) -> Result<Call, CxoneError>,
    ) -> Result<Vec<u8>, CxoneError> {
        for attempt in 0..2 {
            // The token first: a grant is only taken right before the call goes out, so a
            // slow token fetch cannot bunch granted calls together at CXone.
            let token = self.tokens.token().await?;
            if let Err(wait) = self.budget.acquire().await {
                return Err(CxoneError::RateLimited {
                    retry_after: Some(wait),
                    local: true,
                });
            }
            let request = match build(&self.base(&token)?)? {
                Call::Get { url } => self.http.get(url),
                Call::Json { url, body } => self.http.post(url).json_body(&body),
                Call::Empty { url } => self.http.post(url).header("content-length", "0"),
            };
            let request = match idempotency_key {
                Some(key) => request.header("idempotency-key", key),
                None => request,
            };
            let response = request
                .header("accept", "application/json")
                .header(
                    "authorization",
                    format!("Bearer {}", token.value.expose_secret()),
                )
                .send()
                .await
                .map_err(|e| {
                    if e.is_timeout() {
                        CxoneError::Timeout(self.config.timeout)
                    } else {
                        CxoneError::Unavailable("cannot reach CXone".into())
                    }
                })?;
            let status = response.status().as_u16();
            let after = retry_after(response.headers());
            let body = response.bytes().await.map_err(|e| {
                if e.is_timeout() {
                    CxoneError::Timeout(self.config.timeout)
                } else {
                    CxoneError::Unavailable("the CXone response was cut short".into())
                }
            })?;
            match status {
                200..=299 => return Ok(body.to_vec()),
                401 if attempt == 0 => {
                    // The token may have been revoked or expired early: drop it, try once more.
                    self.tokens.invalidate(&token).await;
                }
                401 => return Err(CxoneError::Unauthorized(excerpt(&body))),
                403 => return Err(CxoneError::Forbidden(excerpt(&body))),
                404 => return Err(CxoneError::NotFound(excerpt(&body))),
                429 => {
                    return Err(CxoneError::RateLimited {
                        retry_after: after,
                        local: false,
                    });
                }
                500..=599 => {
                    return Err(CxoneError::Unavailable(format!(
                        "status {status}: {}",
                        excerpt(&body)
                    )));
                }
                _ => {
                    return Err(CxoneError::Invalid {
                        status: Some(status),
                        detail: excerpt(&body),
                    });
                }
            }
        }
        Err(CxoneError::Unauthorized(
            "the new token was refused too".into(),
        ))
    }

    /// `POST …/interactions/{contact}/signal?p1=…` on the platform.
    async fn platform_signal(
        &self,
        contact_id: &str,
        parameters: &[String],
        idempotency_key: Option<&str>,
    ) -> Result<(), CxoneError> {
        if parameters.len() > MAX_SIGNAL_PARAMETERS {
            return Err(CxoneError::Invalid {
                status: None,
                detail: format!(
                    "a platform signal carries at most {MAX_SIGNAL_PARAMETERS} parameters (p1-p9), not {}",
                    parameters.len()
                ),
            });
        }
        let path = format!(
            "/inContactAPI/services/v{}/interactions/{}/signal",
            self.config.api_version,
            segment(contact_id)
        );
        let fallback = self.config.signal_body == SignalBody::JsonFallback;
        self.send_with(idempotency_key, |base| {
            let mut with_query = url(base, &path)?;
            {
                let mut query = with_query.query_pairs_mut();
                for (i, value) in parameters.iter().enumerate() {
                    query.append_pair(&format!("p{}", i + 1), value);
                }
            }
            if with_query.as_str().len() <= MAX_URL_LEN {
                return Ok(Call::Empty { url: with_query });
            }
            if !fallback {
                return Err(CxoneError::Invalid {
                    status: None,
                    detail: format!(
                        "the signal URL would be {} characters, over the {MAX_URL_LEN} allowed; set CXBRIDGE_CXONE_SIGNAL_BODY=json-fallback to send long signals as a JSON body",
                        with_query.as_str().len()
                    ),
                });
            }
            let body: Map<String, Value> = parameters
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("p{}", i + 1), Value::String(v.clone())))
                .collect();
            Ok(Call::Json { url: url(base, &path)?, body: Value::Object(body) })
        })
        .await
        .map(|_| ())
    }
}

trait JsonBody {
    fn json_body(self, body: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, body: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }
}

impl<T: TokenSource, R: RateBudget> CxoneSignals for HttpCxoneClient<T, R> {
    async fn execution(
        &self,
        signal_execution_id: &str,
    ) -> Result<Option<ExecutionHistory>, CxoneError> {
        if self.config.profile == Profile::InContact {
            return Ok(None);
        }
        let path = format!(
            "/api/v2/signals/executions/{}",
            segment(signal_execution_id)
        );
        let body = self
            .send(|base| {
                Ok(Call::Get {
                    url: url(base, &path)?,
                })
            })
            .await?;
        let parsed: Value = serde_json::from_slice(&body).map_err(|e| {
            CxoneError::BadResponse(format!("the execution history is not JSON: {e}"))
        })?;
        let status = parsed
            .get("status")
            .and_then(Value::as_str)
            .ok_or_else(|| CxoneError::BadResponse("the execution history has no status".into()))?;
        Ok(Some(ExecutionHistory {
            status: status.to_owned(),
            outputs: parsed.get("outputs").cloned().unwrap_or_else(|| json!({})),
        }))
    }

    async fn signal(&self, request: &SignalRequest) -> Result<SignalAccepted, CxoneError> {
        match self.config.profile {
            Profile::Documented => {
                let path = format!("/api/v2/signals/{}", segment(&request.definition_id));
                let data: Map<String, Value> = request.data.iter().cloned().collect();
                let body = json!({"data": data, "metadata": request.metadata});
                let answer = self
                    .send_with(request.idempotency_key.as_deref(), |base| {
                        Ok(Call::Json {
                            url: url(base, &path)?,
                            body: body.clone(),
                        })
                    })
                    .await?;
                // CXone accepted the signal (2xx); an answer without a usable execution id
                // does not undo that, so the signal is not reported as failed.
                let id = serde_json::from_slice::<Value>(&answer).ok().and_then(|v| {
                    v.get("signalExecutionId")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
                if id.is_none() {
                    tracing::warn!(body = %super::error::excerpt(&answer), "CXone accepted a signal without a signalExecutionId");
                }
                Ok(SignalAccepted {
                    signal_execution_id: id,
                })
            }
            Profile::InContact => {
                let contact = request
                    .contact_id
                    .as_deref()
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| CxoneError::Invalid {
                        status: None,
                        detail: "a platform signal needs a contact id".into(),
                    })?;
                let parameters: Vec<String> =
                    request.data.iter().map(|(_, v)| parameter(v)).collect();
                self.platform_signal(contact, &parameters, request.idempotency_key.as_deref())
                    .await?;
                Ok(SignalAccepted {
                    signal_execution_id: None,
                })
            }
        }
    }
}

impl<T: TokenSource, R: RateBudget> ContextSink for HttpCxoneClient<T, R> {
    async fn update_context(
        &self,
        interaction_id: &str,
        attributes: &Map<String, Value>,
    ) -> Result<(), CxoneError> {
        match self.config.profile {
            Profile::Documented => {
                let path = format!(
                    "/api/v2/interactions/interactions/{}/context",
                    segment(interaction_id)
                );
                let body = json!({"attributes": attributes});
                self.send(|base| {
                    Ok(Call::Json {
                        url: url(base, &path)?,
                        body: body.clone(),
                    })
                })
                .await
                .map(|_| ())
            }
            Profile::InContact => {
                let parameters = [
                    CONTEXT_ACTION.to_owned(),
                    Value::Object(attributes.clone()).to_string(),
                ];
                self.platform_signal(interaction_id, &parameters, None)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_strings_and_objects_are_json() {
        assert_eq!(parameter(&json!("a b")), "a b");
        assert_eq!(parameter(&json!(42)), "42");
        assert_eq!(parameter(&json!(true)), "true");
        assert_eq!(parameter(&Value::Null), "");
        assert_eq!(parameter(&json!({"k": 1})), r#"{"k":1}"#);
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("order-update"), "order-update");
    }
}
