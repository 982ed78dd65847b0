//! `AuthReady` of a mirror: the controller reads the mirror's repository on the upstream
//! (`GET /v2/<repository>/tags/list`) with the authorization its `/v2/` check obtained, as the
//! OCI connector's health check does. Against real `docker-registry` processes: a token-auth
//! upstream (the ghcr.io and Docker Hub way) and an htpasswd one.

use std::time::Duration;

use oras_cache_api::credentials::UserPassword;
use oras_cache_controller::plan::RemoteTarget;
use oras_cache_controller::registry_check::{CheckReport, Credentials, RegistryChecker};
use oras_test_support::Registry;
use oras_test_support::http::Client;
use oras_test_support::token::TokenServer;

const SERVICE: &str = "upstream";
const REPOSITORY: &str = "org/app";

fn upstream_target(address: String, repository: &str) -> RemoteTarget {
    RemoteTarget {
        address,
        plain_http: true,
        credentials_secret: Some("upstream-creds".into()),
        repository: Some(repository.into()),
    }
}

fn login(user: &str, password: &str) -> Credentials {
    Credentials {
        login: UserPassword {
            user: user.into(),
            password: password.into(),
        },
        source: "Secret ns/upstream-creds".into(),
    }
}

async fn check(target: &RemoteTarget, credentials: &Credentials) -> CheckReport {
    RegistryChecker::new(Duration::from_secs(5))
        .unwrap()
        .check_repository(target, Some(credentials))
        .await
}

/// A token-auth upstream holding `org/app`.
fn token_upstream() -> (Registry, TokenServer) {
    let tokens = TokenServer::start("alice", "s3cret").unwrap();
    let registry = Registry::builder()
        .token_server(&tokens, SERVICE)
        .start()
        .expect("start docker-registry with token auth");
    Client::new(registry.addr())
        .with_bearer(&tokens.issue(SERVICE, &format!("repository:{REPOSITORY}:pull,push")))
        .push_artifact(REPOSITORY, "v1", &[("a.txt", b"a")])
        .unwrap();
    (registry, tokens)
}

#[tokio::test]
async fn a_token_upstream_is_auth_ready_when_the_repository_reads_with_its_token() {
    let (registry, tokens) = token_upstream();
    let report = check(
        &upstream_target(registry.host(), REPOSITORY),
        &login("alice", "s3cret"),
    )
    .await;
    assert!(report.auth.ok, "{report:?}");
    assert_eq!(report.auth.reason, "Authenticated");
    assert!(
        report
            .auth
            .message
            .contains("/v2/org/app/tags/list answered 200"),
        "{}",
        report.auth.message
    );
    // One token, scoped to the repository, serves both the /v2/ check and the read.
    let requests = tokens.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].scope, "repository:org/app:pull");
    assert!(requests[0].with_credentials);
}

#[tokio::test]
async fn a_repository_the_upstream_lacks_is_not_auth_ready() {
    let (registry, _tokens) = token_upstream();
    // The token is asked for the missing repository's scope; the registry has no such name.
    let mut target = upstream_target(registry.host(), REPOSITORY);
    let report = check(&target, &login("alice", "s3cret")).await;
    assert!(report.auth.ok, "{report:?}");
    target.repository = Some("org/missing".into());
    let report = check(&target, &login("alice", "s3cret")).await;
    assert!(!report.auth.ok, "{report:?}");
    assert_eq!(report.auth.reason, "RepositoryNotFound", "{report:?}");
    assert!(report.auth.message.contains("org/missing"), "{report:?}");
}

#[tokio::test]
async fn an_htpasswd_upstream_reads_the_repository_with_basic_credentials() {
    let registry = Registry::start_with_basic_auth("bob", "pw");
    Client::new(registry.addr())
        .with_basic_auth(registry.auth().unwrap())
        .push_artifact(REPOSITORY, "v1", &[("a.txt", b"a")])
        .unwrap();
    let report = check(
        &upstream_target(registry.host(), REPOSITORY),
        &login("bob", "pw"),
    )
    .await;
    assert!(report.auth.ok, "{report:?}");
    let wrong = check(
        &upstream_target(registry.host(), REPOSITORY),
        &login("bob", "nope"),
    )
    .await;
    assert_eq!(wrong.auth.reason, "AuthenticationFailed", "{wrong:?}");
    let missing = check(
        &upstream_target(registry.host(), "org/missing"),
        &login("bob", "pw"),
    )
    .await;
    assert_eq!(missing.auth.reason, "RepositoryNotFound", "{missing:?}");
}
