//! The two things the policy asks the Kubewarden host: an `OrasCache`, and an image's
//! ENTRYPOINT/CMD. A trait keeps them apart from the logic, so native tests use a fake and the
//! wasm module uses the SDK's host capabilities.

use kubewarden_policy_sdk::host_capabilities::kubernetes::{GetResourceRequest, get_resource};
use kubewarden_policy_sdk::host_capabilities::oci::get_manifest_and_config;
use oras_cache_api::cache::{API_VERSION, KIND, OrasCacheView};

/// The command an image runs when the container does not override it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageCommand {
    /// The image's ENTRYPOINT (empty if unset).
    pub entrypoint: Vec<String>,
    /// The image's CMD (empty if unset).
    pub cmd: Vec<String>,
}

/// What the policy reads from outside the admission request.
pub trait Host {
    /// The `OrasCache` `name` in `namespace`; the error is the host's message.
    fn oras_cache(&self, namespace: &str, name: &str) -> Result<OrasCacheView, String>;
    /// The ENTRYPOINT and CMD of `image`; the error is the host's message.
    fn image_command(&self, image: &str) -> Result<ImageCommand, String>;
}

/// The request the policy sends to `kubernetes/get_resource`. Public so the replay fixtures of
/// the end-to-end tests can be checked against it: kwctl replays only an identical request.
pub fn cache_request(namespace: &str, name: &str) -> GetResourceRequest {
    GetResourceRequest {
        api_version: API_VERSION.to_string(),
        kind: KIND.to_string(),
        name: name.to_string(),
        namespace: Some(namespace.to_string()),
        disable_cache: false,
        field_masks: None,
    }
}

/// The host capabilities of a Kubewarden policy server (or `kwctl run`).
#[derive(Debug, Clone, Copy, Default)]
pub struct KubewardenHost;

impl Host for KubewardenHost {
    fn oras_cache(&self, namespace: &str, name: &str) -> Result<OrasCacheView, String> {
        get_resource::<OrasCacheView>(&cache_request(namespace, name)).map_err(|e| e.to_string())
    }

    fn image_command(&self, image: &str) -> Result<ImageCommand, String> {
        let response = get_manifest_and_config(image).map_err(|e| e.to_string())?;
        Ok(match response.config.config() {
            Some(config) => ImageCommand {
                entrypoint: config.entrypoint().clone().unwrap_or_default(),
                cmd: config.cmd().clone().unwrap_or_default(),
            },
            None => ImageCommand::default(),
        })
    }
}
