//! Artifacts through the `push` and `pull` commands: round trips, oras-py interop, path safety.

mod common;

use common::{
    agent, directory, oras_py_push, pull, push, push_crafted, python, run_failing, run_ok, titled,
    tree, write,
};
use oras_agent::manifest::ImageManifest;
use oras_agent::registry::{ClientOptions, RegistryClient};
use oras_agent::transfer::{TransferError, pull_to_dir};
use oras_agent::unpack::PlaceError;
use oras_agent::{Digest, Reference};
use oras_cache_api::media_types as mt;
use oras_test_support::Registry;
use std::path::Path;

#[test]
fn a_file_and_a_directory_round_trip_through_push_and_pull() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("notes.txt"), b"first file\n");
    write(&src.join("results/a.csv"), b"x,y\n1,2\n");
    write(&src.join("results/deep/b.bin"), &[0u8, 1, 2, 255]);
    std::fs::create_dir_all(src.join("results/empty")).unwrap();
    std::os::unix::fs::symlink("a.csv", src.join("results/link.csv")).unwrap();
    let reference = format!("{}/round/trip:v1", registry.host());

    run_ok(push(&reference, &["notes.txt", "results"]).current_dir(&src));
    let out = work.path().join("out");
    let pulled = run_ok(&mut pull(&reference, &out));
    assert_eq!(
        tree(&out),
        tree(&src),
        "pulled tree differs from pushed tree"
    );
    let listed = String::from_utf8_lossy(&pulled.stdout);
    assert!(
        listed.contains("notes.txt") && listed.contains("results"),
        "{listed}"
    );

    // The manifest is what `oras push` writes.
    let client = RegistryClient::new(ClientOptions::new(true)).unwrap();
    let manifest = client
        .pull_manifest(&Reference::parse(&reference).unwrap())
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap();
    assert_eq!(json["mediaType"], mt::OCI_MANIFEST);
    assert_eq!(json["artifactType"], mt::DEFAULT_ARTIFACT_TYPE);
    assert_eq!(json["config"]["mediaType"], mt::EMPTY_CONFIG);
    assert_eq!(json["config"]["digest"], mt::EMPTY_CONFIG_DIGEST);
    let layers = json["layers"].as_array().unwrap();
    assert_eq!(layers[0]["mediaType"], mt::DEFAULT_FILE_LAYER);
    assert_eq!(layers[0]["annotations"][mt::ANNOTATION_TITLE], "notes.txt");
    assert_eq!(layers[1]["mediaType"], mt::TAR_GZIP_LAYER);
    assert_eq!(layers[1]["annotations"][mt::ANNOTATION_TITLE], "results");
    assert_eq!(layers[1]["annotations"][mt::ANNOTATION_UNPACK], "true");
    assert!(
        layers[1]["annotations"][mt::ANNOTATION_CONTENT_DIGEST]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(json["annotations"][mt::ANNOTATION_CREATED].is_string());

    // Without unpacking, the directory stays the verified tar.gz.
    let packed = work.path().join("packed");
    run_ok(pull(&reference, &packed).args(["--no-unpack"]));
    let archive = std::fs::read(packed.join("results.tar.gz")).unwrap();
    assert_eq!(
        Digest::of_bytes(&archive).as_str(),
        layers[1]["digest"].as_str().unwrap()
    );
}

#[test]
fn oras_py_pulls_what_the_agent_pushed_byte_for_byte() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    write(&src.join("data.bin"), &blob);
    write(&src.join("tree/x.txt"), b"in a directory\n");
    write(&src.join("tree/sub/y.txt"), b"deeper\n");
    let reference = format!("{}/interop/from-agent:v1", registry.host());
    run_ok(push(&reference, &["data.bin", "tree"]).current_dir(&src));
    let out = work.path().join("py-out");
    std::fs::create_dir_all(&out).unwrap();
    python(
        &format!(
            "import oras.client\n\
             c = oras.client.OrasClient(hostname='{host}', insecure=True)\n\
             print(c.pull(target='{reference}', outdir='{out}'))\n",
            host = registry.host(),
            out = out.display()
        ),
        work.path(),
    );
    assert_eq!(std::fs::read(out.join("data.bin")).unwrap(), blob);
    assert_eq!(
        std::fs::read(out.join("tree/x.txt")).unwrap(),
        b"in a directory\n"
    );
    assert_eq!(
        std::fs::read(out.join("tree/sub/y.txt")).unwrap(),
        b"deeper\n"
    );
}

