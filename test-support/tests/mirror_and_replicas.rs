//! The registries of the mirror and replica work, as real processes of both builds of
//! distribution (or the `ORAS_TEST_REGISTRY_BIN` build for both): a mirror (distribution's
//! pull-through cache) of an htpasswd upstream, and two replicas on one storage. distribution v3,
//! what a mirror OrasCache runs, is the registry of record; every case also runs on Debian's 2.8.

use oras_test_support::http::Client;
use oras_test_support::token::TokenServer;
use oras_test_support::{BasicAuth, Distribution, Registry, RegistryOptions, Upstream};

/// Runs `case` once per build, v3 first, naming the build when it fails.
fn on_both(case: impl Fn(Distribution)) {
    for distribution in Distribution::ALL {
        eprintln!("case on {distribution:?}");
        case(distribution);
    }
}

/// A builder of a registry of `distribution`.
fn builder(distribution: Distribution) -> RegistryOptions {
    Registry::builder().distribution(distribution)
}

const USER: &str = "alice";
const PASSWORD: &str = "upstream-s3cret";
const REPOSITORY: &str = "workflow/results";
const CONTENT: &[u8] = b"the step's output, pulled through the mirror";

/// An htpasswd upstream with an access log, holding one artifact; returns it and the digest of
/// the artifact's file.
fn upstream_with_artifact(distribution: Distribution) -> (Registry, String) {
    let upstream = builder(distribution)
        .basic_auth(USER, PASSWORD)
        .access_log()
        .start()
        .expect("start the upstream");
    let client = Client::new(upstream.addr()).with_basic_auth(upstream.auth().unwrap());
    let digests = client
        .push_artifact(REPOSITORY, "v1", &[("out.txt", CONTENT)])
        .expect("push to the upstream");
    (upstream, digests[0].clone())
}

/// A mirror of `upstream` holding its credentials.
fn mirror_of(upstream: &Registry) -> Registry {
    builder(upstream.options().distribution)
        .mirror_of(Upstream::of(upstream))
        .start()
        .expect("start the mirror")
}

#[test]
fn a_mirror_of_an_htpasswd_upstream_serves_pulls_without_client_credentials() {
    on_both(|distribution| {
        let (upstream, digest) = upstream_with_artifact(distribution);
        let mirror = mirror_of(&upstream);
        let anonymous = Client::new(upstream.addr());
        assert_eq!(
            anonymous.get_blob(REPOSITORY, &digest).unwrap().status,
            401,
            "the upstream needs credentials"
        );

        let client = Client::new(mirror.addr());
        let manifest = client.get_manifest(REPOSITORY, "v1").unwrap();
        assert_eq!(manifest.status, 200, "{} {}", manifest.text(), mirror.log());
        assert!(manifest.text().contains(&digest), "{}", manifest.text());
        let blob = client.get_blob(REPOSITORY, &digest).unwrap();
        assert_eq!(blob.status, 200, "{}", blob.text());
        assert_eq!(blob.body, CONTENT);

        let config = std::fs::read_to_string(mirror.dir().join("config.yml")).unwrap();
        assert!(
            config.contains(&format!("remoteurl: {}", upstream.url())),
            "{config}"
        );
        assert!(
            !config.contains(PASSWORD),
            "the upstream password reaches the mirror by its environment only: {config}"
        );
    });
}

#[test]
fn a_mirror_of_a_token_auth_upstream_gets_its_tokens_with_the_upstream_credentials() {
    on_both(|distribution| {
        // The way ghcr.io and Docker Hub ask for credentials: a Bearer challenge naming a realm.
        let tokens = TokenServer::start(USER, PASSWORD).unwrap();
        let upstream = builder(distribution)
            .token_server(&tokens, "upstream")
            .start()
            .expect("start the token-auth upstream");
        let scope = format!("repository:{REPOSITORY}:pull,push");
        let digests = Client::new(upstream.addr())
            .with_bearer(&tokens.issue("upstream", &scope))
            .push_artifact(REPOSITORY, "v1", &[("out.txt", CONTENT)])
            .expect("push to the upstream");
        let mirror = builder(distribution)
            .mirror_of(Upstream {
                url: upstream.url(),
                auth: Some(BasicAuth {
                    user: USER.into(),
                    password: PASSWORD.into(),
                }),
            })
            .start()
            .expect("start the mirror");

        let blob = Client::new(mirror.addr())
            .get_blob(REPOSITORY, &digests[0])
            .unwrap();
        let queries = tokens.queries();
        if distribution.proxy_binds_token_realms() {
            // distribution v3.1 and later trust a realm only on the
            // upstream's host and port or registrable domain (see `proxy_binds_token_realms`): the
            // harness's token service listens on another loopback port, so the mirror never asks it
            // and the upstream refuses the anonymous read. ghcr.io keeps its realm on its own host.
            assert_ne!(blob.status, 200, "{} {}", blob.text(), mirror.log());
            assert!(
                queries.is_empty(),
                "no credentials went to a realm on another port: {queries:?}"
            );
            return;
        }
        assert_eq!(blob.status, 200, "{} {}", blob.text(), mirror.log());
        assert_eq!(blob.body, CONTENT);
        assert!(
            queries
                .iter()
                .any(|q| q.contains("scope=repository%3Aworkflow%2Fresults%3Apull")),
            "the mirror asked for a pull token: {queries:?}"
        );
    });
}

