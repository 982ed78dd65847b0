//! Credentials through the binary: environment variables, docker config, and the Bearer token
//! flow of a real registry configured for token auth.

mod common;

use base64::Engine as _;
use common::{agent, run, run_ok};
use oras_test_support::Registry;

#[test]
fn env_credentials_pick_the_push_and_pull_passwords() {
    let registry = Registry::start_with_basic_auth("alice", "s3cret");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f.txt"), "private").unwrap();
    let reference = format!("{}/auth/env:v1", registry.host());

    let anonymous =
        run(agent()
            .current_dir(work.path())
            .args(["push", &reference, "f.txt", "--plain-http"]));
    assert!(!anonymous.status.success());
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("ORAS_USER"));

    run_ok(
        agent()
            .current_dir(work.path())
            .env("ORAS_USER", "alice")
            .env("ORAS_PASS", "wrong")
            .env("ORAS_PUSH_PASS", "s3cret")
            .args(["push", &reference, "f.txt", "--plain-http"]),
    );
    let out = work.path().join("out");
    let wrong = run(agent()
        .env("ORAS_USER", "alice")
        .env("ORAS_PASS", "wrong")
        .args([
            "pull",
            &reference,
            "-o",
            out.to_str().unwrap(),
            "--plain-http",
        ]));
    assert!(
        !wrong.status.success(),
        "the pull password is ORAS_PASS here, and wrong"
    );
    run_ok(
        agent()
            .env("ORAS_USER", "alice")
            .env("ORAS_PASS", "wrong")
            .env("ORAS_PULL_PASS", "s3cret")
            .args([
                "pull",
                &reference,
                "-o",
                out.to_str().unwrap(),
                "--plain-http",
            ]),
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
        agent()
            .current_dir(work.path())
            .env("DOCKER_CONFIG", &config_dir)
            .args(["push", &reference, "f.txt", "--plain-http"]),
    );
    let out = work.path().join("out");
    run_ok(
        agent()
            .env("DOCKER_CONFIG", config_dir.join("config.json"))
            .args([
                "pull",
                &reference,
                "-o",
                out.to_str().unwrap(),
                "--plain-http",
            ]),
    );
    assert_eq!(
        std::fs::read_to_string(out.join("f.txt")).unwrap(),
        "via docker config"
    );
}
