//! CXone access tokens, split along their concerns:
//! - [`TokenFetch`]: the port that asks the token endpoint for a token (its HTTP adapter,
//!   `adapters::cxone::TokenFetcher`, knows both grants and both client auths);
//! - [`tenant`]: which tenant a token belongs to;
//! - [`store`]: the token every instance shares, and the lease that elects who refreshes;
//! - [`cache`]: the [`TokenSource`] functions use: local cache, one refresh at a time.

pub mod cache;
pub mod store;
pub mod tenant;

use std::future::Future;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::error::CxoneError;

pub use cache::SharedTokenSource;
pub use store::{NoSharing, TokenStore};
pub use tenant::{tenant_from_id_token, tenant_id};

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

/// Port: where access tokens come from.
pub trait TokenSource: Send + Sync {
    fn token(&self) -> impl Future<Output = Result<Arc<AccessToken>, CxoneError>> + Send;
    /// CXone refused `token` (401): never hand it out again.
    fn invalidate(&self, token: &AccessToken) -> impl Future<Output = ()> + Send;
}

/// Port: asks CXone's token endpoint for a new token.
pub trait TokenFetch: Send + Sync {
    fn fetch(&self) -> impl Future<Output = Result<AccessToken, CxoneError>> + Send;
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

pub(crate) fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX)
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
