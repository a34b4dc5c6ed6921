//! CXone access tokens for both profiles, refreshed ahead of expiry, one refresh at a time
//! per process and, through a lease in DynamoDB, one leader at a time across instances.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::config::{ClientAuth, CxoneConfig, Profile};
use super::error::{CxoneError, excerpt};
use crate::clock::now_ms;
use crate::secrets::CxoneCredentials;

/// A bearer token and where to use it.
#[derive(Clone)]
pub struct AccessToken {
    pub value: SecretString,
    pub expires_at_ms: i64,
    /// When to fetch a new one: ahead of expiry, jittered.
    pub refresh_at_ms: i64,
    /// The API base that goes with it (discovered for `incontact`).
    pub api_base: Option<String>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"[redacted]")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("refresh_at_ms", &self.refresh_at_ms)
            .field("api_base", &self.api_base)
            .finish()
    }
}

impl AccessToken {
    fn same(&self, other: &AccessToken) -> bool {
        self.value.expose_secret() == other.value.expose_secret()
    }
}

/// When to refresh a token that lives `ttl_ms`: at least 60 s early with up to 30 s of
/// jitter, or at half-life for tokens too short for that.
pub fn refresh_delay_ms(ttl_ms: i64, jitter: f64) -> i64 {
    const EARLY_MS: i64 = 60_000;
    const JITTER_MS: f64 = 30_000.0;
    let early = EARLY_MS + (JITTER_MS * jitter.clamp(0.0, 1.0)) as i64;
    if ttl_ms > 2 * EARLY_MS + JITTER_MS as i64 {
        ttl_ms - early
    } else {
        ttl_ms / 2
    }
}

fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX)
}

/// Port: where access tokens come from.
pub trait TokenSource: Send + Sync {
    fn token(&self) -> impl Future<Output = Result<Arc<AccessToken>, CxoneError>> + Send;
    /// CXone refused `token` (401): never hand it out again.
    fn invalidate(&self, token: &AccessToken) -> impl Future<Output = ()> + Send;
}

/// Fetches tokens from CXone over HTTP, for either profile.
pub struct TokenFetcher {
    http: reqwest::Client,
    config: Arc<CxoneConfig>,
    credentials: CxoneCredentials,
    /// Discovered token endpoint and API base (`incontact`), cached for the process.
    discovered: Mutex<(Option<String>, Option<String>)>,
}

fn transport(err: &reqwest::Error, timeout: Duration) -> CxoneError {
    if err.is_timeout() {
        CxoneError::Timeout(timeout)
    } else {
        CxoneError::Unavailable(format!("cannot reach CXone: {}", without_url(err)))
    }
}

/// reqwest's message without the URL (which may carry a query).
fn without_url(err: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    let mut parts = Vec::new();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    if parts.is_empty() {
        "request failed".to_owned()
    } else {
        parts.join(": ")
    }
}

/// Maps a token or discovery response's status to an error.
fn status_error(status: u16, body: &[u8], retry_after: Option<Duration>) -> CxoneError {
    let detail = excerpt(body);
    match status {
        401 => CxoneError::Unauthorized(detail),
        403 => CxoneError::Forbidden(detail),
        // A missing token or discovery endpoint is CXone's problem, not the caller's.
        404 => CxoneError::Unavailable(format!("the CXone endpoint answered 404: {detail}")),
        429 => CxoneError::RateLimited {
            retry_after,
            local: false,
        },
        500..=599 => CxoneError::Unavailable(format!("status {status}: {detail}")),
        _ => CxoneError::Invalid {
            status: Some(status),
            detail,
        },
    }
}

/// `Retry-After` as seconds (the HTTP-date form is treated as one second).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    Some(match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs.min(900)),
        Err(_) => Duration::from_secs(1),
    })
}

fn secret(value: &Option<SecretString>, name: &str) -> Result<String, CxoneError> {
    value
        .as_ref()
        .map(|v| v.expose_secret().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| CxoneError::Invalid {
            status: None,
            detail: format!("the secret has no cxone.{name}"),
        })
}

/// The `tenantId` claim of an id_token (a JWT; its signature is not needed to read it).
pub fn tenant_from_id_token(id_token: &str) -> Option<String> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    ["tenantId", "tenant_id", "tenant"]
        .iter()
        .find_map(|k| claims.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}

