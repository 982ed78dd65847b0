//! Validation of an `OrasCache` spec into what the controller will do with it.
//!
//! Everything here is pure: the reconciler validates first, and a bad spec becomes a `Ready=False`
//! condition and a Warning event whose message names the field and the fix.

use k8s_openapi::api::core::v1::ResourceRequirements;
use thiserror::Error;

use crate::crd::{DEFAULT_IMAGE, DEFAULT_REGISTRY_HTTP_KEY, OrasCacheSpec, StorageSpec};

/// A spec the controller cannot act on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    /// A remote registry was given for a cache the controller deploys.
    #[error(
        "spec.registry is set but spec.deploy is true: set `deploy: false` to use the remote registry, or remove spec.registry"
    )]
    RegistryWithDeploy,
    /// The remote address is not `host[:port]`.
    #[error(
        "spec.registry.address must be host[:port] without scheme or path (for example `ghcr.io` or `registry.example.com:5000`), got {0:?}"
    )]
    BadRegistryAddress(String),
    /// The older `secret` and the newer `secrets.registryHttp` disagree.
    #[error(
        "spec.secret ({legacy:?}) and spec.secrets.registryHttp ({current:?}) name different Secrets: keep only spec.secrets.registryHttp"
    )]
    ConflictingHttpSecret {
        /// Value of `spec.secret`.
        legacy: String,
        /// Value of `spec.secrets.registryHttp`.
        current: String,
    },
    /// A storage class without a size.
    #[error(
        "spec.storage.storageClassName is set without spec.storage.size: add a size such as `10Gi` (without a size the registry uses an emptyDir)"
    )]
    StorageClassWithoutSize,
    /// The port is out of range.
    #[error("spec.service.port must be between 1 and 65535, got {0}")]
    BadPort(i32),
}

/// What the controller does for one `OrasCache`.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Run the registry in the cluster.
    Deployed(DeployedRegistry),
    /// Check and report a registry elsewhere.
    Remote(RemoteTarget),
    /// `deploy: false` with no remote registry: pods name their registry themselves.
    Unconfigured,
}

/// The registry the controller deploys.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployedRegistry {
    /// Container image.
    pub image: String,
    /// Port the registry listens on and the Service exposes.
    pub port: i32,
    /// Persistent storage, if any.
    pub storage: Option<StorageSpec>,
    /// Container resources.
    pub resources: Option<ResourceRequirements>,
    /// Secret added with `envFrom`.
    pub env_from_secret: Option<String>,
    /// Secret and key holding `REGISTRY_HTTP_SECRET`.
    pub http_secret: Option<SecretKey>,
}

/// A key in a Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKey {
    /// Secret name.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}

/// A registry the controller does not deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTarget {
    /// `host[:port]`.
    pub address: String,
    /// Plain HTTP rather than HTTPS.
    pub plain_http: bool,
    /// Secret with the credentials, if any.
    pub credentials_secret: Option<String>,
    /// Repository for the token scope of the check.
    pub repository: Option<String>,
}

/// Empty strings count as unset: the original CRD had no `omitempty` and wrote `""`.
fn non_empty(value: &Option<String>) -> Option<String> {
    value.as_ref().filter(|v| !v.trim().is_empty()).cloned()
}

/// Validates a spec into a plan.
pub fn plan(spec: &OrasCacheSpec) -> Result<Plan, SpecError> {
    let secrets = spec.secrets.clone().unwrap_or_default();
    let oras_env = non_empty(&secrets.oras_env);
    if !spec.deploy {
        let Some(remote) = &spec.registry else {
            return Ok(Plan::Unconfigured);
        };
        let address = remote.address.trim();
        if !valid_address(address) {
            return Err(SpecError::BadRegistryAddress(remote.address.clone()));
        }
        return Ok(Plan::Remote(RemoteTarget {
            address: address.to_string(),
            plain_http: remote.plain_http,
            credentials_secret: non_empty(&remote.credentials_secret).or(oras_env),
            repository: non_empty(&remote.repository),
        }));
    }
    if spec.registry.is_some() {
        return Err(SpecError::RegistryWithDeploy);
    }
    let legacy = non_empty(&spec.secret);
    let current = non_empty(&secrets.registry_http);
    let http_secret_name = match (legacy, current) {
        (Some(legacy), Some(current)) if legacy != current => {
            return Err(SpecError::ConflictingHttpSecret { legacy, current });
        }
        (legacy, current) => current.or(legacy),
    };
    let port = spec.port();
    if !(1..=65535).contains(&port) {
        return Err(SpecError::BadPort(port));
    }
    let storage = spec
        .storage
        .clone()
        .filter(|s| *s != StorageSpec::default());
    if let Some(storage) = &storage
        && storage.size.is_none()
    {
        return Err(SpecError::StorageClassWithoutSize);
    }
    let image = if spec.image.trim().is_empty() {
        DEFAULT_IMAGE.to_string()
    } else {
        spec.image.trim().to_string()
    };
    Ok(Plan::Deployed(DeployedRegistry {
        image,
        port,
        storage,
        resources: spec.resources.clone(),
        env_from_secret: oras_env,
        http_secret: http_secret_name.map(|name| SecretKey {
            name,
            key: non_empty(&secrets.registry_http_key)
                .unwrap_or_else(|| DEFAULT_REGISTRY_HTTP_KEY.to_string()),
        }),
    }))
}

