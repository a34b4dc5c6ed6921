//! A Lambda Runtime API host. Each function instance is a real process of the function's
//! binary with its own Runtime API endpoint (`AWS_LAMBDA_RUNTIME_API`), so it sees exactly
//! the protocol it sees in Lambda: `invocation/next`, `…/response`, `…/error`, `init/error`.
//!
//! Like Lambda, an instance handles one invocation at a time; when every instance is busy,
//! another process is started, up to a per-function limit.

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

    /// Stops every instance, as Lambda recycles execution environments, and waits (up to
    /// `limit`) until none is left; the next invocation starts a fresh one (a cold start).
    pub async fn recycle(&self, limit: Duration) -> bool {
        self.generation.send_modify(|g| *g += 1);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            if self.instances() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.instances() == 0;
            }
        }
    }

    /// Starts one instance ahead of traffic, as a provisioned instance would be, so that
    /// `GET /health` can report the function's init.
    pub async fn prewarm(self: &Arc<Self>) {
        let start = {
            let mut state = self.lock();
            if state.instances == 0 && !state.shutting_down {
                state.instances += 1;
                state.next_instance += 1;
                Some(state.next_instance)
            } else {
                None
            }
        };
        if let Some(no) = start {
            self.start_instance(no).await;
        }
    }

    /// Waits until the function is ready or has failed to initialise.
    pub async fn settled(&self) -> Health {
        loop {
            let notified = self.changed.notified();
            match self.health() {
                Health::Starting => notified.await,
                other => return other,
            }
        }
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

    /// Stops every instance and refuses new invocations.
    pub fn shutdown(&self) {
        let waiting = {
            let mut state = self.lock();
            state.shutting_down = true;
            state.idle.clear();
            std::mem::take(&mut state.waiting)
        };
        for w in waiting {
            let _ = w.reply.send(Err(InvokeError::ShuttingDown));
        }
        self.stop.send_replace(true);
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

    fn mark_ready(&self, no: u32, pid: Option<u32>, init: Option<Duration>) {
        {
            let mut state = self.lock();
            state.ready_instances += 1;
            if let Some(init) = init {
                state.inits.push(init);
            }
            if let Some(pid) = pid {
                state.pids.insert(no, pid);
            }
            state.health = Some(Health::Ready);
        }
        let pid = pid.map(|p| format!(", pid {p}")).unwrap_or_default();
        self.log
            .line(format!("cxbridge-local: {}#{no} ready{pid}", self.name()));
        self.changed.notify_waiters();
    }

    fn instance_exited(
        self: &Arc<Self>,
        no: u32,
        was_ready: bool,
        init_error: Option<String>,
        status: String,
        tail: Vec<String>,
    ) {
        let (orphans, replacement, shutting_down) = {
            let mut state = self.lock();
            state.instances = state.instances.saturating_sub(1);
            state.idle.retain(|(n, _)| *n != no);
            state.pids.remove(&no);
            if was_ready {
                state.ready_instances = state.ready_instances.saturating_sub(1);
            }
            let mut orphans = Vec::new();
            if !was_ready && !state.shutting_down {
                let cause = init_error.clone().unwrap_or_else(|| {
                    let last = tail.last().cloned().unwrap_or_default();
                    format!(
                        "the process exited ({status}) before initialising; last output: {last}"
                    )
                });
                if state.ready_instances == 0 {
                    state.health = Some(Health::InitFailed(cause.clone()));
                }
                // With no instance left to take them, queued invocations fail as Lambda
                // fails an invoke whose environment cannot initialise.
                if state.instances == 0 {
                    orphans = state
                        .waiting
                        .drain(..)
                        .map(|w| (w, cause.clone()))
                        .collect();
                }
            }
            // A crashed instance is replaced while work is queued for it.
            let replacement = (was_ready
                && !state.shutting_down
                && !state.waiting.is_empty()
                && state.instances < self.config.max_instances)
                .then(|| {
                    state.instances += 1;
                    state.next_instance += 1;
                    state.next_instance
                });
            (orphans, replacement, state.shutting_down)
        };
        if let Some(no) = replacement {
            let host = self.clone();
            tokio::spawn(async move { host.start_instance(no).await });
        }
        if !shutting_down {
            match (&init_error, was_ready) {
                (Some(cause), _) => self.log.line(format!(
                    "cxbridge-local: {}#{no} failed to initialise: {cause}",
                    self.name()
                )),
                (None, false) => self.log.line(format!(
                    "cxbridge-local: {}#{no} exited ({status}) before initialising",
                    self.name()
                )),
                (None, true) => self.log.line(format!(
                    "cxbridge-local: {}#{no} exited ({status})",
                    self.name()
                )),
            }
        }
        for (w, cause) in orphans {
            let _ = w.reply.send(Err(InvokeError::InitFailed(cause)));
        }
        self.changed.notify_waiters();
    }

    async fn start_instance(self: &Arc<Self>, no: u32) {
        let instance = Arc::new(Instance {
            host: self.clone(),
            no,
            ready: AtomicBool::new(false),
            dying: AtomicBool::new(false),
            pid: Mutex::new(None),
            spawned: Mutex::new(None),
            in_flight: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            kill: Notify::new(),
        });
        if let Err(err) = instance.clone().run().await {
            self.instance_exited(
                no,
                false,
                Some(format!("{err:#}")),
                "not started".into(),
                Vec::new(),
            );
        }
    }
}

/// One process of a function and its own Runtime API endpoint.
struct Instance {
    host: Arc<FunctionHost>,
    no: u32,
    ready: AtomicBool,
    /// Set once the instance is being stopped: it must take no more work.
    dying: AtomicBool,
    pid: Mutex<Option<u32>>,
    /// When the process was started.
    spawned: Mutex<Option<Instant>>,
    in_flight: Mutex<HashMap<String, Reply>>,
    init_error: Mutex<Option<String>>,
    kill: Notify,
}

impl Instance {
    /// Stops the process (deadline passed, or init too slow).
    fn stop(&self) {
        self.dying.store(true, Ordering::SeqCst);
        self.kill.notify_one();
    }

    fn take_reply(&self, id: &str) -> Option<Reply> {
        self.in_flight.lock().ok().and_then(|mut m| m.remove(id))
    }

    async fn run(self: Arc<Self>) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api = listener.local_addr()?;
        let router = Router::new()
            .route(&format!("{API_PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{API_PREFIX}/invocation/{{id}}/response"),
                post(respond),
            )
            .route(&format!("{API_PREFIX}/invocation/{{id}}/error"), post(fail))
            .route(&format!("{API_PREFIX}/init/error"), post(init_error))
            .with_state(self.clone());
        let (server_stop_tx, server_stop_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = server_stop_rx.await;
                })
                .await;
        });

        let config = &self.host.config;
        let name = &config.name;
        let mut command = Command::new(&config.binary);
        command
            .env_clear()
            .envs(config.aws_environment.iter().cloned())
            .envs(config.environment.iter().cloned())
            .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                config.memory_mb.to_string(),
            )
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("local/[$LATEST]{}", self.no),
            )
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("_HANDLER", "bootstrap")
            .env("TZ", ":UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: Ctrl-C reaches the stack, which stops instances itself.
            .process_group(0)
            .kill_on_drop(true);
        if let Ok(path) = std::env::var("PATH") {
            command.env("PATH", path);
        }
        if let Ok(mut spawned) = self.spawned.lock() {
            *spawned = Some(Instant::now());
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) => {
                let _ = server_stop_tx.send(());
                anyhow::bail!("cannot start {}: {err}", config.binary.display());
            }
        };
        if let Ok(mut pid) = self.pid.lock() {
            *pid = child.id();
        }

        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let label = format!("{name}#{}", self.no);
        let mut pipes = Vec::new();
        if let Some(out) = child.stdout.take() {
            pipes.push(tokio::spawn(forward(
                out,
                label.clone(),
                self.host.log.clone(),
                tail.clone(),
            )));
        }
        if let Some(err) = child.stderr.take() {
            pipes.push(tokio::spawn(forward(
                err,
                label,
                self.host.log.clone(),
                tail.clone(),
            )));
        }

        // Lambda ends an init phase that takes too long.
        let watched = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(watched.host.config.init_limit).await;
            if !watched.ready.load(Ordering::SeqCst) {
                if let Ok(mut slot) = watched.init_error.lock() {
                    slot.get_or_insert_with(|| {
                        format!(
                            "Runtime.InitTimeout: init did not finish within {} s",
                            watched.host.config.init_limit.as_secs()
                        )
                    });
                }
                watched.stop();
            }
        });

        let mut stop = self.host.stop.subscribe();
        let mut generation = self.host.generation.subscribe();
        generation.mark_unchanged();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                () = self.kill.notified() => {
                    let _ = child.kill().await;
                    "stopped by the runtime host".to_owned()
                }
                () = async { let _ = stop.wait_for(|stopping| *stopping).await.is_ok(); } => {
                    let _ = child.kill().await;
                    "stopped".to_owned()
                }
                () = async {
                    if generation.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                } => {
                    let _ = child.kill().await;
                    "recycled".to_owned()
                }
            };
            for pipe in pipes {
                let _ = pipe.await;
            }
            self.dying.store(true, Ordering::SeqCst);
            let _ = server_stop_tx.send(());
            let crashed: Vec<Reply> = self
                .in_flight
                .lock()
                .map(|mut m| m.drain().map(|(_, r)| r).collect())
                .unwrap_or_default();
            for reply in crashed {
                let _ = reply.send(Err(InvokeError::Crashed(status.clone())));
            }
            let init_error = self.init_error.lock().ok().and_then(|e| e.clone());
            let tail: Vec<String> = tail
                .lock()
                .map(|t| t.iter().cloned().collect())
                .unwrap_or_default();
            self.host.instance_exited(
                self.no,
                self.ready.load(Ordering::SeqCst),
                init_error,
                status,
                tail,
            );
        });
        Ok(())
    }
}

