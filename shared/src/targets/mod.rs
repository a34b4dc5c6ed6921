//! Named outbound targets: where routed events go besides the queues and signals of a
//! route. Each target is declared once in the webhook configuration (`targets`), and
//! routes refer to it by name. An `https` target is a signed POST (Standard Webhooks), an
//! `eventbridge` target a `PutEvents` to a bus, an `sqs` target a queue URL.
//!
//! Every problem in the declarations is found at once, so that `cxbridge config check` can
//! print them all; credentials are checked against the secret's `targets.{name}`.

pub mod deliver;
pub mod sign;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::secrets::Secrets;

/// How a named target is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    Https(HttpsTarget),
    EventBridge(BusTarget),
    Sqs { queue_url: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsTarget {
    pub url: String,
    pub auth: Auth,
    pub timeout: Duration,
    /// Extra static headers, sent with every delivery.
    pub headers: Vec<(String, String)>,
}

/// How an HTTPS target authenticates cxbridge; the credentials are in the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `Authorization: Bearer {token}`.
    Bearer,
    /// `Authorization: Basic base64({username}:{password})`.
    Basic,
    /// `{header}: {apiKey}`.
    ApiKey {
        header: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusTarget {
    /// A bus name or ARN.
    pub bus: String,
    pub source: String,
    pub detail_type: String,
}

/// How retries of one target's deliveries are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Exponential,
    Linear,
    Fixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetRetry {
    /// Attempts after the first: 0–10.
    pub max_retries: u32,
    pub backoff: Backoff,
    /// The first wait, and the step of a linear backoff.
    pub delay: Duration,
}

impl TargetRetry {
    /// The wait before the attempt after `made` attempts (never over SQS's 15 minutes, never
    /// under a `Retry-After` the target sent), with full jitter on an exponential backoff.
    pub fn delay_after(&self, made: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let made = made.max(1);
        let wait = match self.backoff {
            Backoff::Fixed => self.delay,
            Backoff::Linear => self.delay.saturating_mul(made),
            Backoff::Exponential => {
                let ceiling = self
                    .delay
                    .checked_mul(1u32 << (made - 1).min(20))
                    .unwrap_or(crate::jobs::MAX_DELAY);
                ceiling
                    .min(crate::jobs::MAX_DELAY)
                    .mul_f64(jitter.clamp(0.0, 1.0))
            }
        };
        wait.max(retry_after.unwrap_or_default())
            .min(crate::jobs::MAX_DELAY)
    }

    /// Whether another attempt is allowed after `made` attempts.
    pub fn may_retry(&self, made: u32) -> bool {
        made <= self.max_retries
    }
}

/// When a failing target is paused, and for how long before a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    /// Consecutive failed attempts that pause the target.
    pub failures: u32,
    pub cooldown: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub name: String,
    pub kind: TargetKind,
    pub retry: TargetRetry,
    pub breaker: Breaker,
}

impl TargetSpec {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            TargetKind::Https(_) => "https",
            TargetKind::EventBridge(_) => "eventbridge",
            TargetKind::Sqs { .. } => "sqs",
        }
    }

    /// Whether deliveries to it run as jobs (HTTPS and EventBridge), rather than being
    /// enqueued in the request (SQS).
    pub fn is_delivered_by_job(&self) -> bool {
        !matches!(self.kind, TargetKind::Sqs { .. })
    }
}

/// The declared targets, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets(pub BTreeMap<String, TargetSpec>);

impl Targets {
    pub fn get(&self, name: &str) -> Option<&TargetSpec> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &TargetSpec> {
        self.0.values()
    }
}

