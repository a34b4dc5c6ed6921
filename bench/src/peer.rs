//! The Node.js Express peer (`bench/peer-node`), measured the way the functions are: cold
//! starts, then the same number of the same webhooks to its one process.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::load;
use crate::procfs;
use crate::requests::Webhook;

/// The SDK app id the durable peer names itself with, so the emulator counts its calls.
pub const DURABLE_APP_ID: &str = "peer-node";

#[derive(Debug, Clone)]
pub struct PeerRun {
    /// Exec to listening (its `ready` line), per run.
    pub exec_to_ready: Vec<Duration>,
    /// Exec to the answer of its first real request.
    pub first_answer: Vec<Duration>,
    pub peak_rss_kib: u64,
    pub cpu_per_request: Duration,
    /// CPU per webhook refused for its signature (401), sent after the accepted ones.
    pub rejected_cpu_per_request: Duration,
    /// AWS calls over the accepted webhooks, by operation (the durable peer only).
    pub calls: BTreeMap<String, u64>,
    /// From the bench's request to its answer, over the accepted webhooks in a row.
    pub wall_per_request: Duration,
}

/// Where the durable peer keeps its records: the stack's emulator, table and events queue.
#[derive(Debug, Clone)]
pub struct Durable {
    pub aws_endpoint: String,
    pub table: String,
    pub queue_url: String,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn send(client: &reqwest::Client, url: &str, webhook: &Webhook, expect: u16) -> Result<()> {
    let response = webhook.request(client, url).send().await?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.as_u16() != expect {
        bail!("the peer answered {status}, not {expect}: {body}");
    }
    Ok(())
}

pub async fn run(
    node: &Path,
    dir: &Path,
    secret: &str,
    run_id: &str,
    durable: Option<&Durable>,
    runs: usize,
    count: usize,
) -> Result<PeerRun> {
    if !dir.join("node_modules").is_dir() {
        bail!(
            "{} has no node_modules: run `npm ci --prefix {}`",
            dir.display(),
            dir.display()
        );
    }
    let client = reqwest::Client::new();
    let mut result = PeerRun {
        exec_to_ready: Vec::new(),
        first_answer: Vec::new(),
        peak_rss_kib: 0,
        cpu_per_request: Duration::ZERO,
        rejected_cpu_per_request: Duration::ZERO,
        wall_per_request: Duration::ZERO,
        calls: BTreeMap::new(),
    };
    let mut n = 0;
    for run in 0..runs {
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}/webhooks/cxone");
        let first = Webhook::new(secret, run_id, n)?;
        n += 1;
        let mut command = Command::new(node);
        command
            .arg("server.js")
            .current_dir(dir)
            .env("PORT", port.to_string())
            .env("WEBHOOK_SECRET", secret)
            .env("NODE_ENV", "production")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(d) = durable {
            command
                .env("PEER_STORE", "aws")
                .env("TABLE", &d.table)
                .env("QUEUE_URL", &d.queue_url)
                .env("AWS_ENDPOINT_URL", &d.aws_endpoint)
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_SDK_UA_APP_ID", DURABLE_APP_ID)
                // The SDK warns at every start that its 2027 releases need Node.js 22.
                .env("NODE_NO_WARNINGS", "1");
        }
        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", node.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout from the peer"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the peer did not start within 30 s")??;
        if !line.as_deref().is_some_and(|l| l.starts_with("ready")) {
            bail!("the peer printed {line:?} instead of ready");
        }
        result.exec_to_ready.push(started.elapsed());
        send(&client, &url, &first, 202).await?;
        result.first_answer.push(started.elapsed());

        if run + 1 == runs {
            let pid = child.id().ok_or_else(|| anyhow!("the peer has no pid"))?;
            let cpu = || procfs::cpu_time(pid).ok_or_else(|| anyhow!("no CPU time for the peer"));
            let calls_before = match durable {
                Some(d) => Some(load::calls(&client, &d.aws_endpoint).await?),
                None => None,
            };
            let cpu_before = cpu()?;
            let timed = Instant::now();
            for _ in 0..count {
                send(&client, &url, &Webhook::new(secret, run_id, n)?, 202).await?;
                n += 1;
            }
            result.wall_per_request = timed.elapsed() / count.max(1) as u32;
            let cpu_after = cpu()?;
            result.cpu_per_request = cpu_after.saturating_sub(cpu_before) / count.max(1) as u32;
            if let (Some(d), Some(before)) = (durable, calls_before) {
                let after = load::calls(&client, &d.aws_endpoint).await?;
                result.calls = load::made_by(DURABLE_APP_ID, &before, &after);
                if result.calls.is_empty() {
                    bail!(
                        "the emulator counted no calls from the durable peer: does the SDK still \
                         send AWS_SDK_UA_APP_ID ({DURABLE_APP_ID}) in its user agent?"
                    );
                }
            }

            let wrong = format!("{secret}-not");
            let cpu_before = cpu()?;
            for _ in 0..count {
                send(&client, &url, &Webhook::new(&wrong, run_id, n)?, 401).await?;
                n += 1;
            }
            let cpu_after = cpu()?;
            result.rejected_cpu_per_request =
                cpu_after.saturating_sub(cpu_before) / count.max(1) as u32;
            result.peak_rss_kib = procfs::peak_rss_kib(pid).ok_or_else(|| anyhow!("no VmHWM"))?;
        }
        let _ = child.kill().await;
    }
    Ok(result)
}
