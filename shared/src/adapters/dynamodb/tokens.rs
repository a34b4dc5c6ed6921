//! [`TokenStore`] in the one DynamoDB table: the `token#{tenant}` item every instance
//! shares, and the lease that elects the one that refreshes it (ARCHITECTURE.md, Table
//! items).

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use secrecy::{ExposeSecret, SecretString};

use super::{n, number, text};
use crate::clock::now_ms;
use crate::cxone::error::CxoneError;
use crate::cxone::token::{AccessToken, TokenStore};

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
fn applied<T, E>(result: Result<T, SdkError<E>>) -> Result<bool, CxoneError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    super::applied(result).map_err(|e| store_error(e.0))
}

impl TokenStore for DynamoDbTokenStore {
    async fn load(&self) -> Result<Option<AccessToken>, CxoneError> {
        let item = super::read_item(
            &self.client,
            &self.table,
            AttributeValue::S(self.key.clone()),
        )
        .await
        .map_err(|e| store_error(aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        let (Some(value), Some(expires), Some(refresh)) = (
            text(&item, "accessToken"),
            number(&item, "expiresAtMs"),
            number(&item, "refreshAtMs"),
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
            api_base: text(&item, "apiBase").map(str::to_owned),
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
