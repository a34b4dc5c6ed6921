//! `make bench`: runs every measurement in BENCHMARKS.md and writes it.
//!
//! Criterion runs first (`cargo bench -p cxbridge-bench`) and `make package` builds the zips;
//! this program reads their results, then measures cold starts, memory and CPU of each
//! release function under the local runtime host, the stack end to end at fixed rates,
//! and the Node.js peer, and writes the report. Nothing in it is typed by hand.

mod charts;
mod coldstart;
mod cost;
mod load;
mod micro;
mod peer;
mod procfs;
mod report;
mod requests;

use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Parser;
use cxbridge_local::log::LogSink;
use cxbridge_local::{EnvOverride, Stack, StackOptions};

#[derive(Debug, Parser)]
#[command(about = "Measure cxbridge and its Node.js peer, and write BENCHMARKS.md")]
struct Args {
    /// Where to write the report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// The release function binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// `make package`'s output (`<function>/bootstrap.zip`).
    #[arg(long, default_value = "target/lambda")]
    zip_dir: PathBuf,
    /// Criterion's output from this run.
    #[arg(long, default_value = "target/criterion")]
    criterion_dir: PathBuf,
    /// The Node.js peer, with its node_modules installed.
    #[arg(long, default_value = "bench/peer-node")]
    peer_dir: PathBuf,
    #[arg(long, default_value = "node")]
    node: PathBuf,
    /// Cold starts per function (and of the peer).
    #[arg(long, default_value_t = 20)]
    cold_starts: usize,
    /// Requests in a row after the last cold start, before reading RSS and CPU.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// End-to-end rates, in webhooks per second.
    #[arg(long, value_delimiter = ',', default_value = "100,200,500")]
    rates: Vec<u32>,
    /// How long each rate runs, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// The rate at which the acknowledgement is compared without and with the local named
    /// targets: one the emulator holds with the drainer's delivery work beside the load.
    #[arg(long, default_value_t = 5)]
    targets_rate: u32,
    /// Deliveries sent twice to count AWS calls per duplicate.
    #[arg(long, default_value_t = 500)]
    duplicates: usize,
    /// Where the stack's and the functions' output goes.
    #[arg(long, default_value = "target/bench/stack.log")]
    log: PathBuf,
}

