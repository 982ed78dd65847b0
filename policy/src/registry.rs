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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::ImageCommand;
    use oras_cache_api::cache::OrasCacheView;

    struct Caches(Result<OrasCacheView, String>);

    impl Host for Caches {
        fn oras_cache(&self, _: &str, _: &str) -> Result<OrasCacheView, String> {
            self.0.clone()
        }
        fn image_command(&self, _: &str) -> Result<ImageCommand, String> {
            Err("not used".into())
        }
    }

    fn cache(status: serde_json::Value) -> Caches {
        Caches(Ok(serde_json::from_value(
            serde_json::json!({"status": status}),
        )
        .unwrap()))
    }

    fn resolve_cache(host: &Caches) -> (Result<ResolvedRegistry, PolicyError>, Vec<String>) {
        let mut warnings = Vec::new();
        let result = resolve(
            &RegistrySource::Cache("c".into()),
            "ns",
            &Settings::default(),
            host,
            &mut warnings,
        );
        (result, warnings)
    }

    #[test]
    fn the_cache_status_gives_address_and_transport() {
        let (r, w) = resolve_cache(&cache(serde_json::json!({"address": "10.0.0.1:5000"})));
        assert_eq!(
            r.unwrap(),
            ResolvedRegistry {
                address: "10.0.0.1:5000".into(),
                plain_http: true
            }
        );
        assert!(w.is_empty());
        let (r, _) = resolve_cache(&cache(
            serde_json::json!({"address": "r.example.com", "plainHttp": false}),
        ));
        assert!(!r.unwrap().plain_http);
    }

    #[test]
    fn an_empty_address_falls_back_with_a_warning() {
        let (r, w) = resolve_cache(&cache(serde_json::json!({"address": " "})));
        assert_eq!(r.unwrap().address, "c.ns.svc.cluster.local:5000");
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn an_unreadable_cache_is_an_error_by_default() {
        let (r, _) = resolve_cache(&Caches(Err("forbidden".into())));
        assert!(
            matches!(r, Err(PolicyError::CacheUnavailable { ref reason, .. }) if reason == "forbidden")
        );
    }

    #[test]
    fn references_join_address_and_uri() {
        let r = ResolvedRegistry {
            address: "h:1".into(),
            plain_http: false,
        };
        assert_eq!(r.reference("a/b:c"), "h:1/a/b:c");
    }
}
