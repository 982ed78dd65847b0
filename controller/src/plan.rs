//! Validation of an `OrasCache` spec into what the controller will do with it.
//!
//! Everything here is pure: the reconciler validates first, and a bad spec becomes a `Ready=False`
//! condition and a Warning event whose message names the field and the fix.

use k8s_openapi::api::core::v1::ResourceRequirements;
use thiserror::Error;

use crate::crd::{
    AccessMode, DEFAULT_IMAGE, DEFAULT_REGISTRY_HTTP_KEY, MIRROR_IMAGE, OrasCacheSpec, StorageSpec,
};

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
    /// Storage settings without a size.
    #[error("spec.storage.accessMode is set without spec.storage.size: add a size such as `10Gi`")]
    AccessModeWithoutSize,
    /// Fewer than one replica, or more than [`MAX_REPLICAS`].
    #[error("spec.replicas must be between 1 and {MAX_REPLICAS}, got {0}")]
    BadReplicas(i32),
    /// The cache's name cannot name its children.
    #[error(
        "metadata.name {name:?} cannot name the cache's registry: {reason}. Use a name of at most {MAX_CACHE_NAME} lower-case letters, digits and '-', starting with a letter (delete this OrasCache and create it under such a name)"
    )]
    BadName {
        /// The name, control characters escaped.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The image reference cannot be a container image.
    #[error(
        "spec.image {image:?} is not an image reference: it must be printable ASCII without spaces (such as `ghcr.io/distribution/distribution:3.1.1`), at most {MAX_IMAGE} characters"
    )]
    BadImage {
        /// The value, control characters escaped.
        image: String,
    },
    /// Several replicas on storage they cannot share.
    #[error(
        "spec.replicas is {0} but the replicas would not share their storage: set spec.storage.accessMode: ReadWriteMany (with a size and a storage class that supports it), or configure object storage with REGISTRY_STORAGE_* keys in the spec.secrets.orasEnv Secret"
    )]
    ReplicasWithoutSharedStorage(i32),
    /// A mirror needs a registry the controller runs.
    #[error(
        "spec.mirror is set but spec.deploy is false: a mirror is a registry the controller deploys; set `deploy: true` (the default) or remove spec.mirror"
    )]
    MirrorWithoutDeploy,
    /// A mirror and a remote registry at once.
    #[error(
        "spec.mirror and spec.registry are both set: a cache either mirrors an upstream (spec.mirror, deployed) or is a remote registry (spec.registry with `deploy: false`); remove one"
    )]
    MirrorWithRegistry,
    /// The upstream address is not `host[:port]`.
    #[error(
        "spec.mirror.address must be host[:port] without scheme or path (for example `ghcr.io`), got {0:?}"
    )]
    BadMirrorAddress(String),
}

/// The longest cache name: the name is the registry's StatefulSet's, whose pods carry the label
/// `controller-revision-hash: <name>-<hash>`, the hash up to 10 digits of a 32-bit FNV sum
/// (kubernetes `pkg/controller/history/controller_history.go`, `ControllerRevisionName` and
/// `HashControllerRevision`; `pkg/controller/statefulset/stateful_set_utils.go`,
/// `setPodRevision`), and a label value is at most 63 characters: 63 - 1 - 10.
pub const MAX_CACHE_NAME: usize = 52;
/// The most registry pods one cache runs: more is a typo, not a namespace's cache.
pub const MAX_REPLICAS: i32 = 32;
/// The longest `spec.image`.
pub const MAX_IMAGE: usize = 512;

