use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use cxbridge_e2e::{bin_dir, project_root, unique};
use serde_json::Value;

/// Every process whose parent is `pid`, found through /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // The fields after the parenthesised command name: state, then the parent's pid.
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            found.push(child);
        }
    }
    found
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next().map(str::to_owned));
            state.as_deref() != Some("Z")
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn make_run_starts_the_platform_profile_and_stops_every_process_it_started_on_ctrl_c() {
    let root = project_root();
    let state: PathBuf = std::env::temp_dir().join(format!("{}.json", unique("cxbridge-state-")));
    // The port is free when picked, but another process may take it before the stack
    // binds it (the tests run in parallel): then the run exits saying so, and is tried
    // again on another port.
    let mut attempt = 0;
    let (mut stack, port, written) = 'started: loop {
        attempt += 1;
        let port = cxbridge_local::moto::free_port().unwrap();
        let mut child = tokio::process::Command::new(bin_dir().join("cxbridge-local"))
            .arg("run")
            .arg("--root")
            .arg(&root)
            .arg("--state")
            .arg(&state)
            .env("CXBRIDGE_PORT", port.to_string())
            // No profile setting at all: the real platform's is the default.
            .env_remove("CXBRIDGE_CXONE_PROFILE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(180);
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if let Some(written) = std::fs::read_to_string(&state)
                .ok()
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            {
                break 'started (child, port, written);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "make run wrote no state file within 180 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut why = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            use tokio::io::AsyncReadExt as _;
            let _ = stderr.read_to_string(&mut why).await;
        }
        assert!(
            attempt < 3 && why.contains("cannot listen on port"),
            "make run exited ({exited}) before it was ready: {why}"
        );
    };
    let pid = stack.id().unwrap();

    assert_eq!(written["gateway"], format!("http://127.0.0.1:{port}"));
    assert_eq!(written["profile"], "incontact");
    let health = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);

    // moto and one instance of each of the six functions.
    let children = children_of(pid);
    assert_eq!(children.len(), 7, "children: {children:?}");

    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), stack.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit}");
    for child in children {
        assert!(!alive(child), "process {child} outlived the stack");
    }
    assert!(!state.exists(), "the state file is removed on exit");
}
