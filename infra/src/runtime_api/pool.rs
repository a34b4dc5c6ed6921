//! The instance pool: starting instances, marking them ready, reaping the ones that exit,
//! recycling them, and shutting the host down.

use super::*;

impl FunctionHost {
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

    pub(super) fn mark_ready(&self, no: u32, pid: Option<u32>, init: Option<Duration>) {
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

    pub(super) fn instance_exited(
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

    pub(super) async fn start_instance(self: &Arc<Self>, no: u32) {
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
