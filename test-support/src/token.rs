//! A token service for registries with token auth, as a distribution token server answers
//! (docs/spec/auth/token.md and docs/spec/auth/jwt.md of github.com/distribution/distribution):
//! `GET <realm>?service=…&scope=repository:<name>:<actions>` with basic credentials returns
//! `{"token": …}`, an ES256 JWT whose `access` claim grants the scopes asked for. The registry
//! trusts it through [`crate::RegistryOptions::token_server`]: the JWT header carries the
//! signing certificate (`x5c`), which is the registry's `rootcertbundle`.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

use crate::hostile::{Server, read_request, respond};
use crate::{BasicAuth, RegistryOptions};

/// The `iss` of the tokens this service issues.
pub const ISSUER: &str = "oras-test-token-issuer";

/// Signs tokens; shared by the connection threads.
struct Signer {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    cert_pem: String,
    login: BasicAuth,
}

/// One token request as the service received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The raw query string.
    pub query: String,
    /// The `scope` parameters, decoded, separated by spaces.
    pub scope: String,
    /// Whether the request carried an `Authorization` header.
    pub with_credentials: bool,
}

/// A running token service on loopback, stopped when dropped.
pub struct TokenServer {
    server: Server,
    signer: Arc<Signer>,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
}

impl TokenServer {
    /// Starts a service that issues tokens to `user` with `password` and refuses anyone else.
    pub fn start(user: &str, password: &str) -> std::io::Result<TokenServer> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(std::io::Error::other)?;
        let cert = rcgen::CertificateParams::new(vec![ISSUER.to_string()])
            .and_then(|params| params.self_signed(&key_pair))
            .map_err(std::io::Error::other)?;
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &key_pair.serialize_der(),
            &SystemRandom::new(),
        )
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        let signer = Arc::new(Signer {
            key,
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            login: BasicAuth {
                user: user.into(),
                password: password.into(),
            },
        });
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (serving, recording) = (signer.clone(), requests.clone());
        let server = Server::start(move |stream, _| {
            let Ok(request) = read_request(&stream, false) else {
                return;
            };
            let target = request.request_line.split(' ').nth(1).unwrap_or("");
            let query = target.split_once('?').map_or("", |(_, q)| q);
            let authorization = request.header("authorization");
            recording.lock().unwrap().push(TokenRequest {
                query: query.to_string(),
                scope: query_values(query, "scope").join(" "),
                with_credentials: authorization.is_some(),
            });
            let _ = match serving.answer(query, authorization) {
                Some(body) => respond(
                    &stream,
                    "200 OK",
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                ),
                None => respond(&stream, "401 Unauthorized", &[], b"bad credentials"),
            };
        })?;
        Ok(TokenServer {
            server,
            signer,
            requests,
        })
    }

    /// `http://127.0.0.1:<port>/token`, the realm a registry names in its challenge.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.server.addr)
    }

    /// The PEM of the certificate that signs the tokens.
    pub fn root_cert_pem(&self) -> &str {
        &self.signer.cert_pem
    }

    /// A token for `service` granting `scope` (`repository:<name>:<actions>`), as the service
    /// would issue it to its user: for a test's own requests.
    pub fn issue(&self, service: &str, scope: &str) -> String {
        self.signer.token(service, scope_access(scope))
    }

    /// Every token request so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// The raw query strings of every token request so far, oldest first.
    pub fn queries(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.query).collect()
    }
}

impl RegistryOptions {
    /// Requires tokens from `server` for `service` (token auth a client can complete).
    pub fn token_server(self, server: &TokenServer, service: &str) -> Self {
        self.token(&server.realm(), service)
            .token_trust(ISSUER, server.root_cert_pem())
    }
}

impl Signer {
    /// The JSON answer to a token request with `query` and `authorization`, or `None` when the
    /// credentials are not the service's.
    fn answer(&self, query: &str, authorization: Option<&str>) -> Option<String> {
        let login = authorization
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())?;
        if login != format!("{}:{}", self.login.user, self.login.password) {
            return None;
        }
        let service = query_values(query, "service").join(" ");
        let access = query_values(query, "scope")
            .iter()
            .flat_map(|scope| scope_access(scope))
            .collect();
        let token = self.token(&service, access);
        Some(
            serde_json::json!({"token": token, "access_token": token, "expires_in": 300})
                .to_string(),
        )
    }

    fn token(&self, audience: &str, access: Vec<serde_json::Value>) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(&self.cert_der)]});
        let claims = serde_json::json!({"iss": ISSUER, "sub": self.login.user, "aud": audience,
            "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()),
            "access": access});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("sign a token");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// The `access` entry a scope (`repository:<name>:<actions>`, space-separated scopes allowed)
/// asks for; everything asked is granted.
fn scope_access(scope: &str) -> Vec<serde_json::Value> {
    scope
        .split(' ')
        .filter_map(|one| {
            let (kind, rest) = one.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let actions: Vec<&str> = actions.split(',').collect();
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
        })
        .collect()
}

/// The decoded values of parameter `name` in `query`, in order.
fn query_values(query: &str, name: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| percent_decode(value))
        .collect()
}

/// `%XX` and `+` of a query value decoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded_in_order() {
        let query = "service=reg&scope=repository%3Aa%3Apull&scope=repository%3Ab%3Apush";
        assert_eq!(
            query_values(query, "scope"),
            ["repository:a:pull", "repository:b:push"]
        );
        assert_eq!(query_values(query, "service"), ["reg"]);
    }

    #[test]
    fn a_scope_becomes_the_access_it_asks_for() {
        assert_eq!(
            percent_decode("repository%3Aworkflow%2Fresults%3Apull%2Cpush"),
            "repository:workflow/results:pull,push"
        );
        assert_eq!(
            scope_access("repository:workflow/results:pull,push"),
            [
                serde_json::json!({"type": "repository", "name": "workflow/results",
                "actions": ["pull", "push"]})
            ]
        );
    }
}
