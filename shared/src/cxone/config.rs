//! CXone configuration: which API profile, where it lives, and the limits calls keep to.

use std::time::Duration;

use crate::config::{ConfigError, Env};

pub mod vars {
    pub const PROFILE: &str = "CXBRIDGE_CXONE_PROFILE";
    pub const TOKEN_URL: &str = "CXBRIDGE_CXONE_TOKEN_URL";
    pub const API_BASE: &str = "CXBRIDGE_CXONE_API_BASE";
    pub const ISSUER: &str = "CXBRIDGE_CXONE_ISSUER";
    pub const CLIENT_AUTH: &str = "CXBRIDGE_CXONE_CLIENT_AUTH";
    pub const SCOPE: &str = "CXBRIDGE_CXONE_SCOPE";
    pub const API_VERSION: &str = "CXBRIDGE_CXONE_API_VERSION";
    pub const SIGNAL_BODY: &str = "CXBRIDGE_CXONE_SIGNAL_BODY";
    pub const SPAWN_PARAMS: &str = "CXBRIDGE_CXONE_SPAWN_PARAMS";
    pub const TENANT: &str = "CXBRIDGE_CXONE_TENANT";
    pub const CONNECT_TIMEOUT_MS: &str = "CXBRIDGE_CXONE_CONNECT_TIMEOUT_MS";
    pub const TIMEOUT_MS: &str = "CXBRIDGE_CXONE_TIMEOUT_MS";
    pub const RATE_LIMIT: &str = "CXBRIDGE_CXONE_RATE_LIMIT";
    pub const RATE_BUDGET_PERCENT: &str = "CXBRIDGE_CXONE_RATE_BUDGET_PERCENT";
}

/// Which CXone API the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The API as the integration guides describe it: client credentials, `/api/v2/…`.
    Documented,
    /// The platform's public API: OIDC discovery, access keys, `/inContactAPI/…` signals.
    InContact,
}

/// How the client authenticates at the token endpoint (both profiles: the platform's
/// discovery document advertises `client_secret_basic` and `client_secret_post`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(urlencode(client_id):urlencode(client_secret))`, as
    /// RFC 6749 §2.3.1 asks.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// Where a platform signal's `p1`…`p9` go. The API spec passes them as query parameters;
/// NICE's own agent SDK sends a JSON body, and the Cognigy extension moved to the body
/// because long values in the URL failed. The body is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalBody {
    /// A JSON body `{"p1": …, "p2": …}`.
    Json,
    /// Query parameters; a signal whose URL would be too long goes as a JSON body instead,
    /// so that no value the body could carry is refused.
    Query,
}

/// How a spawned script's parameters travel. NICE's SDK sends a JSON body
/// `{"scriptId","skillId","parameters"}`; other public clients pass `skillId` and
/// `parameters` in the query. Either way the parameters are one pipe-delimited string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnParams {
    /// A JSON body (the default).
    Json,
    /// Query parameters, or the JSON body when the URL would be too long.
    Query,
}

/// Published issuers of the CXone platform.
pub const ISSUERS: [(&str, &str); 4] = [
    ("global", "https://cxone.niceincontact.com"),
    ("gov", "https://cxone-gov.niceincontact.com"),
    ("au", "https://nicecxone-sov1.au"),
    ("eu", "https://nicecxone-sov1.eu"),
];

/// Longest URL sent with parameters in its query; longer ones carry them in a JSON body.
pub const MAX_URL_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CxoneConfig {
    pub profile: Profile,
    /// Token endpoint (documented profile).
    pub token_url: Option<String>,
    /// OIDC issuer (incontact profile).
    pub issuer: String,
    /// API base; for `incontact` it is discovered when not set.
    pub api_base: Option<String>,
    pub client_auth: ClientAuth,
    pub scope: Option<String>,
    /// `N.0` in `/inContactAPI/services/vN.0/…`.
    pub api_version: String,
    pub signal_body: SignalBody,
    pub spawn_params: SpawnParams,
    /// Key of the shared token and rate records.
    pub tenant: String,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Outbound calls per second, across all instances.
    pub rate_per_second: u32,
}