/// Whether `name` can name every child of a cache: a DNS-1035 label (the Service's rule: lower
/// case, digits and '-', starting with a letter, ending with a letter or digit, no dots) of at
/// most [`MAX_CACHE_NAME`] characters.
pub fn check_cache_name(name: &str) -> Result<(), SpecError> {
    let bad = |reason| {
        Err(SpecError::BadName {
            name: name.escape_default().to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_CACHE_NAME {
        return bad("it is longer than its StatefulSet's pods can be labelled with");
    }
    if name.contains('.') {
        return bad("it has a dot, which a Service name cannot have");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("it has characters other than lower-case letters, digits and '-'");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) || name.ends_with('-') {
        return bad("it must start with a letter and end with a letter or digit");
    }
    Ok(())
}

/// [`plan`] of the cache named `name`, whose name is checked first.
pub fn plan_cache(name: &str, spec: &OrasCacheSpec) -> Result<Plan, SpecError> {
    check_cache_name(name)?;
    plan(spec)
}

/// What the controller does for one `OrasCache`.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Run the registry in the cluster.
    Deployed(Box<DeployedRegistry>),
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
    /// The upstream this registry mirrors, if it is a pull-through cache.
    pub mirror: Option<Mirror>,
    /// Registry pods.
    pub replicas: i32,
    /// How the replicas share their data.
    pub sharing: Sharing,
    /// No `REGISTRY_HTTP_SECRET` Secret is named but the replicas must share one: the
    /// controller keeps `<cache>-http-secret`.
    pub generate_http_secret: bool,
}

/// How the registry pods share their storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sharing {
    /// One pod: its own emptyDir or claim.
    Single,
    /// One `ReadWriteMany` claim `<cache>-data` mounted by every pod.
    SharedClaim,
    /// Object storage configured by the `REGISTRY_STORAGE_*` keys of this Secret (the
    /// `secrets.orasEnv` one), which the reconciler checks.
    ObjectStorage {
        /// The Secret's name.
        secret: String,
    },
}

/// Whether a registry environment key configures a storage driver other than the filesystem
/// (`REGISTRY_STORAGE=s3`, or `REGISTRY_STORAGE_S3_BUCKET` and the like: distribution's
/// configuration variables name the driver's section, docs/configuration.md "storage").
pub fn is_object_storage_key(key: &str) -> bool {
    const SHARED_DRIVERS: [&str; 5] = ["S3", "GCS", "AZURE", "SWIFT", "OSS"];
    key == "REGISTRY_STORAGE"
        || key
            .strip_prefix("REGISTRY_STORAGE_")
            .and_then(|rest| rest.split('_').next())
            .is_some_and(|driver| SHARED_DRIVERS.contains(&driver))
}

/// The upstream of a mirror and where its credentials are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The upstream, as the controller checks it (`AuthReady`).
    pub upstream: RemoteTarget,
    /// The Secret keys the registry container reads the credentials from, when
    /// `upstream.credentials_secret` is set. [`plan`] names the contract's first keys
    /// (`ORAS_USER`, `ORAS_PULL_PASS`); the reconciler replaces them with the keys the Secret
    /// has ([`credential_keys`]).
    pub credential_keys: Option<CredentialKeys>,
}

impl Mirror {
    /// `http://host[:port]` or `https://host[:port]` of the upstream.
    pub fn upstream_url(&self) -> String {
        let scheme = if self.upstream.plain_http {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", self.upstream.address)
    }
}

/// The keys of a credentials Secret that hold the user name and the password for a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialKeys {
    /// Secret name.
    pub secret: String,
    /// Key of the user name (`ORAS_USER` or `username`).
    pub user: String,
    /// Key of the password (`ORAS_PULL_PASS`, `ORAS_PASS` or `password`).
    pub password: String,
}

