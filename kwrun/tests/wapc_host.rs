//! The waPC host against small hand-written guests (WebAssembly text), independent of the policy:
//! the protocol calls, fresh instances, guest errors, traps, the deadline, host calls and the
//! AdmissionResponse built from what the guest answered.

mod support;

use std::sync::Arc;
use std::time::Duration;

use kwrun::admission::{AdmissionRequest, PolicyMode};
use kwrun::evaluator::{EvalOptions, InstanceAllocator, Policy, TIMEOUT_MESSAGE};
use kwrun::host::HostCapabilities;
use kwrun::metadata::ContextAwareResource;
use kwrun::session::Replay;
use serde_json::{Value, json};
use support::{ORAS_CACHE_API_VERSION, Validate, get_cache_call, get_cache_session, guest, pod};

fn request(operation: &str, object: Value) -> AdmissionRequest {
    AdmissionRequest::from_value(json!({
        "uid": "uid-1", "operation": operation, "object": object,
        "kind": {"group": "", "version": "v1", "kind": "Pod"}
    }))
    .unwrap()
}

fn host() -> Arc<HostCapabilities> {
    Arc::new(HostCapabilities::default().with_logs(false))
}

fn load(validate: Validate) -> Policy {
    Policy::load(&guest(validate), EvalOptions::default()).unwrap()
}

#[test]
fn protocol_version_and_settings_validation_reach_the_guest() {
    let policy = load(Validate::Trap);
    assert_eq!(policy.protocol_version(&host()).unwrap(), "v1");
    assert!(policy.validate_settings(&host(), &json!({})).valid);
    let refused = policy.validate_settings(&host(), &json!({"x": 1}));
    assert!(!refused.valid);
    assert_eq!(refused.message.as_deref(), Some("only {} is accepted"));
}

#[test]
fn every_call_gets_a_fresh_instance() {
    // The guest traps if wapc_init ran more than once in its instance.
    let answer = json!({"accepted": true}).to_string();
    let policy = load(Validate::Answer(answer));
    for _ in 0..5 {
        assert!(
            policy
                .validate(&host(), &request("CREATE", pod()), &json!({}))
                .allowed
        );
    }
}

#[test]
fn memory_a_call_dirtied_is_back_to_the_module_image_in_the_next_call() {
    // Pooled slots are reset in place rather than unmapped: both allocators must hand every call
    // the declared memory, whatever the previous call wrote or grew.
    for allocator in [InstanceAllocator::Pooling, InstanceAllocator::OnDemand] {
        let options = EvalOptions {
            cache_dir: None,
            allocator,
            ..EvalOptions::default()
        };
        let policy = Policy::load(&guest(Validate::DirtyMemory), options).unwrap();
        for call in 0..5 {
            let response = policy.validate(&host(), &request("CREATE", pod()), &json!({}));
            assert!(response.allowed, "{allocator:?}, call {call}: {response:?}");
        }
    }
}

#[test]
fn a_mutated_object_becomes_a_patch_that_rebuilds_it() {
    let mut mutated = pod();
    mutated["metadata"]["annotations"] = json!({"done": "yes"});
    let answer =
        json!({"accepted": true, "mutated_object": mutated, "warnings": ["w1"]}).to_string();
    let policy = load(Validate::Answer(answer));
    let response = policy.validate(&host(), &request("CREATE", pod()), &json!({}));
    assert!(response.allowed);
    assert_eq!(response.uid, "uid-1");
    assert_eq!(response.patch_type.as_deref(), Some("JSONPatch"));
    assert_eq!(response.warnings, Some(vec!["w1".to_owned()]));
    assert_eq!(response.patched_object(&pod()).unwrap(), mutated);

    let delete = policy.validate(&host(), &request("DELETE", Value::Null), &json!({}));
    assert!(!delete.allowed);
    assert!(delete.status.unwrap().message.unwrap().contains("DELETE"));

    let not_allowed = response.apply_policy_mode(PolicyMode::Protect, false, "policy-from-cli");
    assert!(!not_allowed.allowed);
}

