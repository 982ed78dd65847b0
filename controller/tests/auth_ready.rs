//! The remote registry check against the real registry (Debian's docker-registry with htpasswd
//! basic auth): right credentials, wrong credentials, no credentials, an unreachable registry.

#[path = "support/remote.rs"]
mod remote;

use oras_cache_controller::registry_check::{CheckReport, Credentials};
use oras_test_support::{Registry, free_port};
use remote::{assert_not_auth_ready, credentials};

async fn check(address: String, credentials: Option<&Credentials>) -> CheckReport {
    remote::check(&remote::remote_target(address, None), credentials).await
}

#[tokio::test]
async fn right_password_is_auth_ready() {
    let registry = Registry::start_with_basic_auth("alice", "s3cret");
    let report = check(registry.host(), Some(&credentials("alice", "s3cret"))).await;
    assert!(report.reachable.ok, "{report:?}");
    assert!(report.auth.ok, "{report:?}");
    assert_eq!(report.auth.reason, "Authenticated");
}

#[tokio::test]
async fn wrong_password_is_not_auth_ready_with_a_reason() {
    let registry = Registry::start_with_basic_auth("alice", "s3cret");
    let report = check(registry.host(), Some(&credentials("alice", "wrong"))).await;
    assert!(
        report.reachable.ok,
        "a 401 still proves a registry answers: {report:?}"
    );
    assert_not_auth_ready(&report, "AuthenticationFailed", "Secret ns/creds");
    assert!(
        !report.auth.message.contains("wrong"),
        "the password must not leak"
    );
}

#[tokio::test]
async fn missing_credentials_are_reported_as_required() {
    let registry = Registry::start_with_basic_auth("alice", "s3cret");
    let report = check(registry.host(), None).await;
    assert_not_auth_ready(&report, "CredentialsRequired", "credentialsSecret");
}

#[tokio::test]
async fn an_anonymous_registry_needs_no_credentials() {
    let registry = Registry::start();
    let report = check(registry.host(), None).await;
    assert!(report.reachable.ok && report.auth.ok, "{report:?}");
    assert_eq!(report.auth.reason, "AnonymousAccess");
}

#[tokio::test]
async fn an_unreachable_registry_is_neither_ready_nor_auth_ready() {
    // A port nothing listens on: the registry was stopped.
    let mut registry = Registry::start_with_basic_auth("alice", "s3cret");
    registry.stop();
    let report = check(registry.host(), Some(&credentials("alice", "s3cret"))).await;
    assert!(!report.reachable.ok && !report.auth.ok, "{report:?}");
    assert_eq!(report.reachable.reason, "Unreachable");
    assert_eq!(report.auth.reason, "Unreachable");
    assert!(
        report.reachable.message.contains(&registry.host()),
        "{}",
        report.reachable.message
    );
    let port = free_port().unwrap();
    let report = check(format!("127.0.0.1:{port}"), None).await;
    assert_eq!(report.reachable.reason, "Unreachable");
}

#[tokio::test]
async fn a_web_server_that_is_not_a_registry_is_not_ready() {
    // An HTTP server without the distribution API answers 404 on /v2/.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum::Router::new()).await });
    let report = check(address.to_string(), None).await;
    assert!(!report.reachable.ok, "{report:?}");
    assert_eq!(report.reachable.reason, "NotARegistry");
    assert!(
        report.reachable.message.contains("404"),
        "{}",
        report.reachable.message
    );
}