async fn forward(
    pipe: impl tokio::io::AsyncRead + Unpin,
    label: String,
    log: LogSink,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut t) = tail.lock() {
            if t.len() == KEPT_LINES {
                t.pop_front();
            }
            t.push_back(line.clone());
        }
        log.line(format!("{label} | {line}"));
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"errorType": error_type, "errorMessage": message})),
    )
        .into_response()
}

async fn next(State(instance): State<Arc<Instance>>) -> Response {
    if !instance.ready.swap(true, Ordering::SeqCst) {
        let pid = instance.pid.lock().ok().and_then(|p| *p);
        let init = instance
            .spawned
            .lock()
            .ok()
            .and_then(|s| *s)
            .map(|s| s.elapsed());
        instance.host.mark_ready(instance.no, pid, init);
    }
    if instance.dying.load(Ordering::SeqCst) {
        // Never answer a dying instance: any answer but an invocation would be a protocol
        // error, and it is about to be stopped.
        return std::future::pending().await;
    }
    let Some(invocation) = instance.host.take_work(instance.no).await else {
        // Shutting down: the process is about to be stopped.
        return std::future::pending().await;
    };
    let Invocation {
        request_id,
        payload,
        reply,
    } = invocation;
    // As in Lambda, the timeout runs from when the instance takes the invocation.
    let deadline_ms = epoch_ms() + instance.host.config.timeout.as_millis() as u64;
    if let Ok(mut in_flight) = instance.in_flight.lock() {
        in_flight.insert(request_id.clone(), reply);
    }

    // Lambda stops an environment whose invocation outlives its deadline.
    let watchdog = instance.clone();
    let watched = request_id.clone();
    tokio::spawn(async move {
        let wait = deadline_ms.saturating_sub(epoch_ms());
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if let Some(reply) = watchdog.take_reply(&watched) {
            watchdog.host.log.line(format!(
                "cxbridge-local: {}#{} timed out on {watched}; stopping it",
                watchdog.host.name(),
                watchdog.no
            ));
            let _ = reply.send(Err(InvokeError::TimedOut));
            watchdog.stop();
        }
    });

    let name = instance.host.name();
    let arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}");
    let trace = format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        deadline_ms / 1000,
        &request_id.replace('-', "")[..24],
        &request_id.replace('-', "")[..16]
    );
    (
        StatusCode::OK,
        [
            ("lambda-runtime-aws-request-id", request_id),
            ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
            ("lambda-runtime-invoked-function-arn", arn),
            ("lambda-runtime-trace-id", trace),
            ("content-type", "application/json".to_owned()),
        ],
        payload,
    )
        .into_response()
}