pub const TIMEOUT_MS: (u64, u64) = (1_000, 30_000);
pub const MAX_RETRIES: u32 = 10;
const DEFAULT_TIMEOUT_MS: u64 = 10_000;
const DEFAULT_RETRIES: u32 = 5;
const DEFAULT_DELAY_MS: u64 = 1_000;
const DELAY_MS: (u64, u64) = (100, 900_000);
const DEFAULT_FAILURES: u32 = 5;
const FAILURES: (u32, u32) = (1, 1_000);
const DEFAULT_COOLDOWN_S: u64 = 60;
const COOLDOWN_S: (u64, u64) = (1, 86_400);
/// Headers cxbridge sets itself, which a target's static headers may not replace.
const RESERVED_HEADERS: [&str; 7] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
    "host",
    "authorization",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSpec {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    url: Option<String>,
    auth: Option<RawAuth>,
    timeout_ms: Option<u64>,
    retry: Option<RawRetry>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    bus: Option<String>,
    source: Option<String>,
    detail_type: Option<String>,
    queue_url: Option<String>,
    breaker: Option<RawBreaker>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawAuth {
    #[serde(rename = "type")]
    kind: String,
    header: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRetry {
    max_retries: Option<u32>,
    backoff: Option<String>,
    delay_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBreaker {
    failures: Option<u32>,
    cooldown_secs: Option<u64>,
}

/// A target name: 1–64 characters from `[A-Za-z0-9_-]`, so that it is safe in a
/// secret's keys, a table key, a metric dimension and a message attribute.
pub fn is_target_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `host` is a loopback address, the one place plain HTTP is allowed (the local
/// stack's sink).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    problems: &mut Vec<String>,
    here: &str,
    value: T,
    (low, high): (T, T),
) {
    if value < low || value > high {
        problems.push(format!("{here} is {value}; it must be {low}–{high}"));
    }
}

/// Reads the `targets` array; every problem is reported, each naming its place.
pub fn parse_targets(raw: &[Value]) -> Result<Targets, Vec<String>> {
    let mut problems = Vec::new();
    let mut targets = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, value) in raw.iter().enumerate() {
        let here = value.get("name").and_then(Value::as_str).map_or_else(
            || format!("targets[{i}]"),
            |n| format!("targets[{i}] ({n})"),
        );
        let spec: RawSpec = match serde_json::from_value(value.clone()) {
            Ok(spec) => spec,
            Err(e) => {
                problems.push(format!("{here}: {e}"));
                continue;
            }
        };
        let before = problems.len();
        let target = parse_one(&spec, &here, &mut problems);
        if !is_target_name(&spec.name) {
            problems.push(format!(
                "{here}.name must be 1–64 characters from A-Z, a-z, 0-9, - and _"
            ));
        }
        if !seen.insert(spec.name.clone()) {
            problems.push(format!("{here}: the name {:?} is used twice", spec.name));
            continue;
        }
        if let Some(target) = target
            && problems.len() == before
        {
            targets.insert(spec.name.clone(), target);
        }
    }
    if problems.is_empty() {
        Ok(Targets(targets))
    } else {
        Err(problems)
    }
}

fn parse_one(spec: &RawSpec, here: &str, problems: &mut Vec<String>) -> Option<TargetSpec> {
    let only = |problems: &mut Vec<String>, allowed: &[&str]| {
        for (field, given) in [
            ("url", spec.url.is_some()),
            ("auth", spec.auth.is_some()),
            ("timeoutMs", spec.timeout_ms.is_some()),
            ("headers", !spec.headers.is_empty()),
            ("bus", spec.bus.is_some()),
            ("source", spec.source.is_some()),
            ("detailType", spec.detail_type.is_some()),
            ("queueUrl", spec.queue_url.is_some()),
        ] {
            if given && !allowed.contains(&field) {
                problems.push(format!(
                    "{here}.{field} does not apply to a {} target",
                    spec.kind
                ));
            }
        }
    };
    let kind = match spec.kind.as_str() {
        "https" => {
            only(problems, &["url", "auth", "timeoutMs", "headers"]);
            https(spec, here, problems).map(TargetKind::Https)
        }
        "eventbridge" => {
            only(problems, &["bus", "source", "detailType"]);
            bus(spec, here, problems).map(TargetKind::EventBridge)
        }
        "sqs" => {
            only(problems, &["queueUrl"]);
            match spec.queue_url.as_deref() {
                Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                    Some(TargetKind::Sqs {
                        queue_url: url.to_owned(),
                    })
                }
                Some(url) => {
                    problems.push(format!("{here}.queueUrl {url:?} is not a queue URL"));
                    None
                }
                None => {
                    problems.push(format!("{here} needs queueUrl"));
                    None
                }
            }
        }
        other => {
            problems.push(format!(
                "{here}.type {other:?} is not one of https, eventbridge or sqs"
            ));
            None
        }
    };
    let retry = retry(spec.retry.as_ref(), here, problems);
    let breaker = breaker(spec.breaker.as_ref(), here, problems);
    Some(TargetSpec {
        name: spec.name.clone(),
        kind: kind?,
        retry,
        breaker,
    })
}

fn https(spec: &RawSpec, here: &str, problems: &mut Vec<String>) -> Option<HttpsTarget> {
    let url = match spec.url.as_deref() {
        None => {
            problems.push(format!("{here} needs url"));
            None
        }
        Some(text) => match url::Url::parse(text) {
            Err(e) => {
                problems.push(format!("{here}.url {text:?} is not a URL ({e})"));
                None
            }
            Ok(url) => {
                let host = url.host_str().unwrap_or_default().to_owned();
                match url.scheme() {
                    "https" if !host.is_empty() => Some(text.to_owned()),
                    "http" if is_loopback(&host) => Some(text.to_owned()),
                    "http" => {
                        problems.push(format!(
                            "{here}.url must be https:// (plain http is allowed only to a loopback address)"
                        ));
                        None
                    }
                    _ => {
                        problems.push(format!("{here}.url {text:?} is not an https URL"));
                        None
                    }
                }
            }
        },
    };
    let auth = match spec.auth.as_ref() {
        None => Some(Auth::None),
        Some(raw) => match (raw.kind.as_str(), raw.header.as_deref()) {
            ("none", None) => Some(Auth::None),
            ("bearer", None) => Some(Auth::Bearer),
            ("basic", None) => Some(Auth::Basic),
            ("apiKey", Some(header)) => {
                if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    problems.push(format!(
                        "{here}.auth.header {header:?} is not a header name"
                    ));
                    None
                } else if RESERVED_HEADERS.contains(&header.to_ascii_lowercase().as_str()) {
                    problems.push(format!(
                        "{here}.auth.header {header:?} is a header cxbridge sets itself"
                    ));
                    None
                } else {
                    Some(Auth::ApiKey {
                        header: header.to_owned(),
                    })
                }
            }
            ("apiKey", None) => {
                problems.push(format!(
                    "{here}.auth of type apiKey needs header (the header's name)"
                ));
                None
            }
            ("none" | "bearer" | "basic", Some(_)) => {
                problems.push(format!(
                    "{here}.auth.header applies only to the apiKey type"
                ));
                None
            }
            (other, _) => {
                problems.push(format!(
                    "{here}.auth.type {other:?} is not one of none, bearer, basic or apiKey"
                ));
                None
            }
        },
    };
    let timeout_ms = spec.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    in_range(
        problems,
        &format!("{here}.timeoutMs"),
        timeout_ms,
        TIMEOUT_MS,
    );
    let mut headers = Vec::new();
    for (name, value) in &spec.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(format!("{here}.headers: {name:?} is not a header name"));
        } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            problems.push(format!(
                "{here}.headers: {name} is set by cxbridge and cannot be given"
            ));
        } else if http::HeaderValue::from_str(value).is_err() {
            problems.push(format!(
                "{here}.headers: the value of {name} is not a header value"
            ));
        } else {
            headers.push((name.clone(), value.clone()));
        }
    }
    Some(HttpsTarget {
        url: url?,
        auth: auth?,
        timeout: Duration::from_millis(timeout_ms),
        headers,
    })
}