/// `host[:port]`, by the contract's registry grammar (the one the policy and the agent use).
fn valid_address(address: &str) -> bool {
    oras_cache_api::reference::validate_registry(address).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CacheSecrets, RemoteRegistry, ServiceSpec};

    fn spec(yaml: &str) -> OrasCacheSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn an_empty_spec_deploys_the_default_image_on_5000() {
        let Plan::Deployed(registry) = plan(&spec("{}")).unwrap() else {
            panic!("an empty spec deploys")
        };
        assert_eq!(registry.image, DEFAULT_IMAGE);
        assert_eq!(registry.port, 5000);
        assert!(registry.storage.is_none() && registry.http_secret.is_none());
    }

    #[test]
    fn the_older_secret_field_still_names_the_http_secret() {
        let Plan::Deployed(registry) = plan(&spec("secret: old")).unwrap() else {
            panic!()
        };
        assert_eq!(
            registry.http_secret,
            Some(SecretKey {
                name: "old".into(),
                key: DEFAULT_REGISTRY_HTTP_KEY.into()
            })
        );
    }

    #[test]
    fn conflicting_http_secrets_are_an_error_naming_both_fields() {
        let mut s = spec("secret: old");
        s.secrets = Some(CacheSecrets {
            registry_http: Some("new".into()),
            ..Default::default()
        });
        let err = plan(&s).unwrap_err().to_string();
        assert!(err.contains("spec.secret") && err.contains("spec.secrets.registryHttp"));
    }

    #[test]
    fn empty_strings_from_the_original_crd_mean_unset() {
        let s = spec("secrets: {orasEnv: '', registryHttp: ''}\nsecret: ''");
        let Plan::Deployed(registry) = plan(&s).unwrap() else {
            panic!()
        };
        assert!(registry.env_from_secret.is_none() && registry.http_secret.is_none());
    }

    #[test]
    fn deploy_false_without_registry_is_unconfigured() {
        assert_eq!(plan(&spec("deploy: false")).unwrap(), Plan::Unconfigured);
    }

    #[test]
    fn a_remote_registry_falls_back_to_oras_env_credentials() {
        let s = spec("deploy: false\nregistry: {address: ghcr.io}\nsecrets: {orasEnv: creds}");
        assert_eq!(
            plan(&s).unwrap(),
            Plan::Remote(RemoteTarget {
                address: "ghcr.io".into(),
                plain_http: false,
                credentials_secret: Some("creds".into()),
                repository: None,
            })
        );
    }

    #[test]
    fn a_remote_registry_with_deploy_true_is_rejected() {
        let mut s = spec("{}");
        s.registry = Some(RemoteRegistry {
            address: "ghcr.io".into(),
            ..Default::default()
        });
        assert_eq!(plan(&s), Err(SpecError::RegistryWithDeploy));
    }

    #[test]
    fn remote_addresses_must_be_host_and_port() {
        for good in ["ghcr.io", "registry.local:5000", "[::1]:5000", "10.0.0.1"] {
            assert!(valid_address(good), "{good}");
        }
        for bad in [
            "https://ghcr.io",
            "ghcr.io/org",
            "ghcr.io:http",
            "",
            "u@h",
            "h:0",
        ] {
            assert!(!valid_address(bad), "{bad}");
        }
        let s = spec("deploy: false\nregistry: {address: 'https://ghcr.io'}");
        assert!(
            plan(&s)
                .unwrap_err()
                .to_string()
                .contains("spec.registry.address")
        );
    }

    #[test]
    fn storage_class_needs_a_size_and_ports_must_be_valid() {
        let s = spec("storage: {storageClassName: fast}");
        assert_eq!(plan(&s), Err(SpecError::StorageClassWithoutSize));
        let mut s = spec("{}");
        s.service = Some(ServiceSpec { port: Some(70000) });
        assert_eq!(plan(&s), Err(SpecError::BadPort(70000)));
    }
}
