//! Credentials through the binary: environment variables, docker config, and the Bearer token
//! flow of a real registry configured for token auth.

mod common;

use base64::Engine as _;
use common::{pull, push, run, run_failing, run_ok};
use oras_test_support::Registry;

#[test]
fn env_credentials_pick_the_push_and_pull_passwords() {
    let registry = Registry::start_with_basic_auth("alice", "s3cret");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f.txt"), "private").unwrap();
    let reference = format!("{}/auth/env:v1", registry.host());

    let message = run_failing(push(&reference, &["f.txt"]).current_dir(work.path()));
    assert!(message.contains("ORAS_USER"), "{message}");

    run_ok(
        push(&reference, &["f.txt"])
            .current_dir(work.path())
            .env("ORAS_USER", "alice")
            .env("ORAS_PASS", "wrong")
            .env("ORAS_PUSH_PASS", "s3cret"),
    );
    let out = work.path().join("out");
    let wrong = run(pull(&reference, &out)
        .env("ORAS_USER", "alice")
        .env("ORAS_PASS", "wrong"));
    assert!(
        !wrong.status.success(),
        "the pull password is ORAS_PASS here, and wrong"
    );
    run_ok(
        pull(&reference, &out)
            .env("ORAS_USER", "alice")
            .env("ORAS_PASS", "wrong")
            .env("ORAS_PULL_PASS", "s3cret"),
    );
    assert_eq!(
        std::fs::read_to_string(out.join("f.txt")).unwrap(),
        "private"
    );
}

#[test]
fn docker_config_credentials_are_used_for_their_registry() {
    let registry = Registry::start_with_basic_auth("bob", "pw");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f.txt"), "via docker config").unwrap();
    let config_dir = work.path().join("docker");
    std::fs::create_dir_all(&config_dir).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("bob:pw");
    std::fs::write(
        config_dir.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let reference = format!("{}/auth/docker:v1", registry.host());
    run_ok(
        push(&reference, &["f.txt"])
            .current_dir(work.path())
            .env("DOCKER_CONFIG", &config_dir),
    );
    let out = work.path().join("out");
    run_ok(pull(&reference, &out).env("DOCKER_CONFIG", config_dir.join("config.json")));
    assert_eq!(
        std::fs::read_to_string(out.join("f.txt")).unwrap(),
        "via docker config"
    );
}

#[test]
fn bearer_tokens_are_fetched_from_the_realm_with_the_credentials() {
    // The harness' token service (test-support), as a CNCF distribution deployment uses one.
    let tokens = oras_test_support::token::TokenServer::start("alice", "s3cret").unwrap();
    let registry = oras_test_support::Registry::builder()
        .token_server(&tokens, "oras-test-service")
        .start()
        .expect("start docker-registry with token auth (scripts/bootstrap.sh installs it)");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f.txt"), "behind a token").unwrap();
    let reference = format!("{}/auth/bearer:v1", registry.host());

    let stderr = run_failing(push(&reference, &["f.txt"]).current_dir(work.path()));
    assert!(
        stderr.contains("token") && stderr.contains("ORAS_USER"),
        "{stderr}"
    );

    run_ok(
        push(&reference, &["f.txt"])
            .current_dir(work.path())
            .env("ORAS_USER", "alice")
            .env("ORAS_PASS", "s3cret"),
    );
    let out = work.path().join("out");
    run_ok(
        pull(&reference, &out)
            .env("ORAS_USER", "alice")
            .env("ORAS_PASS", "s3cret"),
    );
    assert_eq!(
        std::fs::read_to_string(out.join("f.txt")).unwrap(),
        "behind a token"
    );
    let requests: Vec<(String, bool)> = tokens
        .requests()
        .into_iter()
        .map(|r| (r.scope, r.with_credentials))
        .collect();
    assert!(
        requests.contains(&("repository:auth/bearer:pull,push".to_string(), true)),
        "{requests:?}"
    );
    assert!(
        requests.contains(&("repository:auth/bearer:pull".to_string(), true)),
        "{requests:?}"
    );
}