/// A bus name (`[A-Za-z0-9._/-]`, up to 256) or an event-bus ARN.
fn is_bus(bus: &str) -> bool {
    if let Some(rest) = bus.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        return parts.len() == 5
            && parts[1] == "events"
            && parts[4]
                .strip_prefix("event-bus/")
                .is_some_and(|name| !name.is_empty() && is_bus(name));
    }
    (1..=256).contains(&bus.len())
        && bus
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b))
}

fn bus(spec: &RawSpec, here: &str, problems: &mut Vec<String>) -> Option<BusTarget> {
    let bus = match spec.bus.as_deref() {
        Some(bus) if is_bus(bus) => Some(bus.to_owned()),
        Some(bus) => {
            problems.push(format!(
                "{here}.bus {bus:?} is neither an event bus name nor an event-bus ARN"
            ));
            None
        }
        None => {
            problems.push(format!("{here} needs bus (a name or an ARN)"));
            None
        }
    };
    let source = spec.source.clone().unwrap_or_else(|| "cxbridge".to_owned());
    if source.is_empty() || source.len() > 256 || source.starts_with("aws.") {
        problems.push(format!(
            "{here}.source must be 1–256 characters and must not start with aws."
        ));
    }
    let detail_type = spec
        .detail_type
        .clone()
        .unwrap_or_else(|| "CXone event".to_owned());
    if detail_type.is_empty() || detail_type.len() > 128 {
        problems.push(format!("{here}.detailType must be 1–128 characters"));
    }
    Some(BusTarget {
        bus: bus?,
        source,
        detail_type,
    })
}

