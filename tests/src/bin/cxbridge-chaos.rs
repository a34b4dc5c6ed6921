//! `make chaos`: the fault suite at full size against a local stack with an emulator of
//! its own; prints the table, and fails if anything was lost, duplicated or leaked.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use cxbridge_e2e::chaos::{self, Setup, Size};

#[tokio::main]
async fn main() -> ExitCode {
    let root = cxbridge_e2e::project_root();
    let setup = Setup {
        bin_dir: root.join("target/debug"),
        moto_server: root.join(".venv/moto/bin/moto_server"),
        root,
    };
    let size = match std::env::args().nth(1).as_deref() {
        Some("--small") => Size::SMALL,
        _ => Size::FULL,
    };
    let report = chaos::run(&setup, size).await;
    println!("{}", report.table());
    if report.clean() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "chaos: something was lost, duplicated, leaked or answered wrongly, or a scenario did not finish"
        );
        ExitCode::FAILURE
    }
}
