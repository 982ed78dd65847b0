//! Issue 16: what a hostile registry, a stalled network or a careless artifact can do. Each test
//! failed on the agent before the issue. The real registry serves what it can show (a TLS
//! registry naming a token realm, artifacts with crafted layers); the fakes of
//! `oras_test_support::hostile` serve what no real registry does (stalls, a realm that records).

mod common;

use common::{
    agent, directory, init, pull, push, push_crafted, run, run_failing, run_ok, stderr, targz,
    titled, tree, write_noise_file,
};
use oras_agent::Digest;
use oras_agent::manifest::{Descriptor, ImageManifest};
use oras_cache_api::media_types as mt;
use oras_test_support::hostile::{BlobBehaviour, FakeRegistry, RecordingServer, UploadBehaviour};
use oras_test_support::{Registry, RegistryOptions, TokenAuth};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

fn descriptor(
    annotations: BTreeMap<String, String>,
    media_type: &str,
    blob: &[u8],
    digest: Digest,
) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest,
        size: blob.len() as u64,
        annotations,
        artifact_type: None,
    }
}

fn artifact(layers: Vec<Descriptor>) -> Vec<u8> {
    ImageManifest::artifact(mt::DEFAULT_ARTIFACT_TYPE, layers, BTreeMap::new()).to_bytes()
}

/// Everything under `dir`, which a failed pull must not even have created.
fn contents(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    let mut found: Vec<String> = tree(dir).into_keys().collect();
    found.insert(0, format!("{} itself", dir.display()));
    found
}

// ---- 1. Credentials never go in clear text ------------------------------------------------