fn retry(raw: Option<&RawRetry>, here: &str, problems: &mut Vec<String>) -> TargetRetry {
    let max_retries = raw.and_then(|r| r.max_retries).unwrap_or(DEFAULT_RETRIES);
    in_range(
        problems,
        &format!("{here}.retry.maxRetries"),
        max_retries,
        (0, MAX_RETRIES),
    );
    let backoff = match raw.and_then(|r| r.backoff.as_deref()) {
        None | Some("exponential") => Backoff::Exponential,
        Some("linear") => Backoff::Linear,
        Some("fixed") => Backoff::Fixed,
        Some(other) => {
            problems.push(format!(
                "{here}.retry.backoff {other:?} is not one of exponential, linear or fixed"
            ));
            Backoff::Exponential
        }
    };
    let delay_ms = raw.and_then(|r| r.delay_ms).unwrap_or(DEFAULT_DELAY_MS);
    in_range(
        problems,
        &format!("{here}.retry.delayMs"),
        delay_ms,
        DELAY_MS,
    );
    TargetRetry {
        max_retries,
        backoff,
        delay: Duration::from_millis(delay_ms),
    }
}

fn breaker(raw: Option<&RawBreaker>, here: &str, problems: &mut Vec<String>) -> Breaker {
    let failures = raw.and_then(|b| b.failures).unwrap_or(DEFAULT_FAILURES);
    in_range(
        problems,
        &format!("{here}.breaker.failures"),
        failures,
        FAILURES,
    );
    let cooldown = raw
        .and_then(|b| b.cooldown_secs)
        .unwrap_or(DEFAULT_COOLDOWN_S);
    in_range(
        problems,
        &format!("{here}.breaker.cooldownSecs"),
        cooldown,
        COOLDOWN_S,
    );
    Breaker {
        failures,
        cooldown: Duration::from_secs(cooldown),
    }
}

