//! Issue 21: interop with the oras CLI (`oras.land/oras` v1.3.6 with `oras.land/oras-go/v2`
//! v2.7.0, built by `scripts/peers.sh`), both ways, against the real registry:
//! - what the agent pushes, `oras pull` places and `oras manifest fetch` reads back as written;
//! - what `oras push` writes, the agent's `pull`, `init` + `launch` and `volumes` roles place as
//!   `oras pull` does, compared tree for tree: kinds, bytes, permission bits, link targets.
//!
//! What oras does, with where its source says so (paths inside the two modules):
//! - a file is one layer titled by its path as given, `application/vnd.oci.image.layer.v1.tar`
//!   (oras `cmd/oras/root/file.go` `loadFiles`: the title is `filepath.Clean` of the argument);
//! - a directory is one tar+gzip layer with `io.deis.oras.content.unpack: "true"` and
//!   `io.deis.oras.content.digest` (oras-go `content/file/file.go` `descriptorFromDir`), its
//!   entries named `<title>/...` with the modes of the files, owners zeroed (`utils.go`
//!   `tarDirectory`);
//! - `oras pull` writes a file layer with mode 0666 less the umask (`file.go` `pushFile`:
//!   `createNoFollow(target, 0666)`), so a pushed file's own mode is not kept; it writes each tar
//!   entry with the entry's mode less the umask (`utils.go` `extractTarDirectory` passes
//!   `header.FileInfo().Mode()` to `writeFile` and `makeDir`) and never restores the full mode
//!   (`PreservePermissions` is left false: `cmd/oras/root/pull.go` `runPull`);
//! - with no file, the manifest's only layer is the empty descriptor `{}` without a title, which
//!   a pull skips (oras-go `pack.go` `packManifestV1_1`; `file.go` `push` ignores unnamed
//!   layers);
//! - an absolute path is refused by `oras push` unless `--disable-path-validation`
//!   (`cmd/oras/internal/option/packer.go` `Parse`), and then kept absolute as the title, which
//!   `oras pull` refuses to write without `--allow-path-traversal` (`file.go`
//!   `resolveWritePath`).
//!
//! Every client runs with umask 022 (`oras_cli::umask_022`), so the expected modes are fixed.

mod common;

use common::{agent, role, run_ok, sample, write};
use oras_agent::manifest::ImageManifest;
use oras_agent::registry::{ClientOptions, RegistryClient};
use oras_agent::{Digest, Reference};
use oras_cache_api::agent::{InitArgs, LaunchArgs, VolumePull, VolumesArgs};
use oras_cache_api::media_types as mt;
use oras_test_support::Registry;
use oras_test_support::oras_cli::{self, Node, snapshot, umask_022};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The media type the seeds' Singularity images are filtered on (oras-csi's
/// `oras.artifact.layers.mediatype`).
const SIF: &str = "application/vnd.sylabs.sif.layer.v1.sif";

/// An agent command with umask 022, like the oras CLI beside it.
fn agent_022() -> Command {
    let mut command = agent();
    umask_022(&mut command);
    command
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A source with every shape the issue lists, in `root`; returns the paths to push, as given to
/// both clients: files (one in a subfolder, one executable, two empty ones with the same digest)
/// and a directory with nested and empty directories, an empty file, a symlink, and modes from
/// 0400 to 0777 on files and 0555/0700/0750 on directories.
fn every_shape(root: &Path) -> Vec<&'static str> {
    write(&root.join("notes.txt"), b"first file\n");
    write(&root.join("empty.txt"), b"");
    write(&root.join("also-empty.txt"), b"");
    write(&root.join("out/run.sh"), b"#!/bin/sh\necho run\n");
    chmod(&root.join("out/run.sh"), 0o755);
    let app = root.join("app");
    write(&app.join("HelloWorldServer.jar"), &sample(70_000));
    write(&app.join("lib/private.conf"), b"secret=no\n");
    chmod(&app.join("lib/private.conf"), 0o600);
    chmod(&app.join("lib"), 0o700);
    write(
        &app.join("bin/start"),
        b"#!/bin/sh\nexec java -jar ../HelloWorldServer.jar\n",
    );
    chmod(&app.join("bin/start"), 0o755);
    write(&app.join("conf/readonly.txt"), b"do not touch\n");
    chmod(&app.join("conf/readonly.txt"), 0o400);
    chmod(&app.join("conf"), 0o750);
    write(&app.join("shared.txt"), b"anyone may write\n");
    chmod(&app.join("shared.txt"), 0o777);
    write(&app.join("deep/er/est/leaf.txt"), b"leaf\n");
    write(&app.join("deep/empty-file"), b"");
    std::fs::create_dir_all(app.join("deep/empty-dir")).unwrap();
    std::os::unix::fs::symlink("HelloWorldServer.jar", app.join("app.jar")).unwrap();
    // A directory its owner cannot write: the entries below it must still be written, and it
    // must end with its own mode.
    write(&app.join("sealed/inside.txt"), b"sealed\n");
    chmod(&app.join("sealed"), 0o555);
    vec![
        "notes.txt",
        "empty.txt",
        "also-empty.txt",
        "out/run.sh",
        "app",
    ]
}

