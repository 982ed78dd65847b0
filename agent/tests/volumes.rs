//! Issue 13: the `oras-volumes` role fills artifact volumes, with the argv the policy builds,
//! against the real registry (and oras-py as an outside client that pushes).

mod common;

use common::{
    agent, directory, oras_py_push, push, push_crafted, role, run, run_ok, sample, stderr,
    stored_blob, targz, titled, tree, write,
};
use oras_cache_api::agent::{VolumePull, VolumesArgs};
use oras_test_support::Registry;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A media type as the ORAS CSI driver's users filter on (a Singularity image).
const SIF: &str = "application/vnd.sylabs.sif.layer.v1.sif";

/// A pull of `reference` into `<base>/<volume>` from the plain-HTTP test registry.
fn volume(base: &Path, name: &str, reference: &str) -> VolumePull {
    VolumePull {
        volume: name.into(),
        path: base.join(name).display().to_string(),
        reference: reference.into(),
        plain_http: true,
        ..Default::default()
    }
}

/// Runs the role on `pulls` as the policy would: nothing of the environment's credentials, and
/// no usable TMPDIR (the container's root filesystem is read-only).
fn fill(pulls: Vec<VolumePull>) -> Output {
    fill_with(pulls, &[])
}

fn fill_with(pulls: Vec<VolumePull>, env: &[(&str, &str)]) -> Output {
    let args = VolumesArgs {
        pulls,
        debug: false,
    };
    let mut command = role(args.to_args());
    command.arg("--attempts=1");
    for (key, value) in env {
        command.env(key, value);
    }
    run(&mut command)
}

fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "oras-agent volumes failed with {}: {}",
        output.status,
        stderr(output)
    );
}

/// Checks the failure names the volume and the reference, and returns the message.
fn assert_failed(output: &Output, pull: &VolumePull) -> String {
    let message = stderr(output);
    assert!(!output.status.success(), "succeeded: {message}");
    assert!(
        message.contains(&format!("volume {:?}", pull.volume)) && message.contains(&pull.reference),
        "the message names neither the volume nor the reference: {message}"
    );
    message
}

/// Runs the role on `pull` alone, which must fail naming its volume and reference; returns the
/// message.
fn fails(pull: VolumePull) -> String {
    assert_failed(&fill(vec![pull.clone()]), &pull)
}

/// Every path under `dir` has the mode another UID can read: files 0644 or 0755, directories
/// 0755.
fn assert_readable_by_every_uid(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        if metadata.file_type().is_symlink() {
            continue;
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if metadata.is_dir() {
            assert_eq!(mode, 0o755, "{}", path.display());
            assert_readable_by_every_uid(&path);
        } else {
            assert!(
                mode == 0o644 || mode == 0o755,
                "{} is {mode:o}",
                path.display()
            );
        }
    }
}

/// No staging directory is left in `dir`.
fn assert_no_staging(dir: &Path) {
    if !dir.exists() {
        return;
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(oras_agent::volumes::STAGING_PREFIX))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

/// Pushes an artifact of one text file titled `title`; returns its reference.
fn push_text(registry: &Registry, repo: &str, title: &str, content: &[u8]) -> String {
    push_crafted(
        registry,
        repo,
        vec![(titled(title), "text/plain", content.to_vec())],
    )
    .to_string()
}

fn names(dir: &Path) -> Vec<String> {
    tree(dir).into_keys().collect()
}

#[test]
fn a_single_file_artifact_pushed_by_oras_py_fills_its_volume_readable_by_every_uid() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("container.sif"), &sample(300_000));
    let reference = format!("{}/singularityhub/github-ci:latest", registry.host());
    oras_py_push(&reference, &["container.sif"], &src);
    let volumes = work.path().join("volumes");
    // The emptyDir exists before the init container runs, world-writable as kubelet makes it.
    std::fs::create_dir_all(volumes.join("oras-inline")).unwrap();
    let pull = volume(&volumes, "oras-inline", &reference);
    assert_ok(&fill(vec![pull]));
    let dir = volumes.join("oras-inline");
    assert_eq!(names(&dir), ["container.sif"]);
    assert_eq!(
        std::fs::read(dir.join("container.sif")).unwrap(),
        sample(300_000)
    );
    assert_readable_by_every_uid(&dir);
}

