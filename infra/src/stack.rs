//! The whole local stack: emulator, resources, function hosts, gateway and SQS pollers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use aws_config::{BehaviorVersion, Region};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::bootstrap::{QueueOverrides, Resources, bootstrap};
use crate::gateway::{Gateway, router};
use crate::log::LogSink;
use crate::moto::Moto;
use crate::poller::Poller;
use crate::runtime_api::{FunctionConfig, FunctionHost, Health};
use crate::simulator::{SimOptions, Simulator, default_definitions};
use crate::template::{Template, TemplateValue};

pub const REGION: &str = "us-east-1";
const POLLERS_PER_MAPPING: usize = 2;
/// The name [`Stack::set_mapping_enabled`] knows the table's stream mapping by.
pub const STREAM_MAPPING: &str = "stream";

/// An extra environment variable for one function (or `*` for all), applied after the
/// template's: `--env intent-router:CXBRIDGE_SECRET_CACHE_TTL_SECS=60`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOverride {
    pub function: String,
    pub key: String,
    pub value: String,
}

impl std::str::FromStr for EnvOverride {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (function, assignment) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected FUNCTION:KEY=VALUE"))?;
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected FUNCTION:KEY=VALUE"))?;
        if function.is_empty() || key.is_empty() {
            return Err(format!("{s:?}: expected FUNCTION:KEY=VALUE"));
        }
        Ok(Self {
            function: function.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// The signal definitions the simulator's documented API knows: the functions' own
/// (`CXBRIDGE_SIGNALS` when overridden), else the local default.
fn simulated_definitions(
    overrides: &[EnvOverride],
) -> Result<std::collections::HashMap<String, Vec<crate::simulator::Variable>>> {
    let Some(custom) = overrides
        .iter()
        .rev()
        .find(|o| o.key == cxbridge::signals::definitions::SIGNALS_VAR)
    else {
        return Ok(default_definitions());
    };
    let parsed =
        cxbridge::signals::definitions::parse(&custom.value, cxbridge::cxone::Profile::Documented)
            .map_err(|e| anyhow!("{e}"))?;
    Ok(parsed
        .into_values()
        .map(|d| {
            let vars = d
                .variables
                .iter()
                .map(|v| crate::simulator::Variable {
                    name: v.name.clone(),
                    kind: v.kind.as_str().to_owned(),
                })
                .collect();
            (d.definition_id, vars)
        })
        .collect())
}

/// The local stack's spawn definition, beside the built-in `order-update`: it starts the
/// simulator's script `4100101` on skill `4200202`. Never a deployed default, since a
/// script and a skill are the tenant's own.
pub const LOCAL_SPAWN_SIGNAL: &str = r#"{
  "kind": "spawn",
  "definitionId": "order-created",
  "scriptId": "4100101",
  "skillId": "4200202",
  "nested": "reject",
  "variables": [
    {"name": "customerId", "type": "string"},
    {"name": "orderId", "type": "string"},
    {"name": "priority", "type": "string"}
  ]
}"#;

/// The local signal definitions: the built-in `order-update` (a contact signal) and
/// `order-created` (a spawn).
pub fn local_signals() -> String {
    let mut all: serde_json::Map<String, Value> =
        serde_json::from_str(cxbridge::signals::definitions::DEFAULT_SIGNALS).unwrap_or_default();
    all.insert(
        "order-created".to_owned(),
        serde_json::from_str(LOCAL_SPAWN_SIGNAL).unwrap_or_default(),
    );
    Value::Object(all).to_string()
}

/// Local settings that differ from the deployed ones (ARCHITECTURE.md, Local stack and simulator): jobs give up after four
/// attempts, backing off from 1 s to at most 5 s, so failures reach the DLQ in seconds; and
/// the signal definitions include a spawn, and intent-router has the intent map the README
/// shows.
pub fn local_defaults() -> Vec<EnvOverride> {
    let signals = EnvOverride {
        function: "*".into(),
        key: cxbridge::signals::definitions::SIGNALS_VAR.into(),
        value: local_signals(),
    };
    [
        ("CXBRIDGE_JOB_MAX_ATTEMPTS", "4"),
        ("CXBRIDGE_JOB_BACKOFF_BASE_MS", "1000"),
        ("CXBRIDGE_JOB_BACKOFF_CAP_SECS", "5"),
        // A resumed target gets its parked deliveries within seconds.
        ("CXBRIDGE_TARGET_PARK_SECS", "2"),
        // The emulator is far slower than AWS, above all under a parallel test run.
        ("CXBRIDGE_AWS_ATTEMPT_TIMEOUT_MS", "5000"),
        ("CXBRIDGE_AWS_TIMEOUT_MS", "10000"),
    ]
    .into_iter()
    .map(|(key, value)| EnvOverride {
        function: "*".into(),
        key: key.into(),
        value: value.into(),
    })
    .chain(std::iter::once(signals))
    .chain(std::iter::once(EnvOverride {
        function: "intent-router".into(),
        key: cxbridge::intents::INTENTS_VAR.into(),
        value: cxbridge::intents::config::LOCAL_INTENTS.into(),
    }))
    .collect()
}

#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Where `template.yaml` is.
    pub template: PathBuf,
    /// Where the function binaries are (`target/debug`).
    pub bin_dir: PathBuf,
    /// Gateway port; 0 picks a free one.
    pub port: u16,
    /// Use this emulator instead of starting one.
    pub aws_endpoint: Option<String>,
    /// The emulator to start when `aws_endpoint` is not given.
    pub moto_server: PathBuf,
    /// Prefix of every resource name.
    pub prefix: String,
    pub max_instances: usize,
    /// How long a function may take to initialise (Lambda's 10 s by default).
    pub init_limit: Duration,
    pub queue_overrides: QueueOverrides,
    pub env_overrides: Vec<EnvOverride>,
    /// CXone API profile (`documented` or `incontact`).
    pub profile: String,
    /// Turn on the local diagnostics in the functions (`x-cxbridge-probe`).
    pub probe: bool,
    /// Run the template's schedules this often instead of at their own rate.
    pub schedule_every: Option<Duration>,
    /// The webhook configuration instead of the local one, with `{simulator}` and `{bus}`
    /// standing for the simulator's URL and the local bus.
    pub webhook_config: Option<String>,
    pub log: LogSink,
}

impl StackOptions {
    /// Defaults for a checkout at `root`.
    pub fn for_project(root: &Path) -> Self {
        Self {
            template: root.join("template.yaml"),
            bin_dir: root.join("target/debug"),
            port: 0,
            aws_endpoint: None,
            moto_server: root.join(".venv/moto/bin/moto_server"),
            prefix: "cxbridge".to_owned(),
            max_instances: 4,
            init_limit: crate::runtime_api::INIT_LIMIT,
            queue_overrides: QueueOverrides::default(),
            env_overrides: local_defaults(),
            // The real platform's API, as a tenant gets it.
            profile: "incontact".to_owned(),
            probe: false,
            schedule_every: None,
            webhook_config: None,
            log: LogSink::Stdout,
        }
    }
}

pub struct Stack {
    pub gateway_url: String,
    /// The CXone simulator.
    pub cxone_url: String,
    pub aws_endpoint: String,
    pub profile: String,
    pub resources: Resources,
    /// The webhook configuration the functions get (`CXBRIDGE_WEBHOOK_CONFIG`), with the
    /// local targets.
    pub webhook_config: String,
    pub hosts: BTreeMap<String, Arc<FunctionHost>>,
    pub log: LogSink,
    /// Each queue's event source mapping switch, by the queue's local name.
    mappings: BTreeMap<String, Arc<AtomicBool>>,
    caught_up: Arc<crate::streams::CaughtUp>,
    moto: Option<Moto>,
    simulator: Option<Simulator>,
    tasks: Vec<JoinHandle<()>>,
}

/// SDK configuration for the emulator, independent of the caller's environment.
pub async fn emulator_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "local",
        ))
        .load()
        .await
}

