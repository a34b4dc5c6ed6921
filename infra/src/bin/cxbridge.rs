//! `cxbridge`: the operator CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use cxbridge_local::samples;

/// The local stack's state file, which `make run` writes.
const STATE_FILE: &str = "target/cxbridge-local.json";

#[derive(Parser)]
#[command(version, about = "cxbridge operator tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the X-Nexus headers that sign a body.
    Sign {
        /// Signing secret (default: the local stack's current webhook secret).
        #[arg(long, env = "CXBRIDGE_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
        /// The body, as text.
        #[arg(long, conflicts_with = "body_file")]
        body: Option<String>,
        /// The body, from a file (`-` for standard input).
        #[arg(long)]
        body_file: Option<PathBuf>,
        /// Delivery id to print with the headers (default: a new one).
        #[arg(long)]
        delivery_id: Option<String>,
        /// Event type to print with the headers.
        #[arg(long, default_value = "interaction.created")]
        event_type: String,
        #[arg(long, env = "CXBRIDGE_STATE", default_value = STATE_FILE)]
        state: PathBuf,
    },
    /// Send sample requests: signed CXone webhooks, or Studio REST API requests.
    Send {
        #[command(subcommand)]
        what: Send,
    },
    /// Declarative CXone-side setup (documented API): webhook subscriptions, routing rules
    /// and integration targets from one file.
    Cxone {
        #[command(subcommand)]
        what: Cxone,
    },
    /// Inspect and redrive a dead-letter queue (any account; the local one through
    /// AWS_ENDPOINT_URL).
    Dlq {
        #[command(subcommand)]
        what: Dlq,
    },
    /// Check a webhook configuration offline.
    Config {
        #[command(subcommand)]
        what: ConfigCmd,
    },
    /// Named outbound targets: state, a test delivery, pause and resume.
    Targets {
        #[command(subcommand)]
        what: Targets,
        #[command(flatten)]
        place: PlaceFlags,
    },
    /// The delivery log: every attempt to a named target.
    Deliveries {
        #[command(subcommand)]
        what: Deliveries,
        #[command(flatten)]
        place: PlaceFlags,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate a CXBRIDGE_WEBHOOK_CONFIG document as a function's cold start does, and
    /// print every problem at once. Exits 1 when there is any.
    Check {
        /// The configuration document (JSON).
        file: PathBuf,
        /// The secret's JSON document, to check the targets' credentials too.
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
}

/// Where the target commands act (default: the local stack's state file).
#[derive(clap::Args)]
struct PlaceFlags {
    /// The webhook configuration (default: the local stack's).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The table (default: CXBRIDGE_TABLE, or the local stack's).
    #[arg(long, global = true)]
    table: Option<String>,
    /// The secret (default: CXBRIDGE_SECRET_ID, or the local stack's).
    #[arg(long, global = true)]
    secret_id: Option<String>,
    #[arg(long, global = true, env = "CXBRIDGE_STATE", default_value = STATE_FILE)]
    state: PathBuf,
}

#[derive(Subcommand)]
enum Targets {
    /// State, consecutive failures, last error, and deliveries in the last hour and day.
    List {
        #[arg(long, value_parser = ["table", "json"], default_value = "table")]
        format: String,
    },
    /// Send a signed synthetic `integration.test` event now; print the status, latency and
    /// the first bytes of the answer.
    Test { name: String },
    /// Park every delivery to the target until it is resumed.
    Pause { name: String },
    /// Let deliveries go again (and reset the failure count).
    Resume { name: String },
}

#[derive(Subcommand)]
enum Deliveries {
    /// Attempts since a time, by a query on the log's index.
    List {
        /// How far back: 45s, 30m, 1h, 2d.
        #[arg(long, default_value = "1h")]
        since: String,
        #[arg(long)]
        target: Option<String>,
        /// delivered, failed or parked.
        #[arg(long, value_parser = ["delivered", "failed", "parked"])]
        status: Option<String>,
        #[arg(long, value_parser = ["table", "json", "csv"], default_value = "table")]
        format: String,
    },
}

#[derive(Subcommand)]
enum Cxone {
    /// Show what `apply` would create, update or delete. Exits 0 when CXone matches the
    /// file and 2 when it does not.
    Plan {
        /// The setup file (JSON, or YAML for .yaml/.yml).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Count objects that are not in the file as drift (`apply --prune` deletes them).
        #[arg(long)]
        prune: bool,
        #[arg(long, env = "CXBRIDGE_STATE", default_value = STATE_FILE)]
        state: PathBuf,
    },
    /// Make CXone match the file: create, update, and with --prune delete; then
    /// health-test each integration target created or changed.
    Apply {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Apply without asking.
        #[arg(long)]
        auto_approve: bool,
        /// Delete the objects that are not in the file.
        #[arg(long)]
        prune: bool,
        #[arg(long, env = "CXBRIDGE_STATE", default_value = STATE_FILE)]
        state: PathBuf,
    },
    /// Write the objects as infrastructure-as-code.
    Export {
        #[arg(long, value_parser = ["terraform-json"], default_value = "terraform-json")]
        format: String,
        /// Only the objects this setup file names (default: every object in CXone).
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Where to write it (default: standard output).
        #[arg(short = 'o', long = "out")]
        out: Option<PathBuf>,
        #[arg(long, env = "CXBRIDGE_STATE", default_value = STATE_FILE)]
        state: PathBuf,
    },
}

#[derive(Subcommand)]
enum Dlq {
    /// A table of the messages in the DLQ.
    List {
        #[arg(long)]
        dlq: String,
        /// How long the read hides each message it has seen (seconds). Messages are told
        /// apart by id, so a read that outlasts this still lists each once.
        #[arg(long, default_value_t = READ_VISIBILITY_SECS)]
        hold_secs: i32,
    },
    /// One message in full.
    Show {
        #[arg(long)]
        dlq: String,
        /// The message id, as `list` shows it.
        id: String,
        #[arg(long, default_value_t = READ_VISIBILITY_SECS)]
        hold_secs: i32,
    },
    /// Send every message back (attempts reset to 0), then delete it from the DLQ.
    Redrive {
        #[arg(long)]
        dlq: String,
        /// Where to send them (default: the queue whose redrive policy names this DLQ).
        #[arg(long)]
        to: Option<String>,
        /// Show what would be redriven, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// How long a dry run hides each message it has seen (seconds).
        #[arg(long, default_value_t = READ_VISIBILITY_SECS)]
        hold_secs: i32,
    },
}

#[derive(Subcommand)]
enum Send {
    /// Post signed sample CXone webhooks, or with `--channel studio` the requests of a
    /// Studio script's REST API action (with a token and an X-Delivery-Id).
    Webhook {
        #[arg(long, value_parser = samples::SEND_CHANNELS)]
        channel: String,
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Receiver URL (default: the local stack's `/webhooks/cxone`, or `/webhooks/studio`
        /// for `--channel studio`).
        #[arg(long)]
        to: Option<String>,
        /// Signing secret (default: the local stack's current webhook secret).
        #[arg(long, env = "CXBRIDGE_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Studio token, sent as X-API-Key (default: the local stack's).
        #[arg(long, env = "CXBRIDGE_STUDIO_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Body of `--channel studio` requests: form fields (Studio's default) or JSON.
        #[arg(long, value_parser = ["form", "json"], default_value = "form")]
        format: String,
        #[arg(long, env = "CXBRIDGE_STATE", default_value = STATE_FILE)]
        state: PathBuf,
    },
}

impl PlaceFlags {
    fn args(&self) -> cxbridge_local::operator::PlaceArgs<'_> {
        cxbridge_local::operator::PlaceArgs {
            config: self.config.as_deref(),
            table: self.table.clone(),
            secret_id: self.secret_id.clone(),
            state: &self.state,
        }
    }
}

fn state(path: &PathBuf) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}: is `make run` running? (or pass --secret and --to)",
            path.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

