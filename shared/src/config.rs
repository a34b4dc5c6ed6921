//! Typed configuration, read once from the environment at cold start.
//!
//! Every function gets the same variables (set by `template.yaml` in AWS and by the local
//! stack when run locally). A missing or malformed variable stops init with a message that
//! names it, so a bad deployment fails loudly instead of at the first request.

use std::time::Duration;

/// Names of the environment variables, in one place so the template and the local stack can
/// be checked against them.
pub mod vars {
    pub const TABLE: &str = "CXBRIDGE_TABLE";
    pub const JOBS_QUEUE_URL: &str = "CXBRIDGE_JOBS_QUEUE_URL";
    pub const DLQ_URL: &str = "CXBRIDGE_DLQ_URL";
    pub const EVENTS_QUEUE_URL: &str = "CXBRIDGE_EVENTS_QUEUE_URL";
    pub const SECRET_ID: &str = "CXBRIDGE_SECRET_ID";
    pub const SECRET_CACHE_TTL_SECS: &str = "CXBRIDGE_SECRET_CACHE_TTL_SECS";
    pub const PROBE: &str = "CXBRIDGE_PROBE";
    pub const SIGNATURE_TOLERANCE_SECS: &str = "CXBRIDGE_SIGNATURE_TOLERANCE_SECS";
    pub const IDEMPOTENCY_TTL_SECS: &str = "CXBRIDGE_IDEMPOTENCY_TTL_SECS";
    pub const SECRET_REFRESH_MIN_SECS: &str = "CXBRIDGE_SECRET_REFRESH_MIN_SECS";
    pub const EXECUTION_DEADLINE_SECS: &str = "CXBRIDGE_EXECUTION_DEADLINE_SECS";
    pub const CALLBACK_AUTH: &str = "CXBRIDGE_CALLBACK_AUTH";
    pub const JOB_MAX_ATTEMPTS: &str = "CXBRIDGE_JOB_MAX_ATTEMPTS";
    pub const JOB_BACKOFF_BASE_MS: &str = "CXBRIDGE_JOB_BACKOFF_BASE_MS";
    pub const JOB_BACKOFF_CAP_SECS: &str = "CXBRIDGE_JOB_BACKOFF_CAP_SECS";
    pub const JOB_LEASE_SECS: &str = "CXBRIDGE_JOB_LEASE_SECS";
    pub const AWS_NATIVE_ROOTS: &str = "CXBRIDGE_AWS_NATIVE_ROOTS";
    pub const DELIVERY_LOG_DAYS: &str = "CXBRIDGE_DELIVERY_LOG_DAYS";
    pub const TARGET_PARK_SECS: &str = "CXBRIDGE_TARGET_PARK_SECS";

    /// Every variable a deployed function is given.
    pub const ALL: &[&str] = &[
        TABLE,
        JOBS_QUEUE_URL,
        DLQ_URL,
        EVENTS_QUEUE_URL,
        SECRET_ID,
        SECRET_CACHE_TTL_SECS,
    ];
}

