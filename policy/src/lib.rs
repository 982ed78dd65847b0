//! Kubewarden mutating policy that injects the oras-cache artifact agent into annotated Pods and
//! Jobs.
//!
//! The module registers the three waPC functions Kubewarden calls. [`evaluate::evaluate`] holds
//! the decision; it reads the outside world only through [`host::Host`], so native tests run it
//! with a fake host and the wasm module with Kubewarden's host capabilities.

pub mod command;
pub mod containers;
pub mod error;
pub mod evaluate;
pub mod host;
pub mod mirror;
pub mod mutate;
pub mod pod_spec;
pub mod registry;
pub mod settings;
pub mod volumes;
pub mod workload;

use std::borrow::Cow;

use kubewarden_policy_sdk::protocol_version_guest;
use kubewarden_policy_sdk::request::ValidationRequest;
use kubewarden_policy_sdk::wapc_guest::{self as guest, CallResult};

use crate::evaluate::evaluate_object;
use crate::host::{Host, KubewardenHost};
use crate::settings::{Settings, validate_settings};

/// Registers the policy's waPC functions; Kubewarden calls it once per instance.
#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    guest::register_function("validate", validate);
    guest::register_function("validate_settings", validate_settings);
    guest::register_function("protocol_version", protocol_version_guest);
}

/// waPC `validate`: `{"request": AdmissionRequest, "settings": {...}}` in, a Kubewarden
/// `ValidationResponse` out.
pub fn validate(payload: &[u8]) -> CallResult {
    validate_with_host(payload, &KubewardenHost)
}

/// [`validate`] with the outside world as a parameter (the native benchmark floor runs it with
/// recorded answers).
pub fn validate_with_host(payload: &[u8], host: &dyn Host) -> CallResult {
    let mut request = ValidationRequest::<Settings>::new(payload)?;
    // Moved out rather than copied: the mutation is built on the request's own object.
    let object = std::mem::take(&mut request.request.object);
    let verdict = evaluate_object(
        &request.request,
        Cow::Owned(object),
        &request.settings,
        host,
    );
    // The answer carries the whole object back: sized once rather than grown by doubling.
    let mut answer = Vec::with_capacity(payload.len() + 4096);
    serde_json::to_writer(&mut answer, &verdict.into_response())?;
    Ok(answer)
}
