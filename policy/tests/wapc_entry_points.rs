//! The three waPC functions, called with the payloads Kubewarden sends (native build: the SDK's
//! host calls fail here, which is what a host without the capability does).

use oras_cache_policy::settings::validate_settings;
use oras_cache_policy::validate;
use serde_json::{Value, json};

fn call_validate(object: Value, settings: Value) -> Value {
    let payload = json!({
        "request": {
            "uid": "1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "u"},
            "object": object
        },
        "settings": settings
    });
    serde_json::from_slice(&validate(&serde_json::to_vec(&payload).unwrap()).unwrap()).unwrap()
}

#[test]
fn validate_accepts_an_unannotated_pod_without_mutation() {
    let response = call_validate(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        json!({}),
    );
    assert_eq!(response["accepted"], true);
    assert!(response["mutated_object"].is_null());
}

/// A pod that pulls `a:1` from the OrasCache `c`.
fn cache_pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "annotations": {
               "oras.converged-computing.github.io/oras-cache": "c",
               "oras.converged-computing.github.io/input-uri": "a:1"}},
           "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["ls"]}]}})
}

#[test]
fn validate_mutates_with_the_fallback_address_when_not_context_aware() {
    let response = call_validate(cache_pod(), json!({"contextAware": false}));
    assert_eq!(response["accepted"], true);
    let init = &response["mutated_object"]["spec"]["initContainers"][0];
    assert_eq!(init["name"], "oras-init");
    assert!(
        init["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--input=c.default.svc.cluster.local:5000/a:1"))
    );
}

#[test]
fn validate_rejects_when_the_cache_cannot_be_read() {
    let response = call_validate(cache_pod(), json!({}));
    assert_eq!(response["accepted"], false);
    let message = response["message"].as_str().unwrap();
    assert!(
        message.contains("OrasCache \"c\" in namespace \"default\" could not be read"),
        "{message}"
    );
    assert!(message.contains("kubernetes.get_resource"), "{message}");
}

#[test]
fn validate_settings_reports_valid_and_invalid_settings() {
    let ok: Value = serde_json::from_slice(&validate_settings(b"{}").unwrap()).unwrap();
    assert_eq!(ok, json!({"valid": true, "message": null}));
    let bad: Value = serde_json::from_slice(
        &validate_settings(br#"{"clusterDomain": "no such domain"}"#).unwrap(),
    )
    .unwrap();
    assert_eq!(bad["valid"], false);
    assert!(bad["message"].as_str().unwrap().contains("clusterDomain"));
}

#[test]
fn protocol_version_is_v1() {
    let version = kubewarden_policy_sdk::protocol_version_guest(&[]).unwrap();
    assert_eq!(version, br#""v1""#);
}
