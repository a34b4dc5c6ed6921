//! The CXone-side objects a setup file declares, as the documented API knows them, and the
//! rules CXone applies to them. The simulator checks what it is sent with the same rules,
//! so a file that passes offline is one the API takes.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Longest name of any object.
pub const MAX_NAME_LEN: usize = 100;
/// Retries an integration target may ask for.
pub const MAX_RETRIES: u32 = 10;
/// An integration target's timeout range, in milliseconds.
pub const TIMEOUT_MS: std::ops::RangeInclusive<u32> = 1000..=30_000;
/// The operators a routing rule's condition may use.
pub const OPERATORS: [&str; 8] = [
    "equals",
    "notEquals",
    "contains",
    "startsWith",
    "in",
    "greaterThan",
    "lessThan",
    "exists",
];

/// The three kinds of object, with their API paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Webhook,
    RoutingRule,
    IntegrationTarget,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Webhook, Kind::RoutingRule, Kind::IntegrationTarget];

    /// The collection's path under the API base.
    pub fn path(self) -> &'static str {
        match self {
            Self::Webhook => "/api/v2/webhooks",
            Self::RoutingRule => "/api/v2/routing/rules",
            Self::IntegrationTarget => "/api/v2/integrations/targets",
        }
    }

    /// How people call it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::RoutingRule => "routing rule",
            Self::IntegrationTarget => "integration target",
        }
    }

    /// The file's key for the kind.
    pub fn key(self) -> &'static str {
        match self {
            Self::Webhook => "webhooks",
            Self::RoutingRule => "routingRules",
            Self::IntegrationTarget => "integrationTargets",
        }
    }

    /// A short prefix for the simulator's ids and for Terraform names.
    pub fn short(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::RoutingRule => "routing_rule",
            Self::IntegrationTarget => "integration_target",
        }
    }

    /// The kind of a collection path, and the id after it if any.
    pub fn of_path(path: &str) -> Option<(Kind, Option<&str>)> {
        Self::ALL.into_iter().find_map(|kind| {
            let rest = path.strip_prefix(kind.path())?;
            match rest {
                "" | "/" => Some((kind, None)),
                _ => rest.strip_prefix('/').map(|id| (kind, Some(id))),
            }
        })
    }
}

fn yes() -> bool {
    true
}

fn default_priority() -> u32 {
    100
}

fn default_target_type() -> String {
    "webhook".into()
}