#[test]
fn a_rejection_keeps_the_policy_message_and_code() {
    let answer = json!({"accepted": false, "message": "no way", "code": 403}).to_string();
    let response =
        load(Validate::Answer(answer)).validate(&host(), &request("CREATE", pod()), &json!({}));
    assert!(!response.allowed);
    let status = response.status.unwrap();
    assert_eq!(status.message.as_deref(), Some("no way"));
    assert_eq!(status.code, Some(403));
}

#[test]
fn guest_errors_traps_and_garbage_are_500_rejections() {
    let error = load(Validate::GuestError("kaput".into())).validate(
        &host(),
        &request("CREATE", pod()),
        &json!({}),
    );
    let status = error.status.unwrap();
    assert_eq!(status.code, Some(500));
    assert_eq!(
        status.message.as_deref(),
        Some("internal server error: Guest call failure: kaput")
    );

    let trap = load(Validate::Trap).validate(&host(), &request("CREATE", pod()), &json!({}));
    let status = trap.status.unwrap();
    assert_eq!(status.code, Some(500));
    assert!(
        status
            .message
            .unwrap()
            .starts_with("internal server error: Guest call failure")
    );

    let garbage = load(Validate::Answer("not json".into())).validate(
        &host(),
        &request("CREATE", pod()),
        &json!({}),
    );
    assert_eq!(garbage.status.unwrap().code, Some(500));
}

#[test]
fn a_guest_that_never_returns_is_interrupted_at_the_deadline() {
    let policy = Policy::load(
        &guest(Validate::Loop),
        EvalOptions {
            timeout: Some(Duration::from_secs(1)),
            cache_dir: None,
            ..EvalOptions::default()
        },
    )
    .unwrap();
    let response = policy.validate(&host(), &request("CREATE", pod()), &json!({}));
    assert!(!response.allowed);
    let status = response.status.unwrap();
    assert_eq!(status.message.as_deref(), Some(TIMEOUT_MESSAGE));
    assert_eq!(status.code, Some(500));
}

fn oras_cache() -> ContextAwareResource {
    ContextAwareResource {
        api_version: ORAS_CACHE_API_VERSION.into(),
        kind: "OrasCache".into(),
    }
}

#[test]
fn host_calls_are_answered_from_the_replayed_session() {
    let policy = load(get_cache_call());
    let answer = json!({"accepted": false, "message": "answered by the session"});
    let yaml = get_cache_session(Ok(answer));
    let host = Arc::new(
        HostCapabilities::default()
            .with_context_aware_resources(vec![oras_cache()])
            .with_replay(Replay::from_yaml(&yaml, "test").unwrap()),
    );
    let response = policy.validate(&host, &request("CREATE", pod()), &json!({}));
    assert_eq!(
        response.status.unwrap().message.as_deref(),
        Some("answered by the session")
    );
    assert_eq!(host.replay_leftovers(), 0);
}

#[test]
fn host_calls_not_granted_or_not_replayed_reach_the_guest_as_errors() {
    let policy = load(get_cache_call());

    let not_granted = policy.validate(&host(), &request("CREATE", pod()), &json!({}));
    let message = not_granted.status.unwrap().message.unwrap();
    assert!(message.contains("Policy has not been granted access to Kubernetes cache.converged-computing.github.io/v1alpha1/OrasCache"), "{message}");

    let granted =
        Arc::new(HostCapabilities::default().with_context_aware_resources(vec![oras_cache()]));
    let not_replayed = policy.validate(&granted, &request("CREATE", pod()), &json!({}));
    let message = not_replayed.status.unwrap().message.unwrap();
    assert!(
        message.contains("--replay-host-capabilities-interactions"),
        "{message}"
    );
}