/// What `oras pull` places for `paths` pushed from `root`, by the rules in this file's header:
/// a file layer 0644 (0666 less umask 022) whatever its own mode, its missing parents 0755; a
/// directory layer's entries with their own modes less umask 022.
fn as_oras_pull_places(root: &Path, paths: &[&str]) -> BTreeMap<String, Node> {
    let mut expected = BTreeMap::new();
    for path in paths {
        let source = root.join(path);
        let mut parent = Path::new(path).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            expected.insert(
                dir.to_string_lossy().into_owned(),
                Node::Dir { mode: 0o755 },
            );
            parent = dir.parent();
        }
        if source.is_dir() {
            let without_umask = |node: Node| match node {
                Node::Dir { mode } => Node::Dir {
                    mode: mode & !0o022,
                },
                Node::File { mode, content } => Node::File {
                    mode: mode & !0o022,
                    content,
                },
                link => link,
            };
            expected.extend(
                oras_cli::snapshot_under(&source, path)
                    .into_iter()
                    .map(|(p, node)| (p, without_umask(node))),
            );
        } else {
            expected.insert(
                path.to_string(),
                Node::File {
                    mode: 0o644,
                    content: std::fs::read(&source).unwrap(),
                },
            );
        }
    }
    expected
}

/// Asserts two snapshots are equal, naming the first path where they differ.
fn assert_same_tree(left: &BTreeMap<String, Node>, right: &BTreeMap<String, Node>, what: &str) {
    let paths: std::collections::BTreeSet<_> = left.keys().chain(right.keys()).collect();
    for path in paths {
        assert_eq!(
            left.get(path),
            right.get(path),
            "{what}: {path} differs (modes in decimal: 0o644 is 420, 0o755 is 493)"
        );
    }
}

fn agent_pull(reference: &str, out: &Path) {
    run_ok(
        agent_022()
            .args(["pull", reference, "-o"])
            .arg(out)
            .arg("--plain-http"),
    );
}

/// The init role fetches `reference` into a share, then `launch` places it at `placed` before
/// running `true`: the inputs of a pod step.
fn agent_init_and_launch(reference: &str, share: &Path, placed: &Path) {
    let init = InitArgs {
        share: share.display().to_string(),
        inputs: vec![reference.to_string()],
        plain_http: true,
        debug: false,
    };
    let mut command = role(init.to_args());
    run_ok(umask_022(&mut command));
    let launch = LaunchArgs {
        share: share.display().to_string(),
        input_path: Some(placed.display().to_string()),
        unpack: true,
        command: vec!["true".into()],
        ..Default::default()
    };
    let mut command = role(launch.to_args());
    run_ok(umask_022(&mut command));
}

/// The volumes role fills `<base>/<name>` with `reference` (only `media_types` when not empty).
fn agent_volume(
    base: &Path,
    name: &str,
    reference: &str,
    media_types: &[&str],
) -> std::path::PathBuf {
    let path = base.join(name);
    let args = VolumesArgs {
        pulls: vec![VolumePull {
            volume: name.into(),
            path: path.display().to_string(),
            reference: reference.into(),
            plain_http: true,
            media_types: media_types.iter().map(|m| m.to_string()).collect(),
            ..Default::default()
        }],
        debug: false,
    };
    let mut command = role(args.to_args());
    run_ok(umask_022(&mut command));
    path
}

/// The modes the volumes role gives every path (README, "Artifacts as volumes": files readable
/// by every user, since the app runs as another UID than the filler): directories and
/// executables 0755, other files 0644.
fn readable_by_every_uid(tree: BTreeMap<String, Node>) -> BTreeMap<String, Node> {
    tree.into_iter()
        .map(|(path, node)| {
            let node = match node {
                Node::Dir { .. } => Node::Dir { mode: 0o755 },
                Node::File { mode, content } => Node::File {
                    mode: oras_agent::volumes::readable_mode(false, mode),
                    content,
                },
                link => link,
            };
            (path, node)
        })
        .collect()
}