fn default_filters() -> Vec<String> {
    vec!["*".into()]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Webhook {
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Condition {
    pub attribute: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QueueTarget {
    pub queue: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoutingRule {
    pub name: String,
    #[serde(default = "default_priority")]
    pub priority: u32,
    pub conditions: Vec<Condition>,
    pub targets: Vec<QueueTarget>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub timeout_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntegrationTarget {
    pub name: String,
    #[serde(rename = "type", default = "default_target_type")]
    pub kind: String,
    pub endpoint: String,
    pub retry_policy: RetryPolicy,
    #[serde(default = "default_filters")]
    pub event_filters: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// A setup file: every object cxbridge manages in CXone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Setup {
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    #[serde(default)]
    pub routing_rules: Vec<RoutingRule>,
    #[serde(default)]
    pub integration_targets: Vec<IntegrationTarget>,
}

/// One thing wrong, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    pub field: String,
    pub problem: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// Collects problems under a field prefix.
struct Check<'a> {
    prefix: String,
    problems: &'a mut Vec<Problem>,
}

impl Check<'_> {
    fn add(&mut self, field: &str, problem: impl Into<String>) {
        let field = match (self.prefix.is_empty(), field.is_empty()) {
            (true, _) => field.to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}.{field}", self.prefix),
        };
        self.problems.push(Problem {
            field,
            problem: problem.into(),
        });
    }

    fn name(&mut self, name: &str) {
        let len = name.trim().chars().count();
        if len == 0 || len > MAX_NAME_LEN || name.chars().any(char::is_control) {
            self.add(
                "name",
                format!("must be 1 to {MAX_NAME_LEN} printable characters"),
            );
        }
    }

    /// HTTPS, or HTTP to this machine (the local stack's gateway).
    fn endpoint(&mut self, field: &str, url: &str) {
        match reqwest::Url::parse(url) {
            Ok(u) if u.scheme() == "https" && u.host_str().is_some() => {}
            Ok(u) if u.scheme() == "http" && is_loopback(&u) => {}
            Ok(u) if u.scheme() == "http" => self.add(
                field,
                format!("must be an HTTPS URL (got http://{}…); plain HTTP is only for loopback addresses", u.host_str().unwrap_or_default()),
            ),
            _ => self.add(field, format!("must be an HTTPS URL (got {url:?})")),
        }
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Webhook {
    pub fn check(&self, prefix: &str, problems: &mut Vec<Problem>) {
        let mut c = Check {
            prefix: prefix.to_owned(),
            problems,
        };
        c.name(&self.name);
        c.endpoint("url", &self.url);
        if self.events.is_empty() {
            c.add("events", "must name at least one event type");
        }
        for (i, e) in self.events.iter().enumerate() {
            if e.trim().is_empty() || e.len() > MAX_NAME_LEN {
                c.add(
                    &format!("events[{i}]"),
                    format!("must be 1 to {MAX_NAME_LEN} characters"),
                );
            }
        }
    }
}

impl RoutingRule {
    pub fn check(&self, prefix: &str, problems: &mut Vec<Problem>) {
        let mut c = Check {
            prefix: prefix.to_owned(),
            problems,
        };
        c.name(&self.name);
        if !(1..=1000).contains(&self.priority) {
            c.add(
                "priority",
                format!("must be 1 to 1000 (got {})", self.priority),
            );
        }
        if self.conditions.is_empty() {
            c.add("conditions", "must hold at least one condition");
        }
        for (i, cond) in self.conditions.iter().enumerate() {
            let at = |f: &str| format!("conditions[{i}].{f}");
            if cond.attribute.trim().is_empty() {
                c.add(&at("attribute"), "must not be empty");
            }
            if !OPERATORS.contains(&cond.operator.as_str()) {
                c.add(
                    &at("operator"),
                    format!(
                        "unknown operator {:?}; use one of {}",
                        cond.operator,
                        OPERATORS.join(", ")
                    ),
                );
                continue;
            }
            match (cond.operator.as_str(), &cond.value) {
                ("exists", _) => {}
                ("in", Some(Value::Array(list))) if !list.is_empty() => {}
                ("in", _) => c.add(&at("value"), "`in` needs a non-empty list"),
                ("greaterThan" | "lessThan", Some(Value::Number(_))) => {}
                ("greaterThan" | "lessThan", _) => {
                    c.add(&at("value"), format!("`{}` needs a number", cond.operator));
                }
                (_, None | Some(Value::Null)) => {
                    c.add(&at("value"), format!("`{}` needs a value", cond.operator));
                }
                _ => {}
            }
        }
        if self.targets.is_empty() {
            c.add("targets", "must name at least one queue");
        }
        for (i, t) in self.targets.iter().enumerate() {
            if t.queue.trim().is_empty() {
                c.add(&format!("targets[{i}].queue"), "must not be empty");
            }
            if !(1..=100).contains(&t.weight) {
                c.add(
                    &format!("targets[{i}].weight"),
                    format!("must be 1 to 100 (got {})", t.weight),
                );
            }
        }
        let total: u32 = self.targets.iter().map(|t| t.weight).sum();
        if !self.targets.is_empty() && total != 100 {
            c.add(
                "targets",
                format!("weights must add up to 100 (got {total})"),
            );
        }
    }
}

impl IntegrationTarget {
    pub fn check(&self, prefix: &str, problems: &mut Vec<Problem>) {
        let mut c = Check {
            prefix: prefix.to_owned(),
            problems,
        };
        c.name(&self.name);
        if self.kind != "webhook" {
            c.add("type", format!("must be \"webhook\" (got {:?})", self.kind));
        }
        c.endpoint("endpoint", &self.endpoint);
        if self.retry_policy.max_retries > MAX_RETRIES {
            c.add(
                "retryPolicy.maxRetries",
                format!(
                    "must be 0 to {MAX_RETRIES} (got {})",
                    self.retry_policy.max_retries
                ),
            );
        }
        if !TIMEOUT_MS.contains(&self.retry_policy.timeout_ms) {
            c.add(
                "retryPolicy.timeoutMs",
                format!(
                    "must be {} to {} (got {})",
                    TIMEOUT_MS.start(),
                    TIMEOUT_MS.end(),
                    self.retry_policy.timeout_ms
                ),
            );
        }
        if self.event_filters.is_empty() {
            c.add(
                "eventFilters",
                "must hold at least one filter (\"*\" for all)",
            );
        }
    }
}

/// Reads one kind's list from a file's JSON: the objects that parse, and a problem at its
/// place for each one that does not; semantic problems of the parsed ones too.
fn read_list<T: serde::de::DeserializeOwned>(
    root: &serde_json::Map<String, Value>,
    kind: Kind,
    check: impl Fn(&T, &str, &mut Vec<Problem>),
    problems: &mut Vec<Problem>,
) -> Vec<T> {
    let key = kind.key();
    let items = match root.get(key) {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            problems.push(Problem {
                field: key.into(),
                problem: "must be a list".into(),
            });
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let place = format!("{key}[{i}]");
        match serde_json::from_value::<T>(item.clone()) {
            Ok(object) => {
                check(&object, &place, problems);
                out.push(object);
            }
            Err(e) => problems.push(Problem {
                field: place,
                problem: e.to_string(),
            }),
        }
    }
    out
}

impl Setup {
    /// Reads a file's JSON: the setup, or every problem in it, each at its place
    /// (`routingRules[2].conditions[0].operator`), shape and rules alike.
    pub fn from_value(value: &Value) -> Result<Self, Vec<Problem>> {
        let Some(root) = value.as_object() else {
            return Err(vec![Problem {
                field: "(file)".into(),
                problem: "must be an object with webhooks, routingRules and integrationTargets"
                    .into(),
            }]);
        };
        let mut problems: Vec<Problem> = root
            .keys()
            .filter(|k| !Kind::ALL.iter().any(|kind| kind.key() == k.as_str()))
            .map(|k| Problem {
                field: k.clone(),
                problem: "unknown key; use webhooks, routingRules or integrationTargets".into(),
            })
            .collect();
        let setup = Setup {
            webhooks: read_list(
                root,
                Kind::Webhook,
                |o: &Webhook, at, p| o.check(at, p),
                &mut problems,
            ),
            routing_rules: read_list(
                root,
                Kind::RoutingRule,
                |o: &RoutingRule, at, p| o.check(at, p),
                &mut problems,
            ),
            integration_targets: read_list(
                root,
                Kind::IntegrationTarget,
                |o: &IntegrationTarget, at, p| o.check(at, p),
                &mut problems,
            ),
        };
        if problems.is_empty() {
            problems = setup.check();
        }
        if problems.is_empty() {
            Ok(setup)
        } else {
            Err(problems)
        }
    }

    /// Every problem in the file, each with its place (`routingRules[2].conditions[0].operator`).
    pub fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let unique = |kind: Kind, names: Vec<&str>, problems: &mut Vec<Problem>| {
            let mut seen = BTreeSet::new();
            for (i, name) in names.into_iter().enumerate() {
                if !seen.insert(name.trim().to_owned()) {
                    problems.push(Problem {
                        field: format!("{}[{i}].name", kind.key()),
                        problem: format!("{name:?} is used by another {}", kind.label()),
                    });
                }
            }
        };
        for (i, w) in self.webhooks.iter().enumerate() {
            w.check(&format!("webhooks[{i}]"), &mut problems);
        }
        for (i, r) in self.routing_rules.iter().enumerate() {
            r.check(&format!("routingRules[{i}]"), &mut problems);
        }
        for (i, t) in self.integration_targets.iter().enumerate() {
            t.check(&format!("integrationTargets[{i}]"), &mut problems);
        }
        unique(
            Kind::Webhook,
            self.webhooks.iter().map(|w| w.name.as_str()).collect(),
            &mut problems,
        );
        unique(
            Kind::RoutingRule,
            self.routing_rules.iter().map(|r| r.name.as_str()).collect(),
            &mut problems,
        );
        unique(
            Kind::IntegrationTarget,
            self.integration_targets
                .iter()
                .map(|t| t.name.as_str())
                .collect(),
            &mut problems,
        );
        problems
    }

    /// The declared objects of each kind, by name, as the API's JSON (defaults filled in).
    pub fn objects(&self) -> Vec<(Kind, String, Value)> {
        let mut out = Vec::new();
        for w in &self.webhooks {
            out.push((Kind::Webhook, w.name.clone(), json!(w)));
        }
        for r in &self.routing_rules {
            out.push((Kind::RoutingRule, r.name.clone(), json!(r)));
        }
        for t in &self.integration_targets {
            out.push((Kind::IntegrationTarget, t.name.clone(), json!(t)));
        }
        out
    }
}

/// Checks one object of `kind` as the API receives it: its problems, with fields named
/// inside the object.
pub fn check_object(kind: Kind, body: &Value) -> Result<Value, Vec<Problem>> {
    fn parsed<T: serde::de::DeserializeOwned + Serialize>(
        body: &Value,
        check: impl Fn(&T, &mut Vec<Problem>),
    ) -> Result<Value, Vec<Problem>> {
        let object: T = serde_json::from_value(body.clone()).map_err(|e| {
            vec![Problem {
                field: String::new(),
                problem: e.to_string(),
            }]
        })?;
        let mut problems = Vec::new();
        check(&object, &mut problems);
        if problems.is_empty() {
            Ok(json!(object))
        } else {
            Err(problems)
        }
    }
    match kind {
        Kind::Webhook => parsed::<Webhook>(body, |w, p| w.check("", p)),
        Kind::RoutingRule => parsed::<RoutingRule>(body, |r, p| r.check("", p)),
        Kind::IntegrationTarget => parsed::<IntegrationTarget>(body, |t, p| t.check("", p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(v: Value) -> Setup {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_problem_is_named_with_its_place() {
        let s = setup(json!({
            "webhooks": [{"name": "", "url": "http://hooks.example.com/x", "events": ["interaction.created"]}],
            "routingRules": [{"name": "r", "conditions": [{"attribute": "cognigyDetectedIntent", "operator": "like", "value": "x"}],
                              "targets": [{"queue": "Q", "weight": 60}]}],
            "integrationTargets": [{"name": "t", "endpoint": "https://crm.example.com/in",
                                    "retryPolicy": {"maxRetries": 11, "timeoutMs": 500}}]
        }));
        let fields: Vec<String> = s.check().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "webhooks[0].name",
                "webhooks[0].url",
                "routingRules[0].conditions[0].operator",
                "routingRules[0].targets",
                "integrationTargets[0].retryPolicy.maxRetries",
                "integrationTargets[0].retryPolicy.timeoutMs",
            ]
        );
    }

    #[test]
    fn loopback_http_is_allowed_and_names_are_unique_per_kind() {
        let s = setup(json!({
            "webhooks": [
                {"name": "a", "url": "http://127.0.0.1:3000/webhooks/cxone", "events": ["e.x"]},
                {"name": "a", "url": "http://localhost/x", "events": ["e.x"]}],
            "integrationTargets": [{"name": "a", "endpoint": "http://[::1]:9/x",
                                    "retryPolicy": {"maxRetries": 0, "timeoutMs": 1000}}]
        }));
        let problems = s.check();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "webhooks[1].name");
    }

    #[test]
    fn paths_name_their_kind_and_id() {
        assert_eq!(
            Kind::of_path("/api/v2/routing/rules/r-1"),
            Some((Kind::RoutingRule, Some("r-1")))
        );
        assert_eq!(
            Kind::of_path("/api/v2/webhooks"),
            Some((Kind::Webhook, None))
        );
        assert_eq!(Kind::of_path("/api/v2/signals/x"), None);
    }

    #[test]
    fn an_object_is_checked_as_the_api_receives_it() {
        let err = check_object(
            Kind::RoutingRule,
            &json!({"name": "r", "conditions": [{"attribute": "a", "operator": "in", "value": []}], "targets": [{"queue": "Q", "weight": 100}]}),
        )
        .unwrap_err();
        assert_eq!(err[0].field, "conditions[0].value");
        let ok = check_object(
            Kind::IntegrationTarget,
            &json!({"name": "t", "endpoint": "https://x.example.com", "retryPolicy": {"maxRetries": 3, "timeoutMs": 5000}}),
        )
        .unwrap();
        assert_eq!(ok["eventFilters"], json!(["*"]));
        assert_eq!(ok["enabled"], true);
        assert_eq!(ok["type"], "webhook");
    }
}
