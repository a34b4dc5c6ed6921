//! The dependencies every function builds once at cold start.

use std::sync::Arc;

use crate::adapters::secrets_manager::SecretsManagerSource;
use crate::aws::{AwsClients, load_sdk_config};
use crate::config::{Config, ConfigError};
use crate::secrets::{SecretError, SecretSource};

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
        let (base, described) = Self::init_with(|aws, config| {
            let described = aws
                .dynamodb
                .describe_table()
                .table_name(&config.table)
                .send();
            async move { described.await.is_ok() }
        })
        .await?;
        if described != Some(true) {
            tracing::debug!("the table's warm-up call failed; its connection opens on first use");
        }
        Ok(base)
    }

    /// [`Base::init`], with `read_table` (given the clients and configuration) as init's
    /// DynamoDB call. It runs beside the secret read and the queue's warm-up, so a
    /// function's own init read costs no extra round trip, and it opens the DynamoDB
    /// connection for the first request. Its answer is `None` past [`WARM_UP_LIMIT`].
    async fn init_with<F, Fut, T>(read_table: F) -> Result<(Self, Option<T>), InitError>
    where
        F: FnOnce(&AwsClients, &Config) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let config = Config::from_env()?;
        let sdk = load_sdk_config(&config.aws).await;
        let aws = AwsClients::new(&sdk);
        let secrets = Arc::new(SecretsManagerSource::new(
            aws.secrets.clone(),
            config.secret_id.clone(),
            config.secret_cache_ttl,
        ));
        // None of the three depends on another: one round trip of init instead of three.
        let table = tokio::time::timeout(WARM_UP_LIMIT, read_table(&aws, &config));
        let (secret, (), table) =
            tokio::join!(secrets.current(), warm_up_queue(&aws, &config), table);
        secret?;
        Ok((
            Self {
                config,
                aws,
                secrets,
            },
            table.ok(),
        ))
    }
}

/// How long init waits for its warm-up calls: past it, a connection opens on first use.
const WARM_UP_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Opens the SQS connection during init, so that the first request does not pay for the
/// TLS handshake. A failure (a policy without the permission, say) only means the
/// connection is opened later.
async fn warm_up_queue(aws: &AwsClients, config: &Config) {
    let queue = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&config.jobs_queue_url)
        .send();
    if !matches!(tokio::time::timeout(WARM_UP_LIMIT, queue).await, Ok(Ok(_))) {
        tracing::debug!("the queue's warm-up call failed; its connection opens on first use");
    }
}

/// The dispatcher as deployed: the CXone client for the configured profile (shared token
/// and budget in the table), execution records in the table, jobs on the jobs queue.
pub type LiveDispatcher = crate::signals::Dispatcher<
    crate::adapters::cxone::HttpCxoneClient<
        crate::cxone::token::SharedTokenSource<
            crate::adapters::dynamodb::DynamoDbTokenStore,
            crate::adapters::cxone::TokenFetcher,
        >,
        crate::adapters::dynamodb::DynamoDbRateBudget,
    >,
    crate::adapters::dynamodb::DynamoDbExecutionStore,
    crate::adapters::sqs::SqsMessageQueue,
>;

impl Base {
    /// Init for the functions that call CXone: the base and the signal dispatcher. The
    /// CXone HTTP client, whose TLS setup loads the system's root certificates, is built on
    /// a blocking thread while the secret is read and the AWS connections open.
    pub async fn init_with_dispatcher() -> Result<(Self, LiveDispatcher), InitError> {
        use crate::adapters::cxone::http_client;
        use crate::cxone::{CxoneConfig, CxoneError};
        let cxone = Arc::new(CxoneConfig::from_env()?);
        let definitions = crate::signals::definitions::from_env(cxone.profile)?;
        let http = {
            let cxone = cxone.clone();
            tokio::task::spawn_blocking(move || http_client(&cxone))
        };
        // The shared CXone token, if another instance published one, is read meanwhile too.
        let tenant = cxone.tenant.clone();
        let (base, shared) = Self::init_with(move |aws, config| {
            let store = crate::adapters::dynamodb::DynamoDbTokenStore::new(
                aws.dynamodb.clone(),
                config.table.clone(),
                &tenant,
            );
            async move {
                use crate::cxone::token::TokenStore as _;
                store.load().await.ok().flatten()
            }
        })
        .await?;
        let shared = shared.flatten();
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
        use crate::adapters::cxone::{HttpCxoneClient, TokenFetcher};
        use crate::adapters::dynamodb::DynamoDbRateBudget;
        use crate::cxone::token;
        let credentials = self.secrets.current().await?.cxone.clone();
        let table = self.config.table.clone();
        let tokens = token::SharedTokenSource::new(
            TokenFetcher::new(http.clone(), cxone.clone(), credentials),
            crate::adapters::dynamodb::DynamoDbTokenStore::new(
                self.aws.dynamodb.clone(),
                table.clone(),
                &cxone.tenant,
            ),
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
            store: crate::adapters::dynamodb::DynamoDbExecutionStore::new(
                self.aws.dynamodb.clone(),
                table,
            ),
            queue: crate::adapters::sqs::SqsMessageQueue::new(self.aws.sqs.clone()),
            jobs_queue_url: self.config.jobs_queue_url.clone(),
            deadline: self.config.execution_deadline,
            retry: self.config.retry,
            lease: self.config.job_lease,
        })
    }
}

