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
    pub const AWS_ATTEMPT_TIMEOUT_MS: &str = "CXBRIDGE_AWS_ATTEMPT_TIMEOUT_MS";
    pub const AWS_TIMEOUT_MS: &str = "CXBRIDGE_AWS_TIMEOUT_MS";
    /// AWS's own variable; the local stack points it at its emulator.
    pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
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
    /// How the AWS clients are set up: trust store, timeouts, endpoint.
    pub aws: crate::aws::AwsSettings,
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
        Self::from_lookup(process_env)
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process
    /// environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        Ok(Self {
            table: env.required(vars::TABLE)?,
            jobs_queue_url: env.required_url(vars::JOBS_QUEUE_URL)?,
            dlq_url: env.required_url(vars::DLQ_URL)?,
            events_queue_url: env.required_url(vars::EVENTS_QUEUE_URL)?,
            secret_id: env.required(vars::SECRET_ID)?,
            secret_cache_ttl: env
                .seconds(vars::SECRET_CACHE_TTL_SECS, MAX_SECRET_CACHE_TTL)?
                .unwrap_or(DEFAULT_SECRET_CACHE_TTL),
            probe: env.flag(vars::PROBE)?.unwrap_or(false),
            aws: crate::aws::AwsSettings::read(env)?,
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
            // Studio's REST action cannot sign, so on the platform a callback brings a token;
            // the documented API signs its callbacks.
            callback_auth: match env.choice(
                vars::CALLBACK_AUTH,
                &[("hmac", CallbackAuth::Hmac), ("token", CallbackAuth::Token)],
                "hmac or token",
            )? {
                Some(auth) => auth,
                None if crate::cxone::config::profile(env)? == crate::cxone::Profile::InContact => {
                    CallbackAuth::Token
                }
                None => CallbackAuth::Hmac,
            },
        })
    }
}

/// The process environment, as the lookup [`Env`] reads. A value that is not UTF-8 arrives
/// with its bad bytes replaced, so that it is refused as invalid rather than read as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// The one reader of configuration variables, over a lookup (the process environment, or
/// a map in tests). Its one rule: an unset variable takes its default, or is
/// [`ConfigError::Missing`] when it has none; a set one must be valid, and a blank or
/// invalid value is refused with an error that names the variable and shows the value.
#[derive(Clone, Copy)]
pub struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl<'a> Env<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self(lookup)
    }

    /// The trimmed value; blank is refused.
    pub fn optional(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        match (self.0)(var) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Err(ConfigError::Empty { var }),
            Some(v) => Ok(Some(v.trim().to_owned())),
        }
    }

    pub fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.optional(var)?.ok_or(ConfigError::Missing { var })
    }

    /// Refuses `value` of `var`, saying what was expected.
    pub fn invalid(
        var: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            var,
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// An `http://` or `https://` URL.
    pub fn url(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        match self.optional(var)? {
            Some(v) if !(v.starts_with("https://") || v.starts_with("http://")) => {
                Err(Self::invalid(var, v, "expected an http(s) URL"))
            }
            other => Ok(other),
        }
    }

    pub fn required_url(&self, var: &'static str) -> Result<String, ConfigError> {
        self.url(var)?.ok_or(ConfigError::Missing { var })
    }

    /// A whole number of seconds, at most `max`.
    pub fn seconds(
        &self,
        var: &'static str,
        max: Duration,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(value) = self.optional(var)? else {
            return Ok(None);
        };
        match value.parse::<u64>() {
            Ok(secs) if Duration::from_secs(secs) <= max => Ok(Some(Duration::from_secs(secs))),
            Ok(_) => Err(Self::invalid(
                var,
                value,
                format!("at most {} seconds", max.as_secs()),
            )),
            Err(_) => Err(Self::invalid(
                var,
                value,
                "expected a whole number of seconds",
            )),
        }
    }

    /// A whole number from `min` to `max`.
    pub fn count(&self, var: &'static str, min: u32, max: u32) -> Result<Option<u32>, ConfigError> {
        let Some(value) = self.optional(var)? else {
            return Ok(None);
        };
        match value.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(Self::invalid(
                var,
                value,
                format!("expected a whole number from {min} to {max}"),
            )),
        }
    }

    /// A whole number of milliseconds from `min` to `max`.
    pub fn millis(
        &self,
        var: &'static str,
        min: u32,
        max: u32,
    ) -> Result<Option<Duration>, ConfigError> {
        Ok(self
            .count(var, min, max)?
            .map(|ms| Duration::from_millis(u64::from(ms))))
    }

    /// `true` or `false`, in the spellings [`parse_flag`] takes.
    pub fn flag(&self, var: &'static str) -> Result<Option<bool>, ConfigError> {
        let Some(value) = self.optional(var)? else {
            return Ok(None);
        };
        match parse_flag(&value) {
            Some(flag) => Ok(Some(flag)),
            None => Err(Self::invalid(var, value, "expected true or false")),
        }
    }

    /// One of `options`, by name; `expected` lists them for the error.
    pub fn choice<T: Copy>(
        &self,
        var: &'static str,
        options: &[(&str, T)],
        expected: &str,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.optional(var)? else {
            return Ok(None);
        };
        match options.iter().find(|(name, _)| *name == value) {
            Some((_, choice)) => Ok(Some(*choice)),
            None => Err(Self::invalid(var, value, format!("expected {expected}"))),
        }
    }

    /// A JSON document: the text itself, or `@path` for a file to read (the one loader
    /// of both forms).
    pub fn document(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.optional(var)? else {
            return Ok(None);
        };
        match value.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .map(Some)
                .map_err(|e| Self::invalid(var, value.clone(), format!("cannot read {path}: {e}"))),
            None => Ok(Some(value)),
        }
    }
}

/// A JSON document given in the process environment's `var` (see [`Env::document`]).
pub fn json_document(var: &'static str) -> Result<Option<String>, ConfigError> {
    Env::new(&process_env).document(var)
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
        assert!(!parse(&env).unwrap().aws.native_roots);
        env.insert(vars::AWS_NATIVE_ROOTS, "1".into());
        assert!(parse(&env).unwrap().aws.native_roots);
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
