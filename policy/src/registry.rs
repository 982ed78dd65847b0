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
    /// The Secret with the registry's credentials that a remote `OrasCache` names, for the agent
    /// containers (the pod's own `oras-env` replaces it).
    pub credentials_secret: Option<String>,
    /// For an `OrasCache` that is a mirror, its upstream: it serves pulls only.
    pub mirror_of: Option<String>,
}

impl ResolvedRegistry {
    /// The full reference of an artifact given relative to this registry.
    pub fn reference(&self, uri: &str) -> String {
        oras_cache_api::reference::join(&self.address, uri)
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
                credentials_secret: None,
                mirror_of: None,
            })
        }
        RegistrySource::Cache(name) => {
            // An in-cluster cache is reached over plain HTTP unless its status says otherwise.
            let fallback = ResolvedRegistry {
                address: settings.fallback_cache_address(name, namespace),
                plain_http: true,
                credentials_secret: None,
                mirror_of: None,
            };
            if !settings.context_aware {
                return Ok(fallback);
            }
            match host.oras_cache(namespace, name) {
                Ok(cache) => {
                    let spec = &cache.spec;
                    // `deploy: false` without `registry` is a cache with no address at all: only
                    // pods that name their own registry can use it.
                    if !spec.deploys() && spec.remote_registry().is_none() {
                        return Err(PolicyError::CacheWithoutRegistry {
                            cache: name.clone(),
                            namespace: namespace.to_string(),
                        });
                    }
                    let credentials_secret = spec.remote_credentials_secret().map(str::to_string);
                    let status = cache.status.clone().unwrap_or_default();
                    match status.address.filter(|a| !a.trim().is_empty()) {
                        Some(address) => Ok(ResolvedRegistry {
                            address,
                            plain_http: status.plain_http != Some(false),
                            credentials_secret,
                            mirror_of: status.mirror_of.clone(),
                        }),
                        // A remote registry is known from the spec before the controller reports.
                        None if spec.remote_registry().is_some() => {
                            let remote = spec.remote_registry().expect("checked above");
                            let address = remote.address.trim().to_ascii_lowercase();
                            warnings.push(format!(
                                "OrasCache {name:?} has no status.address yet (is the oras-cache controller running?): using its spec.registry.address {address}"
                            ));
                            Ok(ResolvedRegistry {
                                address,
                                plain_http: remote.plain_http,
                                credentials_secret,
                                mirror_of: None,
                            })
                        }
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
        fn oras_caches(&self, _: &str) -> Result<Vec<OrasCacheView>, String> {
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
                plain_http: true,
                credentials_secret: None,
                mirror_of: None,
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

    fn cache_with_spec(spec: serde_json::Value, status: serde_json::Value) -> Caches {
        Caches(Ok(serde_json::from_value(
            serde_json::json!({"spec": spec, "status": status}),
        )
        .unwrap()))
    }

    #[test]
    fn a_cache_that_deploys_nothing_and_names_no_registry_is_an_error() {
        let (r, _) = resolve_cache(&cache_with_spec(
            serde_json::json!({"deploy": false}),
            serde_json::json!({}),
        ));
        let message = r.unwrap_err().to_string();
        assert!(message.contains("\"c\""), "{message}");
        assert!(message.contains("\"ns\""), "{message}");
        assert!(message.contains("deploy: false"), "{message}");
        assert!(
            message.contains("oras.converged-computing.github.io/registry"),
            "{message}"
        );
    }

    #[test]
    fn a_remote_cache_gives_its_credentials_and_its_address_before_any_status() {
        let (r, w) = resolve_cache(&cache_with_spec(
            serde_json::json!({"deploy": false, "registry": {"address": "Ghcr.io", "credentialsSecret": "ghcr-creds"}}),
            serde_json::json!(null),
        ));
        assert_eq!(
            r.unwrap(),
            ResolvedRegistry {
                address: "ghcr.io".into(),
                plain_http: false,
                credentials_secret: Some("ghcr-creds".into()),
                mirror_of: None,
            }
        );
        assert!(w[0].contains("spec.registry.address"), "{w:?}");
        let (r, w) = resolve_cache(&cache_with_spec(
            serde_json::json!({"deploy": false, "registry": {"address": "ghcr.io"}, "secrets": {"orasEnv": "env"}}),
            serde_json::json!({"address": "ghcr.io", "plainHttp": false}),
        ));
        assert_eq!(r.unwrap().credentials_secret.as_deref(), Some("env"));
        assert!(w.is_empty());
    }

    #[test]
    fn references_join_address_and_uri() {
        let r = ResolvedRegistry {
            address: "h:1".into(),
            plain_http: false,
            credentials_secret: None,
            mirror_of: None,
        };
        assert_eq!(r.reference("a/b:c"), "h:1/a/b:c");
    }
}
