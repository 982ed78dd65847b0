//! Where the artifacts of an object live: the address of its `OrasCache`, or the remote registry
//! it names, and whether the agent speaks plain HTTP to it.

use oras_cache_api::annotations::{REGISTRY, RegistrySource, key};
use oras_cache_api::settings::Settings;

use crate::error::PolicyError;
use crate::host::Host;

/// A registry the agent talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRegistry {
    /// `host[:port]`.
    pub address: String,
    /// Plain HTTP instead of TLS.
    pub plain_http: bool,
}

impl ResolvedRegistry {
    /// The full reference of an artifact given relative to this registry.
    pub fn reference(&self, uri: &str) -> String {
        format!("{}/{}", self.address, uri)
    }
}

/// Resolves the registry of a request; warnings about fallbacks go to `warnings`.
pub fn resolve(
    source: &RegistrySource,
    namespace: &str,
    settings: &Settings,
    host: &dyn Host,
    warnings: &mut Vec<String>,
) -> Result<ResolvedRegistry, PolicyError> {
    match source {
        RegistrySource::Remote {
            host: address,
            plain_http,
        } => {
            if !settings.registry_allowed(address) {
                return Err(PolicyError::RegistryNotAllowed {
                    host: address.clone(),
                    allowed: settings.allowed_registries.join(", "),
                });
            }
            Ok(ResolvedRegistry {
                address: address.clone(),
                plain_http: *plain_http,
            })
        }
        RegistrySource::Cache(name) => {
            // An in-cluster cache is reached over plain HTTP unless its status says otherwise.
            let fallback = ResolvedRegistry {
                address: settings.fallback_cache_address(name, namespace),
                plain_http: true,
            };
            if !settings.context_aware {
                return Ok(fallback);
            }
            match host.oras_cache(namespace, name) {
                Ok(cache) => {
                    let status = cache.status.unwrap_or_default();
                    match status.address.filter(|a| !a.trim().is_empty()) {
                        Some(address) => Ok(ResolvedRegistry {
                            address,
                            plain_http: status.plain_http != Some(false),
                        }),
                        None => {
                            warnings.push(format!(
                                "OrasCache {name:?} has no status.address yet (is the oras-cache controller running?): using {}",
                                fallback.address
                            ));
                            Ok(fallback)
                        }
                    }
                }
                Err(reason) if settings.missing_cache_is_error => {
                    Err(PolicyError::CacheUnavailable {
                        cache: name.clone(),
                        namespace: namespace.to_string(),
                        reason,
                    })
                }
                Err(reason) => {
                    warnings.push(format!(
                        "OrasCache {name:?} in namespace {namespace:?} could not be read ({reason}): using {}; create the cache or set {}",
                        fallback.address,
                        key(REGISTRY)
                    ));
                    Ok(fallback)
                }
            }
        }
    }
}
