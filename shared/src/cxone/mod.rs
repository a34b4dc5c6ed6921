//! CXone: tokens, signals and context updates for the `documented` and `incontact` API
//! profiles (ARCHITECTURE.md, CXone), behind the ports handlers use.

pub mod api;
pub mod config;
pub mod error;
pub mod rate;
pub mod token;

pub use api::{ContextSink, CxoneSignals, SignalAccepted, SignalRequest};
pub use config::{CxoneConfig, Profile};
pub use error::CxoneError;