fn manifest_json(reference: &str) -> serde_json::Value {
    serde_json::from_slice(&oras_cli::manifest_fetch(reference)).unwrap()
}

#[test]
fn oras_pull_places_what_the_agent_pushed_as_the_agent_pull_does() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let paths = every_shape(&src);
    let reference = format!("{}/interop/agent-pushed:v1", registry.host());
    run_ok(
        agent_022()
            .args(["push", &reference])
            .args(&paths)
            .arg("--plain-http")
            .current_dir(&src),
    );

    let by_oras = work.path().join("oras-out");
    oras_cli::pull(&reference, &by_oras);
    let expected = as_oras_pull_places(&src, &paths);
    assert_same_tree(
        &snapshot(&by_oras),
        &expected,
        "oras pull of the agent's push",
    );

    let by_agent = work.path().join("agent-out");
    agent_pull(&reference, &by_agent);
    assert_same_tree(
        &snapshot(&by_agent),
        &snapshot(&by_oras),
        "the agent's pull beside oras pull",
    );
}

#[test]
fn oras_manifest_fetch_reads_the_manifest_the_agent_pushed_and_it_has_oras_push_shape() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let paths = every_shape(&src);
    let by_agent = format!("{}/interop/shape:agent", registry.host());
    let printed = run_ok(
        agent_022()
            .args(["push", &by_agent])
            .args(&paths)
            .arg("--plain-http")
            .current_dir(&src),
    );

    // The bytes oras reads are the bytes the agent wrote: their digest is the one the agent
    // printed (`<reference>@<digest>`) and the one oras's descriptor names.
    let fetched = oras_cli::manifest_fetch(&by_agent);
    let digest = Digest::of_bytes(&fetched);
    let stdout = String::from_utf8_lossy(&printed.stdout);
    assert!(
        stdout.trim_end().ends_with(&format!("@{digest}")),
        "the agent printed {stdout}, oras fetched {digest}"
    );
    let descriptor = oras_cli::manifest_descriptor(&by_agent);
    assert_eq!(descriptor["digest"], digest.as_str());
    assert_eq!(descriptor["mediaType"], mt::OCI_MANIFEST);
    assert_eq!(descriptor["size"], fetched.len());
    let client = RegistryClient::new(ClientOptions::new(true)).unwrap();
    let read = client
        .pull_manifest(&Reference::parse(&by_agent).unwrap())
        .unwrap();
    assert_eq!(read.bytes, fetched);

    // Field for field the manifest `oras push` writes for the same paths, but for what depends
    // on the moment or on the tar writer: the creation time, and the directory layer's bytes
    // (Go's archive/tar and the agent's tar crate lay headers out differently; the trees they
    // hold are compared by the pull tests).
    let by_oras = format!("{}/interop/shape:oras", registry.host());
    oras_cli::push(&by_oras, &paths, &[], &src);
    let normalise = |mut manifest: serde_json::Value| {
        let created = manifest["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(mt::ANNOTATION_CREATED)
            .expect("both write the creation time");
        assert!(
            created.as_str().unwrap().ends_with('Z'),
            "RFC 3339 in UTC: {created}"
        );
        // oras-go inlines the empty config's two bytes (`ocispec.DescriptorEmptyJSON` has
        // `Data: {}`); `data` is optional in a descriptor (image-spec descriptor.md) and a
        // client that ignores it fetches the blob, which both push.
        manifest["config"].as_object_mut().unwrap().remove("data");
        for layer in manifest["layers"].as_array_mut().unwrap() {
            if layer["mediaType"] == mt::TAR_GZIP_LAYER {
                let layer = layer.as_object_mut().unwrap();
                for key in ["digest", "size"] {
                    layer.remove(key);
                }
                let annotations = layer["annotations"].as_object_mut().unwrap();
                let digest = annotations.remove(mt::ANNOTATION_CONTENT_DIGEST).unwrap();
                assert!(digest.as_str().unwrap().starts_with("sha256:"));
            }
        }
        manifest
    };
    let agent_manifest = normalise(serde_json::from_slice(&fetched).unwrap());
    let oras_manifest = normalise(manifest_json(&by_oras));
    assert_eq!(agent_manifest, oras_manifest);
    // And what normalising left out is where oras puts it.
    let raw = manifest_json(&by_oras);
    assert_eq!(raw["config"]["digest"], mt::EMPTY_CONFIG_DIGEST);
    assert_eq!(raw["artifactType"], mt::DEFAULT_ARTIFACT_TYPE);
}

