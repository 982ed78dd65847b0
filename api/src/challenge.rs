//! The registry's authentication challenge, and where a client may send credentials.
//!
//! An OCI registry answers `401` with `WWW-Authenticate: Basic realm=".."` or
//! `Bearer realm="<token endpoint>",service="..",scope=".."` (the distribution token
//! specification). The agent and the controller both parse it here, and both apply
//! [`check_token_realm`] before they send anything to a token realm.
//!
//! Pure string handling: no networking, so the crate still builds for `wasm32-wasip1`.

use std::collections::BTreeMap;

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The auth scheme, lower case (`basic`, `bearer`).
    pub scheme: String,
    /// Parameters with lower-case names (`realm`, `service`, `scope`).
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// Parses `Scheme key="value", key2=value2`. Quoted values may hold commas and backslash
    /// escapes (a scope such as `repository:a/b:pull,push`). Returns `None` for an empty header or a quote that never closes.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = match header.split_once(char::is_whitespace) {
            Some((scheme, rest)) => (scheme, rest),
            None => (header, ""),
        };
        if scheme.is_empty() {
            return None;
        }
        let mut params = BTreeMap::new();
        let mut chars = rest.chars().peekable();
        loop {
            while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
                chars.next();
            }
            let key: String = chars
                .by_ref()
                .take_while(|c| *c != '=')
                .collect::<String>()
                .trim()
                .to_ascii_lowercase();
            if key.is_empty() {
                break;
            }
            let mut value = String::new();
            while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                // A quote that never closes is a broken header, not a value.
                if !closed {
                    return None;
                }
            } else {
                while let Some(c) = chars.peek() {
                    if *c == ',' {
                        break;
                    }
                    value.push(*c);
                    chars.next();
                }
                value = value.trim().to_string();
            }
            params.insert(key, value);
        }
        Some(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        })
    }

    /// The `realm` parameter, if any.
    pub fn realm(&self) -> Option<&str> {
        self.params.get("realm").map(String::as_str)
    }
}

/// A token realm the client must not contact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RealmError {
    /// A plain-HTTP realm named by a registry that is spoken to over HTTPS.
    #[error(
        "the registry is reached over HTTPS but names the plain-HTTP token realm {realm:?}; refusing to send anything there (credentials would travel in clear text): fix the registry's token realm to https"
    )]
    Insecure {
        /// The realm as the registry sent it.
        realm: String,
    },
    /// A realm that is not an `http://` or `https://` URL.
    #[error("the token realm {realm:?} is not an http(s) URL; refusing to use it")]
    NotHttp {
        /// The realm as the registry sent it.
        realm: String,
    },
}

/// Whether a client may ask `realm` for a token on behalf of a registry it speaks to over plain
/// HTTP (`registry_plain_http`) or HTTPS.
///
/// The rule: a realm must be `https://`, unless the registry itself is spoken to in plain HTTP
/// (then the credentials already travel in clear text to the registry, and a plain-HTTP realm
/// adds no exposure). It holds whether or not the client has credentials: a bearer token fetched
/// in clear text is itself a credential for the registry.
///
/// This is stricter than the clients it was compared with, which send the realm the basic
/// credentials whatever its scheme: oras-go (`registry/remote/auth/client.go`, `fetchBearerToken`
/// and `fetchDistributionToken`, commit 19db72b1), the distribution client docker builds on
/// (`internal/client/auth/session.go`, `fetchTokenWithBasicAuth`, commit 0d6b721d), and docker's
/// `staticCredentialStore.Basic`, which ignores the realm URL it is given (moby `registry/auth.go`).
pub fn check_token_realm(realm: &str, registry_plain_http: bool) -> Result<(), RealmError> {
    let scheme = realm
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("https") => Ok(()),
        Some("http") if registry_plain_http => Ok(()),
        Some("http") => Err(RealmError::Insecure {
            realm: realm.to_string(),
        }),
        _ => Err(RealmError::NotHttp {
            realm: realm.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_bearer_challenge_with_a_comma_inside_the_scope() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.realm(), Some("https://auth.example/token"));
        assert_eq!(c.params["service"], "registry.example");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = Challenge::parse(r#"Basic realm="a \"quoted\" realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], r#"a "quoted" realm"#);
        let c = Challenge::parse("BEARER Realm = https://x/t , service=s").unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.realm(), Some("https://x/t"));
        assert_eq!(c.params["service"], "s");
        assert!(Challenge::parse("  ").is_none());
        assert_eq!(Challenge::parse("Basic").unwrap().params.len(), 0);
        assert!(Challenge::parse("").is_none());
        assert!(Challenge::parse(r#"Bearer realm="unterminated"#).is_none());
    }

    /// The rule of issue 16, item 1; see [`check_token_realm`] for the clients it was compared
    /// with (oras-go `registry/remote/auth/client.go`, distribution
    /// `internal/client/auth/session.go`).
    #[test]
    fn a_plain_http_realm_is_refused_unless_the_registry_is_plain_http_too() {
        assert!(check_token_realm("https://auth.example/token", false).is_ok());
        assert!(check_token_realm("HTTPS://auth.example/token", false).is_ok());
        assert!(check_token_realm("https://auth.example/token", true).is_ok());
        assert!(check_token_realm("http://127.0.0.1:5001/token", true).is_ok());
        let error = check_token_realm("http://evil.example/token", false).unwrap_err();
        assert_eq!(
            error,
            RealmError::Insecure {
                realm: "http://evil.example/token".into()
            }
        );
        assert!(error.to_string().contains("http://evil.example/token"));
        assert!(matches!(
            check_token_realm("ftp://x/token", true),
            Err(RealmError::NotHttp { .. })
        ));
        assert!(matches!(
            check_token_realm("/token", true),
            Err(RealmError::NotHttp { .. })
        ));
    }
}
