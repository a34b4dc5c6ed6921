//! Signal definitions (ARCHITECTURE.md, Routes): what a `POST /signals/{name}` may carry and where it
//! goes in CXone. Read once at init from `CXBRIDGE_SIGNALS` (inline JSON or `@path`);
//! a bad definition stops the cold start.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::cxone::Profile;
use crate::cxone::api::MAX_SIGNAL_PARAMETERS;

pub const SIGNALS_VAR: &str = "CXBRIDGE_SIGNALS";

/// Studio's variable types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VarType {
    String,
    Number,
    Boolean,
    Datetime,
}

impl VarType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Datetime => "datetime",
        }
    }
}

/// What happens to a nested object in the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NestedPolicy {
    /// `{"address": {"city": …}}` becomes `address.city`, which must be declared.
    Flatten,
    /// The object is sent as base64 of its JSON, into a declared string variable.
    Base64,
    /// Nested objects are refused.
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: VarType,
}

/// What a definition triggers on the platform.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalKind {
    /// Signal a running contact: `POST …/interactions/{contactId}/signal`.
    #[default]
    Contact,
    /// Start a script with no contact: `POST …/scripts/{scriptId}/start`, for work that
    /// begins outside a call, such as an order from an ERP.
    Spawn,
}

impl SignalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contact => "contact",
            Self::Spawn => "spawn",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignalDefinition {
    #[serde(skip)]
    pub name: String,
    /// `contact` (the default) or `spawn`.
    #[serde(default)]
    pub kind: SignalKind,
    /// CXone signal definition id (documented profile); defaults to the name.
    #[serde(default)]
    pub definition_id: String,
    /// Dotted path in the request to the contact id (platform, `contact` kind).
    #[serde(default)]
    pub contact_id_path: Option<String>,
    /// The Studio script to start (`spawn` kind).
    #[serde(default)]
    pub script_id: Option<String>,
    /// The skill the spawned script runs on (`spawn` kind).
    #[serde(default)]
    pub skill_id: Option<String>,
    pub nested: NestedPolicy,
    /// In declaration order: on the platform the order is `p2`…`p9` of a signal, or the
    /// second parameter on of a spawned script (the first is the correlation id).
    pub variables: Vec<Variable>,
}

/// The default when `CXBRIDGE_SIGNALS` is empty: `order-update`, which signals the running
/// contact a caller names. No spawn definition is built in, since one names a script and a
/// skill of the tenant; the local stack adds `order-created` for its simulator.
pub const DEFAULT_SIGNALS: &str = r#"{
  "order-update": {
    "kind": "contact",
    "definitionId": "order-update",
    "contactIdPath": "metadata.contactId",
    "nested": "flatten",
    "variables": [
      {"name": "customerId", "type": "string"},
      {"name": "orderId", "type": "string"},
      {"name": "updateType", "type": "string"},
      {"name": "priority", "type": "string"},
      {"name": "timestamp", "type": "datetime"},
      {"name": "address.city", "type": "string"},
      {"name": "address.zip", "type": "string"}
    ]
  }
}"#;

/// Longest script or skill id accepted.
const MAX_ID_LEN: usize = 64;

/// A script or skill id goes into a URL: letters, digits, `-` and `_` only.
fn is_platform_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn invalid(reason: String) -> ConfigError {
    ConfigError::Invalid {
        var: SIGNALS_VAR,
        value: "(see the definition named)".into(),
        reason,
    }
}

/// Reads the definitions from `CXBRIDGE_SIGNALS`, or the defaults.
pub fn from_env(profile: Profile) -> Result<BTreeMap<String, SignalDefinition>, ConfigError> {
    let text =
        crate::config::json_document(SIGNALS_VAR)?.unwrap_or_else(|| DEFAULT_SIGNALS.to_owned());
    parse(&text, profile)
}