/// Delivers an instance's answer to the invocation waiting for it.
fn settle(instance: &Instance, id: &str, result: Result<Bytes, InvokeError>) -> Response {
    match instance.take_reply(id) {
        Some(reply) => {
            let _ = reply.send(result);
            accepted()
        }
        None => api_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "unknown or expired request id",
        ),
    }
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"status": "OK"})),
    )
        .into_response()
}

async fn respond(
    State(instance): State<Arc<Instance>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    settle(&instance, &id, Ok(body))
}

async fn fail(
    State(instance): State<Arc<Instance>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, message) = diagnostic(&headers, &body);
    instance.host.log.line(format!(
        "cxbridge-local: {}#{} invocation {id} failed: {error_type}: {message}",
        instance.host.name(),
        instance.no
    ));
    settle(
        &instance,
        &id,
        Err(InvokeError::Function {
            error_type,
            message,
        }),
    )
}

async fn init_error(
    State(instance): State<Arc<Instance>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, message) = diagnostic(&headers, &body);
    if let Ok(mut slot) = instance.init_error.lock() {
        *slot = Some(format!("{error_type}: {message}"));
    }
    accepted()
}

fn diagnostic(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error_type = parsed
        .get("errorType")
        .and_then(|v| v.as_str())
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
        })
        .unwrap_or("Unhandled")
        .to_owned();
    let message = parsed
        .get("errorMessage")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (error_type, message)
}
