//! [`SecretSource`] over AWS Secrets Manager.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::error::{DisplayErrorContext, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use tokio::sync::Mutex;

use crate::secrets::{SecretError, SecretSource, Secrets, parse_secrets};

/// [`SecretSource`] over AWS Secrets Manager, reading `VersionStage=AWSCURRENT` and caching
/// in-process for `ttl`.
#[derive(Debug)]
pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    ttl: Duration,
    cache: Mutex<Option<(Instant, Arc<Secrets>)>>,
}

impl SecretsManagerSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: String, ttl: Duration) -> Self {
        Self {
            client,
            secret_id,
            ttl,
            cache: Mutex::new(None),
        }
    }

    async fn fetch(&self) -> Result<Arc<Secrets>, SecretError> {
        let id = &self.secret_id;
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .map_err(|e| classify(id, e))?;
        let text = out
            .secret_string()
            .ok_or_else(|| SecretError::NotAString { id: id.clone() })?;
        Ok(Arc::new(parse_secrets(id, text)?))
    }
}

fn classify(id: &str, err: SdkError<GetSecretValueError>) -> SecretError {
    if let Some(service) = err.as_service_error()
        && service.is_resource_not_found_exception()
    {
        return SecretError::NotFound { id: id.to_owned() };
    }
    SecretError::Unavailable {
        id: id.to_owned(),
        detail: DisplayErrorContext(&err).to_string(),
    }
}

impl SecretSource for SecretsManagerSource {
    async fn current(&self) -> Result<Arc<Secrets>, SecretError> {
        // Holding the lock across the fetch makes concurrent callers share one read.
        let mut cache = self.cache.lock().await;
        if let Some((at, secrets)) = cache.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(secrets.clone());
        }
        let fresh = self.fetch().await?;
        *cache = Some((Instant::now(), fresh.clone()));
        Ok(fresh)
    }

    async fn refresh(&self) -> Result<Arc<Secrets>, SecretError> {
        let mut cache = self.cache.lock().await;
        let fresh = self.fetch().await?;
        *cache = Some((Instant::now(), fresh.clone()));
        Ok(fresh)
    }
}
