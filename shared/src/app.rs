//! The dependencies every function builds once at cold start.

use std::sync::Arc;

use crate::aws::{AwsClients, load_sdk_config_with};
use crate::config::{Config, ConfigError};
use crate::secrets::{SecretError, SecretSource, SecretsManagerSource};

/// Why a function could not start. Reported to the Lambda Runtime API's `/init/error`.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("CXone client: {0}")]
    Cxone(#[from] crate::cxone::CxoneError),
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
    /// function that cannot reach its secret fails at init rather than on a request, while
    /// the DynamoDB and SQS connections open.
    pub async fn init() -> Result<Self, InitError> {
        Self::init_with(false, |_, _| std::future::ready(()))
            .await
            .map(|(base, ())| base)
    }

    /// [`Base::init`], with `also` (given the clients and configuration) running beside
    /// the secret read and the warm-up: a function's own init I/O costs no extra round trip.
    /// When `also` reads the table, it opens the DynamoDB connection in the warm-up's stead.
    async fn init_with<F, Fut, T>(also_reads_table: bool, also: F) -> Result<(Self, T), InitError>
    where
        F: FnOnce(&AwsClients, &Config) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let config = Config::from_env()?;
        let sdk = load_sdk_config_with(config.aws_native_roots).await;
        let aws = AwsClients::new(&sdk);
        let secrets = Arc::new(SecretsManagerSource::new(
            aws.secrets.clone(),
            config.secret_id.clone(),
            config.secret_cache_ttl,
        ));
        // The secret read and the connection warm-up do not depend on each other: one
        // round trip of init instead of two.
        let extra = also(&aws, &config);
        let (secret, (), extra) = tokio::join!(
            secrets.current(),
            warm_up(&aws, &config, !also_reads_table),
            extra
        );
        secret?;
        Ok((
            Self {
                config,
                aws,
                secrets,
            },
            extra,
        ))
    }
}

/// How long init waits for its warm-up calls: past it, a connection opens on first use.
const WARM_UP_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Opens the SQS connection, and the DynamoDB one unless the function's own init already
/// reads the table, during init, so that the first request does not pay for the TLS
/// handshakes. Failures (a policy without the permission, say) only mean the connection is
/// opened later.
async fn warm_up(aws: &AwsClients, config: &Config, dynamodb: bool) {
    let warm = async {
        let table = async {
            if dynamodb {
                let described = aws
                    .dynamodb
                    .describe_table()
                    .table_name(&config.table)
                    .send()
                    .await;
                described.is_ok()
            } else {
                true
            }
        };
        let queue = aws
            .sqs
            .get_queue_attributes()
            .queue_url(&config.jobs_queue_url)
            .send();
        let (table, queue) = tokio::join!(table, queue);
        if !table || queue.is_err() {
            tracing::debug!("a warm-up call failed; its connection opens on first use");
        }
    };
    let _ = tokio::time::timeout(WARM_UP_LIMIT, warm).await;
}

/// The dispatcher as deployed: the CXone client for the configured profile (shared token
/// and budget in the table), execution records in the table, jobs on the jobs queue.
pub type LiveDispatcher = crate::signals::Dispatcher<
    crate::cxone::HttpCxoneClient<
        crate::cxone::token::SharedTokenSource<crate::cxone::token::DynamoDbTokenStore>,
        crate::cxone::rate::DynamoDbRateBudget,
    >,
    crate::signals::store::DynamoDbExecutionStore,
    crate::queue::SqsMessageQueue,
>;

impl Base {
    /// Init for the functions that call CXone: the base and the signal dispatcher. The
    /// CXone HTTP client, whose TLS setup loads the system's root certificates, is built on
    /// a blocking thread while the secret is read and the AWS connections open.
    pub async fn init_with_dispatcher() -> Result<(Self, LiveDispatcher), InitError> {
        use crate::cxone::{CxoneConfig, CxoneError, client::http_client};
        let cxone = Arc::new(CxoneConfig::from_env()?);
        let definitions = crate::signals::definitions::from_env(cxone.profile)?;
        let http = {
            let cxone = cxone.clone();
            tokio::task::spawn_blocking(move || http_client(&cxone))
        };
        // The shared CXone token, if another instance published one, is read meanwhile too.
        let tenant = cxone.tenant.clone();
        let (base, shared) = Self::init_with(true, move |aws, config| {
            let store = crate::cxone::token::DynamoDbTokenStore::new(
                aws.dynamodb.clone(),
                config.table.clone(),
                &tenant,
            );
            async move {
                use crate::cxone::token::TokenStore as _;
                tokio::time::timeout(WARM_UP_LIMIT, store.load())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
            }
        })
        .await?;
        let http = http.await.map_err(|e| CxoneError::Invalid {
            status: None,
            detail: format!("cannot build the HTTP client: {e}"),
        })??;
        let dispatcher = base.dispatcher(cxone, definitions, http, shared).await?;
        Ok((base, dispatcher))
    }

    /// Builds the signal dispatcher from this function's configuration.
    async fn dispatcher(
        &self,
        cxone: Arc<crate::cxone::CxoneConfig>,
        definitions: std::collections::BTreeMap<
            String,
            crate::signals::definitions::SignalDefinition,
        >,
        http: reqwest::Client,
        shared: Option<crate::cxone::token::AccessToken>,
    ) -> Result<LiveDispatcher, InitError> {
        use crate::cxone::{HttpCxoneClient, rate::DynamoDbRateBudget, token};
        let credentials = self.secrets.current().await?.cxone.clone();
        let table = self.config.table.clone();
        let tokens = token::SharedTokenSource::new(
            token::TokenFetcher::new(http.clone(), cxone.clone(), credentials),
            token::DynamoDbTokenStore::new(self.aws.dynamodb.clone(), table.clone(), &cxone.tenant),
        );
        tokens.preload(shared);
        let budget = DynamoDbRateBudget::new(
            self.aws.dynamodb.clone(),
            table.clone(),
            &cxone.tenant,
            cxone.rate_per_second,
        );
        let client = HttpCxoneClient::new(http, cxone.clone(), tokens, budget);
        // Unless the shared token was fresh, the token endpoint too: a cold start's first
        // call then goes straight to CXone.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), client.warm()).await;
        Ok(crate::signals::Dispatcher {
            definitions,
            profile: cxone.profile,
            cxone: client,
            store: crate::signals::store::DynamoDbExecutionStore::new(
                self.aws.dynamodb.clone(),
                table,
            ),
            queue: crate::queue::SqsMessageQueue::new(self.aws.sqs.clone()),
            jobs_queue_url: self.config.jobs_queue_url.clone(),
            deadline: self.config.execution_deadline,
            retry: self.config.retry,
            lease: self.config.job_lease,
        })
    }
}