#[tokio::main]
async fn main() {
    if let Err(err) = run(Args::parse()).await {
        eprintln!("cxbridge-bench: {err:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    let root = std::env::current_dir()?;
    let started = std::time::SystemTime::now();
    let machine = report::Machine::read(&root, &args.node).await;
    let micro = micro::read(&args.criterion_dir)?;
    let zips = coldstart::FUNCTIONS
        .iter()
        .map(|f| {
            let path = args.zip_dir.join(f).join("bootstrap.zip");
            let size = std::fs::metadata(&path).ok().map(|m| m.len());
            ((*f).to_owned(), size)
        })
        .collect();

    if let Some(dir) = args.log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log =
        LogSink::file(&args.log).with_context(|| format!("cannot write {}", args.log.display()))?;
    let run_id = format!("b{}", &cxbridge::ids::new_uuid().replace('-', "")[..8]);

    // One instance per function, so that every request after a cold start reaches the same
    // process; then a stack that scales out as the deployed functions do.
    println!("cxbridge-bench: starting the local stack (release binaries, one instance each)");
    let mut options = stack_options(&args, &root, &log, &format!("{run_id}c"), 1);
    // Like for like with the peer, which does the durable work of the route to `events`
    // alone.
    options.webhook_config = Some(cxbridge_local::bootstrap::EVENTS_ONLY_CONFIG.to_owned());
    let stack = Stack::start(options).await?;
    let outcome = cold_starts(&args, &stack, &run_id).await;
    // The durable peer runs beside this stack, for its emulator, table and queue.
    let outcome = match outcome {
        Ok(functions) => durable_peer(&args, &stack, &run_id)
            .await
            .map(|peer| (functions, peer)),
        Err(err) => Err(err),
    };
    stack.shutdown().await;
    let (functions, durable_peer) = outcome?;

    println!("cxbridge-bench: the Node.js peer, in memory");
    let peer = peer::run(
        &args.node,
        &args.peer_dir,
        PEER_SECRET,
        &format!("{run_id}-peer"),
        None,
        args.cold_starts,
        args.requests,
    )
    .await
    .context("the Node.js peer")?;

    println!("cxbridge-bench: starting the local stack (release binaries, up to 4 instances)");
    let mut options = stack_options(&args, &root, &log, &format!("{run_id}e"), 4);
    // The events-only route for the rates past the emulator's limit: with the local named
    // targets, every accepted webhook also puts two delivery jobs on `jobs`, and the
    // drainer's work on them shares the one moto process with the load until requests wait
    // past their signature's tolerance. The targets are measured at a rate it holds, below.
    options.webhook_config = Some(cxbridge_local::bootstrap::EVENTS_ONLY_CONFIG.to_owned());
    let stack = Stack::start(options).await?;
    let outcome = end_to_end(&args, &stack, &run_id).await;
    stack.shutdown().await;
    let (loads, duplicates, events_only) = outcome?;

    println!("cxbridge-bench: starting the local stack with its named targets (up to 4 instances)");
    let mut options = stack_options(&args, &root, &log, &format!("{run_id}t"), 4);
    options.webhook_config = Some(interleaved_config(&run_id));
    let stack = Stack::start(options).await?;
    let outcome = with_targets(&args, &stack, &run_id, events_only).await;
    stack.shutdown().await;
    let targets = outcome?;

    let elapsed = started.elapsed().unwrap_or_default();
    let template = cxbridge_local::template::Template::load(Path::new("template.yaml"))?;
    let memory_mb = template
        .functions
        .iter()
        .map(|f| (f.name.clone(), f.memory_mb))
        .collect();
    let report = report::Report {
        machine,
        micro,
        zips,
        functions,
        loads,
        duplicates,
        targets,
        peer,
        durable_peer,
        cold_starts: args.cold_starts,
        elapsed,
        memory_mb,
    };
    let dir = args
        .out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    report::write_charts(&report, dir)?;
    let text = report::render(&report);
    std::fs::write(&args.out, &text)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("{text}");
    println!("cxbridge-bench: wrote {}", args.out.display());
    Ok(())
}

fn stack_options(
    args: &Args,
    root: &std::path::Path,
    log: &LogSink,
    prefix: &str,
    instances: usize,
) -> StackOptions {
    let mut options = StackOptions::for_project(root);
    options.bin_dir = args.bin_dir.clone();
    options.prefix = prefix.to_owned();
    options.max_instances = instances;
    options.log = log.clone();
    // The requests (an HMAC-signed Studio callback, a signal with an execution id) and the
    // committed figures are the documented API's.
    options.profile = "documented".to_owned();
    // Each function names itself to the SDK, so the emulator can count its calls.
    for f in coldstart::FUNCTIONS {
        options.env_overrides.push(EnvOverride {
            function: f.to_owned(),
            key: "AWS_SDK_UA_APP_ID".to_owned(),
            value: f.to_owned(),
        });
    }
    options
}

/// Waits for every function to be ready; a client for the stack.
async fn ready(stack: &Stack) -> Result<reqwest::Client> {
    let health = tokio::time::timeout(Duration::from_secs(60), stack.settled())
        .await
        .context("the functions did not settle within 60 s")?;
    for (name, h) in &health {
        if *h != cxbridge_local::runtime_api::Health::Ready {
            return Err(anyhow!("{name} did not start: {h:?}"));
        }
    }
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?)
}

async fn cold_starts(
    args: &Args,
    stack: &Stack,
    run_id: &str,
) -> Result<Vec<coldstart::FunctionRun>> {
    let client = ready(stack).await?;
    // The simulator's own completion callbacks stay out of the way of the measured ones.
    client
        .post(format!("{}/_sim/config", stack.cxone_url))
        .json(&serde_json::json!({"callbackDelayMs": 600_000}))
        .send()
        .await?
        .error_for_status()?;
    let secrets = &stack.resources.secrets;
    let queue = |name: &str| {
        stack
            .resources
            .queues
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow!("no {name} queue"))
    };
    let requests = requests::Requests {
        client: client.clone(),
        gateway: stack.gateway_url.clone(),
        run: run_id.to_owned(),
        webhook_secret: secrets.webhook.clone(),
        callback_secret: secrets.callback.clone(),
        cognigy_token: secrets.cognigy.clone(),
        api_key: secrets.api_key.clone(),
        jobs_queue_arn: queue("jobs")?.arn,
        events_queue_url: queue("events")?.url,
    };
    println!(
        "cxbridge-bench: cold starts ({} per function) and {} requests each",
        args.cold_starts, args.requests
    );
    coldstart::run(stack, &requests, args.cold_starts, args.requests, &args.log).await
}

