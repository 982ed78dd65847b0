//! The waPC host against small hand-written guests (WebAssembly text), independent of the policy:
//! the protocol calls, fresh instances, guest errors, traps, the deadline, host calls and the
//! AdmissionResponse built from what the guest answered.

use std::sync::Arc;
use std::time::Duration;

use kwrun::admission::{AdmissionRequest, PolicyMode};
use kwrun::evaluator::{EvalOptions, InstanceAllocator, Policy, TIMEOUT_MESSAGE};
use kwrun::host::HostCapabilities;
use kwrun::metadata::ContextAwareResource;
use kwrun::session::{CallbackRequest, Replay, session_yaml};
use serde_json::{Value, json};

/// Bytes as a WAT string literal.
fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// What the guest's `validate` does.
enum Validate {
    /// Answers these bytes.
    Answer(String),
    /// Fails with this guest error.
    GuestError(String),
    /// Traps.
    Trap,
    /// Never returns.
    Loop,
    /// Traps unless memory is as the module declares it (one page, the `"v1"` data segment,
    /// zeros elsewhere), then dirties it: overwrites the data segment, writes a marker and grows
    /// the memory by a page it also writes to; answers `{"accepted":true}`.
    DirtyMemory,
    /// Calls `kubewarden/<ns>/<op>` with a payload and answers the host's response, or fails
    /// with the host's error as guest error.
    HostCall {
        namespace: String,
        operation: String,
        payload: String,
    },
}

/// A waPC guest: `protocol_version` answers "v1", `validate_settings` accepts only `{}`, and
/// `validate` behaves as asked. Operations are told apart by their name's length (16, 17, 8).
fn guest(validate: Validate) -> Vec<u8> {
    let (data, body) = match validate {
        Validate::Answer(text) => (
            format!(r#"(data (i32.const 8192) "{}")"#, wat_bytes(text.as_bytes())),
            format!("(call $guest_response (i32.const 8192) (i32.const {})) (i32.const 1)", text.len()),
        ),
        Validate::GuestError(text) => (
            format!(r#"(data (i32.const 8192) "{}")"#, wat_bytes(text.as_bytes())),
            format!("(call $guest_error (i32.const 8192) (i32.const {})) (i32.const 0)", text.len()),
        ),
        Validate::Trap => (String::new(), "unreachable".to_owned()),
        Validate::DirtyMemory => (
            r#"(data (i32.const 8192) "{\22accepted\22:true}")"#.to_owned(),
            "(if (i32.ne (memory.size) (i32.const 1)) (then unreachable))
             (if (i32.ne (i32.load8_u (i32.const 0)) (i32.const 0x22)) (then unreachable))
             (if (i32.ne (i32.load (i32.const 4096)) (i32.const 0)) (then unreachable))
             (i32.store8 (i32.const 0) (i32.const 0x58))
             (i32.store (i32.const 4096) (i32.const 0x2a))
             (drop (memory.grow (i32.const 1)))
             (i32.store (i32.const 70000) (i32.const 0x2a))
             (call $guest_response (i32.const 8192) (i32.const 17)) (i32.const 1)"
                .to_owned(),
        ),
        Validate::Loop => (String::new(), "(loop $forever (br $forever)) (i32.const 0)".to_owned()),
        Validate::HostCall { namespace, operation, payload } => (
            format!(
                r#"(data (i32.const 8192) "kubewarden") (data (i32.const 8208) "{}") (data (i32.const 8240) "{}") (data (i32.const 8288) "{}")"#,
                wat_bytes(namespace.as_bytes()),
                wat_bytes(operation.as_bytes()),
                wat_bytes(payload.as_bytes())
            ),
            format!(
                "(if (result i32) (call $host_call (i32.const 8192) (i32.const 10) (i32.const 8208) (i32.const {ns}) (i32.const 8240) (i32.const {op}) (i32.const 8288) (i32.const {pl}))
                   (then (call $host_response (i32.const 16384)) (call $guest_response (i32.const 16384) (call $host_response_len)) (i32.const 1))
                   (else (call $host_error (i32.const 16384)) (call $guest_error (i32.const 16384) (call $host_error_len)) (i32.const 0)))",
                ns = namespace.len(),
                op = operation.len(),
                pl = payload.len()
            ),
        ),
    };
    let invalid = r#"{"valid":false,"message":"only {} is accepted"}"#;
    let wat = format!(
        r#"(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wapc" "__guest_error" (func $guest_error (param i32 i32)))
  (import "wapc" "__host_call" (func $host_call (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wapc" "__host_response_len" (func $host_response_len (result i32)))
  (import "wapc" "__host_response" (func $host_response (param i32)))
  (import "wapc" "__host_error_len" (func $host_error_len (result i32)))
  (import "wapc" "__host_error" (func $host_error (param i32)))
  (memory (export "memory") 1)
  (global $inits (mut i32) (i32.const 0))
  (data (i32.const 0) "\22v1\22")
  (data (i32.const 16) "{{\22valid\22:true,\22message\22:null}}")
  (data (i32.const 64) "{invalid_bytes}")
  {data}
  (func (export "wapc_init") (global.set $inits (i32.add (global.get $inits) (i32.const 1))))
  (func $validate (result i32) {body})
  (func (export "__guest_call") (param $op_len i32) (param $msg_len i32) (result i32)
    (call $guest_request (i32.const 1024) (i32.const 2048))
    (if (i32.ne (global.get $inits) (i32.const 1)) (then unreachable))
    (if (i32.eq (local.get $op_len) (i32.const 16))
      (then (call $guest_response (i32.const 0) (i32.const 4)) (return (i32.const 1))))
    (if (i32.eq (local.get $op_len) (i32.const 17))
      (then
        (if (i32.eq (local.get $msg_len) (i32.const 2))
          (then (call $guest_response (i32.const 16) (i32.const 29)))
          (else (call $guest_response (i32.const 64) (i32.const {invalid_len}))))
        (return (i32.const 1))))
    (call $validate))
)"#,
        invalid_bytes = wat_bytes(invalid.as_bytes()),
        invalid_len = invalid.len(),
    );
    wat::parse_str(wat).expect("the test guest is valid WAT")
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

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

fn get_cache() -> (String, CallbackRequest) {
    let payload = json!({"api_version": "cache.converged-computing.github.io/v1alpha1", "kind": "OrasCache", "name": "c", "namespace": "ns", "disable_cache": false});
    let request = CallbackRequest::KubernetesGetResource {
        api_version: "cache.converged-computing.github.io/v1alpha1".into(),
        kind: "OrasCache".into(),
        name: "c".into(),
        namespace: Some("ns".into()),
        disable_cache: false,
        field_masks: None,
    };
    (payload.to_string(), request)
}

fn oras_cache() -> ContextAwareResource {
    ContextAwareResource {
        api_version: "cache.converged-computing.github.io/v1alpha1".into(),
        kind: "OrasCache".into(),
    }
}

#[test]
fn host_calls_are_answered_from_the_replayed_session() {
    let (payload, expected) = get_cache();
    let policy = load(Validate::HostCall {
        namespace: "kubernetes".into(),
        operation: "get_resource".into(),
        payload,
    });
    let answer = json!({"accepted": false, "message": "answered by the session"});
    let yaml = session_yaml(&[(expected, Ok(answer))]);
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
    let (payload, _) = get_cache();
    let policy = load(Validate::HostCall {
        namespace: "kubernetes".into(),
        operation: "get_resource".into(),
        payload,
    });

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