/// Parses and checks definitions for `profile`.
pub fn parse(
    text: &str,
    profile: Profile,
) -> Result<BTreeMap<String, SignalDefinition>, ConfigError> {
    let raw: BTreeMap<String, SignalDefinition> = serde_json::from_str(text)
        .map_err(|e| invalid(format!("not a valid set of definitions: {e}")))?;
    if raw.is_empty() {
        return Err(invalid("no signal is defined".into()));
    }
    let mut out = BTreeMap::new();
    for (name, mut def) in raw {
        let here = |what: String| invalid(format!("signal {name:?}: {what}"));
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(here("names use letters, digits, - and _".into()));
        }
        if def.variables.is_empty() {
            return Err(here("declares no variables".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for v in &def.variables {
            if v.name.is_empty()
                || v.name.starts_with('.')
                || v.name.ends_with('.')
                || v.name.contains("..")
            {
                return Err(here(format!("variable {:?} is not a valid name", v.name)));
            }
            if !seen.insert(v.name.as_str()) {
                return Err(here(format!("variable {:?} is declared twice", v.name)));
            }
            if v.name.contains('.') && def.nested != NestedPolicy::Flatten {
                return Err(here(format!(
                    "dotted variable {:?} needs \"nested\": \"flatten\"",
                    v.name
                )));
            }
        }
        match def.kind {
            SignalKind::Spawn => {
                for (field, value) in [("scriptId", &def.script_id), ("skillId", &def.skill_id)] {
                    match value.as_deref() {
                        Some(id) if is_platform_id(id) => {}
                        Some(id) => {
                            return Err(here(format!(
                                "{field} {id:?} must be 1 to {MAX_ID_LEN} letters, digits, - or _"
                            )));
                        }
                        None => return Err(here(format!("a spawn signal needs {field}"))),
                    }
                }
                if def.contact_id_path.is_some() {
                    return Err(here(
                        "a spawn signal starts a new script and takes no contactIdPath".into(),
                    ));
                }
            }
            SignalKind::Contact => {
                if def.script_id.is_some() || def.skill_id.is_some() {
                    return Err(here(
                        "scriptId and skillId belong to \"kind\": \"spawn\"".into(),
                    ));
                }
                if profile == Profile::InContact {
                    if def.variables.len() > MAX_SIGNAL_PARAMETERS - 1 {
                        return Err(here(format!(
                            "declares {} variables; the platform takes {MAX_SIGNAL_PARAMETERS} parameters and p1 carries the correlation id",
                            def.variables.len()
                        )));
                    }
                    if def.contact_id_path.as_deref().is_none_or(str::is_empty) {
                        return Err(here("the incontact profile needs contactIdPath".into()));
                    }
                }
            }
        }
        if def.definition_id.is_empty() {
            def.definition_id = name.clone();
        }
        if !crate::ids::is_path_id(&def.definition_id) {
            return Err(here(format!(
                "the definition id {:?} is placed in CXone's URL, so it {}",
                def.definition_id,
                crate::ids::PATH_ID_RULE
            )));
        }
        def.name = name.clone();
        out.insert(name, def);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_default_is_order_update_and_starts_no_script() {
        for profile in [Profile::Documented, Profile::InContact] {
            let defs = parse(DEFAULT_SIGNALS, profile).unwrap();
            assert_eq!(defs.len(), 1);
            let d = &defs["order-update"];
            assert_eq!(d.kind, SignalKind::Contact);
            assert_eq!(d.nested, NestedPolicy::Flatten);
            assert_eq!(d.variables.len(), 7);
            assert_eq!(d.contact_id_path.as_deref(), Some("metadata.contactId"));
        }
    }

    #[test]
    fn spawn_definitions_need_safe_script_and_skill_ids() {
        let spawn = |extra: &str| {
            format!(
                r#"{{"s": {{"kind": "spawn", {extra} "nested": "reject", "variables": [{{"name": "a", "type": "string"}}]}}}}"#
            )
        };
        for (extra, expect) in [
            (r#""skillId": "1","#, "needs scriptId"),
            (r#""scriptId": "1","#, "needs skillId"),
            (r#""scriptId": "..", "skillId": "1","#, "letters, digits"),
            (r#""scriptId": "1/2", "skillId": "1","#, "letters, digits"),
            (
                r#""scriptId": "1", "skillId": "1", "contactIdPath": "metadata.c","#,
                "takes no contactIdPath",
            ),
        ] {
            let err = parse(&spawn(extra), Profile::InContact)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{extra}: {err}");
        }
        assert!(
            parse(
                &spawn(r#""scriptId": "77", "skillId": "88","#),
                Profile::InContact
            )
            .is_ok()
        );
        let contact_with_script = r#"{"s": {"scriptId": "1", "contactIdPath": "m.c", "nested": "reject", "variables": [{"name": "a", "type": "string"}]}}"#;
        assert!(
            parse(contact_with_script, Profile::InContact)
                .unwrap_err()
                .to_string()
                .contains("belong to")
        );
    }

    #[test]
    fn bad_definitions_fail_with_the_signal_named() {
        for (doc, expect) in [
            (
                r#"{"s": {"nested": "flatten", "variables": [{"name": "a", "type": "text"}]}}"#,
                "not a valid set",
            ),
            (
                r#"{"s": {"nested": "flatten", "variables": []}}"#,
                "declares no variables",
            ),
            (
                r#"{"s": {"nested": "reject", "variables": [{"name": "a.b", "type": "string"}]}}"#,
                "needs \"nested\": \"flatten\"",
            ),
            (
                r#"{"s": {"nested": "flatten", "variables": [{"name": "a", "type": "string"}, {"name": "a", "type": "number"}]}}"#,
                "declared twice",
            ),
            (
                r#"{"bad name": {"nested": "flatten", "variables": [{"name": "a", "type": "string"}]}}"#,
                "names use",
            ),
            (r#"{}"#, "no signal is defined"),
        ] {
            let err = parse(doc, Profile::Documented).unwrap_err().to_string();
            assert!(err.contains(SIGNALS_VAR) && err.contains(expect), "{err}");
        }
    }

    #[test]
    fn the_platform_profile_needs_a_contact_path_and_at_most_eight_variables() {
        let nine: Vec<String> = (0..9)
            .map(|i| format!(r#"{{"name": "v{i}", "type": "string"}}"#))
            .collect();
        let doc = format!(
            r#"{{"s": {{"contactIdPath": "metadata.contactId", "nested": "reject", "variables": [{}]}}}}"#,
            nine.join(",")
        );
        assert!(parse(&doc, Profile::Documented).is_ok());
        assert!(
            parse(&doc, Profile::InContact)
                .unwrap_err()
                .to_string()
                .contains("p1 carries the correlation id")
        );
        let no_contact =
            r#"{"s": {"nested": "reject", "variables": [{"name": "a", "type": "string"}]}}"#;
        assert!(
            parse(no_contact, Profile::InContact)
                .unwrap_err()
                .to_string()
                .contains("contactIdPath")
        );
    }
}
