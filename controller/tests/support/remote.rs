//! The controller's remote-registry check as the integration tests call it (auth_ready.rs,
//! token_auth.rs). Included by path, not through `support/mod.rs`, so that those test binaries
//! do not run schema_check's unit tests again.

use std::time::Duration;

use oras_cache_api::credentials::UserPassword;
use oras_cache_controller::plan::RemoteTarget;
use oras_cache_controller::registry_check::{CheckReport, Credentials, RegistryChecker};

/// A remote registry at `address` (plain HTTP) whose credentials come from Secret `creds`.
pub fn remote_target(address: String, repository: Option<&str>) -> RemoteTarget {
    RemoteTarget {
        address,
        plain_http: true,
        credentials_secret: Some("creds".into()),
        repository: repository.map(str::to_string),
    }
}

/// Credentials as read from Secret `ns/creds`.
pub fn credentials(user: &str, password: &str) -> Credentials {
    Credentials {
        login: UserPassword {
            user: user.into(),
            password: password.into(),
        },
        source: "Secret ns/creds".into(),
    }
}

/// The controller's check of `target`, as the reconciler runs it.
pub async fn check(target: &RemoteTarget, credentials: Option<&Credentials>) -> CheckReport {
    let checker = RegistryChecker::new(Duration::from_secs(5)).unwrap();
    checker.check(target, credentials).await
}

/// Asserts that `report` is not AuthReady for `reason`, with a message that names `hint`.
pub fn assert_not_auth_ready(report: &CheckReport, reason: &str, hint: &str) {
    assert!(!report.auth.ok, "{report:?}");
    assert_eq!(report.auth.reason, reason, "{report:?}");
    assert!(
        report.auth.message.contains(hint),
        "{}",
        report.auth.message
    );
}