/// The keys of `secret` whose values [`oras_cache_api::credentials::select`] picks for a pull, so
/// that the registry container's `secretKeyRef`s read exactly the credentials the controller
/// checked. `lookup` gives a key's value. `Ok(None)`: the Secret has no credentials.
pub fn credential_keys(
    secret: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<CredentialKeys>, oras_cache_api::credentials::CredentialsError> {
    use oras_cache_api::credentials::{Operation, select};
    if select(Operation::Pull, &lookup)?.is_none() {
        return Ok(None);
    }
    // The same rule as `select`: the first key with a value that is not blank.
    let first = |keys: &[&str]| {
        keys.iter()
            .find(|key| lookup(key).is_some_and(|v| !v.trim().is_empty()))
            .map(|key| key.to_string())
    };
    Ok(first(&Operation::USER_KEYS)
        .zip(first(&Operation::Pull.password_keys()))
        .map(|(user, password)| CredentialKeys {
            secret: secret.to_string(),
            user,
            password,
        }))
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
/// A blank name is an unset one (`oras_cache_api::cache::non_empty`), owned for the plan.
fn non_empty(value: &Option<String>) -> Option<String> {
    oras_cache_api::cache::non_empty(value).map(str::to_string)
}

/// Validates a spec into a plan.
pub fn plan(spec: &OrasCacheSpec) -> Result<Plan, SpecError> {
    let secrets = spec.secrets.clone().unwrap_or_default();
    let oras_env = non_empty(&secrets.oras_env);
    if spec.mirror.is_some() {
        if !spec.deploy {
            return Err(SpecError::MirrorWithoutDeploy);
        }
        if spec.registry.is_some() {
            return Err(SpecError::MirrorWithRegistry);
        }
    }
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
        return Err(if storage.storage_class_name.is_some() {
            SpecError::StorageClassWithoutSize
        } else {
            SpecError::AccessModeWithoutSize
        });
    }
    let replicas = spec.replicas.unwrap_or(1);
    if !(1..=MAX_REPLICAS).contains(&replicas) {
        return Err(SpecError::BadReplicas(replicas));
    }
    let shared_claim = storage
        .as_ref()
        .is_some_and(|s| s.access_mode == Some(AccessMode::ReadWriteMany));
    let sharing = match (replicas, shared_claim, &oras_env) {
        (_, true, _) => Sharing::SharedClaim,
        (1, false, _) => Sharing::Single,
        (_, false, Some(secret)) => Sharing::ObjectStorage {
            secret: secret.clone(),
        },
        (_, false, None) => return Err(SpecError::ReplicasWithoutSharedStorage(replicas)),
    };
    let mirror = match &spec.mirror {
        None => None,
        Some(mirror) => {
            let address = mirror.address.trim();
            if !valid_address(address) {
                return Err(SpecError::BadMirrorAddress(mirror.address.clone()));
            }
            let credentials_secret = non_empty(&mirror.credentials_secret);
            Some(Mirror {
                credential_keys: credentials_secret.as_ref().map(|secret| CredentialKeys {
                    secret: secret.clone(),
                    user: oras_cache_api::agent::ENV_USER.to_string(),
                    password: oras_cache_api::agent::ENV_PULL_PASS.to_string(),
                }),
                upstream: RemoteTarget {
                    address: address.to_string(),
                    plain_http: mirror.plain_http,
                    credentials_secret,
                    repository: non_empty(&mirror.repository),
                },
            })
        }
    };
    // Older versions of the CRD defaulted `image` to DEFAULT_IMAGE in its schema, so the API
    // server stored it in caches whose users never wrote it: on a mirror it counts as unset.
    let image = match spec.image.as_deref().map(str::trim) {
        Some("") | None => None,
        Some(DEFAULT_IMAGE) if mirror.is_some() => None,
        Some(image) => Some(image.to_string()),
    }
    .unwrap_or_else(|| {
        if mirror.is_some() {
            MIRROR_IMAGE.to_string()
        } else {
            DEFAULT_IMAGE.to_string()
        }
    });
    // A newline or a space would be taken by the API server and fail only at image pull, or be
    // refused at each apply: said once here instead, in the same words the schema's pattern uses.
    if image.len() > MAX_IMAGE || !image.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SpecError::BadImage {
            image: image.escape_default().to_string(),
        });
    }
    let generate_http_secret = replicas > 1 && http_secret_name.is_none();
    Ok(Plan::Deployed(Box::new(DeployedRegistry {
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
        mirror,
        replicas,
        sharing,
        generate_http_secret,
    })))
}