/// A real registry over HTTPS with token auth whose realm is plain HTTP on another loopback
/// listener: the pull fails naming the realm, and the realm receives nothing (no request, so no
/// `Authorization` and no password). The rule is `oras_cache_api::challenge::check_token_realm`;
/// oras-go (`registry/remote/auth/client.go`, `fetchDistributionToken`) and the distribution
/// client (`internal/client/auth/session.go`) would have sent the credentials there.
#[test]
fn an_https_registry_naming_a_plain_http_realm_gets_no_credentials_sent_there() {
    let realm = RecordingServer::start("200 OK", r#"{"token":"t"}"#).unwrap();
    let realm_url = format!("http://{}/token", realm.host());
    let registry = Registry::spawn_with(RegistryOptions {
        tls: true,
        token: Some(TokenAuth {
            realm: realm_url.clone(),
            service: "oras-hardening".into(),
        }),
        ..Default::default()
    })
    .expect("start a TLS registry with token auth");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let reference = format!("{}/hardening/realm:v1", registry.host());
    let output = run(agent()
        .env("ORAS_AGENT_CA_FILE", registry.ca_file().unwrap())
        .env("ORAS_USER", "alice")
        .env("ORAS_PASS", "s3cret-in-clear")
        .args(["pull", &reference, "-o", out.to_str().unwrap()]));
    assert!(!output.status.success(), "the pull must fail");
    let message = stderr(&output);
    assert!(
        message.contains(&realm_url) && message.contains("plain-HTTP"),
        "the message names the realm: {message}"
    );
    let received = realm.received();
    for request in &received {
        assert!(
            request.header("authorization").is_none(),
            "credentials reached the plain-HTTP realm: {}",
            request.request_line
        );
        let raw = String::from_utf8_lossy(&request.raw);
        assert!(!raw.contains("s3cret"), "{raw}");
    }
    assert!(received.is_empty(), "the realm was contacted: {received:?}");
    assert_nothing_written(&out);
}

// ---- 2. Nothing waits for ever ----------------------------------------------------------

/// A real registry whose upload `Location`s point at `elsewhere` (`http://host:port`): the
/// registry's `http.host` setting is the base of every address it builds, before the request's
/// own host and `X-Forwarded-Proto` (distribution `registry/handlers/app.go`, `NewApp` and
/// `context`, commit 0d6b721d; the same in 2.8), which is also how a registry behind a
/// TLS-terminating proxy ends up naming `http://` addresses.
fn registry_sending_uploads_to(elsewhere: &str, options: RegistryOptions) -> Registry {
    options
        .env("REGISTRY_HTTP_HOST", elsewhere)
        .start()
        .expect("start a registry whose upload Locations name another origin")
}

/// Asserts that nothing `server` received carries credentials: no `Authorization` header, no
/// password, no token.
fn assert_no_credentials(server: &RecordingServer, secrets: &[&str]) {
    for request in server.received() {
        assert!(
            request.header("authorization").is_none(),
            "credentials reached another origin: {} with {:?}",
            request.request_line,
            request.header("authorization")
        );
        let raw = String::from_utf8_lossy(&request.raw);
        for secret in secrets {
            assert!(
                !raw.contains(secret),
                "{secret} reached another origin: {raw}"
            );
        }
    }
}

/// An HTTPS registry with htpasswd that answers the upload start with a plain-HTTP `Location`
/// on another listener: the push is refused before the upload is sent anywhere, naming the
/// downgrade and the fix, and the other listener receives nothing. The agent sent the Basic
/// credentials there in clear text before (oras-go and docker look credentials up by the
/// request's own host: a Location elsewhere gets none).
#[test]
fn an_upload_location_downgraded_to_plain_http_is_refused_and_receives_nothing() {
    let elsewhere = RecordingServer::start("201 Created", "").unwrap();
    let registry = registry_sending_uploads_to(
        &format!("http://{}", elsewhere.host()),
        RegistryOptions::default()
            .tls()
            .basic_auth("alice", "s3cret-basic"),
    );
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f.txt"), "not for another host").unwrap();
    let reference = format!("{}/hardening/location:v1", registry.host());
    let message = run_failing(
        agent()
            .current_dir(work.path())
            .env("ORAS_AGENT_CA_FILE", registry.ca_file().unwrap())
            .env("ORAS_USER", "alice")
            .env("ORAS_PASS", "s3cret-basic")
            .args(["push", &reference, "f.txt"]),
    );
    assert_no_credentials(&elsewhere, &["s3cret-basic", "YWxpY2U6"]);
    assert!(
        elsewhere.received().is_empty(),
        "{:?}",
        elsewhere.received()
    );
    assert!(
        message.contains(&format!(
            "http://{}/v2/hardening/location/blobs/uploads/",
            elsewhere.host()
        )) && message.contains("plain-HTTP")
            && message.contains("http.host"),
        "the message names the address and the fix: {message}"
    );
    assert!(
        !message.contains("_state"),
        "the upload's state stays out of the log: {message}"
    );
}

/// A plain-HTTP registry (htpasswd, then token auth) whose upload `Location` names another
/// origin that asks for credentials: the upload goes there without the registry's Basic
/// credentials or its Bearer token, and the push fails naming both origins.
#[test]
fn an_upload_location_on_another_origin_gets_neither_basic_credentials_nor_a_bearer_token() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f.txt"), "not for another host").unwrap();

    let elsewhere = RecordingServer::start("401 Unauthorized", "{}").unwrap();
    let registry = registry_sending_uploads_to(
        &format!("http://{}", elsewhere.host()),
        RegistryOptions::default().basic_auth("alice", "s3cret-basic"),
    );
    let reference = format!("{}/hardening/basic:v1", registry.host());
    let message = run_failing(
        push(&reference, &["f.txt"])
            .current_dir(work.path())
            .env("ORAS_USER", "alice")
            .env("ORAS_PASS", "s3cret-basic"),
    );
    assert!(
        !elsewhere.received().is_empty(),
        "the upload went to its Location"
    );
    assert_no_credentials(&elsewhere, &["s3cret-basic", "YWxpY2U6"]);
    assert!(
        message.contains("another origin")
            && message.contains(&registry.host())
            && message.contains(&elsewhere.host()),
        "{message}"
    );

    let tokens = oras_test_support::token::TokenServer::start("alice", "s3cret-token").unwrap();
    let elsewhere = RecordingServer::start("401 Unauthorized", "{}").unwrap();
    let registry = registry_sending_uploads_to(
        &format!("http://{}", elsewhere.host()),
        RegistryOptions::default().token_server(&tokens, "oras-hardening"),
    );
    let reference = format!("{}/hardening/bearer:v1", registry.host());
    let message = run_failing(
        push(&reference, &["f.txt"])
            .current_dir(work.path())
            .env("ORAS_USER", "alice")
            .env("ORAS_PASS", "s3cret-token"),
    );
    assert!(
        !elsewhere.received().is_empty(),
        "the upload went to its Location"
    );
    assert_no_credentials(&elsewhere, &["s3cret-token", "Bearer"]);
    assert!(message.contains("another origin"), "{message}");
    assert!(
        tokens.requests().iter().any(|r| r.with_credentials),
        "the registry's own challenge was answered with a token"
    );
}