#[test]
fn the_agent_pull_init_and_volumes_place_what_oras_pushed_as_oras_pull_does() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let paths = every_shape(&src);
    let reference = format!("{}/interop/oras-pushed:v1", registry.host());
    oras_cli::push(&reference, &paths, &[], &src);

    let by_oras = work.path().join("oras-out");
    oras_cli::pull(&reference, &by_oras);
    let oras_tree = snapshot(&by_oras);
    assert_same_tree(
        &oras_tree,
        &as_oras_pull_places(&src, &paths),
        "oras pull of its own push",
    );

    let pulled = work.path().join("agent-pull");
    agent_pull(&reference, &pulled);
    assert_same_tree(&snapshot(&pulled), &oras_tree, "the agent's pull");

    let placed = work.path().join("placed");
    agent_init_and_launch(&reference, &work.path().join("share"), &placed);
    assert_same_tree(&snapshot(&placed), &oras_tree, "init + launch");

    let volume = agent_volume(&work.path().join("volumes"), "inline", &reference, &[]);
    assert_same_tree(
        &snapshot(&volume),
        &readable_by_every_uid(oras_tree),
        "the volumes role",
    );
}

#[test]
fn annotations_artifact_type_and_media_types_of_oras_push_reach_the_agent() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("container.sif"), &sample(120_000));
    write(&src.join("README.md"), b"# a Singularity image\n");
    write(&src.join("docs/index.md"), b"docs\n");
    // `--annotation-file` takes `{"<file>": {...}, "$manifest": {...}}` (oras
    // `cmd/oras/internal/option/packer.go`: `AnnotationManifest = "$manifest"`; `loadFiles`
    // copies a file's map onto its layer).
    let annotations = serde_json::json!({
        "$manifest": {"org.opencontainers.image.source": "https://example.com/repo"},
        "container.sif": {"org.example.kind": "image"},
        "docs": {"org.example.kind": "documentation"},
    });
    std::fs::write(
        src.join("annotations.json"),
        serde_json::to_vec(&annotations).unwrap(),
    )
    .unwrap();
    let reference = format!("{}/singularityhub/github-ci:latest", registry.host());
    let artifact_type = "application/vnd.example.singularity+type";
    oras_cli::push(
        &reference,
        &[&format!("container.sif:{SIF}"), "README.md", "docs"],
        &[
            "--artifact-type",
            artifact_type,
            "--annotation-file",
            "annotations.json",
        ],
        &src,
    );

    let manifest = manifest_json(&reference);
    assert_eq!(manifest["artifactType"], artifact_type);
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.source"],
        "https://example.com/repo"
    );
    // The agent reads the same manifest: type, annotations, layers.
    let client = RegistryClient::new(ClientOptions::new(true)).unwrap();
    let pulled = client
        .pull_manifest(&Reference::parse(&reference).unwrap())
        .unwrap();
    let parsed = ImageManifest::parse(&pulled.bytes, &pulled.media_type).unwrap();
    assert_eq!(parsed.artifact_type.as_deref(), Some(artifact_type));
    let sif = parsed
        .layers
        .iter()
        .find(|l| l.title() == Some("container.sif"))
        .unwrap();
    assert_eq!(sif.media_type, SIF);
    assert_eq!(sif.annotations["org.example.kind"], "image");
    let docs = parsed
        .layers
        .iter()
        .find(|l| l.title() == Some("docs"))
        .unwrap();
    assert!(docs.is_unpack_directory());
    assert_eq!(docs.annotations["org.example.kind"], "documentation");

    let by_oras = work.path().join("oras-out");
    oras_cli::pull(&reference, &by_oras);
    let pulled = work.path().join("agent-out");
    agent_pull(&reference, &pulled);
    assert_same_tree(&snapshot(&pulled), &snapshot(&by_oras), "the agent's pull");

    // The seed's Singularity pod mounts only the SIF layer (oras-csi's media-type filter).
    let volume = agent_volume(
        &work.path().join("volumes"),
        "oras-inline",
        &reference,
        &[SIF],
    );
    let only_sif: BTreeMap<_, _> = snapshot(&by_oras)
        .into_iter()
        .filter(|(path, _)| path == "container.sif")
        .collect();
    assert_same_tree(
        &snapshot(&volume),
        &readable_by_every_uid(only_sif),
        "the SIF volume",
    );
}

