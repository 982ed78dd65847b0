//! Shared by kwrun's test binaries: small waPC guests in WebAssembly text, independent of any
//! real policy, and the metadata that makes one context-aware.
#![allow(dead_code)]

use kwrun::metadata::Metadata;
use kwrun::session::{CallbackRequest, session_yaml};
use serde_json::{Value, json};

/// The resource the context-aware test guests read.
pub const ORAS_CACHE_API_VERSION: &str = "cache.converged-computing.github.io/v1alpha1";

/// Bytes as a WAT string literal.
pub fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// What the guest's `validate` does.
pub enum Validate {
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
        /// `kubernetes`, `oci`, ...
        namespace: String,
        /// `get_resource`, `v1/oci_manifest_config`, ...
        operation: String,
        /// The JSON payload.
        payload: String,
    },
}

/// A waPC guest: `protocol_version` answers "v1", `validate_settings` accepts only `{}`, and
/// `validate` behaves as asked. Operations are told apart by their name's length (16, 17, 8).
pub fn guest(validate: Validate) -> Vec<u8> {
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

/// The Pod the tests' requests carry.
pub fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

/// `module` with an `io.kubewarden.metadata` section declaring OrasCache as a context-aware
/// resource, as `annotate` writes it (so `--allow-context-aware` grants it).
pub fn annotated(module: &[u8]) -> Vec<u8> {
    let mut metadata = Metadata::from_yaml(&format!(
        "rules:\n  - apiGroups: [\"\"]\n    apiVersions: [v1]\n    resources: [pods]\n    operations: [CREATE]\nmutating: true\ncontextAwareResources:\n  - apiVersion: {ORAS_CACHE_API_VERSION}\n    kind: OrasCache\n"
    ))
    .expect("test metadata");
    metadata.protocol_version = Some("v1".to_owned());
    metadata.embed(module).expect("embed the test metadata")
}

/// The JSON payload of `kubernetes/get_resource` for the OrasCache `c` in `ns`.
pub fn get_cache_payload() -> String {
    json!({"api_version": ORAS_CACHE_API_VERSION, "kind": "OrasCache", "name": "c", "namespace": "ns", "disable_cache": false}).to_string()
}

/// What a guest does to read the OrasCache `c` in `ns` and answer what the host said.
pub fn get_cache_call() -> Validate {
    Validate::HostCall {
        namespace: "kubernetes".into(),
        operation: "get_resource".into(),
        payload: get_cache_payload(),
    }
}

/// The host call of [`get_cache_call`] as a session records it.
pub fn get_cache_request() -> CallbackRequest {
    CallbackRequest::KubernetesGetResource {
        api_version: ORAS_CACHE_API_VERSION.into(),
        kind: "OrasCache".into(),
        name: "c".into(),
        namespace: Some("ns".into()),
        disable_cache: false,
        field_masks: None,
    }
}

/// A session (YAML) that answers the OrasCache lookup with `answer`.
pub fn get_cache_session(answer: Result<Value, String>) -> String {
    session_yaml(&[(get_cache_request(), answer)])
}
