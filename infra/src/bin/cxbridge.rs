//! `cxbridge`: the operator CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use cxbridge_local::samples;

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
        #[arg(
            long,
            env = "CXBRIDGE_STATE",
            default_value = "target/cxbridge-local.json"
        )]
        state: PathBuf,
    },
    /// Send signed sample requests.
    Send {
        #[command(subcommand)]
        what: Send,
    },
}

#[derive(Subcommand)]
enum Send {
    /// Post signed sample CXone webhooks.
    Webhook {
        #[arg(long, value_parser = samples::CHANNELS)]
        channel: String,
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Receiver URL (default: the local stack's `/webhooks/cxone`).
        #[arg(long)]
        to: Option<String>,
        /// Signing secret (default: the local stack's current webhook secret).
        #[arg(long, env = "CXBRIDGE_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        #[arg(
            long,
            env = "CXBRIDGE_STATE",
            default_value = "target/cxbridge-local.json"
        )]
        state: PathBuf,
    },
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
    match secret {
        Some(s) => Ok(s),
        None => state(state_path)?["secrets"]["webhook"]
            .as_str()
            .map(str::to_owned)
            .context("the state file has no secrets.webhook"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Command::Send {
            what:
                Send::Webhook {
                    channel,
                    count,
                    to,
                    secret,
                    state: state_path,
                },
        } => {
            let secret = secret_from(secret, &state_path)?;
            let to = match to {
                Some(t) => t,
                None => format!(
                    "{}/webhooks/cxone",
                    state(&state_path)?["gateway"]
                        .as_str()
                        .context("the state file has no gateway")?
                ),
            };
            let client = reqwest::Client::new();
            let run = cxbridge::ids::new_uuid()[..8].to_owned();
            let mut failures = 0;
            for n in 1..=count {
                let sample = samples::webhook(&channel, &run, n).context("unknown channel")?;
                let delivery_id = cxbridge::ids::new_uuid();
                let mut request = client
                    .post(&to)
                    .header("content-type", sample.content_type)
                    .body(sample.body.clone());
                for (name, value) in samples::signed_headers(
                    &secret,
                    cxbridge::clock::now_secs(),
                    &sample.body,
                    &delivery_id,
                    &sample.event_type,
                ) {
                    request = request.header(name, value);
                }
                let response = request
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {to}"))?;
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                println!("{} {delivery_id} {status} {body}", sample.interaction_id);
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
