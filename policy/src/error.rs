//! Why the policy refuses an object. Every message names the annotation or field at fault and the
//! fix, because it is what `kubectl apply` prints to the user.

use oras_cache_api::annotations::{
    AnnotationError, CONTAINER, ORAS_CACHE, OUTPUT_URI, REGISTRY, key,
};
use thiserror::Error;

/// A reason to reject the admission request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// The annotations themselves are wrong.
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    /// An artifact volume the policy cannot serve.
    #[error(transparent)]
    Volume(#[from] oras_cache_api::volumes::VolumeError),
    /// The `registry` annotation names a registry the settings do not allow.
    #[error(
        "annotation {key}: registry {host:?} is not allowed by the policy (allowedRegistries: {allowed}): use one of those, or ask the cluster operator to allow it",
        key = key(REGISTRY)
    )]
    RegistryNotAllowed {
        /// The registry asked for.
        host: String,
        /// The allowed registries, comma separated.
        allowed: String,
    },
    /// The named `OrasCache` could not be read.
    #[error(
        "annotation {key}: OrasCache {cache:?} in namespace {namespace:?} could not be read ({reason}): create it in that namespace, fix the name, or set {registry} to a remote registry",
        key = key(ORAS_CACHE),
        registry = key(REGISTRY)
    )]
    CacheUnavailable {
        /// Name of the cache.
        cache: String,
        /// Namespace of the object.
        namespace: String,
        /// What the host said.
        reason: String,
    },
    /// The named `OrasCache` deploys no registry and names no remote one.
    #[error(
        "annotation {key}: OrasCache {cache:?} in namespace {namespace:?} has deploy: false and no spec.registry, so it gives no registry address: set annotation {registry} on the pod to the registry host[:port], or give the OrasCache a spec.registry.address",
        key = key(ORAS_CACHE),
        registry = key(REGISTRY)
    )]
    CacheWithoutRegistry {
        /// Name of the cache.
        cache: String,
        /// Namespace of the object.
        namespace: String,
    },
    /// The output would be pushed to a mirror, which serves pulls only.
    #[error(
        "annotation {output}: OrasCache {cache:?} is a mirror of {upstream} and serves pulls only: push to {upstream} with annotation {registry}, or to an OrasCache that is not a mirror",
        output = key(OUTPUT_URI),
        registry = key(REGISTRY)
    )]
    PushToMirror {
        /// Name of the cache.
        cache: String,
        /// The registry it mirrors.
        upstream: String,
    },
    /// The pod has no container to wrap.
    #[error("the pod template has no containers: add the container oras-cache should wrap")]
    NoContainers,
    /// The `container` annotation names no container of the pod.
    #[error(
        "annotation {key} names container {name:?}, but the pod's containers are ({names}): name one of them",
        key = key(CONTAINER)
    )]
    UnknownContainer {
        /// The name asked for.
        name: String,
        /// The container names, comma separated.
        names: String,
    },
    /// The container has no `command` and its image's ENTRYPOINT/CMD could not be read.
    #[error(
        "container {container:?} has no command and the ENTRYPOINT/CMD of its image {image:?} could not be read ({reason}): set command (and args) on the container"
    )]
    ImageCommandUnavailable {
        /// Container name.
        container: String,
        /// Its image.
        image: String,
        /// What the host said.
        reason: String,
    },
    /// Neither the container nor its image says what to run.
    #[error(
        "container {container:?} has no command and its image has no ENTRYPOINT or CMD: set command on the container"
    )]
    EmptyCommand {
        /// Container name.
        container: String,
    },
    /// The pod already uses a name the injection needs.
    #[error(
        "the pod already has a {what} named {name:?}: rename it, oras-cache injects one with that name"
    )]
    NameTaken {
        /// `volume`, `init container` or `container`.
        what: &'static str,
        /// The name.
        name: &'static str,
    },
    /// A field of the object does not have the shape Kubernetes gives it.
    #[error("{path} is malformed ({reason}): fix the object")]
    Malformed {
        /// JSON pointer of the field.
        path: String,
        /// What is wrong.
        reason: String,
    },
}
