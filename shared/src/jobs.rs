//! Jobs on the `jobs` queue (design §4): outbound CXone work that runs, or runs again,
//! outside the request that asked for it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Signal,
    Context,
    /// Check, after its deadline, an execution whose completion callback has not come.
    Reconcile,
}

/// `{"id","kind","correlationId","attempt","firstAttemptAt","payload","lastError"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub correlation_id: String,
    /// Attempts made so far: 0 for a job nobody has tried yet.
    pub attempt: u32,
    /// RFC 3339; when the work was first asked for.
    pub first_attempt_at: String,
    pub payload: Value,
    pub last_error: Option<String>,
}
