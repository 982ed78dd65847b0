//! The distribution token-auth flow against the real registry: Debian's docker-registry is
//! started with `auth.token` pointing at test-support's token service, which issues ES256 JWTs
//! to alice/s3cret as a distribution token server does. The check must go 401 → token request
//! with basic credentials → `/v2/` with the bearer token.

#[path = "support/remote.rs"]
mod remote;

use oras_cache_controller::plan::RemoteTarget;
use oras_test_support::Registry;
use oras_test_support::token::TokenServer;
use remote::{assert_not_auth_ready, check, credentials};

const SERVICE: &str = "oras-cache-test";

/// docker-registry with token auth and the token service it trusts.
struct TokenRegistry {
    registry: Registry,
    tokens: TokenServer,
}

fn start() -> TokenRegistry {
    let tokens = TokenServer::start("alice", "s3cret").unwrap();
    let registry = Registry::builder()
        .token_server(&tokens, SERVICE)
        .start()
        .expect("start docker-registry with token auth (scripts/bootstrap.sh installs it)");
    TokenRegistry { registry, tokens }
}

fn target(registry: &TokenRegistry) -> RemoteTarget {
    remote::remote_target(registry.registry.host(), Some("workflow/results"))
}

#[tokio::test]
async fn the_token_flow_with_the_right_password_is_auth_ready() {
    let registry = start();
    let report = check(&target(&registry), Some(&credentials("alice", "s3cret"))).await;
    assert!(report.reachable.ok, "{report:?}");
    assert!(report.auth.ok, "{report:?}");
    assert_eq!(report.auth.reason, "Authenticated");
    assert!(
        report.auth.message.contains("token"),
        "{}",
        report.auth.message
    );
    let queries = registry.tokens.queries();
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
    let registry = start();
    let report = check(&target(&registry), Some(&credentials("alice", "wrong"))).await;
    assert!(report.reachable.ok, "{report:?}");
    assert_not_auth_ready(&report, "AuthenticationFailed", "token service");
}

#[tokio::test]
async fn the_token_flow_without_credentials_asks_for_them() {
    let registry = start();
    let report = check(&target(&registry), None).await;
    assert_not_auth_ready(&report, "CredentialsRequired", "credentialsSecret");
}