/// The deliverer as deployed: HTTPS and EventBridge senders, breaker states and the
/// delivery log in the table, runs claimed on the table's run records.
pub type LiveDeliverer = crate::targets::deliver::Deliverer<
    crate::adapters::delivery::LiveSender<Arc<SecretsManagerSource>>,
    crate::adapters::dynamodb::DynamoDbTargetStore,
    crate::adapters::dynamodb::DynamoDbExecutionStore,
>;

impl Base {
    /// `CXBRIDGE_WEBHOOK_CONFIG` over the defaults, refused at cold start when a named
    /// target's credentials are missing from the secret (read at init, so no extra call).
    pub async fn webhook_config(&self) -> Result<crate::webhook::config::WebhookConfig, InitError> {
        use crate::webhook::config::{CONFIG_VAR, WebhookConfig};
        let webhook =
            WebhookConfig::from_env(&self.config.events_queue_url, &self.config.jobs_queue_url)?;
        let secrets = self.secrets.current().await?;
        let missing = crate::targets::missing_credentials(&webhook.targets, &secrets);
        if !missing.is_empty() {
            return Err(ConfigError::Invalid {
                var: CONFIG_VAR,
                value: "(targets and the secret)".to_owned(),
                reason: missing.join("; "),
            }
            .into());
        }
        Ok(webhook)
    }

    /// The deliverer for the declared targets.
    pub fn deliverer(
        &self,
        targets: crate::targets::Targets,
        function: &'static str,
    ) -> LiveDeliverer {
        crate::targets::deliver::Deliverer {
            targets: Arc::new(targets),
            sender: crate::adapters::delivery::LiveSender::new(
                self.aws.events.clone(),
                self.secrets.clone(),
            ),
            store: crate::adapters::dynamodb::DynamoDbTargetStore::new(
                self.aws.dynamodb.clone(),
                self.config.table.clone(),
                self.config.delivery_log_ttl,
            ),
            runs: crate::adapters::dynamodb::DynamoDbExecutionStore::new(
                self.aws.dynamodb.clone(),
                self.config.table.clone(),
            ),
            lease: self.config.job_lease,
            park: self.config.target_park,
            function,
        }
    }
}

/// The retry-drainer's jobs as deployed: signal, context, reconcile and sweep jobs through
/// the dispatcher, deliveries through the deliverer.
pub struct LiveJobs {
    pub dispatcher: LiveDispatcher,
    pub deliverer: LiveDeliverer,
}

impl crate::drainer::JobRunner for LiveJobs {
    async fn run(
        &self,
        job: &crate::jobs::Job,
        now_ms: i64,
    ) -> Result<(), crate::signals::JobFailure> {
        use crate::jobs::JobKind;
        match job.kind {
            JobKind::Signal => self.dispatcher.run_signal_job(job, now_ms).await,
            JobKind::Reconcile => self.dispatcher.reconcile(job, now_ms).await,
            JobKind::Sweep => self.dispatcher.sweep(now_ms).await,
            JobKind::Context => self.dispatcher.run_context_job(job, now_ms).await,
            JobKind::Delivery => self.deliverer.run(job, now_ms).await,
        }
    }

    async fn settle(&self, job: &crate::jobs::Job, now_ms: i64) {
        use crate::jobs::JobKind;
        match job.kind {
            JobKind::Delivery => self.deliverer.settle(job, now_ms).await,
            JobKind::Context => self.dispatcher.settle_run(job, now_ms).await,
            JobKind::Signal | JobKind::Reconcile | JobKind::Sweep => {}
        }
    }

    fn target_retry(
        &self,
        job: &crate::jobs::Job,
    ) -> Option<(String, crate::targets::TargetRetry)> {
        self.deliverer
            .spec(job)
            .map(|target| (target.name.clone(), target.retry))
    }

    async fn dead_lettered(&self, job: &crate::jobs::Job, reason: &str, now_ms: i64) {
        use crate::signals::store::ExecutionStore;
        let marked = self
            .dispatcher
            .store
            .failed(
                &job.correlation_id,
                crate::signals::store::ExecutionStatus::DeadLettered,
                reason,
                None,
                now_ms,
            )
            .await;
        if let Err(e) = marked {
            tracing::warn!(correlation_id = %job.correlation_id, error = %e, "could not mark the execution dead_lettered");
        }
    }
}

/// The retry-drainer as deployed.
pub type LiveDrainer = crate::drainer::Drainer<LiveJobs, crate::adapters::sqs::SqsMessageQueue>;