impl TokenFetcher {
    pub fn new(
        http: reqwest::Client,
        config: Arc<CxoneConfig>,
        credentials: CxoneCredentials,
    ) -> Self {
        Self {
            http,
            config,
            credentials,
            discovered: Mutex::new((None, None)),
        }
    }

    async fn get_json(&self, url: &str) -> Result<Value, CxoneError> {
        let response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| transport(&e, self.config.timeout))?;
        let status = response.status().as_u16();
        let after = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| transport(&e, self.config.timeout))?;
        if !(200..300).contains(&status) {
            return Err(status_error(status, &body, after));
        }
        serde_json::from_slice(&body)
            .map_err(|e| CxoneError::BadResponse(format!("{url} did not return JSON: {e}")))
    }

    async fn token_endpoint(&self) -> Result<String, CxoneError> {
        if self.config.profile == Profile::Documented {
            return self
                .config
                .token_url
                .clone()
                .ok_or_else(|| CxoneError::Invalid {
                    status: None,
                    detail: "no token URL is configured".into(),
                });
        }
        if let Some(url) = self.discovered.lock().ok().and_then(|d| d.0.clone()) {
            return Ok(url);
        }
        let doc = self
            .get_json(&format!(
                "{}/.well-known/openid-configuration",
                self.config.issuer
            ))
            .await?;
        let url = doc
            .get("token_endpoint")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                CxoneError::BadResponse("the OIDC discovery document has no token_endpoint".into())
            })?
            .to_owned();
        if let Ok(mut d) = self.discovered.lock() {
            d.0 = Some(url.clone());
        }
        Ok(url)
    }

    async fn api_base(&self, id_token: Option<&str>) -> Result<Option<String>, CxoneError> {
        if let Some(base) = &self.config.api_base {
            return Ok(Some(base.clone()));
        }
        if self.config.profile == Profile::Documented {
            return Ok(None);
        }
        if let Some(base) = self.discovered.lock().ok().and_then(|d| d.1.clone()) {
            return Ok(Some(base));
        }
        let tenant = id_token.and_then(tenant_from_id_token).ok_or_else(|| {
            CxoneError::BadResponse("the id_token carries no tenantId claim".into())
        })?;
        let mut url = reqwest::Url::parse(&format!(
            "{}/.well-known/cxone-configuration",
            self.config.issuer
        ))
        .map_err(|e| CxoneError::Invalid {
            status: None,
            detail: e.to_string(),
        })?;
        url.query_pairs_mut().append_pair("tenantId", &tenant);
        let doc = self.get_json(url.as_str()).await?;
        let base = doc
            .get("api_endpoint")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                CxoneError::BadResponse("the CXone configuration has no api_endpoint".into())
            })?
            .trim_end_matches('/')
            .to_owned();
        if let Ok(mut d) = self.discovered.lock() {
            d.1 = Some(base.clone());
        }
        Ok(Some(base))
    }

    /// Asks CXone for a new token.
    pub async fn fetch(&self) -> Result<AccessToken, CxoneError> {
        let endpoint = self.token_endpoint().await?;
        let mut form: Vec<(&str, String)> = Vec::new();
        let mut request = self
            .http
            .post(&endpoint)
            .header("accept", "application/json");
        match self.config.profile {
            Profile::Documented => {
                form.push(("grant_type", "client_credentials".to_string()));
                if let Some(scope) = &self.config.scope {
                    form.push(("scope", scope.to_string()));
                }
                let id = secret(&self.credentials.client_id, "clientId")?;
                let key = secret(&self.credentials.client_secret, "clientSecret")?;
                match self.config.client_auth {
                    ClientAuth::Basic => {
                        request = request.header(
                            "authorization",
                            format!("Basic {}", STANDARD.encode(format!("{id}:{key}"))),
                        );
                    }
                    ClientAuth::Post => {
                        form.push(("client_id", id.to_string()));
                        form.push(("client_secret", key.to_string()));
                    }
                }
            }
            Profile::InContact => {
                form.push(("grant_type", "password".to_string()));
                form.push((
                    "username",
                    secret(&self.credentials.access_key_id, "accessKeyId")?,
                ));
                form.push((
                    "password",
                    secret(&self.credentials.access_key_secret, "accessKeySecret")?,
                ));
                let id = secret(&self.credentials.client_id, "clientId")?;
                let key = secret(&self.credentials.client_secret, "clientSecret")?;
                request = request.header(
                    "authorization",
                    format!("Basic {}", STANDARD.encode(format!("{id}:{key}"))),
                );
            }
        }
        // Form-encoded properly, so that keys holding `=`, `+` or `/` arrive intact.
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let response = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| transport(&e, self.config.timeout))?;
        let status = response.status().as_u16();
        let after = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| transport(&e, self.config.timeout))?;
        if !(200..300).contains(&status) {
            return Err(status_error(status, &body, after));
        }
        let doc: Value = serde_json::from_slice(&body)
            .map_err(|e| CxoneError::BadResponse(format!("the token response is not JSON: {e}")))?;
        let value = doc
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                CxoneError::BadResponse("the token response has no access_token".into())
            })?;
        // OAuth requires token_type; cxbridge only knows how to use bearer tokens.
        match doc.get("token_type").and_then(Value::as_str) {
            Some(t) if t.eq_ignore_ascii_case("bearer") => {}
            Some(t) => {
                return Err(CxoneError::BadResponse(format!(
                    "token_type {t:?} is not bearer"
                )));
            }
            None => {
                return Err(CxoneError::BadResponse(
                    "the token response has no token_type".into(),
                ));
            }
        }
        // Absent means the default hour; anything present must be a positive number of
        // seconds, capped at a day.
        let ttl_secs = match doc.get("expires_in") {
            None | Some(Value::Null) => Some(3600),
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            Some(_) => None,
        }
        .filter(|s| *s > 0)
        .map(|s| s.min(86_400))
        .ok_or_else(|| {
            CxoneError::BadResponse("expires_in is not a positive number of seconds".into())
        })?;
        let api_base = self
            .api_base(doc.get("id_token").and_then(Value::as_str))
            .await?;
        let now = now_ms();
        let ttl_ms = ttl_secs.saturating_mul(1000);
        Ok(AccessToken {
            value: SecretString::from(value.to_owned()),
            expires_at_ms: now + ttl_ms,
            refresh_at_ms: now + refresh_delay_ms(ttl_ms, jitter()),
            api_base,
        })
    }
}

