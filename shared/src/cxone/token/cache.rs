//! The [`TokenSource`] every function uses: a local cache, one refresh at a time per
//! process, and across instances the shared token with one leader refreshing it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::store::TokenStore;
use super::{AccessToken, TokenFetch, TokenSource};
use crate::clock::now_ms;
use crate::cxone::error::CxoneError;

/// How long a refresh lease lasts: a leader that dies frees it after this.
const LEASE: Duration = Duration::from_secs(10);
/// How long a follower with no usable token waits for the leader before giving up (the
/// call then fails as retryable and is deferred), well inside a function's timeout.
const FOLLOW_LIMIT: Duration = Duration::from_secs(4);
/// How often a follower looks for the leader's token.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// The [`TokenSource`] every function uses: local cache, single flight, shared token.
pub struct SharedTokenSource<S, F> {
    fetcher: F,
    store: S,
    owner: String,
    cached: Mutex<Option<Arc<AccessToken>>>,
    flight: tokio::sync::Mutex<()>,
}

impl<S: TokenStore, F: TokenFetch> SharedTokenSource<S, F> {
    pub fn new(fetcher: F, store: S) -> Self {
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

impl<S: TokenStore, F: TokenFetch> TokenSource for SharedTokenSource<S, F> {
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
    use std::sync::atomic::Ordering;

    use secrecy::ExposeSecret;

    use super::*;
    use crate::cxone::token::NoSharing;
    use crate::testing::FakeTokenFetch;

    fn source() -> SharedTokenSource<NoSharing, FakeTokenFetch> {
        SharedTokenSource::new(FakeTokenFetch::default(), NoSharing)
    }

    #[tokio::test]
    async fn callers_at_once_share_one_fetch_and_its_token() {
        let s = source();
        let tokens = futures_util::future::join_all((0..5).map(|_| s.token())).await;
        assert_eq!(s.fetcher.fetches.load(Ordering::SeqCst), 1);
        for token in tokens {
            assert_eq!(token.unwrap().value.expose_secret(), "token-1");
        }
    }

    #[tokio::test]
    async fn a_refused_token_is_never_handed_out_again() {
        let s = source();
        let first = s.token().await.unwrap();
        assert_eq!(s.token().await.unwrap().value.expose_secret(), "token-1");
        s.invalidate(&first).await;
        assert_eq!(s.token().await.unwrap().value.expose_secret(), "token-2");
        assert_eq!(s.fetcher.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_fetch_is_an_error_and_the_next_call_fetches_again() {
        let s = source();
        s.fetcher.down.store(true, Ordering::SeqCst);
        let err = s.token().await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        s.fetcher.down.store(false, Ordering::SeqCst);
        assert_eq!(s.token().await.unwrap().value.expose_secret(), "token-2");
    }

    #[tokio::test]
    async fn a_preloaded_token_serves_without_a_fetch_unless_it_is_due() {
        let s = source();
        let now = now_ms();
        let shared = |refresh_at_ms| AccessToken {
            value: secrecy::SecretString::from("shared".to_owned()),
            expires_at_ms: now + 600_000,
            refresh_at_ms,
            api_base: None,
        };
        s.preload(Some(shared(now - 1)));
        assert_eq!(s.token().await.unwrap().value.expose_secret(), "token-1");
        let s = source();
        s.preload(Some(shared(now + 60_000)));
        assert_eq!(s.token().await.unwrap().value.expose_secret(), "shared");
        assert_eq!(s.fetcher.fetches.load(Ordering::SeqCst), 0);
    }
}