/// What is missing from the secret for the declared targets: an HTTPS target needs its
/// signing secrets (`whsec_…`) and its auth credentials under `targets.{name}`.
pub fn missing_credentials(targets: &Targets, secrets: &Secrets) -> Vec<String> {
    use secrecy::ExposeSecret;
    let mut problems = Vec::new();
    for spec in targets.iter() {
        let TargetKind::Https(https) = &spec.kind else {
            continue;
        };
        let name = &spec.name;
        let Some(creds) = secrets.targets.get(name) else {
            problems.push(format!(
                "target {name}: the secret has no targets.{name} (it needs signingSecrets)"
            ));
            continue;
        };
        if creds.signing_secrets.is_empty() {
            problems.push(format!(
                "target {name}: the secret's targets.{name}.signingSecrets is empty"
            ));
        }
        for (i, s) in creds.signing_secrets.iter().enumerate() {
            if sign::signing_key(s.expose_secret()).is_none() {
                problems.push(format!(
                    "target {name}: targets.{name}.signingSecrets[{i}] is not a whsec_ secret (whsec_ and base64 of 24–64 bytes)"
                ));
            }
        }
        let needs: &[(&str, bool)] = match &https.auth {
            Auth::None => &[],
            Auth::Bearer => &[("token", creds.token.is_some())],
            Auth::Basic => &[
                ("username", creds.username.is_some()),
                ("password", creds.password.is_some()),
            ],
            Auth::ApiKey { .. } => &[("apiKey", creds.api_key.is_some())],
        };
        for (field, present) in needs {
            if !present {
                problems.push(format!(
                    "target {name}: its auth needs targets.{name}.{field} in the secret"
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(targets: Value) -> Vec<String> {
        let list = targets.as_array().cloned().unwrap_or_default();
        parse_targets(&list).err().unwrap_or_default()
    }

    fn audit() -> Value {
        json!({"name": "audit", "type": "https", "url": "https://audit.example.com/hooks"})
    }

    #[test]
    fn the_three_types_parse_with_their_defaults() {
        let t = parse_targets(&[
            audit(),
            json!({"name": "bus", "type": "eventbridge", "bus": "arn:aws:events:eu-west-1:123456789012:event-bus/cx"}),
            json!({"name": "crm", "type": "sqs", "queueUrl": "https://sqs.eu-west-1.amazonaws.com/1/crm"}),
            json!({"name": "sink", "type": "https", "url": "http://127.0.0.1:9/x", "auth": {"type": "apiKey", "header": "X-Key"},
                   "timeoutMs": 2000, "retry": {"maxRetries": 0, "backoff": "fixed"}, "headers": {"X-Team": "cx"},
                   "breaker": {"failures": 2, "cooldownSecs": 5}}),
        ])
        .unwrap();
        let audit = t.get("audit").unwrap();
        assert_eq!(
            audit.retry,
            TargetRetry {
                max_retries: 5,
                backoff: Backoff::Exponential,
                delay: Duration::from_secs(1)
            }
        );
        assert_eq!(
            audit.breaker,
            Breaker {
                failures: 5,
                cooldown: Duration::from_secs(60)
            }
        );
        let TargetKind::EventBridge(bus) = &t.get("bus").unwrap().kind else {
            panic!("a bus")
        };
        assert_eq!(
            (bus.source.as_str(), bus.detail_type.as_str()),
            ("cxbridge", "CXone event")
        );
        let TargetKind::Https(sink) = &t.get("sink").unwrap().kind else {
            panic!("https")
        };
        assert_eq!(
            sink.auth,
            Auth::ApiKey {
                header: "X-Key".into()
            }
        );
        assert_eq!(sink.timeout, Duration::from_secs(2));
        assert_eq!(sink.headers, [("X-Team".to_owned(), "cx".to_owned())]);
        assert!(!t.get("crm").unwrap().is_delivered_by_job());
    }

    #[test]
    fn every_mistake_is_reported_at_once_naming_its_place() {
        let cases = [
            (
                json!({"name": "a", "type": "https", "url": "http://audit.example.com/"}),
                "plain http is allowed only to a loopback",
            ),
            (
                json!({"name": "a", "type": "https", "url": "ftp://x/"}),
                "is not an https URL",
            ),
            (
                json!({"name": "a", "type": "https", "url": "not a url"}),
                "is not a URL",
            ),
            (json!({"name": "a", "type": "https"}), "needs url"),
            (
                json!({"name": "a", "type": "https", "url": "https://x/", "timeoutMs": 999}),
                "timeoutMs is 999; it must be 1000–30000",
            ),
            (
                json!({"name": "a", "type": "https", "url": "https://x/", "timeoutMs": 30001}),
                "timeoutMs is 30001",
            ),
            (
                json!({"name": "a", "type": "https", "url": "https://x/", "retry": {"maxRetries": 11}}),
                "maxRetries is 11; it must be 0–10",
            ),
            (
                json!({"name": "a", "type": "https", "url": "https://x/", "retry": {"backoff": "random"}}),
                "retry.backoff \"random\"",
            ),
            (
                json!({"name": "a", "type": "https", "url": "https://x/", "auth": {"type": "digest"}}),
                "auth.type \"digest\"",
            ),
            (
                json!({"name": "a", "type": "https", "url": "https://x/", "auth": {"type": "apiKey"}}),
                "needs header",
            ),
            (
                json!({"name": "a", "type": "https", "url": "https://x/", "auth": {"type": "apiKey", "header": "bad header"}}),
                "is not a header name",
            ),
            (
                json!({"name": "a", "type": "https", "url": "https://x/", "headers": {"webhook-signature": "x"}}),
                "set by cxbridge",
            ),
            (
                json!({"name": "a", "type": "https", "url": "https://x/", "password": "x"}),
                "unknown field `password`",
            ),
            (
                json!({"name": "a", "type": "smtp"}),
                "not one of https, eventbridge or sqs",
            ),
            (json!({"name": "a", "type": "eventbridge"}), "needs bus"),
            (
                json!({"name": "a", "type": "eventbridge", "bus": "no spaces"}),
                "neither an event bus name",
            ),
            (
                json!({"name": "a", "type": "eventbridge", "bus": "b", "source": "aws.events"}),
                "must not start with aws.",
            ),
            (
                json!({"name": "a", "type": "eventbridge", "bus": "b", "url": "https://x/"}),
                "url does not apply to a eventbridge target",
            ),
            (
                json!({"name": "a", "type": "sqs", "queueUrl": "crm"}),
                "is not a queue URL",
            ),
            (
                json!({"name": "a b", "type": "sqs", "queueUrl": "https://q/1/a"}),
                "name must be 1–64 characters",
            ),
            (
                json!({"name": "a", "type": "sqs", "queueUrl": "https://q/1/a", "breaker": {"failures": 0}}),
                "breaker.failures is 0",
            ),
            (
                json!({"name": "a", "type": "sqs", "queueUrl": "https://q/1/a", "breaker": {"cooldownSecs": 0}}),
                "breaker.cooldownSecs is 0",
            ),
        ];
        for (target, expect) in &cases {
            let found = problems(json!([target]));
            assert!(
                found
                    .iter()
                    .any(|p| p.contains(expect) && p.contains("targets[0]")),
                "{expect}: {found:?}"
            );
        }
        // All of them in one document: one problem each, at least, all reported.
        let all: Vec<Value> = cases
            .iter()
            .enumerate()
            .map(|(i, (t, _))| {
                let mut t = t.clone();
                if t["name"] == "a" {
                    t["name"] = json!(format!("t{i}"));
                }
                t
            })
            .collect();
        assert!(problems(Value::Array(all)).len() >= cases.len());
    }

    #[test]
    fn a_name_used_twice_is_refused() {
        let found = problems(json!([audit(), audit()]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("used twice"));
        // Even when the first of them is wrong itself.
        let broken = json!({"name": "audit", "type": "https"});
        let found = problems(json!([broken, audit()]));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[1].contains("targets[1] (audit): the name \"audit\" is used twice"));
    }

    #[test]
    fn loopback_alone_may_be_plain_http() {
        for url in [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://[::1]:9/x",
        ] {
            assert!(
                problems(json!([{"name": "a", "type": "https", "url": url}])).is_empty(),
                "{url}"
            );
        }
        assert!(
            !problems(json!([{"name": "a", "type": "https", "url": "http://10.0.0.1/x"}]))
                .is_empty()
        );
    }

    #[test]
    fn credentials_missing_from_the_secret_are_named() {
        let targets = parse_targets(&[
            json!({"name": "a", "type": "https", "url": "https://x/", "auth": {"type": "basic"}}),
            json!({"name": "b", "type": "https", "url": "https://x/", "auth": {"type": "bearer"}}),
            json!({"name": "c", "type": "https", "url": "https://x/"}),
            json!({"name": "d", "type": "eventbridge", "bus": "default"}),
        ])
        .unwrap();
        let secrets: Secrets = serde_json::from_value(json!({
            "targets": {
                "a": {"signingSecrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "username": "u"},
                "b": {"signingSecrets": ["nope"], "token": "t"}
            }
        }))
        .unwrap();
        let found = missing_credentials(&targets, &secrets);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("targets.a.password"));
        assert!(found[1].contains("targets.b.signingSecrets[0] is not a whsec_ secret"));
        assert!(found[2].contains("no targets.c"));
    }

    #[test]
    fn backoffs_space_retries_as_named_and_stop_at_max_retries() {
        let mut r = TargetRetry {
            max_retries: 2,
            backoff: Backoff::Linear,
            delay: Duration::from_secs(2),
        };
        assert_eq!(r.delay_after(3, None, 0.0), Duration::from_secs(6));
        r.backoff = Backoff::Fixed;
        assert_eq!(r.delay_after(3, None, 0.0), Duration::from_secs(2));
        r.backoff = Backoff::Exponential;
        assert_eq!(r.delay_after(3, None, 1.0), Duration::from_secs(8));
        assert_eq!(r.delay_after(40, None, 1.0), crate::jobs::MAX_DELAY);
        assert_eq!(
            r.delay_after(1, Some(Duration::from_secs(30)), 0.0),
            Duration::from_secs(30)
        );
        assert!(r.may_retry(1) && r.may_retry(2) && !r.may_retry(3));
    }
}