/// Port: the token shared by every instance, and the lease that elects who refreshes it.
pub trait TokenStore: Send + Sync {
    fn load(&self) -> impl Future<Output = Result<Option<AccessToken>, CxoneError>> + Send;
    /// Takes the refresh lease for `lease`, unless another owner holds it.
    fn try_lease(
        &self,
        owner: &str,
        lease: Duration,
    ) -> impl Future<Output = Result<bool, CxoneError>> + Send;
    fn publish(
        &self,
        owner: &str,
        token: &AccessToken,
    ) -> impl Future<Output = Result<(), CxoneError>> + Send;
    /// Gives up the lease `owner` holds, after a failed refresh.
    fn release(&self, owner: &str) -> impl Future<Output = Result<(), CxoneError>> + Send;
    /// Marks `token` as due for refresh (CXone refused it).
    fn retire(&self, token: &AccessToken) -> impl Future<Output = Result<(), CxoneError>> + Send;
}

/// [`TokenStore`] over the `token#{tenant}` item.
#[derive(Debug, Clone)]
pub struct DynamoDbTokenStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    key: String,
}

impl DynamoDbTokenStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, tenant: &str) -> Self {
        Self {
            client,
            table,
            key: format!("token#{tenant}"),
        }
    }
}

fn store_error(err: impl std::fmt::Display) -> CxoneError {
    CxoneError::Unavailable(format!("the shared token store failed: {err}"))
}

/// Whether a conditional write was applied: a failed condition is an answer, not an error.
fn applied<T, E>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<E>>,
) -> Result<bool, CxoneError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .and_then(aws_sdk_dynamodb::error::ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(store_error(aws_sdk_dynamodb::error::DisplayErrorContext(
            &e,
        ))),
    }
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_n(item: &HashMap<String, AttributeValue>, k: &str) -> Option<i64> {
    item.get(k)?.as_n().ok()?.parse().ok()
}

fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, k: &str) -> Option<&'a str> {
    item.get(k)?.as_s().ok().map(String::as_str)
}