#[test]
fn a_directory_artifact_arrives_unpacked_with_modes_others_can_read() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("app/HelloWorldServer.jar"), b"PK jar bytes");
    write(&src.join("app/lib/private.conf"), b"secret=no\n");
    write(&src.join("app/bin/run.sh"), b"#!/bin/sh\necho hi\n");
    std::fs::set_permissions(
        src.join("app/lib/private.conf"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(
        src.join("app/bin/run.sh"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::fs::set_permissions(src.join("app/lib"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let reference = format!("{}/csi/hello:v1", registry.host());
    run_ok(push(&reference, &["app"]).current_dir(&src));

    let volumes = work.path().join("volumes");
    assert_ok(&fill(vec![volume(&volumes, "app", &reference)]));
    let dir = volumes.join("app");
    assert_eq!(
        tree(&dir.join("app")),
        tree(&src.join("app")),
        "the directory did not arrive unpacked as pushed"
    );
    assert_readable_by_every_uid(&dir);
    let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("app/lib/private.conf"), 0o644);
    assert_eq!(mode("app/bin/run.sh"), 0o755, "executables stay executable");
    assert_no_staging(&dir);
}

#[test]
fn only_layers_of_the_media_types_asked_for_are_written() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("container.sif"), b"SIF image");
    write(&src.join("README.md"), b"# docs\n");
    write(&src.join("notes.txt"), b"notes\n");
    let reference = format!("{}/filtered/sif:v1", registry.host());
    oras_py_push(
        &reference,
        &[
            &format!("container.sif:{SIF}"),
            "README.md:text/markdown",
            "notes.txt",
        ],
        &src,
    );
    let volumes = work.path().join("volumes");
    let only_sif = VolumePull {
        media_types: vec![SIF.into()],
        ..volume(&volumes, "sif", &reference)
    };
    let two = VolumePull {
        media_types: vec![SIF.into(), "text/markdown".into()],
        ..volume(&volumes, "two", &reference)
    };
    assert_ok(&fill(vec![only_sif, two]));
    assert_eq!(names(&volumes.join("sif")), ["container.sif"]);
    assert_eq!(names(&volumes.join("two")), ["README.md", "container.sif"]);

    // A filter that keeps nothing is an error naming the attribute, and writes nothing.
    let nothing = VolumePull {
        media_types: vec!["application/x-none".into()],
        ..volume(&volumes, "none", &reference)
    };
    let message = fails(nothing);
    assert!(
        message.contains("oras.artifact.layers.mediatype") && message.contains(SIF),
        "{message}"
    );
    assert_eq!(names(&volumes.join("none")), Vec::<String>::new());
}

#[test]
fn several_layers_download_in_parallel_and_all_arrive_verified() {
    let registry = Registry::start();
    let layers: Vec<_> = (0..6)
        .map(|i| {
            (
                titled(&format!("part-{i}.bin")),
                "application/octet-stream",
                sample(200_000 + i * 4096)[i..].to_vec(),
            )
        })
        .collect();
    let expected: Vec<_> = layers.iter().map(|(_, _, blob)| blob.clone()).collect();
    let reference = push_crafted(&registry, "parallel/parts", layers).to_string();
    let work = tempfile::tempdir().unwrap();
    let pulls = [(1, "serial"), (4, "parallel"), (64, "capped")]
        .map(|(concurrency, name)| VolumePull {
            concurrency: Some(concurrency),
            ..volume(work.path(), name, &reference)
        })
        .to_vec();
    assert_ok(&fill(pulls));
    for name in ["serial", "parallel", "capped"] {
        let dir = work.path().join(name);
        for (i, blob) in expected.iter().enumerate() {
            assert_eq!(
                &std::fs::read(dir.join(format!("part-{i}.bin"))).unwrap(),
                blob,
                "{name}: part {i}"
            );
        }
        assert_eq!(names(&dir).len(), expected.len(), "{name}");
    }
}

#[test]
fn a_wrong_digest_fails_naming_the_volume_and_leaves_nothing() {
    let registry = Registry::start();
    let good = sample(100_000);
    let bad = sample(150_000);
    let reference = push_crafted(
        &registry,
        "tampered/model",
        vec![
            (titled("good.bin"), "application/octet-stream", good),
            (titled("bad.bin"), "application/octet-stream", bad.clone()),
        ],
    );
    // The registry now serves content that differs from the digest the manifest names.
    let digest = oras_agent::Digest::of_bytes(&bad);
    let mut tampered = bad;
    tampered[7] ^= 0xff;
    std::fs::write(stored_blob(&registry, &digest), &tampered).unwrap();

    let work = tempfile::tempdir().unwrap();
    for concurrency in [1, 4] {
        let pull = VolumePull {
            concurrency: Some(concurrency),
            ..volume(work.path(), "model", &reference.to_string())
        };
        let message = fails(pull);
        assert!(message.contains("digest"), "{message}");
        let dir = work.path().join("model");
        assert_eq!(names(&dir), Vec::<String>::new(), "partial content left");
    }
}

#[test]
fn a_missing_tag_or_a_registry_down_fails_naming_the_volume_and_leaves_nothing() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let missing = volume(
        work.path(),
        "missing",
        &format!("{}/nothing/here:v404", registry.host()),
    );
    let message = fails(missing);
    assert!(message.contains("404"), "{message}");
    assert_eq!(names(&work.path().join("missing")), Vec::<String>::new());

    let port = oras_test_support::free_port().unwrap();
    let down = volume(
        work.path(),
        "down",
        &format!("127.0.0.1:{port}/any/thing:v1"),
    );
    let message = fails(down);
    assert!(message.contains("cannot reach the registry"), "{message}");
}

#[test]
fn two_volumes_in_one_spec_are_both_filled_and_a_later_failure_names_its_own_volume() {
    let registry = Registry::start();
    let first = push_text(&registry, "two/first", "one.txt", b"first\n");
    let second = push_crafted(
        &registry,
        "two/second",
        vec![(
            directory("tree"),
            oras_cache_api::media_types::TAR_GZIP_LAYER,
            targz(&[("tree/a.txt", tar::EntryType::Regular, b"a\n")]),
        )],
    )
    .to_string();
    let work = tempfile::tempdir().unwrap();
    assert_ok(&fill(vec![
        volume(work.path(), "first", &first),
        volume(work.path(), "second", &second),
    ]));
    assert_eq!(
        std::fs::read(work.path().join("first/one.txt")).unwrap(),
        b"first\n"
    );
    assert_eq!(
        std::fs::read(work.path().join("second/tree/a.txt")).unwrap(),
        b"a\n"
    );

    let broken = volume(
        work.path(),
        "third",
        &format!("{}/two/absent:v1", registry.host()),
    );
    let output = fill(vec![volume(work.path(), "first", &first), broken.clone()]);
    let message = assert_failed(&output, &broken);
    assert!(!message.contains("\"first\""), "{message}");
}

#[test]
fn per_volume_credentials_come_from_the_prefixed_environment() {
    let registry = Registry::start_with_basic_auth("reader", "s3cret");
    let reference = format!("{}/private/data:v1", registry.host());
    let work = tempfile::tempdir().unwrap();
    write(&work.path().join("src/data.txt"), b"private\n");
    run_ok(
        agent()
            .current_dir(work.path().join("src"))
            .env("ORAS_USER", "reader")
            .env("ORAS_PASS", "s3cret")
            .args(["push", &reference, "data.txt", "--plain-http"]),
    );
    let with_secret = |name: &str, prefix: &str| VolumePull {
        credentials_env_prefix: Some(prefix.into()),
        ..volume(work.path(), name, &reference)
    };
    // The plain environment holds wrong credentials: a prefixed volume must not read them.
    let env = [
        ("ORAS_USER", "reader"),
        ("ORAS_PASS", "wrong"),
        ("ORAS_VOLUME_0_ORAS_USER", "reader"),
        ("ORAS_VOLUME_0_ORAS_PULL_PASS", "s3cret"),
        ("ORAS_VOLUME_1_username", "reader"),
        ("ORAS_VOLUME_1_password", "s3cret\n"),
        ("ORAS_VOLUME_2_ORAS_USER", "reader"),
        ("ORAS_VOLUME_2_ORAS_PASS", "nope"),
    ];
    assert_ok(&fill_with(
        vec![
            with_secret("zero", "ORAS_VOLUME_0_"),
            with_secret("one", "ORAS_VOLUME_1_"),
        ],
        &env,
    ));
    for name in ["zero", "one"] {
        assert_eq!(
            std::fs::read(work.path().join(name).join("data.txt")).unwrap(),
            b"private\n"
        );
    }
    let wrong = with_secret("two", "ORAS_VOLUME_2_");
    let message = assert_failed(&fill_with(vec![wrong.clone()], &env), &wrong);
    assert!(message.contains("nodePublishSecretRef"), "{message}");
    // Without a prefix the plain environment is read, as the other roles do.
    let plain = volume(work.path(), "plain", &reference);
    let message = assert_failed(&fill_with(vec![plain.clone()], &env), &plain);
    assert!(message.contains("401"), "{message}");
    assert_ok(&fill_with(
        vec![plain],
        &[("ORAS_USER", "reader"), ("ORAS_PASS", "s3cret")],
    ));
    // Half a Secret is named with its prefix.
    let half = with_secret("half", "ORAS_VOLUME_3_");
    let message = assert_failed(
        &fill_with(vec![half.clone()], &[("ORAS_VOLUME_3_ORAS_USER", "reader")]),
        &half,
    );
    assert!(message.contains("ORAS_VOLUME_3_"), "{message}");
}

#[test]
fn a_rerun_on_a_filled_volume_replaces_the_content_and_a_failed_one_keeps_it() {
    let registry = Registry::start();
    let first = push_text(&registry, "rerun/first", "first.txt", b"1\n");
    let second = push_text(&registry, "rerun/second", "second.txt", b"2\n");
    let work = tempfile::tempdir().unwrap();
    assert_ok(&fill(vec![volume(work.path(), "data", &first)]));
    assert_ok(&fill(vec![volume(work.path(), "data", &first)]));
    let dir = work.path().join("data");
    assert_eq!(names(&dir), ["first.txt"]);
    // What the app wrote, and what a killed run left, go too.
    write(&dir.join("app-wrote/x"), b"x");
    std::fs::create_dir_all(dir.join(".oras-volume-killed/layout")).unwrap();
    assert_ok(&fill(vec![volume(work.path(), "data", &second)]));
    assert_eq!(names(&dir), ["second.txt"]);

    let absent = volume(
        work.path(),
        "data",
        &format!("{}/rerun/absent:v1", registry.host()),
    );
    fails(absent);
    assert_eq!(
        names(&dir),
        ["second.txt"],
        "a failed re-run mixed or dropped content"
    );
}

#[test]
fn a_read_only_tmpdir_is_never_needed() {
    let registry = Registry::start();
    let reference = push_crafted(
        &registry,
        "tmp/free",
        vec![
            (titled("a.bin"), "application/octet-stream", sample(70_000)),
            (
                directory("d"),
                oras_cache_api::media_types::TAR_GZIP_LAYER,
                targz(&[("d/x.txt", tar::EntryType::Regular, b"x\n")]),
            ),
        ],
    )
    .to_string();
    let work = tempfile::tempdir().unwrap();
    // A TMPDIR that exists but takes no writes (read-only bind mount semantics via a file in
    // the way: a plain file cannot hold temporary files, even for root).
    let not_a_dir = work.path().join("tmp-is-a-file");
    std::fs::write(&not_a_dir, b"").unwrap();
    let args = VolumesArgs {
        pulls: vec![VolumePull {
            concurrency: Some(2),
            ..volume(work.path(), "vol", &reference)
        }],
        debug: true,
    };
    let output = run(agent().env("TMPDIR", &not_a_dir).args(args.to_args()));
    assert_ok(&output);
    let dir: PathBuf = work.path().join("vol");
    assert_eq!(names(&dir), ["a.bin", "d/", "d/x.txt"]);
    assert_no_staging(&dir);
}

/// Two layers with `concurrency: 2`: the second is requested while the first still trickles
/// (a serial download would ask for it only minutes later), and SIGTERM then ends the role with
/// 128 + SIGTERM, its staging directory and partial blobs removed.
#[test]
fn layers_download_side_by_side_and_an_interrupted_fill_leaves_nothing() {
    use oras_agent::manifest::{Descriptor, ImageManifest};
    use oras_cache_api::media_types as mt;
    use oras_test_support::hostile::{BlobBehaviour, FakeRegistry};
    use std::collections::{BTreeMap, HashMap};
    use std::time::{Duration, Instant};

    let slow = vec![b's'; 10_000];
    let fast = b"fast layer".to_vec();
    let config = b"{}".to_vec();
    let layer = |title: &str, blob: &[u8]| Descriptor {
        media_type: mt::DEFAULT_FILE_LAYER.into(),
        digest: oras_agent::Digest::of_bytes(blob),
        size: blob.len() as u64,
        annotations: titled(title),
        artifact_type: None,
    };
    let (slow_layer, fast_layer) = (layer("slow.bin", &slow), layer("fast.txt", &fast));
    let manifest = ImageManifest::artifact(
        mt::DEFAULT_ARTIFACT_TYPE,
        vec![slow_layer.clone(), fast_layer.clone()],
        BTreeMap::new(),
    )
    .to_bytes();
    let registry = FakeRegistry::start(
        manifest,
        mt::OCI_MANIFEST,
        HashMap::from([
            (
                slow_layer.digest.to_string(),
                BlobBehaviour::Trickle {
                    bytes: slow,
                    every: Duration::from_millis(20),
                },
            ),
            (fast_layer.digest.to_string(), BlobBehaviour::Serve(fast)),
            (
                oras_agent::Digest::of_bytes(&config).to_string(),
                BlobBehaviour::Serve(config),
            ),
        ]),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let pull = VolumePull {
        concurrency: Some(2),
        ..volume(
            work.path(),
            "side",
            &format!("{}/side/by:v1", registry.host()),
        )
    };
    let args = VolumesArgs {
        pulls: vec![pull],
        debug: false,
    };
    let mut child = role(args.to_args())
        .arg("--min-rate=0")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !registry
        .blob_requests()
        .contains(&fast_layer.digest.to_string())
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the second layer was never requested while the first trickled: {:?}",
            registry.blob_requests()
        );
        assert!(child.try_wait().unwrap().is_none(), "the role ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first layer is still trickling"
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(128 + libc::SIGTERM),
        "{}",
        stderr(&output)
    );
    assert_eq!(names(&work.path().join("side")), Vec::<String>::new());
}
