//! Helpers for the end-to-end tests: each test gets a stack of its own (its own gateway
//! port, resource names and function processes) on the shared emulator that `make test`
//! starts, so tests run in parallel without seeing each other.
#![allow(clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cxbridge_local::log::LogSink;
use cxbridge_local::{Stack, StackOptions};

/// The checkout's root.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the checkout")
        .to_path_buf()
}

/// Where cargo put the function binaries: beside this test binary's `deps/` folder.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let dir = exe.parent().expect("the test binary is in a folder");
    if dir.ends_with("deps") {
        dir.parent().expect("deps has a parent").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The emulator `make test` started.
pub fn aws_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .expect("AWS_ENDPOINT_URL is not set: run the tests with `make test`, which starts moto")
}

/// A short random name part, so that parallel tests never share a resource.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        cxbridge::ids::new_uuid().replace('-', "")[..10].to_owned()
    )
}

/// Options for a stack of this test's own.
pub fn options() -> StackOptions {
    let mut options = StackOptions::for_project(&project_root());
    options.bin_dir = bin_dir();
    options.aws_endpoint = Some(aws_endpoint());
    options.prefix = unique("t");
    options.log = LogSink::buffer();
    options.probe = true;
    options
}

/// Starts a stack and waits until every function has either started or failed to.
pub async fn start(options: StackOptions) -> Stack {
    let stack = Stack::start(options).await.expect("the local stack starts");
    tokio::time::timeout(Duration::from_secs(60), stack.settled())
        .await
        .expect("every function settles within 60 s");
    stack
}

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SDK configuration for the emulator.
pub async fn sdk() -> aws_config::SdkConfig {
    cxbridge_local::stack::emulator_config(&aws_endpoint()).await
}
