//! The CXone API client over HTTPS: signals and context updates, for both profiles, under
//! the outbound budget, with one retry on a refused token.

use std::sync::Arc;

use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use super::{read_answer, transport};
use crate::clock::now_ms;
use crate::cxone::api::{
    CONTEXT_ACTION, ContextSink, CxoneSignals, ExecutionHistory, MAX_SIGNAL_PARAMETERS,
    PARAMETER_SEPARATOR, SignalAccepted, SignalRequest, Spawn, parameter, path_id,
};
use crate::cxone::config::{CxoneConfig, MAX_URL_LEN, Profile, SignalBody, SpawnParams};
use crate::cxone::error::{CxoneError, Endpoint, excerpt};
use crate::cxone::rate::{RateBudget, Refusal};
use crate::cxone::token::{AccessToken, TokenSource};

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

fn url(base: &str, path: &str) -> Result<reqwest::Url, CxoneError> {
    reqwest::Url::parse(&format!("{base}{path}")).map_err(|e| CxoneError::Invalid {
        status: None,
        detail: format!("bad CXone URL {base}{path}: {e}"),
    })
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
            match self.budget.acquire().await {
                Ok(()) => {}
                Err(Refusal::Wait(wait)) => {
                    return Err(CxoneError::RateLimited {
                        retry_after: Some(wait),
                        local: true,
                    });
                }
                Err(Refusal::Unavailable(detail)) => return Err(CxoneError::Store(detail)),
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
                .map_err(|e| transport(&e, self.config.timeout))?;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                // The token may have been revoked or expired early: drop it, try once more.
                self.tokens.invalidate(&token).await;
                continue;
            }
            return read_answer(response, Endpoint::Api, self.config.timeout, now_ms()).await;
        }
        Err(CxoneError::Unauthorized(
            "the new token was refused too".into(),
        ))
    }

    /// `POST …/interactions/{contact}/signal` on the platform, with `p1`…`p9` in a JSON
    /// body or in the query, as configured.
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
            path_id(contact_id, "contact id")?
        );
        let named: Vec<(String, String)> = parameters
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("p{}", i + 1), v.clone()))
            .collect();
        let in_query = self.config.signal_body == SignalBody::Query;
        self.post_parameters(idempotency_key, &path, &named, in_query, || {
            Value::Object(
                named
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        })
        .await
    }

    /// Posts parameters in the query (when asked) or as the JSON body. CXone's URL length
    /// limit is not documented: a 414 to the query form is sent again as the body, so a
    /// value the body can carry is never refused.
    async fn post_parameters(
        &self,
        idempotency_key: Option<&str>,
        path: &str,
        pairs: &[(String, String)],
        in_query: bool,
        body: impl Fn() -> Value,
    ) -> Result<(), CxoneError> {
        let body = &body;
        let send = |in_query: bool| {
            self.send_with(idempotency_key, move |base| {
                query_or_body(base, path, pairs, in_query, body)
            })
        };
        match send(in_query).await {
            Err(CxoneError::Invalid {
                status: Some(414), ..
            }) if in_query => send(false).await.map(|_| ()),
            other => other.map(|_| ()),
        }
    }

    /// `POST …/scripts/{scriptId}/start` on the platform: a new script with no contact,
    /// on the given skill, with its parameters as one pipe-delimited string.
    async fn spawn_script(
        &self,
        spawn: &Spawn,
        parameters: &[String],
        idempotency_key: Option<&str>,
    ) -> Result<(), CxoneError> {
        if let Some(bad) = parameters.iter().find(|p| p.contains(PARAMETER_SEPARATOR)) {
            return Err(CxoneError::Invalid {
                status: None,
                detail: format!(
                    "a spawned script's parameters are |-delimited, so none may contain | ({} characters refused)",
                    bad.chars().count()
                ),
            });
        }
        let path = format!(
            "/inContactAPI/services/v{}/scripts/{}/start",
            self.config.api_version,
            path_id(&spawn.script_id, "script id")?
        );
        let joined = parameters.join(PARAMETER_SEPARATOR);
        let in_query = self.config.spawn_params == SpawnParams::Query;
        let query = [
            ("skillId".to_owned(), spawn.skill_id.clone()),
            ("parameters".to_owned(), joined.clone()),
        ];
        self.post_parameters(idempotency_key, &path, &query, in_query, || {
            json!({
                "scriptId": spawn.script_id,
                "skillId": spawn.skill_id,
                "parameters": joined,
            })
        })
        .await
    }
}

/// A POST with `pairs` in the query when asked and the URL stays short enough, else with
/// the JSON `body`: a long value is never refused when the body can carry it.
fn query_or_body(
    base: &str,
    path: &str,
    pairs: &[(String, String)],
    in_query: bool,
    body: &impl Fn() -> Value,
) -> Result<Call, CxoneError> {
    if in_query {
        let mut with_query = url(base, path)?;
        with_query.query_pairs_mut().extend_pairs(pairs.iter());
        if with_query.as_str().len() <= MAX_URL_LEN {
            return Ok(Call::Empty { url: with_query });
        }
    }
    Ok(Call::Json {
        url: url(base, path)?,
        body: body(),
    })
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
            path_id(signal_execution_id, "signal execution id")?
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
                let path = format!(
                    "/api/v2/signals/{}",
                    path_id(&request.definition_id, "signal definition id")?
                );
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
                    tracing::warn!(body = %excerpt(&answer), "CXone accepted a signal without a signalExecutionId");
                }
                Ok(SignalAccepted {
                    signal_execution_id: id,
                })
            }
            Profile::InContact => {
                let parameters: Vec<String> =
                    request.data.iter().map(|(_, v)| parameter(v)).collect();
                let key = request.idempotency_key.as_deref();
                if let Some(spawn) = &request.spawn {
                    self.spawn_script(spawn, &parameters, key).await?;
                } else {
                    let contact = request
                        .contact_id
                        .as_deref()
                        .filter(|c| !c.is_empty())
                        .ok_or_else(|| CxoneError::Invalid {
                            status: None,
                            detail: "a platform signal needs a contact id".into(),
                        })?;
                    self.platform_signal(contact, &parameters, key).await?;
                }
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
                    path_id(interaction_id, "interaction id")?
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

    async fn send_action(
        &self,
        contact_id: &str,
        action: &str,
        attributes: &Map<String, Value>,
    ) -> Result<(), CxoneError> {
        match self.config.profile {
            Profile::Documented => Err(CxoneError::Invalid {
                status: None,
                detail: "the documented API has no action signal; its context takes the attributes"
                    .into(),
            }),
            Profile::InContact => {
                let parameters = [
                    action.to_owned(),
                    Value::Object(attributes.clone()).to_string(),
                ];
                self.platform_signal(contact_id, &parameters, None).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cxone::config::MAX_URL_LEN;

    #[test]
    fn query_parameters_move_to_the_body_when_the_url_would_be_too_long() {
        let short = [("p1".to_owned(), "a".to_owned())];
        let long = [("p1".to_owned(), "x".repeat(MAX_URL_LEN))];
        let body = &|| json!({"p1": "?"});
        match query_or_body("http://cx", "/s", &short, true, body).unwrap() {
            Call::Empty { url } => assert_eq!(url.as_str(), "http://cx/s?p1=a"),
            _ => panic!("a short signal goes in the query"),
        }
        assert!(matches!(
            query_or_body("http://cx", "/s", &long, true, body).unwrap(),
            Call::Json { .. }
        ));
        assert!(matches!(
            query_or_body("http://cx", "/s", &short, false, body).unwrap(),
            Call::Json { .. }
        ));
    }
}
