//! Which tenant a token belongs to: the `tenantId` claim its JWTs carry.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

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
