//! `cxbridge-local`: runs the local stack (`make run`), or a command beside a fresh AWS
//! emulator (`make test`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use cxbridge_local::bootstrap::QueueOverrides;
use cxbridge_local::log::LogSink;
use cxbridge_local::moto::Moto;
use cxbridge_local::runtime_api::Health;
use cxbridge_local::{EnvOverride, Stack, StackOptions};

#[derive(Parser)]
#[command(version, about = "The cxbridge local stack")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start moto, create the resources, start every function and serve the gateway.
    Run(RunArgs),
    /// Start moto on a free port and run a command with AWS_ENDPOINT_URL pointing at it.
    WithMoto {
        #[arg(long, default_value = ".venv/moto/bin/moto_server")]
        moto: PathBuf,
        #[arg(required = true, trailing_var_arg = true)]
        command: Vec<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Gateway port.
    #[arg(long, env = "CXBRIDGE_PORT", default_value_t = 3000)]
    port: u16,
    /// Where to write the state file once everything answers.
    #[arg(
        long,
        env = "CXBRIDGE_STATE",
        default_value = "target/cxbridge-local.json"
    )]
    state: PathBuf,
    /// CXone API profile: incontact (the real platform) or documented (the integration
    /// guides' API).
    #[arg(long, env = "CXBRIDGE_CXONE_PROFILE", default_value = "incontact", value_parser = ["incontact", "documented"])]
    profile: String,
    /// The project checkout (template.yaml, target/debug, .venv).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Use a running AWS emulator instead of starting moto.
    #[arg(long)]
    aws_endpoint: Option<String>,
    /// Most instances of one function at once.
    #[arg(long, default_value_t = 4)]
    max_instances: usize,
    /// Visibility timeout of the local queues, in seconds (default: the template's).
    #[arg(long)]
    visibility_timeout: Option<i64>,
    /// Turn on the local diagnostics (`x-cxbridge-probe`) in every function.
    #[arg(long, env = "CXBRIDGE_PROBE")]
    probe: bool,
    /// Receives before a message moves to its DLQ (default: the template's).
    #[arg(long)]
    max_receive_count: Option<i64>,
    /// Extra environment for a function: FUNCTION:KEY=VALUE (FUNCTION may be *).
    #[arg(long = "env", value_name = "FUNCTION:KEY=VALUE")]
    env: Vec<EnvOverride>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("cxbridge-local: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::WithMoto { moto, command } => with_moto(moto, command).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("cxbridge-local: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> Result<ExitCode> {
    let mut options = StackOptions::for_project(&args.root);
    options.port = args.port;
    options.aws_endpoint = args.aws_endpoint;
    options.max_instances = args.max_instances;
    options.queue_overrides = QueueOverrides {
        visibility_timeout: args.visibility_timeout,
        max_receive_count: args.max_receive_count,
    };
    options.env_overrides.extend(args.env);
    options.profile = args.profile;
    options.probe = args.probe;
    options.log = LogSink::Stdout;

    // One listener for the whole run, so that a Ctrl-C at any moment is seen.
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let stack = tokio::select! {
        stack = Stack::start(options) => stack?,
        () = &mut stop => return Ok(ExitCode::SUCCESS),
    };
    let log = stack.log.clone();
    let state_path = args.root.join(&args.state);
    let mut stopped = false;
    tokio::select! {
        settled = stack.settled() => {
            stack.write_state(&state_path)?;
            let failed: Vec<_> = settled.iter().filter(|(_, h)| **h != Health::Ready).collect();
            log.line(format!("cxbridge-local: gateway on {}", stack.gateway_url));
            log.line(format!("cxbridge-local: AWS emulator on {}", stack.aws_endpoint));
            log.line(format!("cxbridge-local: state written to {}", state_path.display()));
            for (name, health) in &failed {
                if let Health::InitFailed(cause) = health {
                    log.line(format!("cxbridge-local: WARNING {name} failed to initialise: {cause}"));
                }
            }
            if failed.is_empty() {
                log.line(format!(
                    "cxbridge-local: all functions ready; try `curl -s {}/health`, Ctrl-C to stop",
                    stack.gateway_url
                ));
            }
        }
        () = &mut stop => stopped = true,
    }
    if !stopped {
        stop.await;
    }
    log.line("cxbridge-local: stopping");
    let _ = std::fs::remove_file(&state_path);
    stack.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let hangup = async {
        match hangup {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        () = hangup => {}
    }
}

async fn with_moto(moto_server: PathBuf, command: Vec<String>) -> Result<ExitCode> {
    let moto = Moto::start(&moto_server).await?;
    let (program, args) = command.split_first().context("no command given")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let status = tokio::select! {
        status = child.wait() => status?,
        () = shutdown_signal() => {
            let _ = child.kill().await;
            child.wait().await?
        }
    };
    moto.stop().await;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
