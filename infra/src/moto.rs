//! Starts the AWS emulator (moto in server mode) from the project's venv on a free port.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub async fn start(moto_server: &Path) -> Result<Self> {
        if !moto_server.exists() {
            bail!(
                "{} does not exist: run `make venv` (or `make run`, which creates it) first",
                moto_server.display()
            );
        }
        // The port is free when picked, but another process may take it before moto binds
        // it; moto then exits at once, and another port is tried.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_on(moto_server, free_port()?).await {
                Err(err) if attempt < 3 && err.to_string().contains("exited before") => continue,
                started => return started,
            }
        }
    }

    async fn start_on(moto_server: &Path, port: u16) -> Result<Self> {
        // The venv's python runs infra/moto_server.py (moto with atomic DynamoDB writes),
        // found beside the venv's bin/ folder as `<checkout>/infra/moto_server.py`.
        let python = moto_server.with_file_name("python3");
        let launcher = moto_server
            .ancestors()
            .nth(4)
            .map(|root| root.join("infra/moto_server.py"))
            .filter(|p| p.exists());
        let mut command = match (&launcher, python.exists()) {
            (Some(launcher), true) => {
                let mut c = Command::new(&python);
                c.arg(launcher);
                c
            }
            _ => Command::new(moto_server),
        };
        let mut child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", moto_server.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("moto exited before it was ready ({status})");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("moto did not listen on port {port} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    /// The emulator's process id (also its process group's), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A port that was free a moment ago (the OS picks it).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