#[test]
fn the_agent_pulls_what_oras_py_pushed_byte_for_byte() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let blob: Vec<u8> = (0..150_000u32).map(|i| (i * 31 % 256) as u8).collect();
    write(&work.path().join("model.bin"), &blob);
    write(&work.path().join("readme.md"), b"# from oras-py\n");
    write(&work.path().join("folder/f.txt"), b"folder file\n");
    let reference = format!("{}/interop/from-py:v1", registry.host());
    oras_py_push(
        &reference,
        &["model.bin", "readme.md", "folder"],
        work.path(),
    );
    let out = work.path().join("agent-out");
    run_ok(&mut pull(&reference, &out));
    assert_eq!(std::fs::read(out.join("model.bin")).unwrap(), blob);
    assert_eq!(
        std::fs::read(out.join("readme.md")).unwrap(),
        b"# from oras-py\n"
    );
    // oras-py marks directories by media type only; like `oras pull`, the agent keeps such a
    // layer as the file it is: the gzip blob oras-py pushed, unchanged.
    let client = RegistryClient::new(ClientOptions::new(true)).unwrap();
    let pulled = client
        .pull_manifest(&Reference::parse(&reference).unwrap())
        .unwrap();
    let manifest = ImageManifest::parse(&pulled.bytes, &pulled.media_type).unwrap();
    assert_eq!(manifest.config.media_type, mt::UNKNOWN_CONFIG);
    let folder = manifest
        .layers
        .iter()
        .find(|l| l.title() == Some("folder"))
        .unwrap();
    assert_eq!(
        Digest::of_bytes(&std::fs::read(out.join("folder")).unwrap()),
        folder.digest
    );
}

enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

/// A tar+gzip built header by header, so names the tar crate would refuse can be written.
fn crafted_targz(entries: &[Entry]) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (name, data, kind, link): (&str, &[u8], tar::EntryType, Option<&str>) = match entry {
            Entry::File(name, data) => (name, data, tar::EntryType::Regular, None),
            Entry::Dir(name) => (name, b"", tar::EntryType::Directory, None),
            Entry::Symlink(name, target) => (name, b"", tar::EntryType::Symlink, Some(target)),
            Entry::Hardlink(name, target) => (name, b"", tar::EntryType::Link, Some(target)),
        };
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// Pulls `reference` into `<base>/out`, expecting a refusal; checks nothing landed outside.
fn assert_refused(reference: &Reference, base: &Path, expected_in_message: &str) -> PlaceError {
    let before: Vec<_> = tree(base)
        .into_keys()
        .filter(|k| !k.starts_with("out"))
        .collect();
    let client = RegistryClient::new(ClientOptions::new(true)).unwrap();
    let error = pull_to_dir(&client, reference, &base.join("out"), true).unwrap_err();
    let after: Vec<_> = tree(base)
        .into_keys()
        .filter(|k| !k.starts_with("out"))
        .collect();
    assert_eq!(
        before, after,
        "something was written outside the target: {error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(expected_in_message),
        "{message:?} should name {expected_in_message:?}"
    );
    match error {
        TransferError::Place(place) => place,
        other => panic!("expected a placement error, got {other}"),
    }
}