fn secret_from(secret: Option<String>, state_path: &PathBuf) -> Result<String> {
    local_secret(secret, state_path, "webhook")
}

/// `given`, else the local stack's `secrets.{name}` from the state file.
fn local_secret(given: Option<String>, state_path: &PathBuf, name: &str) -> Result<String> {
    match given {
        Some(s) => Ok(s),
        None => state(state_path)?["secrets"][name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the state file has no secrets.{name}")),
    }
}

fn main() -> ExitCode {
    // A usage error exits 1, never 2: `cxbridge cxone plan` keeps 2 for drift.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("cxbridge: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Sign {
            secret,
            timestamp,
            body,
            body_file,
            delivery_id,
            event_type,
            state,
        } => {
            let secret = secret_from(secret, &state)?;
            let body = match (body, body_file) {
                (Some(b), _) => b.into_bytes(),
                (None, Some(p)) if p.as_os_str() == "-" => {
                    let mut buf = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
                    buf
                }
                (None, Some(p)) => {
                    std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?
                }
                (None, None) => bail!("give the body with --body or --body-file"),
            };
            let timestamp = timestamp.unwrap_or_else(cxbridge::clock::now_secs);
            let delivery_id = delivery_id.unwrap_or_else(cxbridge::ids::new_uuid);
            for (name, value) in
                samples::signed_headers(&secret, timestamp, &body, &delivery_id, &event_type)
            {
                println!("{}: {value}", header_case(name));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq { what } => dlq(what).await,
        Command::Config {
            what: ConfigCmd::Check { file, secret_file },
        } => {
            use cxbridge_local::operator::config_check;
            let problems = config_check(&file, secret_file.as_deref())?;
            if problems.is_empty() {
                println!("{}: ok", file.display());
                Ok(ExitCode::SUCCESS)
            } else {
                for p in &problems {
                    eprintln!("{}: {p}", file.display());
                }
                eprintln!("{} problem(s)", problems.len());
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Targets { what, place } => {
            use cxbridge_local::operator as op;
            let place = op::Place::find(place.args()).await?;
            match what {
                Targets::List { format } => print!("{}", op::targets_list(&place, &format).await?),
                Targets::Test { name } => {
                    let (ok, text) = op::targets_test(&place, &name).await?;
                    println!("{text}");
                    if !ok {
                        return Ok(ExitCode::FAILURE);
                    }
                }
                Targets::Pause { name } => {
                    println!("{}", op::set_paused(&place, &name, true).await?)
                }
                Targets::Resume { name } => {
                    println!("{}", op::set_paused(&place, &name, false).await?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Deliveries {
            what:
                Deliveries::List {
                    since,
                    target,
                    status,
                    format,
                },
            place,
        } => {
            use cxbridge_local::operator as op;
            let place = op::Place::find(place.args()).await?;
            print!(
                "{}",
                op::deliveries_list(
                    &place,
                    &since,
                    target.as_deref(),
                    status.as_deref(),
                    &format
                )
                .await?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Cxone { what } => {
            use cxbridge_local::setup::run;
            let code = match what {
                Cxone::Plan { file, prune, state } => {
                    run::plan_command(&file, &state, prune).await?
                }
                Cxone::Apply {
                    file,
                    auto_approve,
                    prune,
                    state,
                } => run::apply_command(&file, &state, auto_approve, prune).await?,
                Cxone::Export {
                    format: _,
                    file,
                    out,
                    state,
                } => run::export_command(file.as_deref(), &state, out.as_ref()).await?,
            };
            Ok(ExitCode::from(code))
        }
        Command::Send {
            what:
                Send::Webhook {
                    channel,
                    count,
                    to,
                    secret,
                    token,
                    format,
                    state: state_path,
                },
        } => {
            let studio = channel == "studio";
            // Only the credential this channel uses is looked up.
            let credential = if studio {
                local_secret(token, &state_path, "studio")?
            } else {
                secret_from(secret, &state_path)?
            };
            let to = match to {
                Some(t) => t,
                None => format!(
                    "{}/webhooks/{}",
                    state(&state_path)?["gateway"]
                        .as_str()
                        .context("the state file has no gateway")?,
                    if studio { "studio" } else { "cxone" }
                ),
            };
            let client = reqwest::Client::new();
            let run = cxbridge::ids::new_uuid()[..8].to_owned();
            let mut failures = 0;
            for n in 1..=count {
                let delivery_id = cxbridge::ids::new_uuid();
                let (subject, request) = if studio {
                    let sample = samples::studio(&run, n, format == "json");
                    let request = client
                        .post(&to)
                        .header("content-type", sample.content_type)
                        .header("x-api-key", &credential)
                        .header("x-delivery-id", &delivery_id)
                        .body(sample.body);
                    (sample.contact_id, request)
                } else {
                    let sample = samples::webhook(&channel, &run, n).context("unknown channel")?;
                    let mut request = client
                        .post(&to)
                        .header("content-type", sample.content_type)
                        .body(sample.body.clone());
                    for (name, value) in samples::signed_headers(
                        &credential,
                        cxbridge::clock::now_secs(),
                        &sample.body,
                        &delivery_id,
                        &sample.event_type,
                    ) {
                        request = request.header(name, value);
                    }
                    (sample.interaction_id, request)
                };
                let response = request
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {to}"))?;
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                println!("{subject} {delivery_id} {status} {body}");
                if !status.is_success() {
                    failures += 1;
                }
            }
            Ok(if failures == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// How long a read hides what it has received. Messages are told apart by id, so one that
/// shows again after this (a read of a very large queue) is never counted twice.
const READ_VISIBILITY_SECS: i32 = 900;

/// SQS's longest visibility timeout: 12 hours.
const MAX_VISIBILITY_SECS: i32 = 43_200;

/// Receives that bring nothing new, in a row, before a read may end; each waits up to a
/// second (long polling), and the queue's own count must agree, so a sampled empty answer
/// cannot end a read early.
const QUIET_RECEIVES: u32 = 3;

/// Quiet receives, and quiet time, after which a read ends even though the queue says more
/// is there: a message another reader holds comes back when its hold ends, so both bounds
/// must pass, however fast or slow each receive is.
const GIVE_UP_RECEIVES: u32 = 30;
const GIVE_UP_AFTER: std::time::Duration = std::time::Duration::from_secs(90);

fn sqs_error(what: &str, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{what}: {e}")
}

/// Messages on `queue` now, visible or not.
async fn on_queue(sqs: &aws_sdk_sqs::Client, queue: &str) -> Result<i64> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|e| {
            sqs_error(
                &format!("cannot read {queue}"),
                aws_sdk_sqs::error::DisplayErrorContext(&e),
            )
        })?;
    Ok(out
        .attributes
        .unwrap_or_default()
        .values()
        .filter_map(|v| v.parse::<i64>().ok())
        .sum())
}

/// One receive of up to ten messages, long-polling up to a second.
async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    visibility: i32,
) -> Result<Vec<aws_sdk_sqs::types::Message>> {
    let out = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .visibility_timeout(visibility)
        .wait_time_seconds(1)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| {
            sqs_error(
                &format!("cannot receive from {queue}"),
                aws_sdk_sqs::error::DisplayErrorContext(&e),
            )
        })?;
    Ok(out.messages.unwrap_or_default())
}

/// A read's run of receives that brought nothing new.
struct Quiet {
    receives: u32,
    since: std::time::Instant,
}

impl Quiet {
    fn new() -> Self {
        Self {
            receives: 0,
            since: std::time::Instant::now(),
        }
    }

    fn heard(&mut self) {
        *self = Self::new();
    }

    fn nothing(&mut self) {
        self.receives += 1;
    }
}

/// Whether a read that has seen nothing new for a while may end: once the queue holds no
/// more than it has accounted for (`accounted`: the messages it has seen and still holds),
/// or, when what is left is held by another reader (said on stderr), after
/// `GIVE_UP_RECEIVES` quiet receives over at least `GIVE_UP_AFTER`.
async fn read_is_over(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    quiet: &Quiet,
    accounted: usize,
) -> Result<bool> {
    if quiet.receives < QUIET_RECEIVES {
        return Ok(false);
    }
    let left = on_queue(sqs, queue).await?;
    let unseen = left - i64::try_from(accounted).unwrap_or(i64::MAX);
    if unseen <= 0 {
        return Ok(true);
    }
    if quiet.receives >= GIVE_UP_RECEIVES && quiet.since.elapsed() >= GIVE_UP_AFTER {
        eprintln!(
            "cxbridge: about {unseen} message(s) on {queue} stayed out of reach (held by another reader?)"
        );
        return Ok(true);
    }
    Ok(false)
}

/// Every message on `queue`, each once (by message id), hidden while the read lasts; or,
/// with `wanted`, until that message is found. A message seen again (the read outlasted
/// `hold_secs`) is hidden again, so that it does not crowd out the ones not yet seen.
async fn collect(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    wanted: Option<&str>,
    hold_secs: i32,
) -> Result<Vec<aws_sdk_sqs::types::Message>> {
    let mut all: Vec<aws_sdk_sqs::types::Message> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut quiet = Quiet::new();
    let started = std::time::Instant::now();
    loop {
        let batch = receive(sqs, queue, hold_secs).await?;
        let before = all.len();
        let mut again = Vec::new();
        for m in batch {
            let id = m.message_id().unwrap_or_default().to_owned();
            match index.get(&id) {
                // The newest receipt handle is the one that can release it.
                Some(&i) => {
                    again.push(m.clone());
                    all[i] = m;
                }
                None => {
                    index.insert(id, all.len());
                    all.push(m);
                }
            }
        }
        // Out of the way for twice as long as the read has taken so far: it cannot come
        // back to crowd the front of the queue again before the read ends.
        let elapsed = i32::try_from(started.elapsed().as_secs()).unwrap_or(MAX_VISIBILITY_SECS);
        let again_for = hold_secs
            .max(elapsed.saturating_mul(2).saturating_add(1))
            .min(MAX_VISIBILITY_SECS);
        let _ = cxbridge_local::poller::set_visibility(sqs, queue, &again, again_for).await;
        if wanted.is_some_and(|id| index.contains_key(id)) {
            return Ok(all);
        }
        if all.len() == before {
            quiet.nothing();
            if read_is_over(sqs, queue, &quiet, all.len()).await? {
                return Ok(all);
            }
        } else {
            quiet.heard();
            if all.len() / 1000 != before / 1000 {
                eprintln!("… {} messages read", all.len());
            }
        }
    }
}

/// Makes collected messages visible again at once.
async fn release(sqs: &aws_sdk_sqs::Client, queue: &str, messages: &[aws_sdk_sqs::types::Message]) {
    let _ = cxbridge_local::poller::set_visibility(sqs, queue, messages, 0).await;
}

/// A DLQ message as it goes back: a job starts its attempts again, anything else goes
/// back as it was.
fn redriven_body(body: &str) -> String {
    match serde_json::from_str::<cxbridge::jobs::Job>(body) {
        Ok(mut job) => {
            job.attempt = 0;
            job.redriven = true;
            if matches!(
                job.kind,
                cxbridge::jobs::JobKind::Context | cxbridge::jobs::JobKind::Delivery
            ) {
                // A context or delivery job's runs are claimed under its id: a redriven
                // one starts a new series, which its earlier runs cannot block. A
                // delivery goes to its own target only, as before.
                if let Some(p) = job.payload.as_object_mut() {
                    p.remove("parks");
                }
                let base = job.id.split("~redrive-").next().unwrap_or_default();
                job.id = format!("{base}~redrive-{}", cxbridge::clock::now_ms());
            }
            cxbridge::queue::sqs_json(&job)
        }
        Err(_) => body.to_owned(),
    }
}

/// Moves every message from `dlq` to `target` ten at a time: each batch is sent, then
/// deleted, before the next is received, so a message is never held longer than a batch
/// takes. A message that shows again after it was sent (its delete was lost) is deleted,
/// not sent twice.
async fn redrive(sqs: &aws_sdk_sqs::Client, dlq: &str, target: &str) -> Result<usize> {
    let mut sent = std::collections::HashSet::new();
    let mut moved = 0;
    let mut quiet = Quiet::new();
    loop {
        let batch = receive(sqs, dlq, 60).await?;
        if batch.is_empty() {
            quiet.nothing();
            // Every message received is deleted before the next receive: nothing is held.
            if read_is_over(sqs, dlq, &quiet, 0).await? {
                return Ok(moved);
            }
            continue;
        }
        quiet.heard();
        let fresh: Vec<&aws_sdk_sqs::types::Message> = batch
            .iter()
            .filter(|m| !sent.contains(m.message_id().unwrap_or_default()))
            .collect();
        if !fresh.is_empty() {
            let entries = fresh
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(redriven_body(m.body().unwrap_or_default()))
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = sqs
                .send_message_batch()
                .queue_url(target)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    sqs_error(
                        &format!("cannot send to {target}"),
                        aws_sdk_sqs::error::DisplayErrorContext(&e),
                    )
                })?;
            if let Some(failed) = out.failed.first() {
                bail!(
                    "cannot send to {target}: {} of {} refused ({}: {}); {moved} redriven so far, the rest stay in the DLQ",
                    out.failed.len(),
                    fresh.len(),
                    failed.code,
                    failed.message.as_deref().unwrap_or_default()
                );
            }
            for m in &fresh {
                sent.insert(m.message_id().unwrap_or_default().to_owned());
            }
            moved += fresh.len();
        }
        let deletes = batch
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        let out = sqs
            .delete_message_batch()
            .queue_url(dlq)
            .set_entries(Some(deletes))
            .send()
            .await
            .map_err(|e| {
                sqs_error(
                    "sent, but cannot delete from the DLQ",
                    aws_sdk_sqs::error::DisplayErrorContext(&e),
                )
            })?;
        if !out.failed.is_empty() {
            eprintln!(
                "cxbridge: {} sent message(s) could not be deleted from the DLQ yet; they will be deleted when they show again",
                out.failed.len()
            );
        }
        if moved / 1000 != (moved - fresh.len()) / 1000 {
            eprintln!("… {moved} redriven");
        }
    }
}

fn attribute(m: &aws_sdk_sqs::types::Message, name: &str) -> String {
    m.message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value())
        .unwrap_or_default()
        .to_owned()
}

async fn dlq(what: Dlq) -> Result<ExitCode> {
    // An operator's tool, not a request path: long polls and large batches get time.
    let config = cxbridge::aws::load_sdk_config(&cxbridge::aws::AwsSettings::from_env()?)
        .await
        .into_builder()
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .operation_attempt_timeout(std::time::Duration::from_secs(30))
                .operation_timeout(std::time::Duration::from_secs(90))
                .build(),
        )
        .build();
    let sqs = aws_sdk_sqs::Client::new(&config);
    match what {
        Dlq::List { dlq, hold_secs } => {
            let messages = collect(&sqs, &dlq, None, hold_secs).await?;
            println!(
                "{:<38} {:<10} {:<40} {:>8}  REASON",
                "MESSAGE ID", "KIND", "CORRELATION ID", "ATTEMPTS"
            );
            for m in &messages {
                let job: serde_json::Value =
                    serde_json::from_str(m.body().unwrap_or_default()).unwrap_or_default();
                println!(
                    "{:<38} {:<10} {:<40} {:>8}  {}",
                    m.message_id().unwrap_or_default(),
                    job["kind"].as_str().unwrap_or("?"),
                    job["correlationId"].as_str().unwrap_or("?"),
                    job["attempt"]
                        .as_u64()
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "?".into()),
                    attribute(m, "deadLetterReason"),
                );
            }
            println!("{} message(s)", messages.len());
            release(&sqs, &dlq, &messages).await;
            Ok(ExitCode::SUCCESS)
        }
        Dlq::Show { dlq, id, hold_secs } => {
            let messages = collect(&sqs, &dlq, Some(&id), hold_secs).await?;
            let found = messages
                .iter()
                .find(|m| m.message_id() == Some(id.as_str()));
            let code = match found {
                Some(m) => {
                    let body: serde_json::Value =
                        serde_json::from_str(m.body().unwrap_or_default()).unwrap_or_else(|_| {
                            serde_json::Value::String(m.body().unwrap_or_default().to_owned())
                        });
                    let attributes: serde_json::Map<String, serde_json::Value> = m
                        .message_attributes()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.string_value().unwrap_or_default().into()))
                        .collect();
                    println!(
                        "{}",
                        serde_json::to_string_pretty(
                            &serde_json::json!({"messageId": id, "attributes": attributes, "body": body})
                        )?
                    );
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("cxbridge: no message {id} in {dlq}");
                    ExitCode::FAILURE
                }
            };
            release(&sqs, &dlq, &messages).await;
            Ok(code)
        }
        Dlq::Redrive {
            dlq,
            to,
            dry_run,
            hold_secs,
        } => {
            let target = match to {
                Some(t) => t,
                None => sqs
                    .list_dead_letter_source_queues()
                    .queue_url(&dlq)
                    .send()
                    .await
                    .ok()
                    .and_then(|o| o.queue_urls.into_iter().next())
                    .context("no queue redrives to this DLQ: name the target with --to")?,
            };
            if dry_run {
                let messages = collect(&sqs, &dlq, None, hold_secs).await?;
                for m in &messages {
                    println!(
                        "would redrive {} to {target}",
                        m.message_id().unwrap_or_default()
                    );
                }
                release(&sqs, &dlq, &messages).await;
                println!(
                    "{} message(s) would be redriven to {target}",
                    messages.len()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let moved = redrive(&sqs, &dlq, &target).await?;
            println!("{moved} message(s) redriven to {target}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn header_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}
