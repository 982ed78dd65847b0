//! The `/v2/` check of a remote registry behind the `Ready` and `AuthReady` conditions.
//!
//! It follows the distribution token-auth flow: an anonymous `GET /v2/`; on `401` with
//! `WWW-Authenticate: Bearer realm=..,service=..,scope=..` a token request to the realm with the
//! basic credentials, then `GET /v2/` again with the bearer token; on a `Basic` challenge the
//! request is repeated with the basic credentials.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use thiserror::Error;

use crate::plan::RemoteTarget;

/// Secret keys read for the user name, in order of preference.
pub const USER_KEYS: [&str; 2] = ["ORAS_USER", "username"];
/// Secret keys read for the password, in order of preference.
pub const PASSWORD_KEYS: [&str; 2] = ["ORAS_PASS", "password"];

/// The outcome of one check, as the status of a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the condition holds.
    pub ok: bool,
    /// PascalCase reason.
    pub reason: String,
    /// What happened, for people.
    pub message: String,
}

impl Verdict {
    /// A condition that holds.
    pub fn pass(reason: &str, message: impl Into<String>) -> Verdict {
        Verdict {
            ok: true,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A condition that does not hold.
    pub fn fail(reason: &str, message: impl Into<String>) -> Verdict {
        Verdict {
            ok: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Both verdicts of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Whether a registry answered `GET /v2/` (`Ready`).
    pub reachable: Verdict,
    /// Whether the credentials were accepted (`AuthReady`).
    pub auth: Verdict,
}

/// Credentials for a remote registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
    /// Where they came from (for messages), such as `Secret ns/name`.
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A credentials Secret that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CredentialsError {
    /// Neither key of a pair is present.
    #[error("{origin} has no {wanted} key: add ORAS_USER and ORAS_PASS (or username and password)")]
    MissingKey {
        /// Where the credentials were read from.
        origin: String,
        /// The keys looked for.
        wanted: String,
    },
    /// A value is not UTF-8.
    #[error("{origin} key {key} is not UTF-8 text")]
    NotUtf8 {
        /// Where the credentials were read from.
        origin: String,
        /// The offending key.
        key: String,
    },
}

/// Reads the user name and password from a Secret's data.
pub fn credentials_from_secret(
    source: &str,
    data: &BTreeMap<String, ByteString>,
) -> Result<Credentials, CredentialsError> {
    let read = |keys: &[&str]| -> Result<String, CredentialsError> {
        let (key, value) = keys
            .iter()
            .find_map(|k| data.get(*k).map(|v| (*k, v)))
            .ok_or_else(|| CredentialsError::MissingKey {
                origin: source.to_string(),
                wanted: keys.join(" or "),
            })?;
        String::from_utf8(value.0.clone())
            .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|_| CredentialsError::NotUtf8 {
                origin: source.to_string(),
                key: key.to_string(),
            })
    };
    Ok(Credentials {
        username: read(&USER_KEYS)?,
        password: read(&PASSWORD_KEYS)?,
        source: source.to_string(),
    })
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Auth scheme, lower case (`basic`, `bearer`).
    pub scheme: String,
    /// Parameters with lower-case names (`realm`, `service`, `scope`).
    pub params: BTreeMap<String, String>,
}

/// Parses one challenge such as `Bearer realm="https://a/token",service="a",scope="repository:x:pull,push"`.
/// Quoted values may contain commas and backslash escapes.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, mut rest) = match header.find(char::is_whitespace) {
        Some(i) => (&header[..i], header[i..].trim_start()),
        None => (header, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    loop {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            break;
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => out.push(c),
                }
            }
            rest = &quoted[end? + 1..];
            value = out;
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        params.insert(key, value);
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// The HTTP client could not be built.
#[derive(Debug, Error)]
#[error("cannot build the registry HTTP client: {0}")]
pub struct CheckerError(#[from] reqwest::Error);

/// Runs `/v2/` checks; one per controller, shared by reconciles.
#[derive(Clone)]
pub struct RegistryChecker {
    client: reqwest::Client,
}

impl RegistryChecker {
    /// A checker whose every request gives up after `timeout`.
    pub fn new(timeout: Duration) -> Result<RegistryChecker, CheckerError> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("oras-cache-controller/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(RegistryChecker { client })
    }

    /// Checks `target` with `credentials` (anonymously when `None`).
    pub async fn check(
        &self,
        target: &RemoteTarget,
        credentials: Option<&Credentials>,
    ) -> CheckReport {
        let scheme = if target.plain_http { "http" } else { "https" };
        let url = format!("{scheme}://{}/v2/", target.address);
        let first = match self.client.get(&url).send().await {
            Ok(response) => response,
            Err(error) => {
                let message = format!("GET {url} failed: {}", error_chain(&error));
                return CheckReport {
                    reachable: Verdict::fail("Unreachable", message.clone()),
                    auth: Verdict::fail("Unreachable", message),
                };
            }
        };
        let status = first.status();
        match status {
            StatusCode::OK => CheckReport {
                reachable: Verdict::pass("RegistryReachable", format!("GET {url} answered 200")),
                auth: Verdict::pass(
                    "AnonymousAccess",
                    "the registry answers GET /v2/ without credentials",
                ),
            },
            StatusCode::UNAUTHORIZED => {
                let challenge = first
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|h| h.to_str().ok())
                    .and_then(parse_challenge);
                CheckReport {
                    reachable: Verdict::pass(
                        "RegistryReachable",
                        format!("GET {url} answered 401 (authentication required)"),
                    ),
                    auth: self
                        .authenticate(&url, target, challenge, credentials)
                        .await,
                }
            }
            other => {
                let message = format!(
                    "GET {url} answered {other}: not an OCI distribution registry (expected 200 or 401)"
                );
                CheckReport {
                    reachable: Verdict::fail("NotARegistry", message.clone()),
                    auth: Verdict::fail("NotARegistry", message),
                }
            }
        }
    }

    async fn authenticate(
        &self,
        url: &str,
        target: &RemoteTarget,
        challenge: Option<Challenge>,
        credentials: Option<&Credentials>,
    ) -> Verdict {
        let Some(challenge) = challenge else {
            return Verdict::fail(
                "UnsupportedChallenge",
                format!("GET {url} answered 401 without a usable WWW-Authenticate header"),
            );
        };
        match challenge.scheme.as_str() {
            "basic" => {
                let Some(credentials) = credentials else {
                    return credentials_required(url, "basic");
                };
                let request = self
                    .client
                    .get(url)
                    .basic_auth(&credentials.username, Some(&credentials.password));
                self.final_get(request, url, credentials, "basic credentials")
                    .await
            }
            "bearer" => {
                self.bearer(url, target, &challenge.params, credentials)
                    .await
            }
            other => Verdict::fail(
                "UnsupportedChallenge",
                format!(
                    "GET {url} asks for the {other:?} auth scheme; only Basic and Bearer are supported"
                ),
            ),
        }
    }

    async fn bearer(
        &self,
        url: &str,
        target: &RemoteTarget,
        params: &BTreeMap<String, String>,
        credentials: Option<&Credentials>,
    ) -> Verdict {
        let Some(realm) = params.get("realm") else {
            return Verdict::fail(
                "UnsupportedChallenge",
                format!("GET {url} answered a Bearer challenge without realm"),
            );
        };
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(service) = params.get("service") {
            query.push(("service", service.clone()));
        }
        let scope = params.get("scope").cloned().or_else(|| {
            target
                .repository
                .as_ref()
                .map(|r| format!("repository:{r}:pull"))
        });
        if let Some(scope) = scope {
            query.push(("scope", scope));
        }
        let token_url = match reqwest::Url::parse_with_params(realm, &query) {
            Ok(token_url) => token_url,
            Err(error) => {
                return Verdict::fail(
                    "UnsupportedChallenge",
                    format!("the token realm {realm:?} is not a URL: {error}"),
                );
            }
        };
        // The shared rule (oras_cache_api::challenge): a realm of an HTTPS registry must be
        // HTTPS, credentials or not, so nothing travels in clear text to it.
        if let Err(error) = oras_cache_api::challenge::check_token_realm(realm, target.plain_http) {
            let reason = match error {
                oras_cache_api::challenge::RealmError::Insecure { .. } => "InsecureTokenRealm",
                oras_cache_api::challenge::RealmError::NotHttp { .. } => "UnsupportedChallenge",
            };
            return Verdict::fail(reason, error.to_string());
        }
        let mut request = self.client.get(token_url.clone());
        if let Some(credentials) = credentials {
            request = request.basic_auth(&credentials.username, Some(&credentials.password));
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                return Verdict::fail(
                    "TokenRequestFailed",
                    format!("GET {realm} failed: {}", error_chain(&error)),
                );
            }
        };
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return match credentials {
                Some(c) => Verdict::fail(
                    "AuthenticationFailed",
                    format!(
                        "the token service {realm} rejected the credentials of {} (HTTP {status})",
                        c.source
                    ),
                ),
                None => credentials_required(url, "bearer token"),
            };
        }
        if !status.is_success() {
            return Verdict::fail(
                "TokenRequestFailed",
                format!("the token service {realm} answered {status}"),
            );
        }
        let body: serde_json::Value = match response.json().await {
            Ok(body) => body,
            Err(error) => {
                return Verdict::fail(
                    "TokenRequestFailed",
                    format!(
                        "the token service {realm} answered no JSON: {}",
                        error_chain(&error)
                    ),
                );
            }
        };
        let Some(token) = ["token", "access_token"]
            .iter()
            .find_map(|k| body.get(*k).and_then(|v| v.as_str()))
            .filter(|t| !t.is_empty())
        else {
            return Verdict::fail(
                "TokenRequestFailed",
                format!("the token service {realm} answered without token or access_token"),
            );
        };
        let request = self.client.get(url).bearer_auth(token);
        match credentials {
            Some(credentials) => {
                self.final_get(request, url, credentials, "a token for the credentials")
                    .await
            }
            None => match request.send().await {
                Ok(r) if r.status() == StatusCode::OK => Verdict::pass(
                    "AnonymousAccess",
                    format!("an anonymous token from {realm} is accepted by GET /v2/"),
                ),
                Ok(_) => credentials_required(url, "bearer token"),
                Err(error) => Verdict::fail(
                    "Unreachable",
                    format!("GET {url} failed: {}", error_chain(&error)),
                ),
            },
        }
    }

    async fn final_get(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
        credentials: &Credentials,
        what: &str,
    ) -> Verdict {
        match request.send().await {
            Ok(r) if r.status() == StatusCode::OK => Verdict::pass(
                "Authenticated",
                format!(
                    "GET {url} with {what} of {} answered 200",
                    credentials.source
                ),
            ),
            Ok(r) if matches!(r.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                Verdict::fail(
                    "AuthenticationFailed",
                    format!(
                        "the registry rejected the credentials of {}: GET {url} with {what} answered {}",
                        credentials.source,
                        r.status()
                    ),
                )
            }
            Ok(r) => Verdict::fail(
                "UnexpectedStatus",
                format!("GET {url} with {what} answered {}", r.status()),
            ),
            Err(error) => Verdict::fail(
                "Unreachable",
                format!("GET {url} failed: {}", error_chain(&error)),
            ),
        }
    }
}

fn credentials_required(url: &str, kind: &str) -> Verdict {
    Verdict::fail(
        "CredentialsRequired",
        format!(
            "GET {url} requires {kind} authentication: set spec.registry.credentialsSecret (or spec.secrets.orasEnv) to a Secret with ORAS_USER and ORAS_PASS"
        ),
    )
}

/// An error and its sources on one line ("connection refused" sits several levels down).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_distribution_bearer_challenge_with_commas_in_the_scope() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:org/app:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example.com/token");
        assert_eq!(c.params["service"], "registry.example.com");
        assert_eq!(c.params["scope"], "repository:org/app:pull,push");
    }

    #[test]
    fn parses_basic_challenges_unquoted_values_and_escapes() {
        let c = parse_challenge(r#"Basic realm="a \"quoted\" realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], r#"a "quoted" realm"#);
        let c = parse_challenge("Bearer Realm=https://x/t, service=x").unwrap();
        assert_eq!(c.params["realm"], "https://x/t");
        assert_eq!(c.params["service"], "x");
        assert_eq!(parse_challenge("Basic").unwrap().params.len(), 0);
        assert!(parse_challenge("").is_none());
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
    }

    #[test]
    fn credentials_come_from_oras_or_generic_keys() {
        let data = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>()
        };
        let c = credentials_from_secret("s", &data(&[("ORAS_USER", "u"), ("ORAS_PASS", "p\n")]))
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        let c =
            credentials_from_secret("s", &data(&[("username", "u2"), ("password", "p2")])).unwrap();
        assert_eq!(c.username, "u2");
        let err = credentials_from_secret("Secret ns/s", &data(&[("username", "u")])).unwrap_err();
        assert!(err.to_string().contains("ORAS_PASS or password"), "{err}");
        assert!(
            !format!("{c:?}").contains("p2"),
            "Debug must not print the password"
        );
    }
}
