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

use oras_cache_api::challenge::Challenge;
use oras_cache_api::credentials::{self, Operation, UserPassword};

use crate::plan::RemoteTarget;

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

/// Credentials for a remote registry, and where they came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name and password, picked by the contract's rule for a pull: the health check
    /// reads the registry, so a Secret made by the user guide's recipe (`ORAS_PULL_PASS`) works.
    pub login: UserPassword,
    /// Where they came from, such as `Secret ns/name`.
    pub source: String,
}

/// A credentials Secret that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CredentialsError {
    /// No user name and password the check can use.
    #[error("{origin}: {reason}")]
    Unusable {
        /// Where the credentials were read from.
        origin: String,
        /// What is missing.
        reason: String,
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

/// Reads the user name and password for a pull from a Secret's data, with the keys and the order
/// of [`oras_cache_api::credentials::select`].
pub fn credentials_from_secret(
    source: &str,
    data: &BTreeMap<String, ByteString>,
) -> Result<Credentials, CredentialsError> {
    let mut text = BTreeMap::new();
    for (key, value) in data {
        let value = String::from_utf8(value.0.clone()).map_err(|_| CredentialsError::NotUtf8 {
            origin: source.to_string(),
            key: key.clone(),
        })?;
        text.insert(key.as_str(), value);
    }
    let unusable = |reason: String| CredentialsError::Unusable {
        origin: source.to_string(),
        reason,
    };
    let login = credentials::select(Operation::Pull, |key| text.get(key).cloned())
        .map_err(|e| unusable(e.to_string()))?
        .ok_or_else(|| {
            unusable(
                "has no credentials: add ORAS_USER and ORAS_PASS (or username and password)".into(),
            )
        })?;
    Ok(Credentials {
        login,
        source: source.to_string(),
    })
}

/// How a check's `/v2/` request was let in, reused for the repository read.
enum Authorization {
    /// No credentials were needed.
    Anonymous,
    /// Basic credentials.
    Basic(UserPassword),
    /// A bearer token from the realm.
    Bearer(String),
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
            // Credentials stay with their origin: reqwest drops `Authorization` on a redirect
            // to another scheme, host or port (reqwest 0.13 `redirect.rs`,
            // `remove_sensitive_headers`), as the agent's client does (oras_agent::origin).
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
        self.check_with_auth(target, credentials).await.0
    }

    /// Checks `target` as [`RegistryChecker::check`] does, then, when `target.repository` is
    /// set and the credentials were accepted, reads that repository
    /// (`GET /v2/<repository>/tags/list`) with the same authorization, as the OCI connector's
    /// health check does: a mirror's credentials must be able to read what pods will pull.
    pub async fn check_repository(
        &self,
        target: &RemoteTarget,
        credentials: Option<&Credentials>,
    ) -> CheckReport {
        let (mut report, auth) = self.check_with_auth(target, credentials).await;
        if let (Some(repository), Some(auth), true) = (&target.repository, auth, report.auth.ok) {
            report.auth = self
                .read_repository(target, repository, &auth, &report.auth)
                .await;
        }
        report
    }

    async fn read_repository(
        &self,
        target: &RemoteTarget,
        repository: &str,
        auth: &Authorization,
        base: &Verdict,
    ) -> Verdict {
        let scheme = if target.plain_http { "http" } else { "https" };
        let url = format!("{scheme}://{}/v2/{repository}/tags/list", target.address);
        let request = match auth {
            Authorization::Anonymous => self.client.get(&url),
            Authorization::Basic(login) => self
                .client
                .get(&url)
                .basic_auth(&login.user, Some(&login.password)),
            Authorization::Bearer(token) => self.client.get(&url).bearer_auth(token),
        };
        match request.send().await {
            Ok(r) if r.status() == StatusCode::OK => Verdict::pass(
                &base.reason,
                format!("{}; GET {url} answered 200", base.message),
            ),
            Ok(r) if r.status() == StatusCode::NOT_FOUND => Verdict::fail(
                "RepositoryNotFound",
                format!(
                    "GET {url} answered 404: the upstream has no repository {repository:?} (spec.mirror.repository names one pods pull)"
                ),
            ),
            Ok(r) if matches!(r.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                Verdict::fail(
                    "RepositoryDenied",
                    format!(
                        "GET {url} answered {}: the credentials may not read repository {repository:?}",
                        r.status()
                    ),
                )
            }
            Ok(r) => Verdict::fail(
                "UnexpectedStatus",
                format!("GET {url} answered {}", r.status()),
            ),
            Err(error) => no_answer(&url, &error),
        }
    }

    /// The check and, when the credentials were accepted, the authorization that was.
    async fn check_with_auth(
        &self,
        target: &RemoteTarget,
        credentials: Option<&Credentials>,
    ) -> (CheckReport, Option<Authorization>) {
        let scheme = if target.plain_http { "http" } else { "https" };
        let url = format!("{scheme}://{}/v2/", target.address);
        let first = match self.client.get(&url).send().await {
            Ok(response) => response,
            Err(error) => {
                let report = CheckReport {
                    reachable: no_answer(&url, &error),
                    auth: no_answer(&url, &error),
                };
                return (report, None);
            }
        };
        let status = first.status();
        match status {
            StatusCode::OK => (
                CheckReport {
                    reachable: Verdict::pass(
                        "RegistryReachable",
                        format!("GET {url} answered 200"),
                    ),
                    auth: Verdict::pass(
                        "AnonymousAccess",
                        "the registry answers GET /v2/ without credentials",
                    ),
                },
                Some(Authorization::Anonymous),
            ),
            StatusCode::UNAUTHORIZED => {
                let challenge = first
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|h| h.to_str().ok())
                    .and_then(Challenge::parse);
                let (auth, authorization) = self
                    .authenticate(&url, target, challenge, credentials)
                    .await;
                let report = CheckReport {
                    reachable: Verdict::pass(
                        "RegistryReachable",
                        format!("GET {url} answered 401 (authentication required)"),
                    ),
                    auth,
                };
                (report, authorization)
            }
            other => {
                let message = format!(
                    "GET {url} answered {other}: not an OCI distribution registry (expected 200 or 401)"
                );
                let report = CheckReport {
                    reachable: Verdict::fail("NotARegistry", message.clone()),
                    auth: Verdict::fail("NotARegistry", message),
                };
                (report, None)
            }
        }
    }

    async fn authenticate(
        &self,
        url: &str,
        target: &RemoteTarget,
        challenge: Option<Challenge>,
        credentials: Option<&Credentials>,
    ) -> (Verdict, Option<Authorization>) {
        let Some(challenge) = challenge else {
            let verdict = Verdict::fail(
                "UnsupportedChallenge",
                format!("GET {url} answered 401 without a usable WWW-Authenticate header"),
            );
            return (verdict, None);
        };
        match challenge.scheme.as_str() {
            "basic" => {
                let Some(credentials) = credentials else {
                    return (credentials_required(url, "basic"), None);
                };
                let request = self
                    .client
                    .get(url)
                    .basic_auth(&credentials.login.user, Some(&credentials.login.password));
                let verdict = self
                    .final_get(request, url, credentials, "basic credentials")
                    .await;
                let accepted = verdict.ok;
                (
                    verdict,
                    accepted.then(|| Authorization::Basic(credentials.login.clone())),
                )
            }
            "bearer" => {
                let mut token = None;
                let verdict = self
                    .bearer(url, target, &challenge.params, credentials, &mut token)
                    .await;
                let accepted = verdict.ok;
                (
                    verdict,
                    token.filter(|_| accepted).map(Authorization::Bearer),
                )
            }
            other => (
                Verdict::fail(
                    "UnsupportedChallenge",
                    format!(
                        "GET {url} asks for the {other:?} auth scheme; only Basic and Bearer are supported"
                    ),
                ),
                None,
            ),
        }
    }

    async fn bearer(
        &self,
        url: &str,
        target: &RemoteTarget,
        params: &BTreeMap<String, String>,
        credentials: Option<&Credentials>,
        accepted_token: &mut Option<String>,
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
            request =
                request.basic_auth(&credentials.login.user, Some(&credentials.login.password));
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
        *accepted_token = Some(token.to_string());
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
                Err(error) => no_answer(url, &error),
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
            Err(error) => no_answer(url, &error),
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

/// A GET of `url` that got no answer.
fn no_answer(url: &str, error: &reqwest::Error) -> Verdict {
    Verdict::fail(
        "Unreachable",
        format!("GET {url} failed: {}", error_chain(error)),
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

    /// The user guide's recipe (`ORAS_PUSH_PASS`, `ORAS_PULL_PASS`, no `ORAS_PASS`) was read as
    /// "no password" and reported `AuthReady=False`: the check is a pull, so it uses the pull
    /// password.
    #[test]
    fn the_user_guides_secret_serves_the_health_check() {
        let data: BTreeMap<String, ByteString> = [
            ("ORAS_USER", "me"),
            ("ORAS_PUSH_PASS", "write"),
            ("ORAS_PULL_PASS", "read"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect();
        let c = credentials_from_secret("Secret ns/oras-env", &data).unwrap();
        assert_eq!(c.login.user, "me");
        assert_eq!(c.login.password, "read");
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
        assert_eq!(
            (c.login.user.as_str(), c.login.password.as_str()),
            ("u", "p")
        );
        let c =
            credentials_from_secret("s", &data(&[("username", "u2"), ("password", "p2")])).unwrap();
        assert_eq!(c.login.user, "u2");
        let err = credentials_from_secret("Secret ns/s", &data(&[("username", "u")])).unwrap_err();
        assert!(err.to_string().contains("ORAS_PASS, password"), "{err}");
        assert!(err.to_string().starts_with("Secret ns/s"), "{err}");
        assert!(
            !format!("{c:?}").contains("p2"),
            "Debug must not print the password"
        );
    }
}
