//! Where the platform's token endpoint and API base are (OIDC discovery and
//! `/.well-known/cxone-configuration`), and which tenant a token belongs to.

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::clock::now_ms;
use crate::cxone::config::{CxoneConfig, Profile};
use crate::cxone::error::{CxoneError, Endpoint, read_answer, transport};

/// The `tenantId` claim of a JWT (its signature is not needed to read it). The `tenant`
/// claim is the tenant's name, not its id, and is never taken for one.
pub fn tenant_from_id_token(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims
        .get("tenantId")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// The tenant id of a token response: the id_token's `tenantId` claim, else the access
/// token's (both carry it).
pub fn tenant_id(id_token: Option<&str>, access_token: &str) -> Option<String> {
    id_token
        .and_then(tenant_from_id_token)
        .or_else(|| tenant_from_id_token(access_token))
}

/// Discovery for one process: each document is read once, then remembered.
pub struct Discovery {
    http: reqwest::Client,
    config: Arc<CxoneConfig>,
    token_endpoint: Mutex<Option<String>>,
    api_base: Mutex<Option<String>>,
}

impl Discovery {
    pub fn new(http: reqwest::Client, config: Arc<CxoneConfig>) -> Self {
        Self {
            http,
            config,
            token_endpoint: Mutex::new(None),
            api_base: Mutex::new(None),
        }
    }

    async fn get_json(&self, url: &str) -> Result<Value, CxoneError> {
        let timeout = self.config.timeout;
        let response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| transport(&e, timeout))?;
        let body = read_answer(response, Endpoint::Auth, timeout, now_ms()).await?;
        serde_json::from_slice(&body)
            .map_err(|e| CxoneError::BadResponse(format!("{url} did not return JSON: {e}")))
    }

    /// The token endpoint: configured (documented profile) or from the issuer's OIDC
    /// discovery document.
    pub async fn token_endpoint(&self) -> Result<String, CxoneError> {
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
        if let Some(url) = self.token_endpoint.lock().ok().and_then(|d| d.clone()) {
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
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                CxoneError::BadResponse("the OIDC discovery document has no token_endpoint".into())
            })?
            .to_owned();
        if let Ok(mut d) = self.token_endpoint.lock() {
            *d = Some(url.clone());
        }
        Ok(url)
    }

    /// The API base: configured, or (platform) the tenant's `api_endpoint`.
    pub async fn api_base(&self, tenant: Option<&str>) -> Result<Option<String>, CxoneError> {
        if let Some(base) = &self.config.api_base {
            return Ok(Some(base.clone()));
        }
        if self.config.profile == Profile::Documented {
            return Ok(None);
        }
        if let Some(base) = self.api_base.lock().ok().and_then(|d| d.clone()) {
            return Ok(Some(base));
        }
        let tenant = tenant.ok_or_else(|| {
            CxoneError::BadResponse(
                "neither the id_token nor the access token carries a tenantId claim".into(),
            )
        })?;
        let mut url = reqwest::Url::parse(&format!(
            "{}/.well-known/cxone-configuration",
            self.config.issuer
        ))
        .map_err(|e| CxoneError::Invalid {
            status: None,
            detail: e.to_string(),
        })?;
        url.query_pairs_mut().append_pair("tenantId", tenant);
        let doc = self.get_json(url.as_str()).await?;
        let base = doc
            .get("api_endpoint")
            .and_then(Value::as_str)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                CxoneError::BadResponse("the CXone configuration has no api_endpoint".into())
            })?
            .trim_end_matches('/')
            .to_owned();
        if let Ok(mut d) = self.api_base.lock() {
            *d = Some(base.clone());
        }
        Ok(Some(base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!("h.{}.s", URL_SAFE_NO_PAD.encode(claims))
    }

    #[test]
    fn the_tenant_id_comes_from_the_tenant_id_claim_never_the_tenant_name() {
        assert_eq!(
            tenant_from_id_token(&jwt(
                r#"{"sub":"u","tenantId":"11ee-tenant","tenant":"perm_testGA1"}"#
            ))
            .as_deref(),
            Some("11ee-tenant")
        );
        assert_eq!(
            tenant_from_id_token(&jwt(r#"{"tenant":"perm_testGA1"}"#)),
            None
        );
        assert_eq!(tenant_from_id_token("not-a-jwt"), None);
        assert_eq!(tenant_from_id_token("a.!!!.c"), None);
    }

    #[test]
    fn the_access_token_serves_when_the_id_token_has_no_tenant() {
        let access = jwt(r#"{"tenantId":"from-access","tenant":"name"}"#);
        assert_eq!(
            tenant_id(Some(&jwt(r#"{"tenant":"name"}"#)), &access).as_deref(),
            Some("from-access")
        );
        assert_eq!(tenant_id(None, &access).as_deref(), Some("from-access"));
        assert_eq!(
            tenant_id(Some(&jwt(r#"{"tenantId":"from-id"}"#)), &access).as_deref(),
            Some("from-id")
        );
        assert_eq!(tenant_id(None, "opaque-token"), None);
    }
}