#[test]
fn every_escape_is_refused_and_nothing_is_written_outside() {
    let registry = Registry::start();
    let base = tempfile::tempdir().unwrap();
    let outside = base.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let file = mt::DEFAULT_FILE_LAYER;
    let targz = mt::TAR_GZIP_LAYER;

    let r = push_crafted(
        &registry,
        "escape/dotdot-title",
        vec![(titled("../evil.txt"), file, b"x".to_vec())],
    );
    assert!(matches!(
        assert_refused(&r, base.path(), "../evil.txt"),
        PlaceError::UnsafeTitle { .. }
    ));

    let absolute = format!("{}/evil.txt", outside.display());
    let r = push_crafted(
        &registry,
        "escape/absolute-title",
        vec![(titled(&absolute), file, b"x".to_vec())],
    );
    assert!(matches!(
        assert_refused(&r, base.path(), &absolute),
        PlaceError::UnsafeTitle { .. }
    ));

    // Archives unpacked under `d`: each entry named is refused, and nothing lands outside.
    let link_out = format!("../../{}", outside.file_name().unwrap().to_str().unwrap());
    let archives: [(&str, Vec<Entry>, &str); 6] = [
        (
            "escape/dotdot-entry",
            vec![Entry::Dir("d/"), Entry::File("d/../../evil.txt", b"x")],
            "d/../../evil.txt",
        ),
        (
            "escape/through-symlink",
            vec![
                Entry::Dir("d/"),
                Entry::Dir("d/sub/"),
                Entry::Symlink("d/link", "sub"),
                Entry::File("d/link/evil.txt", b"x"),
            ],
            "d/link/evil.txt",
        ),
        (
            "escape/symlink-outside",
            vec![
                Entry::Dir("d/"),
                Entry::Symlink("d/out", &link_out),
                Entry::File("d/out/evil.txt", b"x"),
            ],
            "d/out",
        ),
        (
            "escape/absolute-symlink",
            vec![Entry::Dir("d/"), Entry::Symlink("d/abs", "/etc")],
            "d/abs",
        ),
        (
            "escape/hardlink-outside",
            vec![
                Entry::Dir("d/"),
                Entry::Hardlink("d/passwd", "../../etc/passwd"),
            ],
            "d/passwd",
        ),
        (
            "escape/hardlink-other-title",
            vec![Entry::Dir("d/"), Entry::Hardlink("d/hl", "other/file")],
            "d/hl",
        ),
    ];
    for (repo, entries, named) in archives {
        let r = push_crafted(
            &registry,
            repo,
            vec![(directory("d"), targz, crafted_targz(&entries))],
        );
        let refused = assert_refused(&r, base.path(), named);
        assert!(
            matches!(refused, PlaceError::UnsafeEntry { .. }),
            "{repo}: {refused}"
        );
    }

    let tar = crafted_targz(&[
        Entry::Dir("d/"),
        Entry::File("d/ok.txt", b"ok"),
        Entry::File("other/evil.txt", b"x"),
    ]);
    let r = push_crafted(
        &registry,
        "escape/outside-title",
        vec![(directory("d"), targz, tar)],
    );
    let refused = assert_refused(&r, base.path(), "other/evil.txt");
    assert!(matches!(refused, PlaceError::UnsafeEntry { .. }));
    assert!(
        !base.path().join("out/d/ok.txt").exists(),
        "a refused archive writes nothing"
    );

    // Symlinks already on disk are not written through either.
    let out = base.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("planted")).unwrap();
    let r = push_crafted(
        &registry,
        "escape/planted-title",
        vec![(titled("planted/evil.txt"), file, b"x".to_vec())],
    );
    assert!(matches!(
        assert_refused(&r, base.path(), "planted"),
        PlaceError::UnsafeTitle { .. }
    ));
    let tar = crafted_targz(&[Entry::File("planted/evil.txt", b"x")]);
    let r = push_crafted(
        &registry,
        "escape/planted-dir",
        vec![(directory("planted"), targz, tar)],
    );
    assert!(matches!(
        assert_refused(&r, base.path(), "planted"),
        PlaceError::UnsafeEntry { .. }
    ));
    // An archive that has the directory itself replaces the planted link, as tar does, and
    // still writes nothing outside.
    let tar = crafted_targz(&[Entry::Dir("planted/"), Entry::File("planted/ok.txt", b"x")]);
    let r = push_crafted(
        &registry,
        "escape/planted-replaced",
        vec![(directory("planted"), targz, tar)],
    );
    let client = RegistryClient::new(ClientOptions::new(true)).unwrap();
    pull_to_dir(&client, &r, &out, true).unwrap();
    assert!(
        std::fs::symlink_metadata(out.join("planted"))
            .unwrap()
            .is_dir()
    );

    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "outside was written to"
    );
}

