//! The [`TokenSource`] every function uses: a local cache, one refresh at a time per
//! process, and across instances the shared token with one leader refreshing it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::fetch::TokenFetcher;
use super::store::TokenStore;
use super::{AccessToken, TokenSource};
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