impl Stack {
    pub async fn start(options: StackOptions) -> Result<Self> {
        let template = Template::load(&options.template)?;
        let log = options.log.clone();

        let (moto, aws_endpoint) = match &options.aws_endpoint {
            Some(endpoint) => (None, endpoint.clone()),
            None => {
                let moto = Moto::start(&options.moto_server).await?;
                let endpoint = moto.endpoint.clone();
                log.line(format!("cxbridge-local: moto listening on {endpoint}"));
                (Some(moto), endpoint)
            }
        };
        let sdk = emulator_config(&aws_endpoint).await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let resources = bootstrap(
            &aws_sdk_dynamodb::Client::new(&sdk),
            &sqs,
            &aws_sdk_secretsmanager::Client::new(&sdk),
            &aws_sdk_eventbridge::Client::new(&sdk),
            &template,
            &options.prefix,
            &options.queue_overrides,
        )
        .await
        .context("cannot create the local AWS resources")?;

        // The gateway's address is needed before the functions start (the simulator sends
        // callbacks to it), so it listens first and serves once everything is built.
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
            .await
            .with_context(|| {
                format!(
                    "cannot listen on port {} (set CXBRIDGE_PORT to use another)",
                    options.port
                )
            })?;
        let address = listener.local_addr()?;
        let gateway_url = format!("http://{address}");
        let simulator = Simulator::start(SimOptions {
            profile: options.profile.clone(),
            credentials: resources.secrets.cxone.clone(),
            definitions: simulated_definitions(&options.env_overrides)?,
            gateway: Some(gateway_url.clone()),
            callback_secret: Some(resources.secrets.callback.clone()),
            webhook_secret: Some(resources.secrets.webhook.clone()),
        })
        .await
        .context("cannot start the CXone simulator")?;
        log.line(format!(
            "cxbridge-local: CXone simulator ({} profile) on {}",
            options.profile, simulator.url
        ));
        let documented = options.profile == "documented";
        let webhook_config = match &options.webhook_config {
            Some(text) => text
                .replace("{simulator}", &simulator.url)
                .replace("{bus}", &resources.bus),
            None => crate::bootstrap::local_webhook_config(&simulator.url, &resources.bus),
        };
        let parameters: BTreeMap<&str, String> = BTreeMap::from([
            ("CxoneProfile", options.profile.clone()),
            (
                "CxoneTokenUrl",
                if documented {
                    format!("{}/api/v2/oauth/token", simulator.url)
                } else {
                    String::new()
                },
            ),
            (
                "CxoneApiBase",
                if documented {
                    simulator.url.clone()
                } else {
                    String::new()
                },
            ),
            ("CxoneIssuer", simulator.url.clone()),
            ("WebhookConfig", webhook_config.clone()),
        ]);
        let parameter = |id: &str| -> Option<Result<String>> {
            if let Some(v) = parameters.get(id) {
                return Some(Ok(v.clone()));
            }
            let default = template.parameters.get(id)?;
            Some(
                default
                    .clone()
                    .ok_or_else(|| anyhow!("parameter {id} has no default")),
            )
        };
        let plain = |value: &TemplateValue| -> Result<String> {
            match value {
                TemplateValue::Ref(id) => parameter(id).unwrap_or_else(|| resources.resolve(value)),
                other => resources.resolve(other),
            }
        };
        // `None`: the template leaves the variable out (`!Ref AWS::NoValue`).
        let resolve = |value: &TemplateValue| -> Result<Option<String>> {
            let TemplateValue::If(condition, then, otherwise) = value else {
                return plain(value).map(Some);
            };
            let needed = template
                .conditions
                .get(condition)
                .ok_or_else(|| anyhow!("condition {condition} cannot be evaluated locally"))?;
            let holds = !parameter(needed)
                .ok_or_else(|| anyhow!("condition {condition} names no parameter {needed}"))??
                .is_empty();
            match if holds { then } else { otherwise }.as_ref() {
                TemplateValue::Ref(id) if id == crate::template::NO_VALUE => Ok(None),
                branch => plain(branch).map(Some),
            }
        };

        for o in &options.env_overrides {
            if o.function != "*" && !template.functions.iter().any(|f| f.name == o.function) {
                bail!(
                    "--env names {:?}, which is not a function in the template",
                    o.function
                );
            }
        }
        let aws_environment = vec![
            ("AWS_ENDPOINT_URL".to_owned(), aws_endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned()),
            ("AWS_SESSION_TOKEN".to_owned(), "testing".to_owned()),
        ];
        let mut hosts = BTreeMap::new();
        for function in &template.functions {
            let mut environment = Vec::new();
            for (key, value) in &function.environment {
                let resolved = resolve(value)
                    .with_context(|| format!("{}: environment variable {key}", function.name))?;
                if let Some(resolved) = resolved {
                    environment.push((key.clone(), resolved));
                }
            }
            if options.probe {
                environment.push((cxbridge::config::vars::PROBE.to_owned(), "true".to_owned()));
            }
            for o in options
                .env_overrides
                .iter()
                .filter(|o| o.function == "*" || o.function == function.name)
            {
                environment.retain(|(k, _)| *k != o.key);
                environment.push((o.key.clone(), o.value.clone()));
            }
            let binary = options.bin_dir.join(&function.name);
            if !binary.exists() {
                bail!(
                    "{} does not exist: build the functions first (`cargo build --workspace --bins`)",
                    binary.display()
                );
            }
            let host = FunctionHost::new(
                FunctionConfig {
                    name: function.name.clone(),
                    binary,
                    timeout: Duration::from_secs(function.timeout_secs),
                    memory_mb: function.memory_mb,
                    max_instances: options.max_instances.max(1),
                    init_limit: options.init_limit,
                    environment,
                    aws_environment: aws_environment.clone(),
                },
                log.clone(),
            );
            hosts.insert(function.name.clone(), host);
        }
        for host in hosts.values() {
            host.prewarm().await;
        }

        let mut tasks = Vec::new();
        let mut mappings = BTreeMap::new();
        for mapping in &template.sqs_mappings {
            let timeout = template
                .functions
                .iter()
                .find(|f| f.name == mapping.function)
                .map_or(0, |f| f.timeout_secs);
            if let Some(v) = options.queue_overrides.visibility_timeout
                && u64::try_from(v).unwrap_or(0) < timeout
            {
                log.line(format!(
                    "cxbridge-local: note: the {} queue's visibility timeout ({v} s) is below {}'s timeout ({timeout} s); AWS would refuse this mapping",
                    mapping.queue, mapping.function
                ));
            }
            let local = template
                .queues
                .iter()
                .find(|q| q.logical_id == mapping.queue)
                .map(crate::template::QueueSpec::local_name)
                .unwrap_or_default();
            let queue = resources.queues.get(&local).ok_or_else(|| {
                anyhow!("{} polls unknown queue {}", mapping.function, mapping.queue)
            })?;
            let host = hosts
                .get(&mapping.function)
                .ok_or_else(|| anyhow!("no function {}", mapping.function))?
                .clone();
            let enabled = mappings
                .entry(local)
                .or_insert_with(|| Arc::new(AtomicBool::new(true)))
                .clone();
            let poller = Poller {
                enabled,
                sqs: sqs.clone(),
                queue_url: queue.url.clone(),
                queue_arn: queue.arn.clone(),
                batch_size: mapping.batch_size,
                report_batch_item_failures: mapping.report_batch_item_failures,
                host,
                log: log.clone(),
            };
            // Like an event source mapping, several pollers take batches at once, so the
            // function sees concurrent batches as it does in AWS.
            for _ in 0..POLLERS_PER_MAPPING {
                tasks.push(tokio::spawn(poller.clone().run()));
            }
        }

        // DynamoDB stream mappings: one reader per shard, as Lambda runs one batch at a time
        // per shard (the emulator's stream has one).
        let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
        let caught_up = Arc::new(crate::streams::CaughtUp::default());
        for mapping in &template.stream_mappings {
            if template
                .tables
                .iter()
                .all(|t| t.logical_id != mapping.table || t.stream_view_type.is_none())
            {
                bail!(
                    "{} reads the stream of {}, which has no StreamSpecification",
                    mapping.function,
                    mapping.table
                );
            }
            let host = hosts
                .get(&mapping.function)
                .ok_or_else(|| anyhow!("no function {}", mapping.function))?
                .clone();
            let enabled = mappings
                .entry(STREAM_MAPPING.to_owned())
                .or_insert_with(|| Arc::new(AtomicBool::new(true)))
                .clone();
            let poller = crate::streams::StreamPoller {
                caught_up: caught_up.clone(),
                dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
                streams: streams.clone(),
                table: resources.table.clone(),
                batch_size: mapping.batch_size,
                report_batch_item_failures: mapping.report_batch_item_failures,
                filter: mapping.filter.clone(),
                host,
                log: log.clone(),
                enabled,
            };
            tasks.push(tokio::spawn(poller.run()));
        }

        // EventBridge schedules with a queue target: the emulator keeps no schedules, so
        // the stack sends each rule's input itself, at the rule's rate.
        for schedule in &template.schedules {
            let queue = template
                .queues
                .iter()
                .find(|q| q.logical_id == schedule.queue)
                .and_then(|q| resources.queues.get(&q.local_name()))
                .ok_or_else(|| {
                    anyhow!(
                        "rule {} targets unknown queue {}",
                        schedule.logical_id,
                        schedule.queue
                    )
                })?;
            let every = options.schedule_every.unwrap_or(schedule.every);
            let (sqs, url, input, log) = (
                sqs.clone(),
                queue.url.clone(),
                schedule.input.clone(),
                log.clone(),
            );
            let rule = schedule.logical_id.clone();
            tasks.push(tokio::spawn(async move {
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    if let Err(e) = sqs
                        .send_message()
                        .queue_url(&url)
                        .message_body(&input)
                        .send()
                        .await
                    {
                        log.line(format!(
                            "cxbridge-local: schedule {rule}: could not send: {}",
                            aws_sdk_sqs::error::DisplayErrorContext(&e)
                        ));
                    }
                }
            }));
        }

