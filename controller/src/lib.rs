//! Reconciles `OrasCache` objects into a running registry and reports its address and health.
//!
//! The pipeline for one object: [`plan`] validates the spec, [`resources`] builds the owned
//! StatefulSet and Service (a mirror's pull-through environment, the shared claim, budget and
//! HTTP secret of replicas), [`client_config`] the docker-config Secret and client-config
//! ConfigMap, [`reconcile`] applies them with server-side apply (and checks a remote registry or
//! a mirror's upstream with [`registry_check`]), and [`status`] computes the deterministic status
//! it patches. [`render`] prints what would be applied, from the same builders, without a
//! cluster. [`manifests`] renders the install YAML from the same types, so it cannot drift from
//! the code.

pub mod app;
pub mod children;
pub mod cli;
pub mod client_config;
pub mod crd;
/// Test objects for the unit tests and, through the `fixtures` feature the crate's own
/// dev-dependency turns on, for the integration tests; never in a release build.
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod manifests;
pub mod metrics;
pub mod plan;
pub mod reconcile;
pub mod registry_check;
pub mod render;
pub mod resources;
pub mod server;
pub mod status;

/// Installs rustls' ring provider as the process default, once. kube's TLS and the registry
/// check both use rustls; naming the provider keeps a second one from being picked implicitly.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
