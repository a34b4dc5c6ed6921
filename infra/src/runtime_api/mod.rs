//! A Lambda Runtime API host. Each function instance is a real process of the function's
//! binary with its own Runtime API endpoint (`AWS_LAMBDA_RUNTIME_API`), so it sees exactly
//! the protocol it sees in Lambda: `invocation/next`, `…/response`, `…/error`, `init/error`.
//!
//! Like Lambda, an instance handles one invocation at a time; when every instance is busy,
//! another process is started, up to a per-function limit.
//!
//! This module holds the host's types and its scheduler (an invocation waits for a free
//! instance); `pool` starts, recycles and reaps instances; `instance` runs one process and
//! its endpoint; `protocol` answers the Runtime API's calls.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{Notify, oneshot, watch};

use crate::log::LogSink;

mod instance;
mod pool;
mod protocol;

use instance::Instance;

const API_PREFIX: &str = "/2018-06-01/runtime";
const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
/// How many output lines of an instance are kept to explain an init failure.
const KEPT_LINES: usize = 20;
/// Lambda stops an init phase that takes longer than this.
pub const INIT_LIMIT: Duration = Duration::from_secs(10);

/// Why an invocation produced no function response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeError {
    /// The handler reported an error through `…/error`.
    Function { error_type: String, message: String },
    /// No instance could initialise.
    InitFailed(String),
    /// The instance's process ended while running the invocation.
    Crashed(String),
    /// The invocation ran past the function's timeout; its instance was stopped.
    TimedOut,
    /// The stack is shutting down.
    ShuttingDown,
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Function {
                error_type,
                message,
            } => write!(f, "{error_type}: {message}"),
            Self::InitFailed(cause) => write!(f, "init failed: {cause}"),
            Self::Crashed(cause) => write!(f, "instance crashed: {cause}"),
            Self::TimedOut => f.write_str("task timed out"),
            Self::ShuttingDown => f.write_str("the local stack is shutting down"),
        }
    }
}

type Reply = oneshot::Sender<Result<Bytes, InvokeError>>;

struct Invocation {
    request_id: String,
    payload: Bytes,
    reply: Reply,
}

/// A function's health as `GET /health` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Starting,
    Ready,
    InitFailed(String),
}

impl Health {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::InitFailed(_) => "init_failed",
        }
    }
}

/// What a function host needs to start instances.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub name: String,
    pub binary: PathBuf,
    pub timeout: Duration,
    pub memory_mb: u64,
    pub max_instances: usize,
    /// How long an instance may take to initialise (Lambda: 10 s).
    pub init_limit: Duration,
    /// Variables from the template, resolved, plus any overrides.
    pub environment: Vec<(String, String)>,
    /// AWS settings the instances inherit (endpoint, region, credentials).
    pub aws_environment: Vec<(String, String)>,
}

#[derive(Default)]
struct HostState {
    idle: VecDeque<(u32, oneshot::Sender<Invocation>)>,
    waiting: VecDeque<Invocation>,
    instances: usize,
    ready_instances: usize,
    next_instance: u32,
    health: Option<Health>,
    shutting_down: bool,
    pids: HashMap<u32, u32>,
    /// Exec to first `invocation/next`, per instance, in start order.
    inits: Vec<Duration>,
}

/// Runs the instances of one function.
pub struct FunctionHost {
    config: FunctionConfig,
    log: LogSink,
    state: Mutex<HostState>,
    changed: Notify,
    stop: watch::Sender<bool>,
    /// Bumped by `recycle`: every live instance is stopped.
    generation: watch::Sender<u64>,
}

impl FunctionHost {
    pub fn new(config: FunctionConfig, log: LogSink) -> Arc<Self> {
        Arc::new(Self {
            config,
            log,
            state: Mutex::new(HostState::default()),
            changed: Notify::new(),
            stop: watch::Sender::new(false),
            generation: watch::Sender::new(0),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HostState> {
        // A panic while holding this lock would be a bug in this module; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn health(&self) -> Health {
        self.lock().health.clone().unwrap_or(Health::Starting)
    }

    /// Number of instance processes alive now.
    pub fn instances(&self) -> usize {
        self.lock().instances
    }

    /// How long each instance took from exec to its first `invocation/next`, in start order.
    pub fn init_durations(&self) -> Vec<Duration> {
        self.lock().inits.clone()
    }

    /// The process ids of the instances alive now.
    pub fn pids(&self) -> Vec<u32> {
        self.lock().pids.values().copied().collect()
    }

    /// Invokes the function with `payload`, as the `RequestResponse` invoke type does.
    pub async fn invoke(self: &Arc<Self>, payload: Bytes) -> Result<Bytes, InvokeError> {
        let (reply, answer) = oneshot::channel();
        let invocation = Invocation {
            request_id: cxbridge::ids::new_uuid(),
            payload,
            reply,
        };
        let request_id = invocation.request_id.clone();
        let start = {
            let mut state = self.lock();
            if state.shutting_down {
                return Err(InvokeError::ShuttingDown);
            }
            let mut pending = Some(invocation);
            while pending.is_some() {
                let Some((_, slot)) = state.idle.pop_front() else {
                    break;
                };
                if let Some(next) = pending.take() {
                    // An instance that went away while idle hands the invocation back.
                    pending = slot.send(next).err();
                }
            }
            match pending {
                None => None,
                Some(invocation) => {
                    state.waiting.push_back(invocation);
                    (state.instances < self.config.max_instances).then(|| {
                        state.instances += 1;
                        state.next_instance += 1;
                        state.next_instance
                    })
                }
            }
        };
        if let Some(no) = start {
            self.start_instance(no).await;
        }
        // The instance's watchdog answers at the deadline; this bound only covers an
        // invocation that waited long in the queue.
        let limit = self.config.timeout * 2 + self.config.init_limit;
        let mut answer = answer;
        let dropped = || InvokeError::Crashed("the invocation was dropped".into());
        match tokio::time::timeout(limit, &mut answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(dropped()),
            Err(_) => {
                let still_queued = {
                    let mut state = self.lock();
                    let before = state.waiting.len();
                    state.waiting.retain(|w| w.request_id != request_id);
                    state.waiting.len() != before
                };
                if still_queued {
                    return Err(InvokeError::TimedOut);
                }
                // An instance already took it: as in Lambda, the invocation runs to its
                // answer or its deadline, and its caller gets that, so work the function
                // did is never reported as failed.
                match tokio::time::timeout(self.config.timeout + self.config.init_limit, answer)
                    .await
                {
                    Ok(Ok(result)) => result,
                    Ok(Err(_)) => Err(dropped()),
                    Err(_) => Err(InvokeError::TimedOut),
                }
            }
        }
    }

    /// The next invocation for instance `no`, or `None` once the stack shuts down.
    async fn take_work(&self, no: u32) -> Option<Invocation> {
        loop {
            let rx = {
                let mut state = self.lock();
                if state.shutting_down {
                    return None;
                }
                while let Some(w) = state.waiting.pop_front() {
                    if !w.reply.is_closed() {
                        return Some(w);
                    }
                }
                let (tx, rx) = oneshot::channel();
                state.idle.push_back((no, tx));
                rx
            };
            if let Ok(invocation) = rx.await {
                return Some(invocation);
            }
        }
    }
}
