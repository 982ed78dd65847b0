//! The credentials a Secret may carry, and which of them serve a pull and a push.
//!
//! A Secret holds them under the original project's keys, `ORAS_USER` with `ORAS_PULL_PASS`,
//! `ORAS_PUSH_PASS` or `ORAS_PASS` (the user guide's recipe), or under the `username`/`password`
//! keys of a `kubernetes.io/basic-auth` Secret. The agent reads them from its environment (the
//! Secret reaches it by `envFrom`), the controller from the Secret's data; both pick with
//! [`select`], so a Secret that works for one works for the other.

use thiserror::Error;

use crate::agent::{ENV_PASS, ENV_PULL_PASS, ENV_PUSH_PASS, ENV_USER};

/// Key of a `kubernetes.io/basic-auth` Secret holding the user name.
pub const SECRET_USER: &str = "username";
/// Key of a `kubernetes.io/basic-auth` Secret holding the password.
pub const SECRET_PASSWORD: &str = "password";

/// What the credentials are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Reading manifests and blobs (also the controller's health check).
    Pull,
    /// Writing blobs and manifests (and reading, which uploads need too).
    Push,
}

impl Operation {
    /// The keys read for the user name, in order of preference.
    pub const USER_KEYS: [&'static str; 2] = [ENV_USER, SECRET_USER];

    /// The keys read for the password of this operation, in order of preference: the
    /// operation's own, then the shared one, then `password`.
    pub fn password_keys(self) -> [&'static str; 3] {
        match self {
            Operation::Pull => [ENV_PULL_PASS, ENV_PASS, SECRET_PASSWORD],
            Operation::Push => [ENV_PUSH_PASS, ENV_PASS, SECRET_PASSWORD],
        }
    }
}

/// A user name and a password (or token). `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct UserPassword {
    /// User name.
    pub user: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for UserPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPassword")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Credentials that are half there.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CredentialsError {
    /// A user name without any password for the operation.
    #[error(
        "a user name ({user_key}) is set but none of {keys} is: add the password (ORAS_PASS serves pull and push)"
    )]
    MissingPassword {
        /// The key the user name was found under.
        user_key: &'static str,
        /// The password keys looked for.
        keys: String,
    },
    /// A password without a user name.
    #[error("a password ({password_key}) is set but no user name: add ORAS_USER (or username)")]
    MissingUser {
        /// The key the password was found under.
        password_key: &'static str,
    },
}

/// Picks the credentials for `operation` from `lookup` (a Secret's keys, or an environment that
/// received them by `envFrom`). Blank values count as absent and a trailing newline (a Secret made
/// from a file) is dropped. `Ok(None)` means no credentials at all: anonymous access.
pub fn select(
    operation: Operation,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<UserPassword>, CredentialsError> {
    let find = |keys: &[&'static str]| {
        keys.iter().find_map(|key| {
            lookup(key)
                .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
                .filter(|v| !v.trim().is_empty())
                .map(|v| (*key, v))
        })
    };
    let password_keys = operation.password_keys();
    match (find(&Operation::USER_KEYS), find(&password_keys)) {
        (None, None) => Ok(None),
        (Some((_, user)), Some((_, password))) => Ok(Some(UserPassword { user, password })),
        (Some((user_key, _)), None) => Err(CredentialsError::MissingPassword {
            user_key,
            keys: password_keys.join(", "),
        }),
        (None, Some((password_key, _))) => Err(CredentialsError::MissingUser { password_key }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn secret(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn pick(operation: Operation, pairs: &[(&str, &str)]) -> Option<(String, String)> {
        select(operation, secret(pairs))
            .unwrap()
            .map(|c| (c.user, c.password))
    }

    /// The original user guide's recipe: `ORAS_USER` with separate pull and push passwords.
    #[test]
    fn each_operation_takes_its_own_password_first() {
        let guide = [
            ("ORAS_USER", "me"),
            ("ORAS_PULL_PASS", "read"),
            ("ORAS_PUSH_PASS", "write"),
        ];
        assert_eq!(
            pick(Operation::Pull, &guide),
            Some(("me".into(), "read".into()))
        );
        assert_eq!(
            pick(Operation::Push, &guide),
            Some(("me".into(), "write".into()))
        );
        let shared = [("ORAS_USER", "me"), ("ORAS_PASS", "both")];
        assert_eq!(
            pick(Operation::Push, &shared),
            Some(("me".into(), "both".into()))
        );
        let basic_auth = [("username", "u"), ("password", "p\n")];
        assert_eq!(
            pick(Operation::Pull, &basic_auth),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(pick(Operation::Pull, &[("other", "x")]), None);
        assert_eq!(
            pick(Operation::Pull, &[("ORAS_USER", " "), ("ORAS_PASS", "")]),
            None
        );
    }

    #[test]
    fn half_credentials_name_what_is_missing() {
        let error = select(
            Operation::Pull,
            secret(&[("ORAS_USER", "me"), ("ORAS_PUSH_PASS", "w")]),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("ORAS_PULL_PASS, ORAS_PASS, password"),
            "{message}"
        );
        let error = select(Operation::Push, secret(&[("ORAS_PASS", "p")])).unwrap_err();
        assert!(error.to_string().contains("add ORAS_USER"), "{error}");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let shown = format!(
            "{:?}",
            UserPassword {
                user: "u".into(),
                password: "s3cret".into()
            }
        );
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