/// `host[:port]`, by the contract's registry grammar (the one the policy and the agent use).
fn valid_address(address: &str) -> bool {
    oras_cache_api::reference::validate_registry(address).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CacheSecrets, RemoteRegistry, ServiceSpec};

    #[test]
    fn a_cache_name_must_name_a_service_and_a_statefulset() {
        for good in [
            "sample",
            "orascache-sample",
            "a",
            &"a".repeat(MAX_CACHE_NAME),
            "a1-b2",
        ] {
            assert_eq!(check_cache_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "a.b",
            "Sample",
            "1cache",
            "cache-",
            "cache_x",
            &"a".repeat(MAX_CACHE_NAME + 1),
        ] {
            let error = check_cache_name(bad).unwrap_err().to_string();
            assert!(error.starts_with("metadata.name"), "{bad}: {error}");
        }
        assert!(matches!(
            plan_cache("a.b", &spec("{}")),
            Err(SpecError::BadName { .. })
        ));
    }

    #[test]
    fn an_image_with_control_characters_or_spaces_is_refused_naming_the_field() {
        for image in ["reg.example/a:1\nb", "reg.example/a:1 b", "reg\u{7}/a"] {
            let mut s = spec("{}");
            s.image = Some(image.to_string());
            let error = plan(&s).unwrap_err();
            assert!(
                matches!(error, SpecError::BadImage { .. }),
                "{image}: {error}"
            );
            assert!(error.to_string().starts_with("spec.image"), "{error}");
            assert!(!error.to_string().contains('\n'), "{error}");
        }
    }

    #[test]
    fn replicas_have_a_maximum() {
        let s = spec(&format!(
            "replicas: {}\nstorage: {{size: 1Gi, accessMode: ReadWriteMany}}",
            MAX_REPLICAS + 1
        ));
        assert_eq!(plan(&s), Err(SpecError::BadReplicas(MAX_REPLICAS + 1)));
    }

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
    fn a_mirror_without_an_image_runs_distribution_v3_and_a_named_image_wins() {
        let image = |yaml: &str| match plan(&spec(yaml)).unwrap() {
            Plan::Deployed(registry) => registry.image,
            other => panic!("{yaml} deploys, got {other:?}"),
        };
        assert_eq!(image("{mirror: {address: ghcr.io}}"), MIRROR_IMAGE);
        // What older CRDs stored as the default is not a choice of the user.
        assert_eq!(
            image("{image: 'ghcr.io/oras-project/registry:latest', mirror: {address: ghcr.io}}"),
            MIRROR_IMAGE
        );
        assert_eq!(
            image("{image: 'registry:2.8', mirror: {address: ghcr.io}}"),
            "registry:2.8"
        );
        assert_eq!(image("{image: 'registry:3'}"), "registry:3");
        assert_eq!(image("{image: ' '}"), DEFAULT_IMAGE);
        assert_eq!(
            image("{image: 'ghcr.io/oras-project/registry:latest'}"),
            DEFAULT_IMAGE
        );
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
    fn a_mirror_is_a_deployed_registry_with_its_upstream() {
        let s = spec("mirror: {address: ghcr.io, credentialsSecret: ghcr, repository: org/app}");
        let Plan::Deployed(registry) = plan(&s).unwrap() else {
            panic!("a mirror deploys")
        };
        let mirror = registry.mirror.unwrap();
        assert_eq!(mirror.upstream_url(), "https://ghcr.io");
        assert_eq!(mirror.upstream.repository.as_deref(), Some("org/app"));
        assert_eq!(mirror.credential_keys.unwrap().secret, "ghcr");
        let plain = spec("mirror: {address: 'upstream:5000', plainHttp: true}");
        let Plan::Deployed(registry) = plan(&plain).unwrap() else {
            panic!()
        };
        let mirror = registry.mirror.unwrap();
        assert_eq!(mirror.upstream_url(), "http://upstream:5000");
        assert!(mirror.credential_keys.is_none());
    }

    #[test]
    fn a_mirror_without_deploy_or_with_a_registry_is_invalid() {
        assert_eq!(
            plan(&spec("{deploy: false, mirror: {address: ghcr.io}}")),
            Err(SpecError::MirrorWithoutDeploy)
        );
        assert_eq!(
            plan(&spec(
                "{deploy: false, mirror: {address: ghcr.io}, registry: {address: ghcr.io}}"
            )),
            Err(SpecError::MirrorWithoutDeploy)
        );
        assert_eq!(
            plan(&spec(
                "{mirror: {address: ghcr.io}, registry: {address: ghcr.io}}"
            )),
            Err(SpecError::MirrorWithRegistry)
        );
        let err = plan(&spec("{mirror: {address: 'https://ghcr.io'}}")).unwrap_err();
        assert!(err.to_string().contains("spec.mirror.address"), "{err}");
    }

    #[test]
    fn the_registry_reads_the_keys_the_controller_checked() {
        let secret = |pairs: &'static [(&'static str, &'static str)]| {
            move |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.to_string())
            }
        };
        let guide = credential_keys(
            "s",
            secret(&[
                ("ORAS_USER", "me"),
                ("ORAS_PUSH_PASS", "w"),
                ("ORAS_PULL_PASS", "r"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (guide.user.as_str(), guide.password.as_str()),
            ("ORAS_USER", "ORAS_PULL_PASS")
        );
        let basic = credential_keys(
            "s",
            secret(&[("username", "me"), ("password", "p"), ("ORAS_PASS", " ")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (basic.user.as_str(), basic.password.as_str()),
            ("username", "password")
        );
        assert_eq!(credential_keys("s", secret(&[("other", "x")])), Ok(None));
        assert!(credential_keys("s", secret(&[("ORAS_USER", "me")])).is_err());
    }

    #[test]
    fn several_replicas_need_shared_storage_and_get_a_shared_http_secret() {
        let deployed = |yaml: &str| match plan(&spec(yaml)) {
            Ok(Plan::Deployed(r)) => Ok(*r),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        let one = deployed("{}").unwrap();
        assert_eq!((one.replicas, &one.sharing), (1, &Sharing::Single));
        assert!(!one.generate_http_secret);
        assert_eq!(
            deployed("replicas: 3"),
            Err(SpecError::ReplicasWithoutSharedStorage(3))
        );
        let rwo = "{replicas: 2, storage: {size: 1Gi, accessMode: ReadWriteOnce}}";
        assert_eq!(
            deployed(rwo),
            Err(SpecError::ReplicasWithoutSharedStorage(2))
        );
        let rwx =
            deployed("{replicas: 2, storage: {size: 1Gi, accessMode: ReadWriteMany}}").unwrap();
        assert_eq!(rwx.sharing, Sharing::SharedClaim);
        assert!(rwx.generate_http_secret);
        let object = deployed("{replicas: 3, secrets: {orasEnv: s3, registryHttp: mine}}").unwrap();
        assert_eq!(
            object.sharing,
            Sharing::ObjectStorage {
                secret: "s3".into()
            }
        );
        assert!(!object.generate_http_secret, "a named secret is used");
        assert_eq!(deployed("replicas: 0"), Err(SpecError::BadReplicas(0)));
        assert_eq!(
            deployed("storage: {accessMode: ReadWriteMany}"),
            Err(SpecError::AccessModeWithoutSize)
        );
        assert!(
            plan(&spec("replicas: 3"))
                .unwrap_err()
                .to_string()
                .contains("ReadWriteMany")
        );
    }

    #[test]
    fn object_storage_keys_name_a_shared_driver() {
        for key in [
            "REGISTRY_STORAGE",
            "REGISTRY_STORAGE_S3_BUCKET",
            "REGISTRY_STORAGE_GCS_BUCKET",
            "REGISTRY_STORAGE_AZURE_CONTAINER",
        ] {
            assert!(is_object_storage_key(key), "{key}");
        }
        for key in [
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
            "REGISTRY_STORAGE_DELETE_ENABLED",
            "REGISTRY_HTTP_SECRET",
            "S3_BUCKET",
        ] {
            assert!(!is_object_storage_key(key), "{key}");
        }
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