#[test]
fn an_image_spec_1_0_push_with_its_own_config_is_placed_as_oras_pull_does() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("HelloWorldServer.jar"), &sample(40_000));
    write(&src.join("lib/dep.jar"), &sample(3_000));
    write(&src.join("config.json"), br#"{"main":"HelloWorldServer"}"#);
    let reference = format!("{}/my-java-app-artifact:v1", registry.host());
    // `--image-spec v1.0` packs a 1.0 manifest whose config is the given file (oras
    // `cmd/oras/root/push.go`, `PackManifestVersion1_0`; oras-go `pack.go` `packManifestV1_0`).
    oras_cli::push(
        &reference,
        &["HelloWorldServer.jar", "lib"],
        &[
            "--image-spec",
            "v1.0",
            "--config",
            "config.json:application/vnd.example.java.config+json",
        ],
        &src,
    );
    let manifest = manifest_json(&reference);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.example.java.config+json"
    );
    assert!(manifest.get("artifactType").is_none(), "{manifest}");

    let by_oras = work.path().join("oras-out");
    oras_cli::pull(&reference, &by_oras);
    let pulled = work.path().join("agent-out");
    agent_pull(&reference, &pulled);
    assert_same_tree(&snapshot(&pulled), &snapshot(&by_oras), "the agent's pull");
    // The seed's Java pod mounts the artifact at /app and runs /app/HelloWorldServer.jar.
    let volume = agent_volume(&work.path().join("volumes"), "oras-inline", &reference, &[]);
    assert_same_tree(
        &snapshot(&volume),
        &readable_by_every_uid(snapshot(&by_oras)),
        "the jar volume",
    );
    assert!(volume.join("HelloWorldServer.jar").is_file());
}

#[test]
fn an_artifact_without_files_places_nothing_in_either_client() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let reference = format!("{}/interop/nothing:v1", registry.host());
    oras_cli::push(&reference, &[], &[], work.path());
    let manifest = manifest_json(&reference);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], mt::EMPTY_CONFIG);
    assert!(layers[0].get("annotations").is_none(), "{manifest}");

    // oras pull writes nothing, not even its output directory: the file store only makes
    // directories for the files it writes (oras-go `content/file/file.go` `New` creates none).
    let by_oras = work.path().join("oras-out");
    oras_cli::pull(&reference, &by_oras);
    assert!(!by_oras.exists());
    // The agent makes its target (a pod's input path, a volume exists anyway) and places
    // nothing in it.
    let pulled = work.path().join("agent-out");
    agent_pull(&reference, &pulled);
    assert!(snapshot(&pulled).is_empty());
    let placed = work.path().join("placed");
    std::fs::create_dir_all(&placed).unwrap();
    agent_init_and_launch(&reference, &work.path().join("share"), &placed);
    assert!(snapshot(&placed).is_empty());
    let volume = agent_volume(&work.path().join("volumes"), "v", &reference, &[]);
    assert!(snapshot(&volume).is_empty());
}

#[test]
fn an_absolute_title_that_oras_push_was_told_to_allow_is_refused_by_both_pulls() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("abs.txt");
    write(&file, b"absolute\n");
    let reference = format!("{}/interop/absolute:v1", registry.host());
    let absolute = file.display().to_string();
    // Without the flag oras refuses the path itself.
    let refused = oras_cli::command(["push", "--plain-http", &reference, &absolute])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--disable-path-validation"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    oras_cli::push(
        &reference,
        &[&absolute],
        &["--disable-path-validation"],
        work.path(),
    );
    assert_eq!(
        manifest_json(&reference)["layers"][0]["annotations"][mt::ANNOTATION_TITLE],
        absolute.as_str()
    );
    let by_oras = work.path().join("oras-out");
    let oras = oras_cli::command(["pull", "--plain-http", &reference, "-o"])
        .arg(&by_oras)
        .output()
        .unwrap();
    assert!(!oras.status.success(), "oras pull wrote {absolute}");
    let out = work.path().join("agent-out");
    let agent = agent_022()
        .args(["pull", &reference, "-o"])
        .arg(&out)
        .arg("--plain-http")
        .output()
        .unwrap();
    assert!(!agent.status.success(), "the agent wrote {absolute}");
    assert!(
        String::from_utf8_lossy(&agent.stderr).contains("abs.txt"),
        "the refusal names the title: {}",
        String::from_utf8_lossy(&agent.stderr)
    );
}