impl TokenStore for DynamoDbTokenStore {
    async fn load(&self) -> Result<Option<AccessToken>, CxoneError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let (Some(value), Some(expires), Some(refresh)) = (
            get_s(&item, "accessToken"),
            get_n(&item, "expiresAtMs"),
            get_n(&item, "refreshAtMs"),
        ) else {
            return Ok(None);
        };
        // An expired item is absent, whatever TTL deletion has done so far.
        if expires <= now_ms() {
            return Ok(None);
        }
        Ok(Some(AccessToken {
            value: SecretString::from(value.to_owned()),
            expires_at_ms: expires,
            refresh_at_ms: refresh,
            api_base: get_s(&item, "apiBase").map(str::to_owned),
        }))
    }

    async fn try_lease(&self, owner: &str, lease: Duration) -> Result<bool, CxoneError> {
        let now = now_ms();
        let until = now + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.key.clone()))
            .update_expression("SET leaseOwner = :owner, leaseUntilMs = :until")
            // Only while no fresh token is shared: a follower that looked before the leader
            // published must not refresh again.
            .condition_expression(
                "(attribute_not_exists(refreshAtMs) OR refreshAtMs < :now) AND (attribute_not_exists(leaseUntilMs) OR leaseUntilMs < :now OR leaseOwner = :owner)",
            )
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        applied(result)
    }

    async fn publish(&self, owner: &str, token: &AccessToken) -> Result<(), CxoneError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.key.clone()))
            .update_expression(if token.api_base.is_some() {
                "SET accessToken = :t, expiresAtMs = :e, refreshAtMs = :r, expiresAt = :ttl, apiBase = :b REMOVE leaseOwner, leaseUntilMs"
            } else {
                "SET accessToken = :t, expiresAtMs = :e, refreshAtMs = :r, expiresAt = :ttl REMOVE leaseOwner, leaseUntilMs"
            })
            .condition_expression("attribute_not_exists(leaseOwner) OR leaseOwner = :owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":t", AttributeValue::S(token.value.expose_secret().to_owned()))
            .expression_attribute_values(":e", n(token.expires_at_ms))
            .expression_attribute_values(":r", n(token.refresh_at_ms))
            .expression_attribute_values(":ttl", n(token.expires_at_ms / 1000 + 60));
        if let Some(base) = &token.api_base {
            update = update.expression_attribute_values(":b", AttributeValue::S(base.clone()));
        }
        // Our lease lapsed and someone else took over: their token wins.
        applied(update.send().await).map(|_| ())
    }

    async fn release(&self, owner: &str) -> Result<(), CxoneError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.key.clone()))
            .update_expression("REMOVE leaseOwner, leaseUntilMs")
            .condition_expression("leaseOwner = :owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .send()
            .await;
        applied(result).map(|_| ())
    }

    async fn retire(&self, token: &AccessToken) -> Result<(), CxoneError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.key.clone()))
            .update_expression("SET refreshAtMs = :zero, expiresAtMs = :zero")
            .condition_expression("accessToken = :t")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(
                ":t",
                AttributeValue::S(token.value.expose_secret().to_owned()),
            )
            .send()
            .await;
        applied(result).map(|_| ())
    }
}

/// A store for a single process (no sharing), for tools and tests.
#[derive(Debug, Default)]
pub struct NoSharing;

impl TokenStore for NoSharing {
    async fn load(&self) -> Result<Option<AccessToken>, CxoneError> {
        Ok(None)
    }
    async fn try_lease(&self, _: &str, _: Duration) -> Result<bool, CxoneError> {
        Ok(true)
    }
    async fn publish(&self, _: &str, _: &AccessToken) -> Result<(), CxoneError> {
        Ok(())
    }
    async fn release(&self, _: &str) -> Result<(), CxoneError> {
        Ok(())
    }
    async fn retire(&self, _: &AccessToken) -> Result<(), CxoneError> {
        Ok(())
    }
}

/// How long a refresh lease lasts: a leader that dies frees it after this.
const LEASE: Duration = Duration::from_secs(10);
/// How long a follower with no usable token waits for the leader before giving up (the
/// call then fails as retryable and is deferred), well inside a function's timeout.
const FOLLOW_LIMIT: Duration = Duration::from_secs(4);
/// How often a follower looks for the leader's token.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// The [`TokenSource`] every function uses: local cache, single flight, shared token.
pub struct SharedTokenSource<S> {
    fetcher: TokenFetcher,
    store: S,
    owner: String,
    cached: Mutex<Option<Arc<AccessToken>>>,
    flight: tokio::sync::Mutex<()>,
}

impl<S: TokenStore> SharedTokenSource<S> {
    pub fn new(fetcher: TokenFetcher, store: S) -> Self {
        Self {
            fetcher,
            store,
            owner: crate::ids::new_uuid(),
            cached: Mutex::new(None),
            flight: tokio::sync::Mutex::new(()),
        }
    }