#[test]
fn a_blob_pulled_twice_through_the_mirror_is_fetched_from_the_upstream_for_the_first_pull_only() {
    on_both(|distribution| {
        let (mut upstream, digest) = upstream_with_artifact(distribution);
        let mirror = mirror_of(&upstream);
        let client = Client::new(mirror.addr());

        assert_eq!(client.get_blob(REPOSITORY, &digest).unwrap().body, CONTENT);
        mirror.wait_for_blob(REPOSITORY, &digest).unwrap();
        let after_first = upstream.blob_fetches(&digest).unwrap();
        // distribution 2.8 reads a missing blob twice: once streamed to the client, once stored
        // (registry/proxy/proxyblobstore.go, `ServeBlob` and `storeLocal`); v3 once.
        let most = if distribution.proxy_fetches_blobs_once() {
            1
        } else {
            2
        };
        assert!(
            (1..=most).contains(&after_first),
            "the first pull reads the upstream: {:?}",
            upstream.requests()
        );

        assert_eq!(client.get_blob(REPOSITORY, &digest).unwrap().body, CONTENT);
        let after_second = upstream.blob_fetches(&digest).unwrap();
        assert_eq!(
            after_second,
            after_first,
            "the second pull is served from the mirror's storage: {:?}",
            upstream.requests()
        );
    });
}

#[test]
fn a_push_to_the_mirror_is_refused() {
    on_both(|distribution| {
        let (upstream, _) = upstream_with_artifact(distribution);
        let mirror = mirror_of(&upstream);
        let client = Client::new(mirror.addr());
        let started = client
            .request(
                "POST",
                &format!("/v2/{REPOSITORY}/blobs/uploads/"),
                &[],
                b"",
            )
            .unwrap();
        // distribution answers every write to a pull-through cache this way.
        assert_eq!(started.status, 405, "{}", started.text());
        assert!(started.text().contains("UNSUPPORTED"), "{}", started.text());
        let error = client
            .push_manifest(REPOSITORY, "pushed", br#"{"schemaVersion":2}"#)
            .unwrap_err();
        assert!(error.to_string().contains("UNSUPPORTED"), "{error}");
    });
}

/// Starts a chunked upload on `first` (`POST`, then a `PATCH` with the first half) and finishes
/// it on `second` (`PUT` with the second half and the digest); returns the `PUT`'s answer.
fn upload_across(first: &Registry, second: &Registry, data: &[u8]) -> (u16, String) {
    oras_test_support::http::upload_across(first.addr(), second.addr(), REPOSITORY, data).unwrap()
}

#[test]
fn a_chunked_upload_started_on_one_replica_finishes_on_the_other() {
    on_both(|distribution| {
        let replicas = builder(distribution).start_replicas(2).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (status, body) = upload_across(&replicas[0], &replicas[1], &data);
        assert_eq!(status, 201, "{body}");
        let digest = oras_test_support::http::sha256_digest(&data);
        for replica in replicas.registries() {
            let blob = Client::new(replica.addr())
                .get_blob(REPOSITORY, &digest)
                .unwrap();
            assert_eq!(blob.status, 200, "{}", blob.text());
            assert!(
                blob.body == data,
                "replica {} serves the blob",
                replica.host()
            );
        }
    });
}

#[test]
fn an_upload_cannot_move_between_registries_with_different_secrets() {
    on_both(|distribution| {
        let storage = tempfile::tempdir().unwrap();
        let start = |secret: &str| {
            builder(distribution)
                .storage(storage.path())
                .http_secret(secret)
                .start()
                .unwrap()
        };
        let (one, other) = (start("one secret"), start("another secret"));
        let (status, body) = upload_across(&one, &other, b"half and half");
        assert!(
            !(200..300).contains(&status),
            "the other secret refuses the session: {status} {body}"
        );
    });
}
