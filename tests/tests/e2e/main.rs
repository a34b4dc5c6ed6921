//! End-to-end tests through the local stack and the real function binaries.
//! Run with `make test`, which builds the binaries and starts the AWS emulator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod chaos;
mod dlq;
mod edges;
mod gateway;
mod health;
mod intents;
mod lifecycle;
mod platform;
mod retries;
mod scaling;
mod setup;
mod signals;
mod sqs;
mod studio;
mod targets;
mod webhooks;
