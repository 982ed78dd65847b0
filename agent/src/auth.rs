//! Registry credentials and authentication challenges.
//!
//! Credentials come, in this order, from the environment a Secret gives the agent by `envFrom`
//! (`ORAS_USER` with `ORAS_PUSH_PASS`/`ORAS_PULL_PASS`, falling back to `ORAS_PASS`, or
//! `username`/`password`: [`oras_cache_api::credentials::select`], the controller's rule too), then from a
//! docker `config.json` (`DOCKER_CONFIG`, a directory or the file itself, else
//! `~/.docker/config.json`), else the client is anonymous. The registry decides the scheme: a
//! `Basic` challenge gets the credentials directly, a `Bearer` challenge sends them to the token
//! realm (or asks anonymously) and uses the token it returns.

use base64::Engine as _;
use oras_cache_api::agent::ENV_DOCKER_CONFIG;
use oras_cache_api::credentials::{CredentialsError, select};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What a request is for; decides which password applies and the token scope.
pub use oras_cache_api::credentials::Operation;

/// A user name and password (`Debug` never shows the password).
pub use oras_cache_api::credentials::UserPassword as BasicCredentials;

/// The `Authorization` header of basic credentials.
pub trait BasicAuthHeader {
    /// The value of an `Authorization: Basic ...` header.
    fn header_value(&self) -> String;
}

impl BasicAuthHeader for BasicCredentials {
    fn header_value(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Where a client's credentials come from.
#[derive(Debug, Clone, Default)]
pub enum Credentials {
    /// No credentials: only anonymous access (and anonymous bearer tokens).
    #[default]
    Anonymous,
    /// Fixed credentials for every registry the client talks to.
    Basic(BasicCredentials),
    /// Looked up per registry host and operation from the environment and docker config.
    FromEnvironment,
    /// Looked up from the environment variables that start with this prefix (one Secret given
    /// by `envFrom` with `prefix`, as each artifact volume's is), then from the docker config.
    /// The unprefixed variables are not read: they may belong to another volume.
    FromPrefixedEnvironment(String),
}

/// A docker config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The environment holds half the credentials.
    #[error(
        "registry credentials in the environment{}: {source}",
        prefix_note(prefix)
    )]
    Environment {
        /// The prefix of the variables read (empty for the plain environment).
        prefix: String,
        /// What is missing.
        source: CredentialsError,
    },
    /// The file exists but is not readable JSON of the expected shape.
    #[error("docker config {path}: {reason}; fix or remove it, or set ORAS_USER and ORAS_PASS")]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Credentials {
    /// The credentials for `host` and `operation`, or `None` for anonymous access.
    pub fn resolve(
        &self,
        host: &str,
        operation: Operation,
    ) -> Result<Option<BasicCredentials>, AuthError> {
        match self {
            Credentials::Anonymous => Ok(None),
            Credentials::Basic(basic) => Ok(Some(basic.clone())),
            Credentials::FromEnvironment => Self::env_then_docker_config(host, operation, ""),
            Credentials::FromPrefixedEnvironment(prefix) => {
                Self::env_then_docker_config(host, operation, prefix)
            }
        }
    }

    fn env_then_docker_config(
        host: &str,
        operation: Operation,
        prefix: &str,
    ) -> Result<Option<BasicCredentials>, AuthError> {
        let var = |key: &str| std::env::var(format!("{prefix}{key}")).ok();
        let found = from_env_vars(operation, var).map_err(|source| AuthError::Environment {
            prefix: prefix.to_string(),
            source,
        })?;
        if let Some(basic) = found {
            return Ok(Some(basic));
        }
        match docker_config_path() {
            Some(path) if path.is_file() => from_docker_config(&path, host),
            _ => Ok(None),
        }
    }
}

/// How an error names the variables' prefix, if any.
fn prefix_note(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!(" (variables prefixed {prefix})")
    }
}

/// The credentials for `operation` in the environment `var` reads, by the contract's rule
/// ([`select`]); half of them (a user without a password) is an error, not anonymous access.
pub fn from_env_vars(
    operation: Operation,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<BasicCredentials>, CredentialsError> {
    select(operation, var)
}

/// `$DOCKER_CONFIG/config.json` (or `$DOCKER_CONFIG` when it names a file), else
/// `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(configured) = std::env::var_os(ENV_DOCKER_CONFIG) {
        let configured = PathBuf::from(configured);
        if configured.is_dir() {
            return Some(configured.join("config.json"));
        }
        return Some(configured);
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

#[derive(serde::Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, DockerAuthEntry>,
}

#[derive(serde::Deserialize)]
struct DockerAuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The `auths` entry of a docker config for `host`, matching `host`, `https://host`,
/// `http://host` and their `/v1/`-style suffixes.
pub fn from_docker_config(path: &Path, host: &str) -> Result<Option<BasicCredentials>, AuthError> {
    let bad = |reason: String| AuthError::DockerConfig {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let config: DockerConfig = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let entry = config.auths.iter().find(|(key, _)| {
        let key = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        key.split('/').next() == Some(host)
    });
    let Some((key, entry)) = entry else {
        return Ok(None);
    };
    if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(BasicCredentials {
            user: user.clone(),
            password: password.clone(),
        }));
    }
    let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| bad(format!("auths.{key}.auth is not base64: {e}")))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| bad(format!("auths.{key}.auth is not UTF-8 user:password")))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| bad(format!("auths.{key}.auth is not user:password")))?;
    Ok(Some(BasicCredentials {
        user: user.into(),
        password: password.into(),
    }))
}

/// The parsed `WWW-Authenticate` header, shared with the controller (see
/// [`oras_cache_api::challenge`]).
pub use oras_cache_api::challenge::Challenge;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_picks_its_password_before_the_shared_one() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let vars = env(&[
            ("ORAS_USER", "u"),
            ("ORAS_PASS", "shared"),
            ("ORAS_PUSH_PASS", "push"),
        ]);
        assert_eq!(
            from_env_vars(Operation::Push, vars)
                .unwrap()
                .unwrap()
                .password,
            "push"
        );
        assert_eq!(
            from_env_vars(Operation::Pull, vars)
                .unwrap()
                .unwrap()
                .password,
            "shared"
        );
        // Half the credentials is an error naming what is missing, never anonymous access.
        let error = from_env_vars(Operation::Pull, env(&[("ORAS_PASS", "p")])).unwrap_err();
        assert!(error.to_string().contains("add ORAS_USER"), "{error}");
        assert_eq!(from_env_vars(Operation::Pull, env(&[])), Ok(None));
        // A basic-auth Secret given by envFrom works as it does for the controller.
        let basic = env(&[("username", "u"), ("password", "p")]);
        assert_eq!(
            from_env_vars(Operation::Push, basic).unwrap().unwrap().user,
            "u"
        );
    }

    #[test]
    fn docker_config_entries_match_with_or_without_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"https://reg.example:5000/v1/":{{"auth":"{auth}"}},"other.example":{{"username":"bob","password":"pw"}}}}}}"#
            ),
        )
        .unwrap();
        let found = from_docker_config(&path, "reg.example:5000")
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.user.as_str(), found.password.as_str()),
            ("alice", "s3cret")
        );
        let found = from_docker_config(&path, "other.example").unwrap().unwrap();
        assert_eq!(found.user, "bob");
        assert!(
            from_docker_config(&path, "nowhere.example")
                .unwrap()
                .is_none()
        );
        std::fs::write(&path, "not json").unwrap();
        let error = from_docker_config(&path, "x").unwrap_err().to_string();
        assert!(error.contains("config.json"), "{error}");
    }
}