    /// Takes a token read from the store beforehand (at init, beside other work), unless it
    /// is already due for refresh.
    pub fn preload(&self, token: Option<AccessToken>) {
        if let Some(token) = token.filter(|t| now_ms() < t.refresh_at_ms) {
            self.keep(token);
        }
    }

    fn fresh_local(&self, now: i64) -> Option<Arc<AccessToken>> {
        self.cached
            .lock()
            .ok()?
            .as_ref()
            .filter(|t| now < t.refresh_at_ms)
            .cloned()
    }

    fn keep(&self, token: AccessToken) -> Arc<AccessToken> {
        let token = Arc::new(token);
        if let Ok(mut c) = self.cached.lock() {
            *c = Some(token.clone());
        }
        token
    }

    async fn refresh(&self) -> Result<Arc<AccessToken>, CxoneError> {
        let give_up_at = now_ms() + i64::try_from(FOLLOW_LIMIT.as_millis()).unwrap_or(i64::MAX / 2);
        loop {
            let now = now_ms();
            let shared = self.store.load().await?;
            if let Some(token) = &shared
                && now < token.refresh_at_ms
            {
                return Ok(self.keep(token.clone()));
            }
            if self.store.try_lease(&self.owner, LEASE).await? {
                let token = match self.fetcher.fetch().await {
                    Ok(token) => token,
                    Err(err) => {
                        // Free the lease at once so another instance can try.
                        if let Err(e) = self.store.release(&self.owner).await {
                            tracing::warn!(error = %e, "could not release the token lease");
                        }
                        return Err(err);
                    }
                };
                if let Err(err) = self.store.publish(&self.owner, &token).await {
                    tracing::warn!(error = %err, "could not share the new CXone token");
                }
                return Ok(self.keep(token));
            }
            // Another instance is refreshing. A token that is due but still valid serves
            // meanwhile; with none, wait for the leader's.
            let usable =
                shared.or_else(|| self.cached.lock().ok().and_then(|c| c.as_deref().cloned()));
            if let Some(token) = usable.filter(|t| now + 5_000 < t.expires_at_ms) {
                return Ok(Arc::new(token));
            }
            if now > give_up_at {
                return Err(CxoneError::Unavailable(
                    "no CXone token: the refresh leader did not publish one".into(),
                ));
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
}

impl<S: TokenStore> TokenSource for SharedTokenSource<S> {
    async fn token(&self) -> Result<Arc<AccessToken>, CxoneError> {
        if let Some(t) = self.fresh_local(now_ms()) {
            return Ok(t);
        }
        let _one_at_a_time = self.flight.lock().await;
        if let Some(t) = self.fresh_local(now_ms()) {
            return Ok(t);
        }
        self.refresh().await
    }

    async fn invalidate(&self, token: &AccessToken) {
        if let Ok(mut c) = self.cached.lock()
            && c.as_ref().is_some_and(|t| t.same(token))
        {
            *c = None;
        }
        if let Err(err) = self.store.retire(token).await {
            tracing::warn!(error = %err, "could not retire the refused CXone token");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tokens_refresh_at_least_a_minute_early_with_jitter() {
        assert_eq!(refresh_delay_ms(3_600_000, 0.0), 3_540_000);
        assert_eq!(refresh_delay_ms(3_600_000, 1.0), 3_510_000);
        let d = refresh_delay_ms(3_600_000, 0.5);
        assert!((3_510_000..=3_540_000).contains(&d));
    }

    #[test]
    fn short_tokens_refresh_at_half_life() {
        assert_eq!(refresh_delay_ms(5_000, 0.7), 2_500);
        assert_eq!(refresh_delay_ms(120_000, 0.0), 60_000);
    }

    #[test]
    fn the_tenant_comes_from_the_id_token_claims() {
        let claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"u","tenantId":"11ee-tenant"}"#);
        assert_eq!(
            tenant_from_id_token(&format!("h.{claims}.s")).as_deref(),
            Some("11ee-tenant")
        );
        assert_eq!(tenant_from_id_token("not-a-jwt"), None);
        assert_eq!(tenant_from_id_token("a.!!!.c"), None);
    }

    #[test]
    fn a_token_never_shows_its_value_in_debug_output() {
        let t = AccessToken {
            value: SecretString::from("bearer-value-123"),
            expires_at_ms: 1,
            refresh_at_ms: 1,
            api_base: None,
        };
        assert!(!format!("{t:?}").contains("bearer-value-123"));
    }
}