fn events_queue_url(stack: &Stack) -> Result<String> {
    Ok(stack
        .resources
        .queues
        .get("events")
        .ok_or_else(|| anyhow!("no events queue"))?
        .url
        .clone())
}

const PEER_SECRET: &str = "bench-peer-secret-0123456789abcdef";

/// The Node.js peer doing the durable work cxbridge does, through the stack's emulator.
async fn durable_peer(args: &Args, stack: &Stack, run_id: &str) -> Result<peer::PeerRun> {
    println!("cxbridge-bench: the Node.js peer, with DynamoDB and SQS");
    let durable = peer::Durable {
        aws_endpoint: stack.aws_endpoint.clone(),
        table: stack.resources.table.clone(),
        queue_url: events_queue_url(stack)?,
    };
    peer::run(
        &args.node,
        &args.peer_dir,
        PEER_SECRET,
        &format!("{run_id}-durable"),
        Some(&durable),
        args.cold_starts,
        args.requests,
    )
    .await
    .context("the Node.js peer with DynamoDB and SQS")
}

/// The load generator for a stack's webhook route.
/// The run whose requests alternate between the two routes of [`interleaved_config`].
fn interleaved_run(run_id: &str) -> String {
    format!("{run_id}-ab")
}

/// The local stack's default routing (every event to `events`, `audit` and the bus), and
/// before it a route that sends the even-numbered webhooks of the interleaved run to
/// `events` alone.
fn interleaved_config(run_id: &str) -> String {
    let local = cxbridge_local::bootstrap::local_webhook_config("{simulator}", "{bus}");
    let mut config: serde_json::Value =
        serde_json::from_str(&local).unwrap_or_else(|_| serde_json::json!({}));
    // The sample's interaction id is `chat-{run}-{n}`; the run id is letters and digits.
    let even = format!("^chat-{}-[0-9]*[02468]$", interleaved_run(run_id));
    if let Some(routes) = config["routes"].as_array_mut() {
        routes.insert(
            0,
            serde_json::json!({"name": "events-only", "priority": 1, "stop": true,
                "when": [{"field": "interactionId", "regex": even}],
                "targets": [{"queue": "events"}]}),
        );
    }
    config.to_string()
}

async fn load_target(stack: &Stack, run: String) -> Result<load::Target> {
    let client = ready(stack).await?;
    let sdk = cxbridge_local::stack::emulator_config(&stack.aws_endpoint).await;
    Ok(load::Target {
        client,
        url: format!("{}/webhooks/cxone", stack.gateway_url),
        secret: stack.resources.secrets.webhook.clone(),
        run,
        sqs: aws_sdk_sqs::Client::new(&sdk),
        events_queue: events_queue_url(stack)?,
        aws_endpoint: stack.aws_endpoint.clone(),
        relay: stack.relay_progress(),
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        table: stack.resources.table.clone(),
    })
}

