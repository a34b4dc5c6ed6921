//! The token every instance shares (the `token#{tenant}` item), and the lease that elects
//! the one instance that refreshes it: the port; the DynamoDB adapter is
//! `adapters::dynamodb::tokens`.

use std::future::Future;
use std::time::Duration;

use super::AccessToken;
use crate::cxone::error::CxoneError;

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
