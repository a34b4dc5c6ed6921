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

/// How the client authenticates at the token endpoint (documented profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(client_id:client_secret)`.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// Where an `incontact` signal's parameters go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalBody {
    /// `p1`…`p9` as query parameters (the platform's documented form).
    Query,
    /// As query parameters, or as a JSON body `{"p1": …}` when the URL would be too long.
    JsonFallback,
}

/// Published issuers of the CXone platform.
pub const ISSUERS: [(&str, &str); 4] = [
    ("global", "https://cxone.niceincontact.com"),
    ("gov", "https://cxone-gov.niceincontact.com"),
    ("au", "https://nicecxone-sov1.au"),
    ("eu", "https://nicecxone-sov1.eu"),
];

/// Longest signal URL sent; longer ones need the JSON fallback.
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
            None | Some("documented") => Profile::Documented,
            Some("incontact") => Profile::InContact,
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
            None | Some("query") => SignalBody::Query,
            Some("json-fallback") => SignalBody::JsonFallback,
            Some(other) => {
                return Err(invalid(
                    vars::SIGNAL_BODY,
                    other.to_owned(),
                    "expected query or json-fallback",
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
    fn the_documented_profile_needs_its_token_url_and_api_base() {
        assert_eq!(
            parse(&[]).unwrap_err(),
            ConfigError::Missing {
                var: vars::TOKEN_URL
            }
        );
        let c = parse(&[
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
        ] {
            let err = parse(&[(vars::PROFILE, "incontact"), (var, value)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(var), "{err}");
        }
    }
}
