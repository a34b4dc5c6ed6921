//! Asking CXone's token endpoint for a token: the documented API's client credentials,
//! or the platform's password grant with an access key, with the client authenticated
//! by HTTP Basic or in the form.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::discovery::Discovery;
use super::{read_answer, transport};
use crate::clock::now_ms;
use crate::cxone::config::{ClientAuth, CxoneConfig, Profile};
use crate::cxone::error::{CxoneError, Endpoint};
use crate::cxone::token::{AccessToken, TokenFetch, jitter, refresh_delay_ms, tenant_id};
use crate::secrets::CxoneCredentials;

/// A token request: its form fields, and the `Authorization` header of Basic client auth.
type Grant = (Vec<(&'static str, String)>, Option<String>);

/// Fetches tokens from CXone over HTTP, for either profile.
pub struct TokenFetcher {
    http: reqwest::Client,
    config: Arc<CxoneConfig>,
    credentials: CxoneCredentials,
    discovery: Discovery,
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

fn urlencoded(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `Authorization: Basic …` for a client: each part form-urlencoded before base64
/// (RFC 6749 §2.3.1), so that ids and secrets holding `:`, `+` or `%` arrive intact.
pub fn basic_authorization(client_id: &str, client_secret: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!(
            "{}:{}",
            urlencoded(client_id),
            urlencoded(client_secret)
        ))
    )
}

/// The token's lifetime in seconds: absent means the default hour; anything present must
/// be a positive number of seconds, capped at a day.
fn ttl_secs(doc: &Value) -> Result<i64, CxoneError> {
    match doc.get("expires_in") {
        None | Some(Value::Null) => Some(3600),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    }
    .filter(|s| *s > 0)
    .map(|s| s.min(86_400))
    .ok_or_else(|| CxoneError::BadResponse("expires_in is not a positive number of seconds".into()))
}

impl TokenFetcher {
    pub fn new(
        http: reqwest::Client,
        config: Arc<CxoneConfig>,
        credentials: CxoneCredentials,
    ) -> Self {
        Self {
            discovery: Discovery::new(http.clone(), config.clone()),
            http,
            config,
            credentials,
        }
    }

    /// The grant's form fields and, for Basic client auth, the `Authorization` header.
    fn grant(&self) -> Result<Grant, CxoneError> {
        let mut form = Vec::new();
        match self.config.profile {
            Profile::Documented => {
                form.push(("grant_type", "client_credentials".to_owned()));
                if let Some(scope) = &self.config.scope {
                    form.push(("scope", scope.clone()));
                }
            }
            Profile::InContact => {
                form.push(("grant_type", "password".to_owned()));
                form.push((
                    "username",
                    secret(&self.credentials.access_key_id, "accessKeyId")?,
                ));
                form.push((
                    "password",
                    secret(&self.credentials.access_key_secret, "accessKeySecret")?,
                ));
            }
        }
        let id = secret(&self.credentials.client_id, "clientId")?;
        let key = secret(&self.credentials.client_secret, "clientSecret")?;
        let authorization = match self.config.client_auth {
            ClientAuth::Basic => Some(basic_authorization(&id, &key)),
            ClientAuth::Post => {
                form.push(("client_id", id));
                form.push(("client_secret", key));
                None
            }
        };
        Ok((form, authorization))
    }

    /// Asks CXone for a new token.
    pub async fn fetch(&self) -> Result<AccessToken, CxoneError> {
        let endpoint = self.discovery.token_endpoint().await?;
        let (form, authorization) = self.grant()?;
        let timeout = self.config.timeout;
        let mut request = self
            .http
            .post(&endpoint)
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            // Form-encoded properly, so that keys holding `=`, `+` or `/` arrive intact.
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
                    .finish(),
            );
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.map_err(|e| transport(&e, timeout))?;
        let body = read_answer(response, Endpoint::Auth, timeout, now_ms()).await?;
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
        let ttl_ms = ttl_secs(&doc)?.saturating_mul(1000);
        let tenant = tenant_id(doc.get("id_token").and_then(Value::as_str), value);
        let api_base = self.discovery.api_base(tenant.as_deref()).await?;
        let now = now_ms();
        Ok(AccessToken {
            value: SecretString::from(value.to_owned()),
            expires_at_ms: now + ttl_ms,
            refresh_at_ms: now + refresh_delay_ms(ttl_ms, jitter()),
            api_base,
        })
    }
}

impl TokenFetch for TokenFetcher {
    async fn fetch(&self) -> Result<AccessToken, CxoneError> {
        TokenFetcher::fetch(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_client_credentials_are_form_urlencoded_before_base64() {
        let header = basic_authorization("app:1", "s3cr=t+/%");
        let encoded = header.strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, "app%3A1:s3cr%3Dt%2B%2F%25");
        assert_eq!(
            basic_authorization("plain", "simple"),
            format!("Basic {}", STANDARD.encode("plain:simple"))
        );
    }

    #[test]
    fn expires_in_defaults_to_an_hour_and_must_be_positive() {
        assert_eq!(ttl_secs(&serde_json::json!({})).unwrap(), 3600);
        assert_eq!(
            ttl_secs(&serde_json::json!({"expires_in": "120"})).unwrap(),
            120
        );
        assert_eq!(
            ttl_secs(&serde_json::json!({"expires_in": 999_999})).unwrap(),
            86_400
        );
        assert!(ttl_secs(&serde_json::json!({"expires_in": 0})).is_err());
        assert!(ttl_secs(&serde_json::json!({"expires_in": true})).is_err());
    }
}
