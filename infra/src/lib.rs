//! The cxbridge local stack: the same function binaries that deploy, each behind a Lambda
//! Runtime API, fronted by an API Gateway-style gateway and fed by SQS pollers, against
//! AWS services emulated by moto.

pub mod bootstrap;
pub mod gateway;
pub mod log;
pub mod moto;
pub mod operator;
pub mod poller;
pub mod runtime_api;
pub mod samples;
pub mod simulator;
pub mod stack;
pub mod streams;
pub mod template;

pub use stack::{EnvOverride, Stack, StackOptions};
pub mod setup;
pub mod sim_setup;
