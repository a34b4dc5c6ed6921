//! One instance: the function's process, its Runtime API endpoint, and its output.

use super::protocol::{fail, init_error, next, respond};
use super::*;

/// One process of a function and its own Runtime API endpoint.
pub(super) struct Instance {
    pub(super) host: Arc<FunctionHost>,
    pub(super) no: u32,
    pub(super) ready: AtomicBool,
    /// Set once the instance is being stopped: it must take no more work.
    pub(super) dying: AtomicBool,
    pub(super) pid: Mutex<Option<u32>>,
    /// When the process was started.
    pub(super) spawned: Mutex<Option<Instant>>,
    pub(super) in_flight: Mutex<HashMap<String, Reply>>,
    pub(super) init_error: Mutex<Option<String>>,
    pub(super) kill: Notify,
}

impl Instance {
    /// Stops the process (deadline passed, or init too slow).
    pub(super) fn stop(&self) {
        self.dying.store(true, Ordering::SeqCst);
        self.kill.notify_one();
    }

    pub(super) fn take_reply(&self, id: &str) -> Option<Reply> {
        self.in_flight.lock().ok().and_then(|mut m| m.remove(id))
    }

    pub(super) async fn run(self: Arc<Self>) -> anyhow::Result<()> {
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
