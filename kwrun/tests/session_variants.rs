//! A session recorded in kwctl's format with one exchange of every request variant (Sigstore,
//! certificate, `can_i`, list and field-mask lookups, plural names, changed-since): it loads, and
//! each call is answered from the replay in order, as the guest would make it.

use std::path::Path;
use std::time::Duration;

use kwrun::host::HostCapabilities;
use kwrun::metadata::ContextAwareResource;
use kwrun::session::{CallbackRequest, Replay};
use serde_json::json;

fn session() -> Replay {
    Replay::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/every-request.yml"),
    )
    .expect("the recorded session loads")
}

fn resource(api_version: &str, kind: &str) -> ContextAwareResource {
    ContextAwareResource {
        api_version: api_version.into(),
        kind: kind.into(),
    }
}

const IMAGE: &str = "ghcr.io/kubewarden/tests/pod-privileged:v0.2.1";

#[test]
fn every_request_variant_of_a_recorded_session_is_answered_from_the_replay() {
    let host = HostCapabilities::default()
        .with_logs(false)
        .with_context_aware_resources(vec![
            resource("v1", "Namespace"),
            resource("cache.converged-computing.github.io/v1alpha1", "OrasCache"),
        ])
        .with_replay(session());
    // (namespace, operation, the payload the SDK sends, what the guest gets back)
    let calls = [
        (
            "oci",
            "v1/verify",
            json!({"SigstorePubKeyVerify": {"image": IMAGE, "pub_keys": ["-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----"], "annotations": null}}),
            Ok("sha256:0000000000000000000000000000000000000000000000000000000000000001"),
        ),
        (
            "oci",
            "v2/verify",
            json!({"type": "SigstoreKeylessVerify", "image": IMAGE, "keyless": [{"issuer": "https://token.actions.githubusercontent.com", "subject": "https://github.com/kubewarden/app/.github/workflows/release.yml@refs/heads/main"}], "annotations": {"env": "prod"}}),
            Err(
                "Callback evaluation failure: no signatures found for image: ghcr.io/kubewarden/tests/pod-privileged:v0.2.1",
            ),
        ),
        (
            "oci",
            "v2/verify",
            json!({"type": "SigstoreKeylessPrefixVerify", "image": IMAGE, "keyless_prefix": [{"issuer": "https://token.actions.githubusercontent.com", "url_prefix": "https://github.com/kubewarden"}], "annotations": null}),
            Ok("0000000000000000000000000000000000000000000000000000000000000002"),
        ),
        (
            "oci",
            "v2/verify",
            json!({"type": "SigstoreGithubActionsVerify", "image": IMAGE, "owner": "kubewarden", "repo": "app", "annotations": null}),
            Ok("0000000000000000000000000000000000000000000000000000000000000003"),
        ),
        (
            "oci",
            "v2/verify",
            json!({"type": "SigstoreCertificateVerify", "image": IMAGE, "certificate": [45, 45, 45], "certificate_chain": null, "require_rekor_bundle": true, "annotations": null}),
            Ok("0000000000000000000000000000000000000000000000000000000000000004"),
        ),
        (
            "crypto",
            "v1/is_certificate_trusted",
            // The SDK writes an absent expiry as an empty string.
            json!({"cert": {"encoding": "Pem", "data": [45, 45]}, "cert_chain": [{"encoding": "Der", "data": [48]}], "not_after": "2030-01-01T00:00:00Z"}),
            Ok(r#""trusted":true"#),
        ),
        (
            "kubernetes",
            "can_i",
            json!({"subject_access_review": {"groups": null, "resource_attributes": {"group": "apps", "namespace": "default", "resource": "deployments", "verb": "create", "version": "v1"}, "user": "system:serviceaccount:default:builder"}, "disable_cache": false}),
            Ok(r#""allowed":true"#),
        ),
        (
            "kubernetes",
            "list_resources_all",
            json!({"api_version": "v1", "kind": "Namespace", "field_masks": ["metadata.name"]}),
            Ok("NamespaceList"),
        ),
        (
            "kubernetes",
            "list_resources_by_namespace",
            json!({"api_version": "cache.converged-computing.github.io/v1alpha1", "kind": "OrasCache", "namespace": "default", "label_selector": "app=cache"}),
            Ok("OrasCacheList"),
        ),
        (
            "kubernetes",
            "get_resource",
            json!({"api_version": "cache.converged-computing.github.io/v1alpha1", "kind": "OrasCache", "name": "cache", "namespace": "default", "disable_cache": true, "field_masks": ["status.address"]}),
            Ok("cache.default.svc:5000"),
        ),
        (
            "oci",
            "v1/manifest_digest",
            json!("busybox:1.36"),
            Ok("0000000000000000000000000000000000000000000000000000000000000005"),
        ),
        (
            "net",
            "v1/dns_lookup_host",
            json!("registry.example.org"),
            Ok("192.0.2.1"),
        ),
    ];
    for (namespace, operation, payload, expected) in calls {
        let answer = host
            .call(
                "kubewarden",
                namespace,
                operation,
                payload.to_string().as_bytes(),
            )
            .map(|bytes| String::from_utf8(bytes).unwrap());
        match (expected, &answer) {
            (Ok(part), Ok(text)) => assert!(text.contains(part), "{namespace}/{operation}: {text}"),
            (Err(error), Err(text)) => assert_eq!(text, error, "{namespace}/{operation}"),
            _ => panic!("{namespace}/{operation}: expected {expected:?}, got {answer:?}"),
        }
    }

    // Two requests policy-evaluator makes for Rego policies, not waPC guests: the same replay
    // answers them when they are asked for.
    let plural = host
        .answer(&CallbackRequest::KubernetesGetResourcePluralName {
            api_version: "v1".into(),
            kind: "Service".into(),
        })
        .unwrap();
    assert_eq!(plural, br#""services""#);
    let changed = host
        .answer(
            &CallbackRequest::HasKubernetesListResourceAllResultChangedSinceInstant {
                api_version: "v1".into(),
                kind: "Namespace".into(),
                label_selector: None,
                field_selector: None,
                field_masks: None,
                since: Duration::from_secs(5),
            },
        )
        .unwrap();
    assert_eq!(changed, b"true");
    assert_eq!(host.replay_leftovers(), 0);
}

#[test]
fn a_request_variant_replays_only_for_the_same_request() {
    let host = HostCapabilities::default()
        .with_logs(false)
        .with_replay(session());
    let other_key = json!({"SigstorePubKeyVerify": {"image": IMAGE, "pub_keys": ["another key"], "annotations": null}});
    let error = host
        .call(
            "kubewarden",
            "oci",
            "v1/verify",
            other_key.to_string().as_bytes(),
        )
        .unwrap_err();
    assert!(
        error.starts_with("Callback evaluation failure: Replay error: unexpected request"),
        "{error}"
    );
}
