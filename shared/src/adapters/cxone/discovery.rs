//! Where the platform's token endpoint and API base are: OIDC discovery and
//! `/.well-known/cxone-configuration`, each read once per process.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{read_answer, transport};
use crate::clock::now_ms;
use crate::cxone::config::{CxoneConfig, Profile};
use crate::cxone::error::{CxoneError, Endpoint};

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
