//! What cxbridge asks of CXone (ARCHITECTURE.md, CXone): the requests, the answers, the
//! ports the services call, and the rules every request's parts follow. The HTTP client
//! behind the ports is `adapters::cxone`.

use std::future::Future;

use serde_json::{Map, Value};

use super::error::CxoneError;

/// At most this many `p` parameters reach an `incontact` signal.
pub const MAX_SIGNAL_PARAMETERS: usize = 9;

/// A script to start with no contact (the platform's spawn-script call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spawn {
    pub script_id: String,
    pub skill_id: String,
}

/// A signal to trigger a Studio script.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalRequest {
    /// Signal definition (documented profile).
    pub definition_id: String,
    /// The contact whose script receives the signal (platform, `contact` kind).
    pub contact_id: Option<String>,
    /// The script to start instead (platform, `spawn` kind).
    pub spawn: Option<Spawn>,
    /// Variables in declaration order: the order becomes `p1`…`p9` of a platform signal,
    /// or the pipe-delimited parameters of a spawned script.
    pub data: Vec<(String, Value)>,
    pub metadata: Value,
    /// Sent as the `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

/// CXone accepted a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalAccepted {
    /// Returned by the documented API; the platform answers with no body.
    pub signal_execution_id: Option<String>,
}

/// What CXone's execution history says of a signal execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionHistory {
    pub status: String,
    pub outputs: Value,
}

/// Port: triggers Studio scripts.
pub trait CxoneSignals: Send + Sync {
    /// The execution's state in CXone's history; `None` where the API keeps none (the
    /// platform profile).
    fn execution(
        &self,
        signal_execution_id: &str,
    ) -> impl Future<Output = Result<Option<ExecutionHistory>, CxoneError>> + Send;

    fn signal(
        &self,
        request: &SignalRequest,
    ) -> impl Future<Output = Result<SignalAccepted, CxoneError>> + Send;
}

/// Port: sets attributes on an interaction's context.
pub trait ContextSink: Send + Sync {
    fn update_context(
        &self,
        interaction_id: &str,
        attributes: &Map<String, Value>,
    ) -> impl Future<Output = Result<(), CxoneError>> + Send;

    /// Signals a running contact the way NICE's Cognigy extension does: `p1` = the
    /// action (`Escalate`, `End`, or a name the script knows), `p2` = the attributes as
    /// JSON. The platform's convention; the documented API has no such call.
    fn send_action(
        &self,
        contact_id: &str,
        action: &str,
        attributes: &Map<String, Value>,
    ) -> impl Future<Output = Result<(), CxoneError>> + Send;
}

/// The action name sent as `p1` when a context update travels as a platform signal.
pub const CONTEXT_ACTION: &str = "updateContext";

/// A signal variable as a platform parameter: strings as they are, `null` as empty,
/// anything else as JSON.
pub fn parameter(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A value as one URL path segment: percent-encoded, spaces as `%20`.
pub fn segment(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// What separates a spawned script's parameters.
pub const PARAMETER_SEPARATOR: &str = "|";

/// An id placed in a URL path: refused unless [`crate::ids::is_path_id`] accepts it,
/// percent-encoded otherwise, so that it can never point the call (and its token) at
/// another path. The refusal is permanent, and nothing is sent.
pub fn path_id(id: &str, what: &str) -> Result<String, CxoneError> {
    if !crate::ids::is_path_id(id) {
        let shown: String = id.chars().take(40).collect();
        return Err(CxoneError::Invalid {
            status: None,
            detail: format!(
                "{shown:?}{} is not a usable {what}: it {}",
                if shown.len() < id.len() { "…" } else { "" },
                crate::ids::PATH_ID_RULE
            ),
        });
    }
    Ok(segment(id))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parameters_are_strings_and_objects_are_json() {
        assert_eq!(parameter(&json!("a b")), "a b");
        assert_eq!(parameter(&json!(42)), "42");
        assert_eq!(parameter(&json!(true)), "true");
        assert_eq!(parameter(&Value::Null), "");
        assert_eq!(parameter(&json!({"k": 1})), r#"{"k":1}"#);
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("order-update"), "order-update");
    }

    #[test]
    fn dot_segments_and_empty_ids_never_reach_a_path() {
        let long = "7".repeat(66_000);
        for bad in ["", ".", "..", "../x", "a/b", "a b", long.as_str()] {
            match path_id(bad, "contact id") {
                Err(CxoneError::Invalid {
                    status: None,
                    detail,
                }) => {
                    assert!(detail.len() < 200, "the message stays short: {detail}");
                }
                other => panic!("{bad:.20?} gave {other:?}"),
            }
        }
        assert_eq!(path_id("5012", "contact id").unwrap(), "5012");
    }
}
