//! The simulator's token endpoints: the documented API's client credentials and the
//! platform's password grant, with the client authenticated by Basic or in the form.

use super::*;

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

pub(super) fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

impl Sim {
    pub(super) fn issue_token(&self) -> Value {
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

    pub(super) fn authorised(&self, headers: &HeaderMap) -> bool {
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

    pub(super) fn documented_token(
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

    pub(super) fn platform_token(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
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
}
