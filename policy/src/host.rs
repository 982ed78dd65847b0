//! What the policy asks the Kubewarden host: an `OrasCache`, the `OrasCache`s of a namespace (to
//! find mirrors), and an image's ENTRYPOINT/CMD. A trait keeps them apart from the logic, so native tests use a fake and the
//! wasm module uses the SDK's host capabilities.

use kubewarden_policy_sdk::host_capabilities::kubernetes::{
    GetResourceRequest, ListResourcesByNamespaceRequest, get_resource,
};
use kubewarden_policy_sdk::host_capabilities::oci::get_manifest_and_config;
use kubewarden_policy_sdk::wapc_guest;
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
    /// Every `OrasCache` in `namespace`; the error is the host's message.
    fn oras_caches(&self, namespace: &str) -> Result<Vec<OrasCacheView>, String>;
}

/// The request the policy sends to `kubernetes/list_resources_by_namespace` to find mirrors.
/// Public so that replayed sessions can be checked against it: kwctl replays only an identical
/// request.
pub fn caches_request(namespace: &str) -> ListResourcesByNamespaceRequest {
    ListResourcesByNamespaceRequest {
        api_version: API_VERSION.to_string(),
        kind: KIND.to_string(),
        namespace: namespace.to_string(),
        label_selector: None,
        field_selector: None,
        field_masks: None,
    }
}

/// The part of a Kubernetes `List` the policy reads.
#[derive(serde::Deserialize)]
struct CacheList {
    #[serde(default)]
    items: Vec<OrasCacheView>,
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

    fn oras_caches(&self, namespace: &str) -> Result<Vec<OrasCacheView>, String> {
        // The SDK's typed `list_resources_by_namespace` wants a k8s-openapi resource; the policy
        // reads its own view of OrasCache, so it makes the same host call itself (SDK 0.17.3
        // `host_capabilities/kubernetes.rs`: binding `kubewarden`, namespace `kubernetes`,
        // operation `list_resources_by_namespace`, the request as JSON, a `List` back).
        let request = serde_json::to_vec(&caches_request(namespace)).map_err(|e| e.to_string())?;
        let answer = wapc_guest::host_call(
            "kubewarden",
            "kubernetes",
            "list_resources_by_namespace",
            &request,
        )
        .map_err(|e| {
            format!("error invoking host capability kubernetes.list_resources_by_namespace: {e}")
        })?;
        serde_json::from_slice::<CacheList>(&answer)
            .map(|list| list.items)
            .map_err(|e| format!("the OrasCache list does not parse: {e}"))
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
