//! TLS is the default: a registry serving HTTPS with a private CA is reached with
//! `ORAS_AGENT_CA_FILE`, refused without it, and `--plain-http` is never silently upgraded.

mod common;

use common::{agent, pull, run, run_failing, run_ok};
use oras_test_support::{Registry, RegistryOptions};

/// A registry serving HTTPS with a certificate for 127.0.0.1 signed by its own CA.
fn start_tls_registry() -> Registry {
    Registry::spawn_with(RegistryOptions {
        tls: true,
        ..Default::default()
    })
    .expect("start a TLS registry (openssl and docker-registry, scripts/bootstrap.sh)")
}

#[test]
fn https_with_a_private_ca_works_and_is_refused_without_it() {
    let registry = start_tls_registry();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f.txt"), "over tls").unwrap();
    let reference = format!("{}/tls/file:v1", registry.host());
    let ca = registry.ca_file().unwrap();

    let stderr = run_failing(
        agent()
            .current_dir(work.path())
            .args(["push", &reference, "f.txt"]),
    );
    assert!(
        stderr.contains("cannot reach the registry") && stderr.contains("certificate"),
        "{stderr}"
    );

    run_ok(
        agent()
            .current_dir(work.path())
            .env("ORAS_AGENT_CA_FILE", &ca)
            .args(["push", &reference, "f.txt"]),
    );
    let out = work.path().join("out");
    run_ok(agent().env("ORAS_AGENT_CA_FILE", &ca).args([
        "pull",
        &reference,
        "-o",
        out.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read_to_string(out.join("f.txt")).unwrap(),
        "over tls"
    );

    let plain = run(pull(&reference, &out).env("ORAS_AGENT_CA_FILE", &ca));
    assert!(
        !plain.status.success(),
        "plain HTTP to an HTTPS registry must fail"
    );
}