#[test]
fn a_safe_crafted_archive_with_inner_links_is_extracted() {
    let registry = Registry::start();
    let base = tempfile::tempdir().unwrap();
    let tar = crafted_targz(&[
        Entry::Dir("d/"),
        Entry::Dir("d/sub/"),
        Entry::File("d/sub/f.txt", b"content"),
        Entry::Symlink("d/link", "sub/f.txt"),
        Entry::Hardlink("d/hard", "d/sub/f.txt"),
    ]);
    let r = push_crafted(
        &registry,
        "safe/links",
        vec![(directory("d"), mt::TAR_GZIP_LAYER, tar)],
    );
    let client = RegistryClient::new(ClientOptions::new(true)).unwrap();
    pull_to_dir(&client, &r, &base.path().join("out"), true).unwrap();
    let out = base.path().join("out");
    assert_eq!(std::fs::read(out.join("d/hard")).unwrap(), b"content");
    assert_eq!(
        std::fs::read_link(out.join("d/link")).unwrap(),
        Path::new("sub/f.txt")
    );
}

#[test]
fn a_wrong_content_digest_refuses_the_directory_before_writing() {
    let registry = Registry::start();
    let base = tempfile::tempdir().unwrap();
    let tar = crafted_targz(&[Entry::Dir("d/"), Entry::File("d/f", b"x")]);
    let mut annotations = directory("d");
    annotations.insert(
        mt::ANNOTATION_CONTENT_DIGEST.into(),
        Digest::of_bytes(b"other").to_string(),
    );
    let r = push_crafted(
        &registry,
        "bad/content-digest",
        vec![(annotations, mt::TAR_GZIP_LAYER, tar)],
    );
    let client = RegistryClient::new(ClientOptions::new(true)).unwrap();
    let error = pull_to_dir(&client, &r, &base.path().join("out"), true).unwrap_err();
    assert!(
        matches!(
            error,
            TransferError::Place(PlaceError::ContentDigest { .. })
        ),
        "{error}"
    );
    assert!(!base.path().join("out/d").exists());
}

#[test]
fn duplicate_titles_in_one_artifact_are_an_error() {
    let registry = Registry::start();
    let base = tempfile::tempdir().unwrap();
    let r = push_crafted(
        &registry,
        "bad/duplicate",
        vec![
            (titled("same.txt"), mt::DEFAULT_FILE_LAYER, b"one".to_vec()),
            (titled("same.txt"), mt::DEFAULT_FILE_LAYER, b"two".to_vec()),
        ],
    );
    let client = RegistryClient::new(ClientOptions::new(true)).unwrap();
    let error = pull_to_dir(&client, &r, &base.path().join("out"), true).unwrap_err();
    assert!(
        matches!(error, TransferError::Place(PlaceError::Conflict { .. })),
        "{error}"
    );
}

#[test]
fn bad_references_and_missing_artifacts_fail_with_clear_messages() {
    let registry = Registry::start();
    let message = run_failing(agent().args(["pull", "ubuntu:22.04", "--plain-http"]));
    assert!(message.contains("host[:port]/repository"), "{message}");
    let missing = format!("{}/nothing/here:v1", registry.host());
    let message = run_failing(agent().args([
        "pull",
        &missing,
        "--plain-http",
        "-o",
        "/tmp/oras-agent-never",
    ]));
    assert!(message.contains("404"), "{message}");
}

#[test]
fn identical_files_under_different_titles_both_arrive() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.txt"), "same bytes").unwrap();
    std::fs::write(work.path().join("b.txt"), "same bytes").unwrap();
    let reference = format!("{}/same/content:v1", registry.host());
    run_ok(push(&reference, &["a.txt", "b.txt"]).current_dir(work.path()));
    let out = work.path().join("out");
    run_ok(&mut pull(&reference, &out));
    assert_eq!(
        std::fs::read_to_string(out.join("a.txt")).unwrap(),
        "same bytes"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("b.txt")).unwrap(),
        "same bytes"
    );
}

#[test]
fn debug_logs_every_transfer_and_quiet_prints_nothing() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f.txt"), "logged").unwrap();
    let reference = format!("{}/logs/debug:v1", registry.host());
    let quiet = run_ok(
        push(&reference, &["f.txt"])
            .current_dir(work.path())
            .env("ORAS_AGENT_QUIET", "1")
            .env_remove("ORAS_AGENT_DEBUG"),
    );
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let out = work.path().join("out");
    let verbose = run_ok(pull(&reference, &out).args(["--debug"]));
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    assert!(stderr.contains("pulling f.txt"), "{stderr}");
    assert!(stderr.contains("done, 6 B"), "{stderr}");
}
