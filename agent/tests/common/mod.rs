//! Helpers shared by the agent's integration tests.
#![allow(dead_code)]

pub mod data;

#[allow(unused_imports)]
pub use data::{sample, write_noise_file};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The agent binary cargo built for these tests.
pub fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_oras-agent"))
}

/// A command running the agent, quiet unless the test run asks for debug output.
pub fn agent() -> Command {
    let mut command = Command::new(agent_bin());
    command
        .env_remove("ORAS_USER")
        .env_remove("ORAS_PASS")
        .env_remove("ORAS_PUSH_PASS")
        .env_remove("ORAS_PULL_PASS")
        .env("DOCKER_CONFIG", "/nonexistent-oras-agent-tests");
    if std::env::var_os("ORAS_AGENT_DEBUG").is_none() {
        command.env("ORAS_AGENT_QUIET", "1");
    }
    command
}

/// Runs the command, returning its output.
pub fn run(command: &mut Command) -> Output {
    command.output().expect("spawn oras-agent")
}

/// Runs `command`, which must fail, and returns its stderr.
pub fn run_failing(command: &mut Command) -> String {
    let output = run(command);
    let message = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{command:?} succeeded: {message}");
    message
}

/// Runs and asserts success.
// Not every test binary that shares this module runs a command to success.
#[allow(unused_imports)]
pub use oras_test_support::oras_cli::run_ok;

/// Runs the command and returns its exit status and its own peak RSS in KiB, read from the
/// kernel with wait4(2) (per child, so other tests' children do not count).
pub fn run_measuring_rss(command: &mut Command) -> (std::process::ExitStatus, u64, String) {
    use std::os::unix::process::ExitStatusExt;
    // The child is reaped by wait4 below, which std cannot do while keeping the rusage.
    #[allow(clippy::zombie_processes)]
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn oras-agent");
    let pid = child.id() as libc::pid_t;
    let stderr = child.stderr;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            use std::io::Read;
            let _ = stderr.read_to_string(&mut text);
        }
        text
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, not yet waited; both pointers are valid for the call.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(
        waited,
        pid,
        "wait4 failed: {}",
        std::io::Error::last_os_error()
    );
    let stderr = reader.join().unwrap_or_default();
    (
        std::process::ExitStatus::from_raw(status),
        usage.ru_maxrss as u64,
        stderr,
    )
}

/// Every file under `root` (relative path → content), symlinks as `-> target`.
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, format!("-> {}", target.display()).into_bytes());
            } else if kind.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &path, out);
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Runs a Python snippet with oras-py available; panics with its stderr on failure.
pub fn python(script: &str, cwd: &Path) -> String {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(cwd)
        .output()
        .expect("run python3 (is oras-py installed? scripts/bootstrap.sh)");
    assert!(
        output.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Pushes `files` (paths relative to `cwd`, each optionally `path:media-type`) to `reference` of
/// a plain-HTTP registry with oras-py, the outside client.
pub fn oras_py_push(reference: &str, files: &[&str], cwd: &Path) {
    let host = reference.split('/').next().unwrap();
    python(
        &format!(
            "import oras.client\n\
             c = oras.client.OrasClient(hostname='{host}', insecure=True)\n\
             c.push(target='{reference}', files={files:?})\n"
        ),
        cwd,
    );
}

/// Annotations of a file layer titled `title`.
pub fn titled(title: &str) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([(
        oras_cache_api::media_types::ANNOTATION_TITLE.to_string(),
        title.to_string(),
    )])
}

/// Annotations of a directory layer titled `title`, to be unpacked.
pub fn directory(title: &str) -> std::collections::BTreeMap<String, String> {
    let mut annotations = titled(title);
    annotations.insert(
        oras_cache_api::media_types::ANNOTATION_UNPACK.into(),
        "true".into(),
    );
    annotations
}

/// Pushes a crafted artifact to `<registry>/<repo>:v1` with the empty config: `layers` are
/// (descriptor annotations, media type, blob bytes).
pub fn push_crafted(
    registry: &oras_test_support::Registry,
    repo: &str,
    layers: Vec<(std::collections::BTreeMap<String, String>, &str, Vec<u8>)>,
) -> oras_agent::Reference {
    use oras_agent::manifest::{Descriptor, ImageManifest};
    use oras_cache_api::media_types as mt;
    let client = oras_agent::RegistryClient::new(oras_agent::ClientOptions::new(true)).unwrap();
    let reference =
        oras_agent::Reference::parse(&format!("{}/{repo}:v1", registry.host())).unwrap();
    client.push_blob_bytes(&reference, b"{}").unwrap();
    let mut descriptors = Vec::new();
    for (annotations, media_type, blob) in layers {
        let info = client.push_blob_bytes(&reference, &blob).unwrap();
        descriptors.push(Descriptor {
            media_type: media_type.into(),
            digest: info.digest,
            size: info.size,
            annotations,
            artifact_type: None,
        });
    }
    let manifest = ImageManifest::artifact(
        mt::DEFAULT_ARTIFACT_TYPE,
        descriptors,
        std::collections::BTreeMap::new(),
    );
    client
        .push_manifest(&reference, &manifest.to_bytes(), mt::OCI_MANIFEST)
        .unwrap();
    reference
}

/// Path of a blob's content in the registry's filesystem storage (tests overwrite it to make
/// the registry serve content that does not match its digest).
pub fn stored_blob(registry: &oras_test_support::Registry, digest: &oras_agent::Digest) -> PathBuf {
    registry.storage_dir().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{}/data",
        &digest.hex()[..2],
        digest.hex()
    ))
}

/// Writes `content` at `path`, creating its parents.
pub fn write(path: &Path, content: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// `oras-agent push <reference> <paths> --plain-http`, not yet run (paths are relative to the
/// command's working directory, as `oras push` takes them).
pub fn push(reference: &str, paths: &[&str]) -> Command {
    let mut command = agent();
    command
        .arg("push")
        .arg(reference)
        .args(paths)
        .arg("--plain-http");
    command
}

/// `oras-agent pull <reference> -o <out> --plain-http`, not yet run.
pub fn pull(reference: &str, out: &Path) -> Command {
    let mut command = agent();
    command
        .arg("pull")
        .arg(reference)
        .arg("-o")
        .arg(out)
        .arg("--plain-http");
    command
}

/// The process's stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A pod role run as the policy runs it: `argv` from the contract's `to_args()`, and no usable
/// TMPDIR (the agent containers have a read-only root filesystem).
pub fn role(argv: Vec<String>) -> Command {
    let mut command = agent();
    command.env("TMPDIR", "/nonexistent-tmp").args(argv);
    command
}

/// The init role fetching `inputs` over plain HTTP into `share`.
pub fn init(share: &Path, inputs: &[&str]) -> Command {
    role(
        oras_cache_api::agent::InitArgs {
            share: share.display().to_string(),
            inputs: inputs.iter().map(|i| i.to_string()).collect(),
            plain_http: true,
            debug: false,
        }
        .to_args(),
    )
}

/// A tar+gzip of `(name, type, data)` entries, written header by header.
pub fn targz(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut builder = tar::Builder::new(encoder);
    for (name, kind, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_path(name).unwrap();
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}
