//! The registry client against the real registry (CNCF distribution, started by test-support).

mod common;

use common::{sample, stored_blob};

use oras_agent::auth::{BasicCredentials, Credentials};
use oras_agent::manifest::{Descriptor, ImageManifest};
use oras_agent::registry::{ClientOptions, RegistryClient, RegistryError, RetryPolicy};
use oras_agent::{Digest, Reference};
use oras_cache_api::media_types as mt;
use oras_test_support::Registry;
use std::collections::BTreeMap;
use std::time::Duration;

fn client(credentials: Credentials) -> RegistryClient {
    let mut options = ClientOptions::new(true);
    options.credentials = credentials;
    RegistryClient::new(options).unwrap()
}

fn reference(registry: &Registry, repo_tag: &str) -> Reference {
    Reference::parse(&format!("{}/{repo_tag}", registry.host())).unwrap()
}

#[test]
fn blobs_and_manifests_round_trip_byte_for_byte() {
    let registry = Registry::start();
    let client = client(Credentials::Anonymous);
    let target = reference(&registry, "client/round-trip:v1");

    let small = client.push_blob_bytes(&target, b"hello registry").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("data.bin");
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&source, &content).unwrap();
    let big = client.push_blob_file(&target, &source).unwrap();
    assert_eq!(big.size, content.len() as u64);
    assert_eq!(big.digest, Digest::of_bytes(&content));
    client.push_blob_bytes(&target, b"{}").unwrap();

    let layer = |info: &oras_agent::registry::BlobInfo, title: &str| Descriptor {
        media_type: mt::DEFAULT_FILE_LAYER.into(),
        digest: info.digest.clone(),
        size: info.size,
        annotations: BTreeMap::from([(mt::ANNOTATION_TITLE.to_string(), title.to_string())]),
        artifact_type: None,
    };
    let manifest = ImageManifest::artifact(
        mt::DEFAULT_ARTIFACT_TYPE,
        vec![layer(&small, "small.txt"), layer(&big, "data.bin")],
        BTreeMap::new(),
    );
    let bytes = manifest.to_bytes();
    let pushed = client
        .push_manifest(&target, &bytes, mt::OCI_MANIFEST)
        .unwrap();

    let pulled = client.pull_manifest(&target).unwrap();
    assert_eq!(pulled.bytes, bytes);
    assert_eq!(pulled.digest, pushed);
    assert_eq!(pulled.media_type, mt::OCI_MANIFEST);
    let by_digest = client
        .pull_manifest(&target.with_digest(pushed.clone()))
        .unwrap();
    assert_eq!(by_digest.bytes, bytes);

    assert_eq!(
        client
            .pull_blob_bytes(&target, &small.digest, 1024)
            .unwrap(),
        b"hello registry"
    );
    let out = dir.path().join("out.bin");
    let size = client
        .pull_blob_to_file(&target, &big.digest, Some(big.size), &out)
        .unwrap();
    assert_eq!(size, big.size);
    assert_eq!(std::fs::read(&out).unwrap(), content);
    assert!(client.blob_exists(&target, &big.digest).unwrap());
    // Pushing again finds the blob and uploads nothing.
    assert_eq!(client.push_blob_file(&target, &source).unwrap(), big);
}

#[test]
fn a_corrupted_blob_is_refused_and_never_appears() {
    let registry = Registry::start();
    let client = client(Credentials::Anonymous);
    let target = reference(&registry, "client/corrupt:v1");
    let info = client
        .push_blob_bytes(&target, b"precious content")
        .unwrap();
    std::fs::write(stored_blob(&registry, &info.digest), b"tampered content").unwrap();

    let error = pull_to_empty_dir(&client, &target, &info.digest, info.size);
    assert!(
        matches!(error, RegistryError::DigestMismatch { .. }),
        "{error}"
    );
    assert!(matches!(
        client.pull_blob_bytes(&target, &info.digest, 1024),
        Err(RegistryError::DigestMismatch { .. })
    ));
    assert!(matches!(
        client.pull_blob_bytes(&target, &info.digest, 4),
        Err(RegistryError::TooLarge { .. })
    ));
}

