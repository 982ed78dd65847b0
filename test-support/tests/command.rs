//! `oras-test-registry`, the command shell and Python start registries with: one JSON line once
//! the registry answers, and a clean stop on SIGTERM or when its stdin pipe closes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use oras_test_support::probe_v2;

/// The command started with `flags`, stdin a pipe, and the JSON line it printed.
fn start(flags: &[&str]) -> (Child, serde_json::Value) {
    start_with_env(flags, &[])
}

/// [`start`] with more environment.
fn start_with_env(flags: &[&str], env: &[(&str, &str)]) -> (Child, serde_json::Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oras-test-registry"))
        .args(flags)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    (child, info)
}

fn address(info: &serde_json::Value) -> SocketAddr {
    info["address"].as_str().unwrap().parse().unwrap()
}

fn dir(info: &serde_json::Value) -> PathBuf {
    info["dir"].as_str().unwrap().into()
}

#[test]
fn the_command_prints_where_the_registry_answers_and_stops_when_stdin_closes() {
    let (mut child, info) = start(&["--user", "alice", "--password", "s3cret"]);
    assert_eq!(probe_v2(address(&info)), Some(401), "{info}");
    assert_eq!(info["pid"], child.id());
    assert!(info["caFile"].is_null(), "{info}");
    assert!(dir(&info).join("config.yml").exists());
    assert_eq!(info["registryBin"], oras_test_support::registry_bin());
    assert_eq!(
        info["registryVersion"],
        oras_test_support::registry_version().unwrap(),
        "the --version line of the registry that ran"
    );

    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert_eq!(probe_v2(address(&info)), None);
    assert!(!dir(&info).exists(), "its directory is removed");
}

#[test]
fn distribution_v3_runs_when_asked_for() {
    let distribution = oras_test_support::Distribution::V3;
    let (mut child, info) = start(&["--distribution", "v3"]);
    assert_eq!(probe_v2(address(&info)), Some(200), "{info}");
    assert_eq!(info["registryBin"], distribution.bin());
    assert_eq!(
        info["registryVersion"],
        distribution.version().unwrap(),
        "the --version line of the registry that ran"
    );
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_command_stops_on_sigterm_and_removes_its_storage() {
    let (mut child, info) = start(&["--tls"]);
    assert!(
        PathBuf::from(info["caFile"].as_str().unwrap()).exists(),
        "{info}"
    );
    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(!dir(&info).exists(), "its directory is removed");
}

#[test]
fn the_command_starts_a_mirror_from_flags() {
    let (_upstream, upstream_info) = start(&["--user", "alice", "--password", "s3cret"]);
    let upstream_url = upstream_info["url"].as_str().unwrap();
    // The password from the environment: it stays out of the process list.
    let (_mirror, info) = start_with_env(
        &["--mirror-of", upstream_url, "--upstream-user", "alice"],
        &[("ORAS_TEST_UPSTREAM_PASSWORD", "s3cret")],
    );
    let config = std::fs::read_to_string(dir(&info).join("config.yml")).unwrap();
    assert!(
        config.contains(&format!("remoteurl: {upstream_url}")),
        "{config}"
    );
    // The mirror answers anonymous clients itself.
    assert_eq!(probe_v2(address(&info)), Some(200));
}

#[test]
fn the_command_runs_the_token_service_a_token_registry_trusts() {
    let (_child, info) = start(&["--token-user", "alice", "--token-password", "s3cret"]);
    assert_eq!(probe_v2(address(&info)), Some(401), "{info}");
    let realm = info["tokenRealm"].as_str().unwrap();
    let config = std::fs::read_to_string(dir(&info).join("config.yml")).unwrap();
    assert!(config.contains(&format!("realm: {realm}")), "{config}");
}

#[test]
fn the_command_keeps_a_complete_access_log_in_the_file_it_is_given() {
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("upstream.log");
    let (mut child, info) = start(&["--access-log", "--log", log.to_str().unwrap()]);
    assert_eq!(probe_v2(address(&info)), Some(200));
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("\"GET /v2/ HTTP/1.0\" 200"), "{text}");
}
