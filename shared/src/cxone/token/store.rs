//! The token every instance shares (the `token#{tenant}` item), and the lease that elects
//! the one instance that refreshes it.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use secrecy::{ExposeSecret, SecretString};

use super::AccessToken;
use crate::clock::now_ms;
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
    CxoneError::Store(format!("the shared token store is unavailable: {err}"))
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