/// A fake registry serving one file layer whose blob behaves as `behaviour`.
fn stalling_registry(behaviour: BlobBehaviour, blob: &[u8]) -> (FakeRegistry, Digest) {
    let digest = Digest::of_bytes(blob);
    let manifest = artifact(vec![descriptor(
        titled("stalled.bin"),
        mt::DEFAULT_FILE_LAYER,
        blob,
        digest.clone(),
    )]);
    let config = b"{}".to_vec();
    let blobs = HashMap::from([
        (digest.to_string(), behaviour),
        (
            Digest::of_bytes(&config).to_string(),
            BlobBehaviour::Serve(config),
        ),
    ]);
    (
        FakeRegistry::start(manifest, mt::OCI_MANIFEST, blobs).unwrap(),
        digest,
    )
}

/// [`stalling_registry`] sending the blob a byte `every` so often.
fn trickling_registry(blob: Vec<u8>, every: Duration) -> (FakeRegistry, Digest) {
    let digest_of = blob.clone();
    stalling_registry(BlobBehaviour::Trickle { bytes: blob, every }, &digest_of)
}

const READ_TIMEOUT_SECS: u64 = 1;
const ATTEMPTS: u64 = 2;

/// Runs a pull against `registry` with a 1 s read deadline, 2 attempts and a 100 B/s minimum
/// rate, and checks that it ends non-zero naming the host, the blob and the time waited, within
/// what those settings allow (measured here; the bound is generous: it only proves the pull
/// ended because of the settings, not how fast the machine is).
fn assert_pull_stalls(registry: &FakeRegistry, digest: &Digest) {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let reference = format!("{}/hardening/stall:v1", registry.host());
    let (message, elapsed) = run_to_failure(pull(&reference, &out).args(stall_flags()));
    assert!(
        message.contains("stalled")
            && message.contains(&registry.host())
            && message.contains(digest.as_str())
            && message.contains("s waited"),
        "{message}"
    );
    // Per attempt: the read deadline (or one rate window, which a read can overrun by one
    // pause) plus a backoff under 1 s; stalls in headers and body share the attempts. The slack
    // is for a loaded machine: the bound shows the settings ended the pull, not its speed.
    let bound = Duration::from_secs(ATTEMPTS * (READ_TIMEOUT_SECS + 2) + 15);
    assert!(
        elapsed < bound,
        "took {elapsed:?}, bound {bound:?}: {message}"
    );
    let attempts = registry
        .blob_requests()
        .iter()
        .filter(|d| **d == digest.as_str())
        .count() as u64;
    assert!(
        (1..=ATTEMPTS).contains(&attempts),
        "{:?}",
        registry.blob_requests()
    );
    assert_nothing_written(&out);
}

