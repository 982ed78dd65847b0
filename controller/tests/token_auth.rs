//! The distribution token-auth flow against the real registry: Debian's docker-registry is
//! started with `auth.token` (realm, service, issuer, root certificate), and the test runs the
//! token service it points to, issuing ES256 JWTs signed with the key of that certificate, as a
//! distribution token server does. The check must go 401 → token request with basic
//! credentials → `/v2/` with the bearer token.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use oras_cache_api::credentials::UserPassword;
use oras_cache_controller::plan::RemoteTarget;
use oras_cache_controller::registry_check::{Credentials, RegistryChecker};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;

const SERVICE: &str = "oras-cache-test";
const ISSUER: &str = "oras-cache-test-issuer";

/// The token service: issues tokens to alice/s3cret, records the queries it got.
#[derive(Clone)]
struct Issuer {
    key: Arc<EcdsaKeyPair>,
    cert_der: Vec<u8>,
    queries: Arc<Mutex<Vec<String>>>,
}

impl Issuer {
    fn token(&self, subject: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header =
            json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(&self.cert_der)]});
        let claims = json!({"iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + 300,
            "nbf": now - 10, "iat": now, "jti": format!("{now}-{subject}"), "access": []});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

async fn token(
    State(issuer): State<Issuer>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> impl IntoResponse {
    issuer
        .queries
        .lock()
        .unwrap()
        .push(query.unwrap_or_default());
    let basic = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    match basic.as_deref() {
        Some("alice:s3cret") => {
            let token = issuer.token("alice");
            let body = json!({"token": token, "expires_in": 300}).to_string();
            (StatusCode::OK, [("content-type", "application/json")], body).into_response()
        }
        _ => (StatusCode::UNAUTHORIZED, "bad credentials").into_response(),
    }
}

/// docker-registry with token auth, killed on drop.
struct TokenRegistry {
    child: Child,
    addr: SocketAddr,
    issuer: Issuer,
    _dir: tempfile::TempDir,
}

impl Drop for TokenRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start() -> TokenRegistry {
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec![ISSUER.to_string()])
        .unwrap()
        .self_signed(&key_pair)
        .unwrap();
    let key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &key_pair.serialize_der(),
        &SystemRandom::new(),
    )
    .unwrap();
    let issuer = Issuer {
        key: Arc::new(key),
        cert_der: cert.der().to_vec(),
        queries: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token_addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/token", axum::routing::get(token))
        .with_state(issuer.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("root.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    let port = oras_test_support::free_port().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let config = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n\
         http:\n  addr: {addr}\n  secret: token-test\n\
         auth:\n  token:\n    realm: http://{token_addr}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {cert}\n",
        storage = dir.path().join("storage").display(),
        cert = cert_path.display(),
    );
    let config_path = dir.path().join("config.yml");
    std::fs::write(&config_path, config).unwrap();
    let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
    let child = Command::new(
        std::env::var("ORAS_TEST_REGISTRY_BIN").unwrap_or_else(|_| "docker-registry".into()),
    )
    .arg("serve")
    .arg(&config_path)
    .stdin(Stdio::null())
    .stdout(log.try_clone().unwrap())
    .stderr(log)
    .spawn()
    .expect("start docker-registry (scripts/bootstrap.sh installs it)");
    let mut registry = TokenRegistry {
        child,
        addr,
        issuer,
        _dir: dir,
    };
    // Wait until the registry answers (it challenges with 401); a liveness bound, not a timing check.
    let deadline = Instant::now() + Duration::from_secs(30);
    while oras_test_support::probe_v2(addr).is_none() {
        assert!(
            registry.child.try_wait().unwrap().is_none(),
            "docker-registry exited"
        );
        assert!(Instant::now() < deadline, "docker-registry did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    registry
}

fn target(registry: &TokenRegistry) -> RemoteTarget {
    RemoteTarget {
        address: registry.addr.to_string(),
        plain_http: true,
        credentials_secret: Some("creds".into()),
        repository: Some("workflow/results".into()),
    }
}

fn credentials(password: &str) -> Credentials {
    Credentials {
        login: UserPassword {
            user: "alice".into(),
            password: password.into(),
        },
        source: "Secret ns/creds".into(),
    }
}

#[tokio::test]
async fn the_token_flow_with_the_right_password_is_auth_ready() {
    let registry = start().await;
    let checker = RegistryChecker::new(Duration::from_secs(5)).unwrap();
    let report = checker
        .check(&target(&registry), Some(&credentials("s3cret")))
        .await;
    assert!(report.reachable.ok, "{report:?}");
    assert!(report.auth.ok, "{report:?}");
    assert_eq!(report.auth.reason, "Authenticated");
    assert!(
        report.auth.message.contains("token"),
        "{}",
        report.auth.message
    );
    let queries = registry.issuer.queries.lock().unwrap().clone();
    assert_eq!(queries.len(), 1, "{queries:?}");
    assert!(
        queries[0].contains(&format!("service={SERVICE}")),
        "{queries:?}"
    );
    // The base challenge names no scope, so the configured repository is asked for.
    assert!(
        queries[0].contains("scope=repository%3Aworkflow%2Fresults%3Apull"),
        "{queries:?}"
    );
}

#[tokio::test]
async fn the_token_flow_with_a_wrong_password_is_not_auth_ready() {
    let registry = start().await;
    let checker = RegistryChecker::new(Duration::from_secs(5)).unwrap();
    let report = checker
        .check(&target(&registry), Some(&credentials("wrong")))
        .await;
    assert!(report.reachable.ok, "{report:?}");
    assert!(!report.auth.ok);
    assert_eq!(report.auth.reason, "AuthenticationFailed");
    assert!(
        report.auth.message.contains("token service"),
        "{}",
        report.auth.message
    );
}

#[tokio::test]
async fn the_token_flow_without_credentials_asks_for_them() {
    let registry = start().await;
    let checker = RegistryChecker::new(Duration::from_secs(5)).unwrap();
    let report = checker.check(&target(&registry), None).await;
    assert!(!report.auth.ok);
    assert_eq!(report.auth.reason, "CredentialsRequired");
}