#[test]
fn basic_auth_is_answered_and_anonymous_access_is_refused_clearly() {
    let registry = Registry::start_with_basic_auth("alice", "s3cret");
    let target = reference(&registry, "client/private:v1");
    let anonymous = client(Credentials::Anonymous);
    let error = anonymous.push_blob_bytes(&target, b"x").unwrap_err();
    assert!(
        matches!(error, RegistryError::Unauthorized { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("ORAS_USER"), "{error}");

    let wrong = client(Credentials::Basic(BasicCredentials {
        user: "alice".into(),
        password: "wrong".into(),
    }));
    assert!(matches!(
        wrong.push_blob_bytes(&target, b"x"),
        Err(RegistryError::Unauthorized { .. })
    ));

    let alice = client(Credentials::Basic(BasicCredentials {
        user: "alice".into(),
        password: "s3cret".into(),
    }));
    let info = alice.push_blob_bytes(&target, b"x").unwrap();
    assert_eq!(
        alice.pull_blob_bytes(&target, &info.digest, 10).unwrap(),
        b"x"
    );
}

#[test]
fn a_registry_that_comes_up_within_the_retry_window_is_reached() {
    let mut registry = Registry::start();
    let target = reference(&registry, "client/late:v1");
    registry.stop();
    let mut options = ClientOptions::new(true);
    options.credentials = Credentials::Anonymous;
    options.retry = RetryPolicy {
        attempts: 20,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(1),
    };
    let client = RegistryClient::new(options).unwrap();
    let pusher = std::thread::spawn(move || client.push_blob_bytes(&target, b"late data"));
    std::thread::sleep(Duration::from_secs(2));
    registry.restart().unwrap();
    let info = pusher.join().unwrap().unwrap();
    assert_eq!(info.digest, Digest::of_bytes(b"late data"));
}

#[test]
fn a_registry_that_stays_down_fails_with_the_address_and_the_attempts() {
    let mut registry = Registry::start();
    let target = reference(&registry, "client/down:v1");
    registry.stop();
    let mut options = ClientOptions::new(true);
    options.retry = RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    };
    let client = RegistryClient::new(options).unwrap();
    let error = client.pull_manifest(&target).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, RegistryError::Unreachable { attempts: 3, .. }),
        "{message}"
    );
    assert!(message.contains(&registry.host()), "{message}");
}

#[test]
fn a_missing_manifest_is_a_clear_404() {
    let registry = Registry::start();
    let client = client(Credentials::Anonymous);
    let error = client
        .pull_manifest(&reference(&registry, "client/none:v1"))
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Status { status: 404, .. }),
        "{error}"
    );
}

#[test]
fn a_big_corrupted_or_overlong_blob_leaves_nothing_behind() {
    let registry = Registry::start();
    let client = client(Credentials::Anonymous);
    let target = reference(&registry, "client/corrupt-big:v1");
    // Several chunks of the parallel hasher, so that the mismatch is found after all of them.
    let content = sample(9 * 1024 * 1024 + 17);
    let info = client.push_blob_bytes(&target, &content).unwrap();
    let mut tampered = content.clone();
    *tampered.last_mut().unwrap() ^= 1;
    std::fs::write(stored_blob(&registry, &info.digest), &tampered).unwrap();

    let error = pull_to_empty_dir(&client, &target, &info.digest, info.size);
    assert!(
        matches!(error, RegistryError::DigestMismatch { .. }),
        "{error}"
    );
    let error = pull_to_empty_dir(&client, &target, &info.digest, info.size - 1);
    assert!(
        matches!(error, RegistryError::SizeMismatch { .. }),
        "{error}"
    );
}

/// Pulls a blob that must be refused into an empty directory; checks that neither the
/// destination nor a temporary file is left there, and returns the error.
fn pull_to_empty_dir(
    client: &RegistryClient,
    target: &Reference,
    digest: &Digest,
    size: u64,
) -> RegistryError {
    let dir = tempfile::tempdir().unwrap();
    let error = client
        .pull_blob_to_file(target, digest, Some(size), &dir.path().join("file"))
        .unwrap_err();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "neither the destination nor a temp file exists after: {error}"
    );
    error
}

/// A TCP relay to the registry that cuts the first connection carrying more than `cut_after`
/// bytes towards the client, once.
struct CuttingProxy {
    port: u16,
    cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CuttingProxy {
    fn start(upstream: String, cut_after: usize) -> CuttingProxy {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cuts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let cut_count = cuts.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let Ok(mut server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut client_in, mut server_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut client_in, &mut server_out);
                    let _ = server_out.shutdown(Shutdown::Write);
                });
                let cuts = cut_count.clone();
                std::thread::spawn(move || {
                    let mut buffer = vec![0u8; 64 * 1024];
                    let mut relayed = 0;
                    loop {
                        let n = match server.read(&mut buffer) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if client.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                        relayed += n;
                        if relayed > cut_after && cuts.fetch_add(1, Ordering::SeqCst) == 0 {
                            break;
                        }
                    }
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = server.shutdown(Shutdown::Both);
                });
            }
        });
        CuttingProxy { port, cuts }
    }

    /// Connections cut so far (at most one).
    fn cut(&self) -> bool {
        self.cuts.load(std::sync::atomic::Ordering::SeqCst) > 0
    }
}

#[test]
fn a_download_cut_midway_is_retried_from_the_start() {
    let registry = Registry::start();
    let direct = client(Credentials::Anonymous);
    let content = sample(12 * 1024 * 1024 + 5);
    let info = direct
        .push_blob_bytes(&reference(&registry, "client/cut:v1"), &content)
        .unwrap();

    let proxy = CuttingProxy::start(registry.host(), 5 * 1024 * 1024);
    let mut options = ClientOptions::new(true);
    options.credentials = Credentials::Anonymous;
    options.retry = RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    };
    let through_proxy = RegistryClient::new(options).unwrap();
    let target = Reference::parse(&format!("127.0.0.1:{}/client/cut:v1", proxy.port)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("file");
    let size = through_proxy
        .pull_blob_to_file(&target, &info.digest, Some(info.size), &out)
        .unwrap();
    assert!(proxy.cut(), "the proxy never cut the download");
    assert_eq!(size, info.size);
    assert!(std::fs::read(&out).unwrap() == content);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temp file of the cut attempt is left"
    );
}
