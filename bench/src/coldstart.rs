//! Cold starts, peak memory and CPU per request of each function, under the local runtime
//! host: the instance is recycled before every run, so each run starts a fresh process.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cxbridge_local::Stack;

use crate::requests::Requests;
use crate::{load, procfs};

/// How one function measured.
#[derive(Debug, Clone)]
pub struct FunctionRun {
    pub name: String,
    /// Exec to the first `GET /invocation/next`, per run.
    pub exec_to_next: Vec<Duration>,
    /// From sending a real request to a function with no instance until its answer.
    pub first_answer: Vec<Duration>,
    /// After the last cold start, this many requests in a row to its one instance...
    pub requests: usize,
    /// ...left this peak RSS (KiB)...
    pub peak_rss_kib: u64,
    /// ...and used this much CPU each...
    pub cpu_per_request: Duration,
    /// ...and made these AWS calls, by operation...
    pub calls: BTreeMap<String, u64>,
    /// ...each taking this long from the bench's request to its answer...
    pub wall_per_request: Duration,
    /// ...and writing this many bytes of log lines (the function's own output).
    pub log_bytes_per_request: f64,
    /// webhook-receiver only: as many webhooks with a wrong signature, sent next.
    pub rejected: Option<Rejected>,
}

/// Webhooks refused for their signature (401): the request path without its AWS calls.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub cpu_per_request: Duration,
    /// AWS calls the function made meanwhile, by operation (a mismatch may refresh the
    /// cached secret, at most once per refresh interval).
    pub calls: BTreeMap<String, u64>,
}

pub const FUNCTIONS: [&str; 6] = [
    "webhook-receiver",
    "intent-router",
    "signal-dispatcher",
    "callback-verifier",
    "retry-drainer",
    "event-relay",
];

pub async fn run(
    stack: &Stack,
    requests: &Requests,
    runs: usize,
    count: usize,
    log: &Path,
) -> Result<Vec<FunctionRun>> {
    let mut out = Vec::new();
    // signal-dispatcher runs before callback-verifier and retry-drainer: their requests
    // name its executions.
    for name in FUNCTIONS {
        let host = stack
            .hosts
            .get(name)
            .ok_or_else(|| anyhow!("the stack has no {name}"))?;
        // What the earlier functions' requests left in the stream is sent first, so that
        // event-relay's work never runs beside this function's cold starts.
        if !stack.outbox_relayed(Duration::from_secs(120)).await {
            bail!("event-relay did not catch up with the stream within 120 s");
        }
        if name == "event-relay" {
            // Its own batches only: the mapping stops, so that no other invocation starts
            // an instance meanwhile.
            stack.set_mapping_enabled(cxbridge_local::stack::STREAM_MAPPING, false);
        }
        let mut exec_to_next = Vec::new();
        let mut first_answer = Vec::new();
        for n in 0..runs {
            if !host.recycle(Duration::from_secs(10)).await {
                bail!("{name}: its instances did not stop within 10 s");
            }
            let before = host.init_durations().len();
            let started = Instant::now();
            requests
                .send(name, host, n)
                .await
                .with_context(|| format!("{name}: cold start {n}"))?;
            first_answer.push(started.elapsed());
            let inits = host.init_durations();
            if inits.len() != before + 1 {
                bail!(
                    "{name}: cold start {n} started {} instances, not one",
                    inits.len() - before
                );
            }
            exec_to_next.extend(inits.last().copied());
        }

        let pid = match host.pids().as_slice() {
            [pid] => *pid,
            other => bail!("{name}: expected one instance, found {}", other.len()),
        };
        let cpu = || procfs::cpu_time(pid).ok_or_else(|| anyhow!("{name}: no CPU time for {pid}"));
        let calls_before = load::calls(&requests.client, &stack.aws_endpoint).await?;
        let log_from = std::fs::metadata(log).map_or(0, |m| m.len());
        let cpu_before = cpu()?;
        let started = Instant::now();
        for n in runs..runs + count {
            requests
                .send(name, host, n)
                .await
                .with_context(|| format!("{name}: request {n}"))?;
        }
        let wall_per_request = started.elapsed() / count.max(1) as u32;
        let log_bytes_per_request = log_bytes(log, log_from, name) as f64 / count.max(1) as f64;
        if host.pids() != [pid] {
            bail!("{name}: its instance changed during the {count} requests");
        }
        let cpu_after = cpu()?;
        let calls_after = load::calls(&requests.client, &stack.aws_endpoint).await?;
        let rejected = if name == "webhook-receiver" {
            let before = cpu()?;
            for n in runs + count..runs + 2 * count {
                requests
                    .send_rejected(n)
                    .await
                    .with_context(|| format!("{name}: wrongly signed request {n}"))?;
            }
            let after = cpu()?;
            let calls_end = load::calls(&requests.client, &stack.aws_endpoint).await?;
            Some(Rejected {
                cpu_per_request: after.saturating_sub(before) / count.max(1) as u32,
                calls: load::made_by(name, &calls_after, &calls_end),
            })
        } else {
            None
        };
        if host.pids() != [pid] {
            bail!("{name}: its instance changed during the wrongly signed requests");
        }
        let peak_rss_kib =
            procfs::peak_rss_kib(pid).ok_or_else(|| anyhow!("{name}: no VmHWM for {pid}"))?;
        let run = FunctionRun {
            name: name.to_owned(),
            exec_to_next,
            first_answer,
            requests: count,
            peak_rss_kib,
            cpu_per_request: cpu_after.saturating_sub(cpu_before) / count.max(1) as u32,
            calls: load::made_by(name, &calls_before, &calls_after),
            wall_per_request,
            log_bytes_per_request,
            rejected,
        };
        println!(
            "cxbridge-bench: {name}: exec to first /next {:.1} ms (median), {} µs CPU per request{}",
            median(&run.exec_to_next).as_secs_f64() * 1e3,
            run.cpu_per_request.as_micros(),
            run.rejected.as_ref().map_or_else(String::new, |r| format!(
                ", {} µs per refused one",
                r.cpu_per_request.as_micros()
            ))
        );
        out.push(run);
    }
    stack.set_mapping_enabled(cxbridge_local::stack::STREAM_MAPPING, true);
    Ok(out)
}

/// Bytes of `function`'s own output in the stack's log from byte `from` on: its lines, each
/// without the `{function}#{instance} | ` the stack puts before it, with its newline.
fn log_bytes(log: &Path, from: u64, function: &str) -> u64 {
    let Ok(text) = std::fs::read(log) else {
        return 0;
    };
    let start = usize::try_from(from).unwrap_or(usize::MAX).min(text.len());
    let prefix = format!("{function}#");
    String::from_utf8_lossy(&text[start..])
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.split_once(" | ").map(|(_, own)| own.len() as u64 + 1))
        .sum()
}

/// The median (the mean of the middle two for an even count).
pub fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}