        let gateway = Arc::new(Gateway {
            authority: address.to_string(),
            template,
            hosts: hosts.clone(),
        });
        let app = router(gateway).into_make_service_with_connect_info::<SocketAddr>();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));

        Ok(Self {
            gateway_url,
            cxone_url: simulator.url.clone(),
            simulator: Some(simulator),
            aws_endpoint,
            profile: options.profile,
            resources,
            webhook_config,
            hosts,
            log,
            mappings,
            caught_up,
            moto,
            tasks,
        })
    }

    /// Waits (at most `limit`) until the table's stream mapping has handed every record
    /// written before this call to its function, and each succeeded: what accepted
    /// webhooks recorded is then on the queues. False if that did not happen in time.
    pub async fn outbox_relayed(&self, limit: Duration) -> bool {
        self.caught_up.wait(limit).await
    }

    /// The stream mapping's progress, to wait on apart from the stack.
    pub fn relay_progress(&self) -> Arc<crate::streams::CaughtUp> {
        self.caught_up.clone()
    }

    /// The emulator's process id, when the stack started it (fault tests freeze it).
    /// Enables or disables the event source mapping of `queue` (its local name, such as
    /// `jobs`, or [`STREAM_MAPPING`] for the table's stream), as `UpdateEventSourceMapping
    /// --enabled` does: while disabled its function takes nothing from it, and what arrives
    /// waits. False if no function polls that queue.
    pub fn set_mapping_enabled(&self, queue: &str, enabled: bool) -> bool {
        self.mappings.get(queue).is_some_and(|switch| {
            switch.store(enabled, std::sync::atomic::Ordering::Relaxed);
            true
        })
    }

    pub fn emulator_pid(&self) -> Option<u32> {
        self.moto.as_ref().and_then(Moto::pid)
    }

    /// Waits until every function is ready or has failed to initialise.
    pub async fn settled(&self) -> BTreeMap<String, Health> {
        let mut out = BTreeMap::new();
        for (name, host) in &self.hosts {
            out.insert(name.clone(), host.settled().await);
        }
        out
    }

    /// The state file's content (ARCHITECTURE.md, Local stack and simulator).
    pub fn state(&self) -> Value {
        let queues: serde_json::Map<String, Value> = self
            .resources
            .queues
            .iter()
            .map(|(k, q)| (k.clone(), q.url.clone().into()))
            .collect();
        json!({
            "gateway": self.gateway_url,
            "cxone": self.cxone_url,
            "aws": self.aws_endpoint,
            "region": REGION,
            "profile": self.profile,
            "table": self.resources.table,
            "queues": queues,
            "secretId": self.resources.secret_arn,
            "secrets": self.resources.secrets,
            "bus": self.resources.bus,
            "webhookConfig": serde_json::from_str::<Value>(&self.webhook_config).unwrap_or(Value::Null),
        })
    }

    pub fn write_state(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(&self.state())?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Stops every process the stack started.
    pub async fn shutdown(mut self) {
        self.stop_all();
        // Give instances a moment to be reaped so that none outlives the stack.
        for host in self.hosts.values() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while host.instances() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.simulator.take();
        if let Some(moto) = self.moto.take() {
            moto.stop().await;
        }
    }

    fn stop_all(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        for host in self.hosts.values() {
            host.shutdown();
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cxbridge::cxone::Profile;
    use cxbridge::signals::definitions::{SignalKind, parse};

    #[test]
    fn the_local_signals_are_one_contact_and_one_spawn_definition_in_both_profiles() {
        for profile in [Profile::Documented, Profile::InContact] {
            let defs = parse(&local_signals(), profile).unwrap();
            assert_eq!(defs.len(), 2);
            assert_eq!(defs["order-update"].kind, SignalKind::Contact);
            let spawn = &defs["order-created"];
            assert_eq!(spawn.kind, SignalKind::Spawn);
            assert_eq!(spawn.script_id.as_deref(), Some("4100101"));
            assert_eq!(spawn.skill_id.as_deref(), Some("4200202"));
            let names: Vec<&str> = spawn.variables.iter().map(|v| v.name.as_str()).collect();
            assert_eq!(names, ["customerId", "orderId", "priority"]);
        }
        let set = local_defaults();
        assert!(
            set.iter()
                .any(|o| o.key == "CXBRIDGE_SIGNALS" && o.value == local_signals()),
            "the local stack's functions get them"
        );
    }
}