const DEFAULT_SECRET_CACHE_TTL: Duration = Duration::from_secs(60);
const DEFAULT_SIGNATURE_TOLERANCE: Duration = Duration::from_secs(300);
const MAX_SIGNATURE_TOLERANCE: Duration = Duration::from_secs(3600);
const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
const MAX_IDEMPOTENCY_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
const DEFAULT_SECRET_REFRESH_MIN: Duration = Duration::from_secs(5);
const DEFAULT_EXECUTION_DEADLINE: Duration = Duration::from_secs(300);
const MAX_EXECUTION_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// How Studio's completion callbacks prove where they come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackAuth {
    /// `X-Callback-Timestamp` and `X-Callback-Signature-256`, as webhooks are signed.
    Hmac,
    /// `X-Callback-Token`, for Studio's REST action, which cannot compute an HMAC (the
    /// default on the platform profile).
    Token,
}
const MAX_SECRET_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Configuration shared by every function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// DynamoDB table holding idempotency and state records.
    pub table: String,
    /// SQS queue for outbound work that must be retried.
    pub jobs_queue_url: String,
    /// Dead-letter queue for jobs whose attempts are spent.
    pub dlq_url: String,
    /// Fan-out queue that accepted webhook events are routed to by default.
    pub events_queue_url: String,
    /// Secrets Manager id (name or ARN) of the JSON secret.
    pub secret_id: String,
    /// How long a fetched secret is trusted before it is read again.
    pub secret_cache_ttl: Duration,
    /// Local diagnostics (`x-cxbridge-probe`): only the local stack turns this on.
    pub probe: bool,
    /// How far a signed request's timestamp may be from now, either way.
    pub signature_tolerance: Duration,
    /// How long a completed idempotency record answers duplicates.
    pub idempotency_ttl: Duration,
    /// Least time between two forced secret reads after failed verifications.
    pub secret_refresh_min_interval: Duration,
    /// How long after dispatch an execution may wait for its callback.
    pub execution_deadline: Duration,
    pub callback_auth: CallbackAuth,
    /// Attempts, backoff base and cap for jobs.
    pub retry: crate::jobs::RetryPolicy,
    /// How long a job run holds its attempt before another delivery may take it over.
    pub job_lease: Duration,
    /// Whether the AWS clients trust the system's root certificates besides Amazon's.
    pub aws_native_roots: bool,
    /// How long the delivery log keeps an attempt.
    pub delivery_log_ttl: Duration,
    /// The longest a delivery to a paused target waits before it looks again (so that a
    /// resumed target gets its parked deliveries within this).
    pub target_park: Duration,
}

/// Why configuration could not be read. Always names the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("configuration variable {var} is not set")]
    Missing { var: &'static str },
    #[error("configuration variable {var} is empty")]
    Empty { var: &'static str },
    #[error("configuration variable {var} is invalid: {reason} (got {value:?})")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process
    /// environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        Ok(Self {
            table: env.required(vars::TABLE)?,
            jobs_queue_url: env.url(vars::JOBS_QUEUE_URL)?,
            dlq_url: env.url(vars::DLQ_URL)?,
            events_queue_url: env.url(vars::EVENTS_QUEUE_URL)?,
            secret_id: env.required(vars::SECRET_ID)?,
            secret_cache_ttl: env
                .seconds(vars::SECRET_CACHE_TTL_SECS, MAX_SECRET_CACHE_TTL)?
                .unwrap_or(DEFAULT_SECRET_CACHE_TTL),
            probe: env.flag(vars::PROBE)?.unwrap_or(false),
            aws_native_roots: env.flag(vars::AWS_NATIVE_ROOTS)?.unwrap_or(false),
            signature_tolerance: env
                .seconds(vars::SIGNATURE_TOLERANCE_SECS, MAX_SIGNATURE_TOLERANCE)?
                .unwrap_or(DEFAULT_SIGNATURE_TOLERANCE),
            idempotency_ttl: env
                .seconds(vars::IDEMPOTENCY_TTL_SECS, MAX_IDEMPOTENCY_TTL)?
                .unwrap_or(DEFAULT_IDEMPOTENCY_TTL),
            secret_refresh_min_interval: env
                .seconds(vars::SECRET_REFRESH_MIN_SECS, MAX_SECRET_CACHE_TTL)?
                .unwrap_or(DEFAULT_SECRET_REFRESH_MIN),
            execution_deadline: env
                .seconds(vars::EXECUTION_DEADLINE_SECS, MAX_EXECUTION_DEADLINE)?
                .unwrap_or(DEFAULT_EXECUTION_DEADLINE),
            retry: crate::jobs::RetryPolicy {
                max_attempts: env.count(vars::JOB_MAX_ATTEMPTS, 1, 100)?.unwrap_or(8),
                base: Duration::from_millis(
                    env.count(vars::JOB_BACKOFF_BASE_MS, 1, 900_000)?
                        .unwrap_or(2000)
                        .into(),
                ),
                cap: env
                    .seconds(vars::JOB_BACKOFF_CAP_SECS, crate::jobs::MAX_DELAY)?
                    .unwrap_or(crate::jobs::MAX_DELAY),
            },
            job_lease: env
                .seconds(vars::JOB_LEASE_SECS, Duration::from_secs(900))?
                .unwrap_or(Duration::from_secs(15)),
            target_park: env
                .seconds(vars::TARGET_PARK_SECS, crate::jobs::MAX_DELAY)?
                .unwrap_or(Duration::from_secs(60)),
            delivery_log_ttl: Duration::from_secs(
                u64::from(env.count(vars::DELIVERY_LOG_DAYS, 1, 3650)?.unwrap_or(14)) * 86_400,
            ),
            callback_auth: match env.optional(vars::CALLBACK_AUTH)?.as_deref() {
                // Studio's REST action cannot sign, so on the platform a callback brings a
                // token; the documented API signs its callbacks.
                None if platform_profile(&lookup) => CallbackAuth::Token,
                None | Some("hmac") => CallbackAuth::Hmac,
                Some("token") => CallbackAuth::Token,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        var: vars::CALLBACK_AUTH,
                        value: other.to_owned(),
                        reason: "expected hmac or token".into(),
                    });
                }
            },
        })
    }
}