impl CxoneConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(crate::config::process_env)
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let profile = profile(env)?;
        // A base URL is kept without its trailing slash; paths are appended to it.
        let base = |var| -> Result<Option<String>, ConfigError> {
            Ok(env.url(var)?.map(|u| u.trim_end_matches('/').to_owned()))
        };
        let token_url = base(vars::TOKEN_URL)?;
        let api_base = base(vars::API_BASE)?;
        if profile == Profile::Documented {
            if token_url.is_none() {
                return Err(ConfigError::Missing {
                    var: vars::TOKEN_URL,
                });
            }
            if api_base.is_none() {
                return Err(ConfigError::Missing {
                    var: vars::API_BASE,
                });
            }
        }
        let issuer = match env.optional(vars::ISSUER)? {
            None => ISSUERS[0].1.to_owned(),
            Some(v) => match ISSUERS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&v))
            {
                Some((_, url)) => (*url).to_owned(),
                None if v.starts_with("https://") || v.starts_with("http://") => {
                    v.trim_end_matches('/').to_owned()
                }
                None => {
                    return Err(Env::invalid(
                        vars::ISSUER,
                        v,
                        "expected global, gov, au, eu or an issuer URL",
                    ));
                }
            },
        };
        let client_auth = env
            .choice(
                vars::CLIENT_AUTH,
                &[("basic", ClientAuth::Basic), ("post", ClientAuth::Post)],
                "basic or post",
            )?
            .unwrap_or(ClientAuth::Basic);
        let signal_body = env
            .choice(
                vars::SIGNAL_BODY,
                // `json-fallback` is the older name of the query form, which always fell back.
                &[
                    ("json", SignalBody::Json),
                    ("query", SignalBody::Query),
                    ("json-fallback", SignalBody::Query),
                ],
                "json or query",
            )?
            .unwrap_or(SignalBody::Json);
        let spawn_params = env
            .choice(
                vars::SPAWN_PARAMS,
                &[("json", SpawnParams::Json), ("query", SpawnParams::Query)],
                "json or query",
            )?
            .unwrap_or(SpawnParams::Json);
        let api_version = env
            .optional(vars::API_VERSION)?
            .unwrap_or_else(|| "30.0".to_owned());
        if !api_version
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(Env::invalid(
                vars::API_VERSION,
                api_version,
                "expected a version such as 30.0",
            ));
        }
        let limit = env.count(vars::RATE_LIMIT, 1, 100_000)?.unwrap_or(100);
        let percent = env.count(vars::RATE_BUDGET_PERCENT, 1, 100)?.unwrap_or(80);
        Ok(Self {
            profile,
            token_url,
            issuer,
            api_base,
            client_auth,
            scope: env.optional(vars::SCOPE)?,
            api_version,
            signal_body,
            spawn_params,
            tenant: env
                .optional(vars::TENANT)?
                .unwrap_or_else(|| "default".to_owned()),
            connect_timeout: env
                .millis(vars::CONNECT_TIMEOUT_MS, 50, 30_000)?
                .unwrap_or(Duration::from_millis(1000)),
            timeout: env
                .millis(vars::TIMEOUT_MS, 100, 60_000)?
                .unwrap_or(Duration::from_millis(5000)),
            rate_per_second: (limit * percent / 100).max(1),
        })
    }
}

/// The CXone profile: the platform's (`incontact`) unless `documented` is asked for.
pub fn profile(env: Env<'_>) -> Result<Profile, ConfigError> {
    Ok(env
        .choice(
            vars::PROFILE,
            &[
                ("incontact", Profile::InContact),
                ("documented", Profile::Documented),
            ],
            "documented or incontact",
        )?
        .unwrap_or(Profile::InContact))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<CxoneConfig, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CxoneConfig::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn the_platform_is_the_default_profile_with_json_parameters() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.profile, Profile::InContact);
        assert_eq!(c.signal_body, SignalBody::Json);
        assert_eq!(c.spawn_params, SpawnParams::Json);
        assert_eq!(c.client_auth, ClientAuth::Basic);
        let q = parse(&[
            (vars::SIGNAL_BODY, "json-fallback"),
            (vars::SPAWN_PARAMS, "query"),
            (vars::CLIENT_AUTH, "post"),
        ])
        .unwrap();
        assert_eq!(q.signal_body, SignalBody::Query);
        assert_eq!(q.spawn_params, SpawnParams::Query);
        assert_eq!(q.client_auth, ClientAuth::Post);
    }

    #[test]
    fn the_documented_profile_needs_its_token_url_and_api_base() {
        let documented = [(vars::PROFILE, "documented")];
        assert_eq!(
            parse(&documented).unwrap_err(),
            ConfigError::Missing {
                var: vars::TOKEN_URL
            }
        );
        let c = parse(&[
            (vars::PROFILE, "documented"),
            (vars::TOKEN_URL, "https://t/oauth"),
            (vars::API_BASE, "https://api/"),
        ])
        .unwrap();
        assert_eq!(c.profile, Profile::Documented);
        assert_eq!(c.api_base.as_deref(), Some("https://api"));
        assert_eq!(c.client_auth, ClientAuth::Basic);
        assert_eq!(c.rate_per_second, 80, "80 % of 100 requests/s");
    }

    #[test]
    fn the_incontact_profile_defaults_to_the_global_issuer_and_knows_the_others() {
        let c = parse(&[(vars::PROFILE, "incontact")]).unwrap();
        assert_eq!(c.issuer, "https://cxone.niceincontact.com");
        assert_eq!(c.api_base, None);
        let gov = parse(&[(vars::PROFILE, "incontact"), (vars::ISSUER, "gov")]).unwrap();
        assert_eq!(gov.issuer, "https://cxone-gov.niceincontact.com");
        let custom = parse(&[
            (vars::PROFILE, "incontact"),
            (vars::ISSUER, "http://127.0.0.1:9/"),
        ])
        .unwrap();
        assert_eq!(custom.issuer, "http://127.0.0.1:9");
        assert!(parse(&[(vars::PROFILE, "incontact"), (vars::ISSUER, "mars")]).is_err());
    }

    #[test]
    fn a_blank_variable_is_refused_by_name_as_every_variable_is() {
        assert_eq!(
            parse(&[(vars::API_BASE, " ")]).unwrap_err(),
            ConfigError::Empty {
                var: vars::API_BASE
            }
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            (vars::PROFILE, "legacy"),
            (vars::CLIENT_AUTH, "jwt"),
            (vars::RATE_BUDGET_PERCENT, "120"),
            (vars::TIMEOUT_MS, "soon"),
            (vars::API_VERSION, "v30"),
            (vars::SIGNAL_BODY, "xml"),
            (vars::SPAWN_PARAMS, "pipes"),
        ] {
            let err = parse(&[(vars::PROFILE, "incontact"), (var, value)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(var), "{err}");
        }
    }
}
