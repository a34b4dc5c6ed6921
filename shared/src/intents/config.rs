//! `CXBRIDGE_INTENTS`: the threshold, the intent map, which contact a turn is routed to,
//! and the limits of the synchronous path.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::ConfigError;

pub const INTENTS_VAR: &str = "CXBRIDGE_INTENTS";

/// The intent map `make run` uses, as the README shows it: `cancel` escalates to the
/// Retention queue, `billing` only sets its queue attribute.
pub const LOCAL_INTENTS: &str = r#"{"threshold": 0.6, "intents": {
  "cancel": {"action": "Escalate", "attributes": {"queue": "Retention"}},
  "billing": {"attributes": {"queue": "Billing"}}
}}"#;

/// Result fields a signal variable can take.
pub const SIGNAL_FIELDS: [&str; 4] = ["interactionId", "intent", "confidence", "timestamp"];

/// Which of a voice call's two contacts a turn is routed to, when both are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreferContact {
    /// The contact that runs the Cognigy bot (`X-InContact-ContactId`,
    /// `spawnedContactId`), as NICE's Cognigy extension does.
    #[default]
    Spawned,
    /// The caller's master contact (`X-InContact-MasterId`, `contactId`).
    Main,
}

/// A signal an intent triggers: its definition and, per variable, the result field
/// (`interactionId`, `intent`, `confidence`, `timestamp`) that fills it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentSignal {
    pub name: String,
    #[serde(default)]
    pub mapping: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentRoute {
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// On the platform profile, the one signal the contact gets: `p1` = the action,
    /// `p2` = the attributes as JSON (the convention of NICE's Cognigy extension).
    pub action: Option<String>,
    pub signal: Option<IntentSignal>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntentConfig {
    /// Results under this confidence change nothing in CXone.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    #[serde(default)]
    pub intents: BTreeMap<String, IntentRoute>,
    #[serde(default)]
    pub prefer_contact: PreferContact,
    /// How long a Cognigy session's contact id is remembered.
    #[serde(default = "default_session_ttl_secs")]
    pub session_ttl_secs: u64,
    /// How long the synchronous path may take before the work is queued instead; well
    /// inside the 8 s Cognigy's HTTP Request node waits.
    #[serde(default = "default_sync_limit_ms")]
    pub sync_limit_ms: u64,
}

fn default_threshold() -> f64 {
    0.6
}

fn default_session_ttl_secs() -> u64 {
    4 * 3600
}

fn default_sync_limit_ms() -> u64 {
    5000
}

impl Default for IntentConfig {
    fn default() -> Self {
        Self {
            threshold: default_threshold(),
            intents: BTreeMap::new(),
            prefer_contact: PreferContact::default(),
            session_ttl_secs: default_session_ttl_secs(),
            sync_limit_ms: default_sync_limit_ms(),
        }
    }
}

/// Longest action name: a Studio `p1` the script compares against.
const MAX_ACTION_LEN: usize = 100;

impl IntentConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        match crate::config::json_document(INTENTS_VAR)? {
            None => Ok(Self::default()),
            Some(text) => Self::parse(&text),
        }
    }

    /// Parses and checks a configuration document.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let invalid = |value: String, reason: String| ConfigError::Invalid {
            var: INTENTS_VAR,
            value,
            reason,
        };
        let config: Self = serde_json::from_str(text)
            .map_err(|e| invalid("(the JSON given)".into(), e.to_string()))?;
        if !(0.0..=1.0).contains(&config.threshold) {
            return Err(invalid(
                config.threshold.to_string(),
                "threshold must be from 0 to 1".into(),
            ));
        }
        if !(60..=86_400).contains(&config.session_ttl_secs) {
            return Err(invalid(
                config.session_ttl_secs.to_string(),
                "sessionTtlSecs must be from 60 to 86400".into(),
            ));
        }
        if !(500..=7000).contains(&config.sync_limit_ms) {
            return Err(invalid(
                config.sync_limit_ms.to_string(),
                "syncLimitMs must be from 500 to 7000, inside Cognigy's 8 s limit".into(),
            ));
        }
        for (intent, route) in &config.intents {
            if let Some(action) = &route.action {
                let bad = action.trim().is_empty()
                    || action.chars().count() > MAX_ACTION_LEN
                    || action.chars().any(char::is_control);
                if bad {
                    return Err(invalid(
                        action.clone(),
                        format!(
                            "intent {intent:?}: an action is 1 to {MAX_ACTION_LEN} printable characters"
                        ),
                    ));
                }
            }
            for field in route.signal.iter().flat_map(|s| s.mapping.values()) {
                if !SIGNAL_FIELDS.contains(&field.as_str()) {
                    return Err(invalid(
                        field.clone(),
                        format!(
                            "intent {intent:?}: a signal variable can take interactionId, intent, confidence or timestamp"
                        ),
                    ));
                }
            }
        }
        Ok(config)
    }

    /// What the profile cannot do: on the platform, an intent's one signal is its
    /// `action`; a signal definition would be a second one.
    pub fn check_profile(&self, profile: crate::cxone::Profile) -> Result<(), ConfigError> {
        if profile != crate::cxone::Profile::InContact {
            return Ok(());
        }
        match self.intents.iter().find(|(_, r)| r.signal.is_some()) {
            None => Ok(()),
            Some((intent, _)) => Err(ConfigError::Invalid {
                var: INTENTS_VAR,
                value: intent.clone(),
                reason: format!(
                    "intent {intent:?} names a signal; on the platform profile an intent sends at most one signal, its \"action\" (p1 = the action, p2 = the attributes)"
                ),
            }),
        }
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }

    pub fn sync_limit(&self) -> Duration {
        Duration::from_millis(self.sync_limit_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_map_parses_and_the_defaults_fill_the_rest() {
        let c = IntentConfig::parse(LOCAL_INTENTS).unwrap();
        assert_eq!(c.intents["cancel"].action.as_deref(), Some("Escalate"));
        assert_eq!(c.intents["billing"].action, None);
        assert_eq!(c.intents["billing"].attributes["queue"], "Billing");
        assert_eq!(c.prefer_contact, PreferContact::Spawned);
        assert_eq!(c.sync_limit(), Duration::from_secs(5));
        assert_eq!(c.session_ttl(), Duration::from_secs(4 * 3600));
        let main = IntentConfig::parse(r#"{"preferContact": "main"}"#).unwrap();
        assert_eq!(main.prefer_contact, PreferContact::Main);
        assert!(c.check_profile(crate::cxone::Profile::InContact).is_ok());
    }

    #[test]
    fn a_signal_definition_is_for_the_documented_profile_only() {
        let c = IntentConfig::parse(r#"{"intents": {"cancel": {"signal": {"name": "escalate"}}}}"#)
            .unwrap();
        assert!(c.check_profile(crate::cxone::Profile::Documented).is_ok());
        let err = c
            .check_profile(crate::cxone::Profile::InContact)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"action\""), "{err}");
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        for (text, reason) in [
            (r#"{"threshold": 1.5}"#, "threshold"),
            (r#"{"syncLimitMs": 9000}"#, "syncLimitMs"),
            (r#"{"sessionTtlSecs": 5}"#, "sessionTtlSecs"),
            (r#"{"preferContact": "other"}"#, "unknown variant"),
            (r#"{"intents": {"x": {"action": " "}}}"#, "action"),
            (
                r#"{"intents": {"x": {"signal": {"name": "s", "mapping": {"a": "b"}}}}}"#,
                "signal variable",
            ),
            (r#"{"thresold": 0.5}"#, "unknown field"),
        ] {
            let err = IntentConfig::parse(text).unwrap_err().to_string();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}
