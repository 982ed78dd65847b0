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

/// A running token service on loopback, stopped when dropped.
pub struct TokenServer {
    server: Server,
    signer: Arc<Signer>,
    queries: Arc<Mutex<Vec<String>>>,
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
        let queries = Arc::new(Mutex::new(Vec::new()));
        let (serving, recording) = (signer.clone(), queries.clone());
        let server = Server::start(move |stream, _| {
            let Ok(request) = read_request(&stream, false) else {
                return;
            };
            let target = request.request_line.split(' ').nth(1).unwrap_or("");
            let query = target.split_once('?').map_or("", |(_, q)| q);
            recording.lock().unwrap().push(query.to_string());
            let _ = match serving.answer(query, request.header("authorization")) {
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
            queries,
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

    /// The raw query strings of every token request so far, oldest first.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
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
        let mut service = String::new();
        let mut access = Vec::new();
        for (name, value) in query.split('&').filter_map(|p| p.split_once('=')) {
            let value = percent_decode(value);
            match name {
                "service" => service = value,
                "scope" => access.extend(scope_access(&value)),
                _ => {}
            }
        }
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
