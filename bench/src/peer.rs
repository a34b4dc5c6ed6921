//! The Node.js Express peer (`bench/peer-node`), measured the way the functions are: cold
//! starts, then the same number of the same webhooks to its one process.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::procfs;
use crate::requests::Webhook;

#[derive(Debug, Clone)]
pub struct PeerRun {
    /// Exec to listening (its `ready` line), per run.
    pub exec_to_ready: Vec<Duration>,
    /// Exec to the answer of its first real request.
    pub first_answer: Vec<Duration>,
    pub peak_rss_kib: u64,
    pub cpu_per_request: Duration,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn send(client: &reqwest::Client, url: &str, webhook: &Webhook) -> Result<()> {
    let response = webhook.request(client, url).send().await?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.as_u16() != 202 {
        bail!("the peer answered {status}: {body}");
    }
    Ok(())
}

pub async fn run(
    node: &Path,
    dir: &Path,
    secret: &str,
    run_id: &str,
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
    };
    let mut n = 0;
    for run in 0..runs {
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}/webhooks/cxone");
        let first = Webhook::new(secret, run_id, n)?;
        n += 1;
        let started = Instant::now();
        let mut child = Command::new(node)
            .arg("server.js")
            .current_dir(dir)
            .env("PORT", port.to_string())
            .env("WEBHOOK_SECRET", secret)
            .env("NODE_ENV", "production")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
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
        send(&client, &url, &first).await?;
        result.first_answer.push(started.elapsed());

        if run + 1 == runs {
            let pid = child.id().ok_or_else(|| anyhow!("the peer has no pid"))?;
            let cpu_before = procfs::cpu_time(pid).ok_or_else(|| anyhow!("no CPU time"))?;
            for _ in 0..count {
                send(&client, &url, &Webhook::new(secret, run_id, n)?).await?;
                n += 1;
            }
            let cpu_after = procfs::cpu_time(pid).ok_or_else(|| anyhow!("no CPU time"))?;
            result.peak_rss_kib = procfs::peak_rss_kib(pid).ok_or_else(|| anyhow!("no VmHWM"))?;
            result.cpu_per_request = cpu_after.saturating_sub(cpu_before) / count.max(1) as u32;
        }
        let _ = child.kill().await;
    }
    Ok(result)
}
