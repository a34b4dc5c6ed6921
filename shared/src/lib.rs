//! `cxbridge`: everything the Lambda functions share.
//!
//! The function crates stay thin: `main.rs` calls [`runtime`] to build an [`app::Base`]
//! once at cold start, and `handler.rs` holds route logic written against the ports here.

pub mod adapters;
pub mod app;
pub mod auth;
pub mod aws;
pub mod callbacks;
pub mod clock;
pub mod config;
pub mod cxone;
pub mod drainer;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod intents;
pub mod jobs;
pub mod probe;
pub mod queue;
pub mod relay;
pub mod runtime;
pub mod secrets;
pub mod signals;
pub mod targets;
pub mod telemetry;
#[cfg(test)]
pub(crate) mod testing;
pub mod webhook;

pub use app::Base;
pub use config::{Config, ConfigError};
pub use error::{ApiError, ErrorCode};
