//! CXone configuration: which API profile, where it lives, and the limits calls keep to.

use std::time::Duration;

use crate::config::ConfigError;

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
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &'static str| {
            lookup(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let invalid = |var: &'static str, value: String, reason: &str| ConfigError::Invalid {
            var,
            value,
            reason: reason.to_owned(),
        };
        let url = |var: &'static str| -> Result<Option<String>, ConfigError> {
            match get(var) {
                None => Ok(None),
                Some(v) if v.starts_with("https://") || v.starts_with("http://") => {
                    Ok(Some(v.trim_end_matches('/').to_owned()))
                }
                Some(v) => Err(invalid(var, v, "expected an http(s) URL")),
            }
        };
        let number =
            |var: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
                match get(var) {
                    None => Ok(default),
                    Some(v) => match v.parse::<u64>() {
                        Ok(n) if (min..=max).contains(&n) => Ok(n),
                        _ => Err(invalid(
                            var,
                            v,
                            &format!("expected a whole number from {min} to {max}"),
                        )),
                    },
                }
            };

        let profile = match get(vars::PROFILE).as_deref() {
            None | Some("incontact") => Profile::InContact,
            Some("documented") => Profile::Documented,
            Some(other) => {
                return Err(invalid(
                    vars::PROFILE,
                    other.to_owned(),
                    "expected documented or incontact",
                ));
            }
        };
        let token_url = url(vars::TOKEN_URL)?;
        let api_base = url(vars::API_BASE)?;
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
        let issuer = match get(vars::ISSUER) {
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
                    return Err(invalid(
                        vars::ISSUER,
                        v,
                        "expected global, gov, au, eu or an issuer URL",
                    ));
                }
            },
        };
        let client_auth = match get(vars::CLIENT_AUTH).as_deref() {
            None | Some("basic") => ClientAuth::Basic,
            Some("post") => ClientAuth::Post,
            Some(other) => {
                return Err(invalid(
                    vars::CLIENT_AUTH,
                    other.to_owned(),
                    "expected basic or post",
                ));
            }
        };
        let signal_body = match get(vars::SIGNAL_BODY).as_deref() {
            None | Some("json") => SignalBody::Json,
            // `json-fallback` is the older name of the query form, which always fell back.
            Some("query" | "json-fallback") => SignalBody::Query,
            Some(other) => {
                return Err(invalid(
                    vars::SIGNAL_BODY,
                    other.to_owned(),
                    "expected json or query",
                ));
            }
        };
        let spawn_params = match get(vars::SPAWN_PARAMS).as_deref() {
            None | Some("json") => SpawnParams::Json,
            Some("query") => SpawnParams::Query,
            Some(other) => {
                return Err(invalid(
                    vars::SPAWN_PARAMS,
                    other.to_owned(),
                    "expected json or query",
                ));
            }
        };
        let api_version = get(vars::API_VERSION).unwrap_or_else(|| "30.0".to_owned());
        if !api_version
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(invalid(
                vars::API_VERSION,
                api_version,
                "expected a version such as 30.0",
            ));
        }
        let limit = number(vars::RATE_LIMIT, 100, 1, 100_000)?;
        let percent = number(vars::RATE_BUDGET_PERCENT, 80, 1, 100)?;
        Ok(Self {
            profile,
            token_url,
            issuer,
            api_base,
            client_auth,
            scope: get(vars::SCOPE),
            api_version,
            signal_body,
            spawn_params,
            tenant: get(vars::TENANT).unwrap_or_else(|| "default".to_owned()),
            connect_timeout: Duration::from_millis(number(
                vars::CONNECT_TIMEOUT_MS,
                1000,
                50,
                30_000,
            )?),
            timeout: Duration::from_millis(number(vars::TIMEOUT_MS, 5000, 100, 60_000)?),
            rate_per_second: u32::try_from((limit * percent / 100).max(1)).unwrap_or(u32::MAX),
        })
    }
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