async fn end_to_end(
    args: &Args,
    stack: &Stack,
    run_id: &str,
) -> Result<(Vec<load::LoadRun>, load::DuplicateRun, load::LoadRun)> {
    let target = load_target(stack, format!("{run_id}-load")).await?;
    println!(
        "cxbridge-bench: {} webhooks/s for {} s, routed to events alone",
        args.targets_rate, args.seconds
    );
    let seconds = Duration::from_secs(args.seconds);
    let events_only = target.fixed_rate(args.targets_rate, seconds, 0).await?;
    let mut loads = Vec::new();
    let mut next = events_only.sent;
    for rate in &args.rates {
        println!(
            "cxbridge-bench: {rate} webhooks/s for {} s through the gateway",
            args.seconds
        );
        let run = target
            .fixed_rate(*rate, Duration::from_secs(args.seconds), next)
            .await?;
        next += run.sent;
        loads.push(run);
    }
    println!(
        "cxbridge-bench: {} deliveries, each sent twice",
        args.duplicates
    );
    let duplicates = target.duplicates(args.duplicates, next).await?;
    Ok((loads, duplicates, events_only))
}

/// The acknowledgement at the same rate with the local default configuration (`events`,
/// the HTTPS target `audit` and the bus): first with the drainer's mapping disabled, so the
/// emulator serves the webhook route alone as in the events-only run, then with the drainer
/// delivering meanwhile; then what each target got once every delivery job has run.
async fn with_targets(
    args: &Args,
    stack: &Stack,
    run_id: &str,
    events_only: load::LoadRun,
) -> Result<load::TargetsRun> {
    let target = load_target(stack, format!("{run_id}-targets")).await?;
    let queue = |name: &str| {
        stack
            .resources
            .queues
            .get(name)
            .map(|q| q.url.clone())
            .ok_or_else(|| anyhow!("no {name} queue"))
    };
    let sinks = load::Sinks {
        simulator: stack.cxone_url.clone(),
        bus_queue: queue("bus-events")?,
        jobs_queue: queue("jobs")?,
    };
    let seconds = Duration::from_secs(args.seconds);
    println!(
        "cxbridge-bench: {} webhooks/s for {} s, routed to events, audit and the bus, the drainer's mapping disabled",
        args.targets_rate, args.seconds
    );
    if !stack.set_mapping_enabled("jobs", false) {
        return Err(anyhow!("no function polls the jobs queue"));
    }
    let held = target.fixed_rate(args.targets_rate, seconds, 0).await;
    stack.set_mapping_enabled("jobs", true);
    let held = held?;
    println!(
        "cxbridge-bench: {} webhooks/s for {} s, routed to events, audit and the bus, the drainer delivering",
        args.targets_rate, args.seconds
    );
    let delivering = target
        .fixed_rate(args.targets_rate, seconds, held.sent)
        .await?;
    let fanout = target
        .fanout(
            &sinks,
            held.accepted + delivering.accepted,
            Duration::from_secs(300),
        )
        .await?;
    // The acknowledgement with and without the targets, compared within one run: its
    // requests alternate between the two routes (`interleaved_config`), the drainer's
    // mapping disabled so that the emulator serves the webhook route alone.
    let sends = target.send_costs(&format!("{run_id}t-probe"), 200).await?;
    println!(
        "cxbridge-bench: {} webhooks/s for {} s, alternately to events alone and to events, audit and the bus",
        args.targets_rate,
        2 * args.seconds
    );
    let alternating = load_target(stack, interleaved_run(run_id)).await?;
    stack.set_mapping_enabled("jobs", false);
    let interleaved = alternating
        .fixed_rate(args.targets_rate, 2 * seconds, 0)
        .await;
    stack.set_mapping_enabled("jobs", true);
    Ok(load::TargetsRun {
        events_only,
        held,
        delivering,
        fanout,
        interleaved: load::Interleaved::new(interleaved?),
        sends,
    })
}