/// Whether the CXone profile is the platform's (the default), as the callback default
/// depends on it.
fn platform_profile(lookup: &dyn Fn(&str) -> Option<String>) -> bool {
    lookup(crate::cxone::config::vars::PROFILE)
        .is_none_or(|v| v.trim().is_empty() || v.trim() == "incontact")
}

struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn optional(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        match (self.0)(var) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Err(ConfigError::Empty { var }),
            Some(v) => Ok(Some(v.trim().to_owned())),
        }
    }

    fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.optional(var)?.ok_or(ConfigError::Missing { var })
    }

    fn url(&self, var: &'static str) -> Result<String, ConfigError> {
        let value = self.required(var)?;
        if value.starts_with("https://") || value.starts_with("http://") {
            Ok(value)
        } else {
            Err(ConfigError::Invalid {
                var,
                value,
                reason: "expected an http(s) URL".into(),
            })
        }
    }

    fn seconds(&self, var: &'static str, max: Duration) -> Result<Option<Duration>, ConfigError> {
        let Some(value) = self.optional(var)? else {
            return Ok(None);
        };
        match value.parse::<u64>() {
            Ok(secs) if Duration::from_secs(secs) <= max => Ok(Some(Duration::from_secs(secs))),
            Ok(_) => Err(ConfigError::Invalid {
                var,
                value,
                reason: format!("at most {} seconds", max.as_secs()),
            }),
            Err(_) => Err(ConfigError::Invalid {
                var,
                value,
                reason: "expected a whole number of seconds".into(),
            }),
        }
    }

    fn count(&self, var: &'static str, min: u32, max: u32) -> Result<Option<u32>, ConfigError> {
        let Some(value) = self.optional(var)? else {
            return Ok(None);
        };
        match value.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ConfigError::Invalid {
                var,
                value,
                reason: format!("expected a whole number from {min} to {max}"),
            }),
        }
    }

    fn flag(&self, var: &'static str) -> Result<Option<bool>, ConfigError> {
        let Some(value) = self.optional(var)? else {
            return Ok(None);
        };
        match parse_flag(&value) {
            Some(flag) => Ok(Some(flag)),
            None => Err(ConfigError::Invalid {
                var,
                value,
                reason: "expected true or false".into(),
            }),
        }
    }
}

/// A JSON document given in the variable `var`: the text itself, or `@path` for a file to
/// read. `None` when the variable is unset or blank.
pub fn json_document(var: &'static str) -> Result<Option<String>, ConfigError> {
    let Some(value) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    match value.trim().strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map(Some)
            .map_err(|e| ConfigError::Invalid {
                var,
                value: value.clone(),
                reason: format!("cannot read {path}: {e}"),
            }),
        None => Ok(Some(value)),
    }
}

