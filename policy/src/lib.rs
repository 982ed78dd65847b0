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
pub mod mutate;
pub mod pod_spec;
pub mod registry;
pub mod settings;
pub mod workload;

use kubewarden_policy_sdk::protocol_version_guest;
use kubewarden_policy_sdk::request::ValidationRequest;
use kubewarden_policy_sdk::wapc_guest::{self as guest, CallResult};

use crate::evaluate::evaluate;
use crate::host::KubewardenHost;
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
    let request = ValidationRequest::<Settings>::new(payload)?;
    let verdict = evaluate(&request.request, &request.settings, &KubewardenHost);
    Ok(serde_json::to_vec(&verdict.into_response())?)
}
