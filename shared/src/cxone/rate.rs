//! The outbound budget to one tenant, shared by every instance: a sliding one-second log of
//! grants in one DynamoDB item (`rate#{tenant}`), updated with optimistic concurrency
//! (`adapters::dynamodb::rate`). This is the port.

use std::future::Future;
use std::time::Duration;

/// Why the budget gave no grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The budget is spent: wait this long.
    Wait(Duration),
    /// The budget's store failed: a dependency failure, not a spent budget.
    Unavailable(String),
}

/// Port: may one more call go out now?
pub trait RateBudget: Send + Sync {
    fn acquire(&self) -> impl Future<Output = Result<(), Refusal>> + Send;
}

/// No budget at all (tools and tests that do not exercise it).
#[derive(Debug, Default, Clone, Copy)]
pub struct Unlimited;

impl RateBudget for Unlimited {
    async fn acquire(&self) -> Result<(), Refusal> {
        Ok(())
    }
}