/// `1`, `true`, `on` or `yes` (any case) is true; `0`, `false`, `off` or `no` is false.
pub fn parse_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Some(true),
        "0" | "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn complete() -> HashMap<&'static str, String> {
        HashMap::from([
            (vars::TABLE, "cxbridge".to_owned()),
            (
                vars::JOBS_QUEUE_URL,
                "http://localhost:5000/123/jobs".to_owned(),
            ),
            (vars::DLQ_URL, "http://localhost:5000/123/dlq".to_owned()),
            (
                vars::EVENTS_QUEUE_URL,
                "http://localhost:5000/123/events".to_owned(),
            ),
            (vars::SECRET_ID, "cxbridge/secret".to_owned()),
        ])
    }

    fn parse(env: &HashMap<&'static str, String>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn a_complete_environment_parses_with_defaults() {
        let config = parse(&complete()).unwrap();
        assert_eq!(config.table, "cxbridge");
        assert_eq!(config.secret_cache_ttl, Duration::from_secs(60));
        assert!(!config.probe);
    }

    #[test]
    fn every_missing_variable_is_named() {
        for var in [
            vars::TABLE,
            vars::JOBS_QUEUE_URL,
            vars::DLQ_URL,
            vars::EVENTS_QUEUE_URL,
            vars::SECRET_ID,
        ] {
            let mut env = complete();
            env.remove(var);
            let err = parse(&env).unwrap_err();
            assert_eq!(err, ConfigError::Missing { var });
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn a_blank_variable_is_refused_as_empty() {
        let mut env = complete();
        env.insert(vars::TABLE, "  ".into());
        assert_eq!(
            parse(&env).unwrap_err(),
            ConfigError::Empty { var: vars::TABLE }
        );
    }

    #[test]
    fn a_queue_that_is_not_a_url_is_refused() {
        let mut env = complete();
        env.insert(vars::JOBS_QUEUE_URL, "jobs".into());
        let err = parse(&env).unwrap_err().to_string();
        assert!(err.contains("CXBRIDGE_JOBS_QUEUE_URL"), "{err}");
        assert!(err.contains("http(s) URL"), "{err}");
    }

    #[test]
    fn a_ttl_that_is_not_a_number_is_refused_with_its_value() {
        let mut env = complete();
        env.insert(vars::SECRET_CACHE_TTL_SECS, "soon".into());
        let err = parse(&env).unwrap_err().to_string();
        assert_eq!(
            err,
            "configuration variable CXBRIDGE_SECRET_CACHE_TTL_SECS is invalid: \
             expected a whole number of seconds (got \"soon\")"
        );
    }

    #[test]
    fn a_ttl_over_a_day_is_refused() {
        let mut env = complete();
        env.insert(vars::SECRET_CACHE_TTL_SECS, "90000".into());
        assert!(parse(&env).is_err());
        env.insert(vars::SECRET_CACHE_TTL_SECS, "60".into());
        assert_eq!(
            parse(&env).unwrap().secret_cache_ttl,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn the_probe_flag_accepts_usual_spellings_only() {
        let mut env = complete();
        env.insert(vars::PROBE, "on".into());
        assert!(parse(&env).unwrap().probe);
        env.insert(vars::PROBE, "maybe".into());
        assert!(parse(&env).is_err());
    }

    #[test]
    fn the_aws_native_roots_flag_is_off_by_default_and_validated() {
        let mut env = complete();
        assert!(!parse(&env).unwrap().aws_native_roots);
        env.insert(vars::AWS_NATIVE_ROOTS, "1".into());
        assert!(parse(&env).unwrap().aws_native_roots);
        env.insert(vars::AWS_NATIVE_ROOTS, "sometimes".into());
        assert!(matches!(
            parse(&env),
            Err(ConfigError::Invalid {
                var: vars::AWS_NATIVE_ROOTS,
                ..
            })
        ));
    }

    #[test]
    fn callbacks_bring_a_token_on_the_platform_and_a_signature_on_the_documented_api() {
        let mut env = complete();
        assert_eq!(parse(&env).unwrap().callback_auth, CallbackAuth::Token);
        env.insert(crate::cxone::config::vars::PROFILE, "documented".into());
        assert_eq!(parse(&env).unwrap().callback_auth, CallbackAuth::Hmac);
        env.insert(vars::CALLBACK_AUTH, "token".into());
        assert_eq!(parse(&env).unwrap().callback_auth, CallbackAuth::Token);
        env.insert(crate::cxone::config::vars::PROFILE, "incontact".into());
        env.insert(vars::CALLBACK_AUTH, "hmac".into());
        assert_eq!(parse(&env).unwrap().callback_auth, CallbackAuth::Hmac);
    }
}