/// Waits for `child`; a child still running after `limit` is killed so that a hang fails the
/// test instead of hanging it (the test's assertions are on the measured time, not this).
fn wait_or_kill(mut child: Child, limit: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Checks that nothing is under `out`, which a failed pull must not even have created.
fn assert_nothing_written(out: &Path) {
    let left = contents(out);
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Pulls `reference` (with `flags`) into a fresh directory, expecting a refusal that writes
/// nothing there; returns the message.
fn pull_refused(reference: &str, flags: &[&str]) -> String {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let message = run_failing(pull(reference, &out).args(flags));
    assert_nothing_written(&out);
    message
}

/// The network flags of the stall tests: a 1 s read deadline, 2 attempts, 100 B/s at least.
fn stall_flags() -> [String; 3] {
    [
        format!("--read-timeout={READ_TIMEOUT_SECS}"),
        format!("--attempts={ATTEMPTS}"),
        "--min-rate=100".into(),
    ]
}

/// Runs `command`, which must end by itself with an error: a run still going after two minutes
/// is killed and fails the test. Returns its stderr and how long it ran.
fn run_to_failure(command: &mut std::process::Command) -> (String, Duration) {
    let started = Instant::now();
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_or_kill(child, Duration::from_secs(120));
    let elapsed = started.elapsed();
    let message = stderr(&output);
    assert!(!output.status.success(), "{message}");
    assert!(
        output.status.code().is_some(),
        "killed by the test: {message}"
    );
    (message, elapsed)
}

/// Polls until `ready`, failing the test when `child` ended first or a minute passed.
fn wait_while_running(child: &mut Child, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} never happened"
        );
        assert!(child.try_wait().unwrap().is_none(), "ended before {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGTERM to `child` and checks it ends with 128 + SIGTERM, as the default action would.
fn terminate(child: Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = wait_or_kill(child, Duration::from_secs(60));
    assert_eq!(
        output.status.code(),
        Some(128 + libc::SIGTERM),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_registry_that_accepts_and_never_answers_ends_the_pull_with_the_stall() {
    let blob = b"never sent".to_vec();
    let (registry, digest) = stalling_registry(BlobBehaviour::Silent, &blob);
    assert_pull_stalls(&registry, &digest);
}

#[test]
fn a_blob_sent_a_byte_every_few_hundred_ms_ends_the_pull_below_the_minimum_rate() {
    // Under the read deadline, so only the minimum rate can catch it.
    let (registry, digest) = trickling_registry(vec![b'x'; 200], Duration::from_millis(300));
    assert_pull_stalls(&registry, &digest);
}

#[test]
fn a_blob_whose_headers_come_and_body_never_does_ends_the_pull() {
    let blob = vec![b'y'; 4096];
    let (registry, digest) = stalling_registry(
        BlobBehaviour::HeadersOnly {
            len: blob.len() as u64,
        },
        &blob,
    );
    assert_pull_stalls(&registry, &digest);
}

/// The push side: a registry that takes an upload a byte at a time ends the push (the sidecar's
/// case) within the deadline and attempts, naming host and blob; an accepting fake takes it.
#[test]
fn a_registry_that_takes_an_upload_a_byte_at_a_time_ends_the_push() {
    let work = tempfile::tempdir().unwrap();
    // Larger than what loopback socket buffers absorb, so that the writes block.
    let big: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(work.path().join("big.bin"), &big).unwrap();
    let digest = Digest::of_bytes(&big);

    let accepting = FakeRegistry::start_with_uploads(
        b"{}".to_vec(),
        mt::OCI_MANIFEST,
        HashMap::new(),
        UploadBehaviour::Accept,
    )
    .unwrap();
    run_ok(
        push(
            &format!("{}/hardening/push:v1", accepting.host()),
            &["big.bin"],
        )
        .current_dir(work.path()),
    );

    let slow = FakeRegistry::start_with_uploads(
        b"{}".to_vec(),
        mt::OCI_MANIFEST,
        HashMap::new(),
        UploadBehaviour::SlowRead {
            above: 1024,
            every: Duration::from_millis(300),
        },
    )
    .unwrap();
    let (message, elapsed) = run_to_failure(
        push(&format!("{}/hardening/push:v1", slow.host()), &["big.bin"])
            .current_dir(work.path())
            .args(stall_flags()),
    );
    assert!(
        message.contains("stalled")
            && message.contains(&slow.host())
            && message.contains(digest.as_str()),
        "{message}"
    );
    let bound = Duration::from_secs(ATTEMPTS * (READ_TIMEOUT_SECS + 2) + 15);
    assert!(
        elapsed < bound,
        "took {elapsed:?}, bound {bound:?}: {message}"
    );
}

/// The init role reads the same limits from the pod's environment (the policy passes no flag):
/// `oras-init` ends too.
#[test]
fn init_ends_on_a_stall_with_the_limits_of_the_environment() {
    let (registry, digest) = stalling_registry(BlobBehaviour::Silent, b"never sent");
    let share = tempfile::tempdir().unwrap();
    let input = format!("{}/hardening/init:v1", registry.host());
    let (message, elapsed) = run_to_failure(
        init(share.path(), &[&input])
            .env("ORAS_AGENT_READ_TIMEOUT", "1")
            .env("ORAS_AGENT_ATTEMPTS", "1"),
    );
    assert!(
        message.contains("input #0")
            && message.contains("stalled")
            && message.contains(digest.as_str()),
        "{message}"
    );
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    let attempts = registry
        .blob_requests()
        .iter()
        .filter(|d| **d == digest.as_str())
        .count();
    assert_eq!(attempts, 1, "one attempt");
}

// ---- 3. Path values are paths ------------------------------------------------------------

/// An output path that reads as a flag, passed as the policy passes it (`--output-path=VALUE`),
/// is packed as a directory of that name; the launcher sees no flag.
#[test]
fn an_output_path_that_reads_as_a_flag_is_packed_as_a_path() {
    let share = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let args = oras_cache_api::agent::LaunchArgs {
        share: share.path().display().to_string(),
        output_path: Some("--push-on-failure".into()),
        unpack: true,
        pack_outputs: true,
        command: vec![
            "sh".into(),
            "-c".into(),
            "mkdir -- --push-on-failure && echo out > --push-on-failure/f.txt && exit 3".into(),
        ],
        ..Default::default()
    };
    let output = run(agent().current_dir(cwd.path()).args(args.to_args()));
    // Exit 3 and no push: had the value been read as the flag, the outputs would be packed.
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let status: oras_cache_api::agent::LaunchStatus = serde_json::from_slice(
        &std::fs::read(share.path().join(oras_cache_api::agent::STATUS_FILE)).unwrap(),
    )
    .unwrap();
    assert!(!status.push && status.error.is_none(), "{status:?}");

    let succeeding = oras_cache_api::agent::LaunchArgs {
        command: vec![
            "sh".into(),
            "-c".into(),
            "echo again > --push-on-failure/f.txt".into(),
        ],
        ..args
    };
    let output = run(agent().current_dir(cwd.path()).args(succeeding.to_args()));
    assert!(output.status.success(), "{}", stderr(&output));
    let layout =
        oras_agent::layout::Layout::open(&share.path().join(oras_cache_api::agent::OUTPUTS_DIR))
            .unwrap();
    let (manifest, _, _) = layout.manifest().unwrap();
    assert_eq!(manifest.layers[0].title(), Some("--push-on-failure"));
}

/// The agent's own check behind the policy's: an output path that is `/` or holds the share is
/// not packed, an input path inside the share is refused, and an input placed in a directory
/// that holds the share may not write into it.
#[test]
fn outputs_and_inputs_that_touch_the_share_or_root_are_refused() {
    use oras_cache_api::agent::{LaunchArgs, LaunchStatus, STATUS_FILE};
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let status = || -> LaunchStatus {
        serde_json::from_slice(&std::fs::read(share.join(STATUS_FILE)).unwrap()).unwrap()
    };
    let launch = |args: LaunchArgs| {
        let args = LaunchArgs {
            share: share.display().to_string(),
            unpack: true,
            pack_outputs: true,
            command: vec!["true".into()],
            ..args
        };
        run(agent().current_dir(work.path()).args(args.to_args()))
    };
    for output in [
        "/".to_string(),
        share.display().to_string(),
        "share".into(),
        ".".into(),
    ] {
        let ran = launch(LaunchArgs {
            output_path: Some(output.clone()),
            ..Default::default()
        });
        let recorded = status();
        assert!(!recorded.push, "{output}: {recorded:?}");
        let error = recorded.error.unwrap_or_default();
        assert!(
            error.contains("whole filesystem") || error.contains("shared volume"),
            "{output}: {error} / {}",
            stderr(&ran)
        );
    }

    // An input whose title would land in the share when placed in a directory holding it.
    let registry = Registry::start();
    let r = push_crafted(
        &registry,
        "hardening/share",
        vec![(
            titled("share/bin/oras-agent"),
            mt::DEFAULT_FILE_LAYER,
            b"#!/bin/sh\necho replaced".to_vec(),
        )],
    )
    .to_string();
    run_ok(&mut init(&share, &[&r]));
    let agent_binary = std::fs::read(share.join("bin/oras-agent")).unwrap();
    let ran = launch(LaunchArgs {
        input_path: Some(work.path().display().to_string()),
        ..Default::default()
    });
    assert_eq!(ran.status.code(), Some(64), "{}", stderr(&ran));
    assert!(status().error.unwrap_or_default().contains("shared volume"));
    assert_eq!(
        std::fs::read(share.join("bin/oras-agent")).unwrap(),
        agent_binary
    );

    let ran = launch(LaunchArgs {
        input_path: Some(share.join("in").display().to_string()),
        ..Default::default()
    });
    assert_eq!(ran.status.code(), Some(64), "{}", stderr(&ran));
    assert!(status().error.unwrap_or_default().contains("shared volume"));
    assert!(!share.join("in").exists());
}

// ---- 4. Bounded unpacking ---------------------------------------------------------------

/// 8 MiB of zeros gzip to about 8 KiB: with `--max-unpacked-size=4Mi` the layer is refused
/// before anything of it is written; raising the flag lets it through.
#[test]
fn a_gzip_bomb_is_refused_past_max_unpacked_size_and_the_flag_raises_the_cap() {
    let registry = Registry::start();
    let zeros = vec![0u8; 8 << 20];
    let bomb = targz(&[
        ("bomb", tar::EntryType::Directory, b""),
        ("bomb/zeros", tar::EntryType::Regular, &zeros),
    ]);
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    let r = push_crafted(
        &registry,
        "hardening/bomb",
        vec![(directory("bomb"), mt::TAR_GZIP_LAYER, bomb)],
    )
    .to_string();
    let message = pull_refused(&r, &["--max-unpacked-size=4Mi"]);
    assert!(
        message.contains("\"bomb\"") && message.contains("--max-unpacked-size"),
        "{message}"
    );

    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    run_ok(pull(&r, &out).arg("--max-unpacked-size=16Mi"));
    assert_eq!(
        std::fs::metadata(out.join("bomb/zeros")).unwrap().len(),
        8 << 20
    );
}

// ---- 5. Outputs say what they hold ------------------------------------------------------

#[test]
fn a_symlinked_output_directory_is_followed_and_links_leaving_it_are_refused() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let real = work.path().join("real");
    std::fs::create_dir_all(real.join("sub")).unwrap();
    std::fs::write(real.join("sub/data.txt"), "through the link").unwrap();
    std::os::unix::fs::symlink("sub/data.txt", real.join("inner-link")).unwrap();
    std::os::unix::fs::symlink("real", work.path().join("results")).unwrap();
    let reference = format!("{}/hardening/symlinked:v1", registry.host());
    run_ok(push(&reference, &["results"]).current_dir(work.path()));
    let out = work.path().join("out");
    run_ok(&mut pull(&reference, &out));
    assert_eq!(
        std::fs::read_to_string(out.join("results/sub/data.txt")).unwrap(),
        "through the link"
    );
    assert_eq!(
        std::fs::read_link(out.join("results/inner-link")).unwrap(),
        Path::new("sub/data.txt")
    );

    // A link that leaves the pushed directory: the agent's pull would refuse the artifact, so
    // the push fails and publishes nothing.
    std::os::unix::fs::symlink("../../outside.txt", real.join("sub/escape")).unwrap();
    let escaping = format!("{}/hardening/escaping:v1", registry.host());
    let message = run_failing(push(&escaping, &["results"]).current_dir(work.path()));
    assert!(
        message.contains("escape") && message.contains("leaves the directory being pushed"),
        "{message}"
    );
    let missing = run(&mut pull(&escaping, &work.path().join("out2")));
    assert!(!missing.status.success(), "nothing was published");

    // An absolute link is refused as the pull would refuse it, even one into the directory.
    std::fs::remove_file(real.join("sub/escape")).unwrap();
    std::os::unix::fs::symlink(real.join("sub/data.txt"), real.join("absolute")).unwrap();
    let message = run_failing(push(&escaping, &["results"]).current_dir(work.path()));
    assert!(message.contains("absolute"), "{message}");
}

// ---- 6. Clean failures ------------------------------------------------------------------

/// SIGTERM while a blob downloads: the scratch directory and its partial blob are removed.
#[test]
fn an_interrupted_pull_removes_its_scratch_directory_and_partial_blob() {
    let (registry, _) = trickling_registry(vec![b'z'; 10_000], Duration::from_millis(20));
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let reference = format!("{}/hardening/interrupted:v1", registry.host());
    let mut child = pull(&reference, &out)
        .arg("--min-rate=0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Until the partial blob is on disk: a temporary file inside the scratch layout.
    wait_while_running(&mut child, "a partial blob on disk", || {
        contents(&out)
            .iter()
            .any(|p| p.starts_with(".oras-agent-pull-") && p.contains("/.oras-agent-"))
    });
    terminate(child);
    assert_nothing_written(&out);
}

/// SIGTERM while a directory layer uploads: the packed layer in `$TMPDIR` is removed.
#[test]
fn an_interrupted_push_removes_its_packed_layers() {
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let dir = work.path().join("results");
    std::fs::create_dir_all(&dir).unwrap();
    // Random-looking bytes do not compress: the layer outgrows the socket buffers.
    write_noise_file(&dir.join("noise.bin"), 16 << 20);
    let slow = FakeRegistry::start_with_uploads(
        b"{}".to_vec(),
        mt::OCI_MANIFEST,
        HashMap::new(),
        UploadBehaviour::SlowRead {
            above: 1024,
            every: Duration::from_millis(100),
        },
    )
    .unwrap();
    let mut child = push(
        &format!("{}/hardening/interrupted-push:v1", slow.host()),
        &["results"],
    )
    .current_dir(work.path())
    .env("TMPDIR", &tmp)
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Until the layer's upload has begun: the config's POST and PUT, then the layer's.
    wait_while_running(&mut child, "the layer's upload", || {
        slow.upload_requests() >= 4
    });
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_some(),
        "the layer is packed in TMPDIR"
    );
    terminate(child);
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "left behind in TMPDIR: {left:?}");
}

#[test]
fn two_layers_with_one_title_leave_nothing_behind() {
    let registry = Registry::start();
    let r = push_crafted(
        &registry,
        "hardening/duplicate",
        vec![
            (
                titled("dir/same.txt"),
                mt::DEFAULT_FILE_LAYER,
                b"one".to_vec(),
            ),
            (
                titled("dir/same.txt"),
                mt::DEFAULT_FILE_LAYER,
                b"two".to_vec(),
            ),
        ],
    )
    .to_string();
    let message = pull_refused(&r, &[]);
    assert!(message.contains("same.txt"), "{message}");
}

#[test]
fn a_failure_in_a_later_layer_removes_the_files_of_the_earlier_ones() {
    let registry = Registry::start();
    let fifo = targz(&[
        ("pipes", tar::EntryType::Directory, b""),
        ("pipes/fifo", tar::EntryType::Fifo, b""),
    ]);
    let r = push_crafted(
        &registry,
        "hardening/later",
        vec![
            (
                titled("first.txt"),
                mt::DEFAULT_FILE_LAYER,
                b"first".to_vec(),
            ),
            (directory("pipes"), mt::TAR_GZIP_LAYER, fifo),
        ],
    )
    .to_string();
    let message = pull_refused(&r, &[]);
    assert!(message.contains("is a FIFO"), "{message}");
}

#[test]
fn titles_with_control_characters_are_refused_and_never_printed_raw() {
    let registry = Registry::start();
    let title = "evil\u{1b}[2K\rINFO pulled ok.txt";
    let r = push_crafted(
        &registry,
        "hardening/control",
        vec![(titled(title), mt::DEFAULT_FILE_LAYER, b"x".to_vec())],
    )
    .to_string();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let message = run_failing(pull(&r, &out).env_remove("ORAS_AGENT_QUIET").arg("--debug"));
    assert!(message.contains("control characters"), "{message}");
    assert!(
        !message.contains('\u{1b}') && !message.contains('\r'),
        "printed raw: {message:?}"
    );
    assert_nothing_written(&out);
}

#[test]
fn device_and_fifo_entries_are_refused_with_a_message() {
    let registry = Registry::start();
    for (kind, name) in [
        (tar::EntryType::Fifo, "a FIFO"),
        (tar::EntryType::Char, "a character device"),
        (tar::EntryType::Block, "a block device"),
    ] {
        let layer = targz(&[
            ("dev", tar::EntryType::Directory, b""),
            ("dev/ok.txt", tar::EntryType::Regular, b"fine"),
            ("dev/node", kind, b""),
        ]);
        let r = push_crafted(
            &registry,
            "hardening/devices",
            vec![(directory("dev"), mt::TAR_GZIP_LAYER, layer)],
        )
        .to_string();
        let message = pull_refused(&r, &[]);
        assert!(
            message.contains("dev/node") && message.contains(name),
            "{message}"
        );
    }
}
