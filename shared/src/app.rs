//! The dependencies every function builds once at cold start.

use std::sync::Arc;

use crate::aws::{AwsClients, load_sdk_config};
use crate::config::{Config, ConfigError};
use crate::secrets::{SecretError, SecretSource, SecretsManagerSource};

/// Why a function could not start. Reported to the Lambda Runtime API's `/init/error`.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Configuration, AWS clients and the secret source: what all five functions need.
#[derive(Debug)]
pub struct Base {
    pub config: Config,
    pub aws: AwsClients,
    pub secrets: Arc<SecretsManagerSource>,
}

impl Base {
    /// Reads the configuration, builds the clients and reads the secret once, so that a
    /// function that cannot reach its secret fails at init rather than on a request.
    pub async fn init() -> Result<Self, InitError> {
        let config = Config::from_env()?;
        let sdk = load_sdk_config().await;
        let aws = AwsClients::new(&sdk);
        let secrets = Arc::new(SecretsManagerSource::new(
            aws.secrets.clone(),
            config.secret_id.clone(),
            config.secret_cache_ttl,
        ));
        secrets.current().await?;
        Ok(Self {
            config,
            aws,
            secrets,
        })
    }
}
