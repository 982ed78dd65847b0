//! Pure builders of the objects an `OrasCache` owns: the registry StatefulSet and its Service.
//!
//! The builders take the validated [`DeployedRegistry`] and return complete objects for
//! server-side apply; the reconciler only sends them.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, EnvVar,
    EnvVarSource, HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, Secret, SecretEnvSource, SecretKeySelector, SecurityContext, Service,
    ServicePort, ServiceSpec, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use thiserror::Error;

use crate::crd::DEFAULT_REGISTRY_HTTP_KEY;
use crate::crd::OrasCache;
use crate::plan::{DeployedRegistry, Mirror, SecretKey, Sharing};

/// Field manager of every server-side apply the controller sends.
pub const FIELD_MANAGER: &str = "oras-cache-controller";
/// Name of the registry container, its port and its data volume.
pub const REGISTRY_CONTAINER: &str = "registry";
/// Name of the data volume (emptyDir or claim template).
pub const DATA_VOLUME: &str = "data";
/// Where the distribution registry keeps its filesystem storage by default.
pub const DATA_PATH: &str = "/var/lib/registry";
/// User and group the registry runs as (the conventional "nonroot" id).
pub const REGISTRY_UID: i64 = 65532;
/// Label selecting the objects this controller manages (used for the owned watches).
pub const MANAGED_BY_SELECTOR: &str = "app.kubernetes.io/managed-by=oras-cache-controller";

/// An `OrasCache` that cannot own objects yet.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BuildError {
    /// Owner references need a name, a namespace and a uid.
    #[error("OrasCache has no {0}; it must come from the API server")]
    MissingMetadata(&'static str),
}

/// Labels on every object of one cache; the first two also select its pods.
pub fn labels(cache_name: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cache_name);
    labels.insert("app.kubernetes.io/component".into(), "registry".into());
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "oras-cache-controller".into(),
    );
    labels
}

/// Labels of the registry pods the Service and the StatefulSet select.
pub fn selector_labels(cache_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "oras-cache".to_string(),
        ),
        (
            "app.kubernetes.io/instance".to_string(),
            cache_name.to_string(),
        ),
    ])
}

/// The `host:port` pods use: the Service DNS name under the cluster domain (the one rule the
/// policy also follows).
pub use oras_cache_api::cache::service_address;

/// Metadata for a child: same name and namespace as the cache, labelled and owned by it.
fn child_meta(cache: &OrasCache) -> Result<ObjectMeta, BuildError> {
    let name = cache
        .metadata
        .name
        .clone()
        .ok_or(BuildError::MissingMetadata("metadata.name"))?;
    child_meta_named(cache, name)
}

/// Metadata for a child called `child` in the cache's namespace, labelled and owned by it.
pub fn child_meta_named(cache: &OrasCache, child: String) -> Result<ObjectMeta, BuildError> {
    let name = cache
        .metadata
        .name
        .clone()
        .ok_or(BuildError::MissingMetadata("metadata.name"))?;
    let namespace = cache
        .namespace()
        .ok_or(BuildError::MissingMetadata("metadata.namespace"))?;
    Ok(ObjectMeta {
        labels: Some(labels(&name)),
        name: Some(child),
        namespace: Some(namespace),
        owner_references: Some(vec![owner_reference(cache)?]),
        ..ObjectMeta::default()
    })
}

/// The controller owner reference of the cache; children are garbage collected with it.
pub fn owner_reference(cache: &OrasCache) -> Result<OwnerReference, BuildError> {
    let mut owner = cache
        .controller_owner_ref(&())
        .ok_or(BuildError::MissingMetadata("metadata.uid"))?;
    owner.block_owner_deletion = Some(true);
    Ok(owner)
}

/// Environment variable of the upstream's URL in a mirror's registry container.
pub const PROXY_REMOTE_URL: &str = "REGISTRY_PROXY_REMOTEURL";
/// Environment variable of the upstream's user name.
pub const PROXY_USERNAME: &str = "REGISTRY_PROXY_USERNAME";
/// Environment variable of the upstream's password.
pub const PROXY_PASSWORD: &str = "REGISTRY_PROXY_PASSWORD";

/// The environment that makes the registry distribution's pull-through cache of the mirror's
/// upstream: the `proxy` section of its configuration (`remoteurl`, `username`, `password`),
/// given as `REGISTRY_PROXY_*` variables, which override the configuration file
/// (distribution's docs/configuration.md, "proxy" and "Override specific configuration
/// options").
///
/// The credentials come from the Secret by `secretKeyRef` only. distribution 2.x hands
/// `username`/`password` to the token realms of a `Bearer` challenge only
/// (registry/proxy/proxyauth.go); an upstream with basic auth gets them from the user
/// information of the remote URL, which Go's HTTP client sends as basic auth. The URL therefore
/// names the two variables with Kubernetes' `$(VAR)` syntax, which the kubelet expands from the
/// variables defined before it: the value stays out of the StatefulSet. (Characters outside a
/// URL's user information, such as `/`, `?`, `#` or `%`, cannot be carried that way; the
/// controller's check reports such credentials.)
///
/// The same environment is valid for distribution v3, the mirror's default image
/// ([`crate::crd::MIRROR_IMAGE`]): v3 reads the same `proxy` keys (configuration/configuration.go
/// `Proxy`: `remoteurl`, `username`, `password`) from the same `REGISTRY_PROXY_*` variables, and
/// answers a `Basic` challenge with `username`/`password` itself (registry/proxy/proxyregistry.go,
/// `auth.NewBasicHandler`, since v3.0.0-beta.1), so the user information is redundant there but
/// harmless: it keeps a `spec.image` of distribution 2.x working. v3.1 sends the credentials to
/// a token realm only on the upstream's host or registrable domain (registry/proxy/proxyauth.go
/// `realmAllowed`), which ghcr.io (realm `ghcr.io/token`) and Docker Hub (`auth.docker.io` for
/// `registry-1.docker.io`) meet.
pub fn mirror_env(mirror: &Mirror) -> Vec<EnvVar> {
    let secret_ref = |secret: &str, key: &str| EnvVarSource {
        secret_key_ref: Some(SecretKeySelector {
            name: secret.to_string(),
            key: key.to_string(),
            optional: Some(false),
        }),
        ..EnvVarSource::default()
    };
    let url = mirror.upstream_url();
    let Some(keys) = &mirror.credential_keys else {
        return vec![EnvVar {
            name: PROXY_REMOTE_URL.into(),
            value: Some(url),
            ..EnvVar::default()
        }];
    };
    let (scheme, host) = url.split_once("://").unwrap_or(("https", &url));
    vec![
        EnvVar {
            name: PROXY_USERNAME.into(),
            value_from: Some(secret_ref(&keys.secret, &keys.user)),
            ..EnvVar::default()
        },
        EnvVar {
            name: PROXY_PASSWORD.into(),
            value_from: Some(secret_ref(&keys.secret, &keys.password)),
            ..EnvVar::default()
        },
        EnvVar {
            name: PROXY_REMOTE_URL.into(),
            value: Some(format!(
                "{scheme}://$({PROXY_USERNAME}):$({PROXY_PASSWORD})@{host}"
            )),
            ..EnvVar::default()
        },
    ]
}

/// Whether `text` can stand in the user information of a URL as it is (RFC 3986 unreserved and
/// sub-delims, and `:` after the user name; Go's `url.Parse` accepts the same set plus `@`):
/// the kubelet expands `$(VAR)` without encoding it.
pub fn userinfo_safe(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '.'
                    | '_'
                    | '~'
                    | '!'
                    | '$'
                    | '&'
                    | '\''
                    | '('
                    | ')'
                    | '*'
                    | '+'
                    | ','
                    | ';'
                    | '='
                    | ':'
            )
    })
}

/// The registry Service (ClusterIP) named like the cache.
pub fn build_service(
    cache: &OrasCache,
    registry: &DeployedRegistry,
) -> Result<Service, BuildError> {
    Ok(Service {
        metadata: child_meta(cache)?,
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(&cache.name_any())),
            ports: Some(vec![ServicePort {
                name: Some(REGISTRY_CONTAINER.into()),
                port: registry.port,
                target_port: Some(IntOrString::String(REGISTRY_CONTAINER.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            type_: Some("ClusterIP".into()),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// The registry StatefulSet: one replica, its port declared, probes on `/v2/`, storage and
/// secrets as the spec asks.
pub fn build_statefulset(
    cache: &OrasCache,
    registry: &DeployedRegistry,
) -> Result<StatefulSet, BuildError> {
    let metadata = child_meta(cache)?;
    let name = cache.name_any();

    let mut env = vec![EnvVar {
        name: "REGISTRY_HTTP_ADDR".into(),
        value: Some(format!(":{}", registry.port)),
        ..EnvVar::default()
    }];
    let generated = registry.generate_http_secret.then(|| SecretKey {
        name: http_secret_name(&name),
        key: DEFAULT_REGISTRY_HTTP_KEY.into(),
    });
    if let Some(secret) = registry.http_secret.as_ref().or(generated.as_ref()) {
        env.push(EnvVar {
            name: "REGISTRY_HTTP_SECRET".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.name.clone(),
                    key: secret.key.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }
    if let Some(mirror) = &registry.mirror {
        env.extend(mirror_env(mirror));
    }
    let env_from = registry.env_from_secret.as_ref().map(|secret| {
        vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.clone(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]
    });

    let probe = |initial_delay: i32, period: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/v2/".into()),
            port: IntOrString::String(REGISTRY_CONTAINER.into()),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(period),
        failure_threshold: Some(3),
        ..Probe::default()
    };

    let container = Container {
        name: REGISTRY_CONTAINER.into(),
        image: Some(registry.image.clone()),
        ports: Some(vec![ContainerPort {
            name: Some(REGISTRY_CONTAINER.into()),
            container_port: registry.port,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: Some(env),
        env_from,
        readiness_probe: Some(probe(2, 5)),
        liveness_probe: Some(probe(10, 20)),
        resources: registry.resources.clone(),
        volume_mounts: Some(vec![VolumeMount {
            name: DATA_VOLUME.into(),
            mount_path: DATA_PATH.into(),
            ..VolumeMount::default()
        }]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };

    // Without a size the data lives in an emptyDir; with one, in a claim per replica that
    // outlives pod restarts; a ReadWriteMany claim is one claim that every replica mounts
    // (`build_shared_claim`).
    let empty_dir = || {
        Some(vec![Volume {
            name: DATA_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        }])
    };
    let (volumes, claims) = match (&registry.sharing, claim_spec(registry)) {
        (_, None) => (empty_dir(), None),
        (Sharing::SharedClaim, Some(_)) => (
            Some(vec![Volume {
                name: DATA_VOLUME.into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: shared_claim_name(&name),
                    read_only: Some(false),
                }),
                ..Volume::default()
            }]),
            None,
        ),
        (_, Some(spec)) => (
            None,
            Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(DATA_VOLUME.into()),
                    labels: Some(labels(&name)),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
                status: None,
            }]),
        ),
    };
    // Replicas on different nodes, so that a node going down leaves the others serving; a
    // preference, so that a one-node cluster still runs them all.
    let spread = (registry.replicas > 1).then(|| {
        vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "kubernetes.io/hostname".into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..LabelSelector::default()
            }),
            ..TopologySpreadConstraint::default()
        }]
    });

    Ok(StatefulSet {
        metadata,
        spec: StatefulSetSpec {
            replicas: Some(registry.replicas),
            service_name: Some(name.clone()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&name)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // Non-root with a group that owns the data volume, so registry pods fit the
                    // "restricted" Pod Security Standard.
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(REGISTRY_UID),
                        run_as_group: Some(REGISTRY_UID),
                        fs_group: Some(REGISTRY_UID),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    volumes,
                    topology_spread_constraints: spread,
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: claims,
            ..StatefulSetSpec::default()
        },
        status: None,
    })
}

/// The claim of the registry's data: size, class and access mode; `None` without a size.
fn claim_spec(registry: &DeployedRegistry) -> Option<PersistentVolumeClaimSpec> {
    let storage = registry.storage.as_ref()?;
    let size = storage.size.clone()?;
    let mode = match registry.sharing {
        Sharing::SharedClaim => "ReadWriteMany",
        _ => "ReadWriteOnce",
    };
    Some(PersistentVolumeClaimSpec {
        access_modes: Some(vec![mode.into()]),
        storage_class_name: storage.storage_class_name.clone(),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([("storage".to_string(), size)])),
            ..VolumeResourceRequirements::default()
        }),
        ..PersistentVolumeClaimSpec::default()
    })
}

/// Name of the `ReadWriteMany` claim the replicas share.
pub fn shared_claim_name(cache: &str) -> String {
    format!("{cache}-data")
}

/// Name of the Secret holding the `REGISTRY_HTTP_SECRET` the controller keeps for replicas.
pub fn http_secret_name(cache: &str) -> String {
    format!("{cache}-http-secret")
}

/// The `ReadWriteMany` claim every replica mounts, for [`Sharing::SharedClaim`]; owned by the
/// cache, so it goes with it.
pub fn build_shared_claim(
    cache: &OrasCache,
    registry: &DeployedRegistry,
) -> Result<Option<PersistentVolumeClaim>, BuildError> {
    if registry.sharing != Sharing::SharedClaim {
        return Ok(None);
    }
    let Some(spec) = claim_spec(registry) else {
        return Ok(None);
    };
    Ok(Some(PersistentVolumeClaim {
        metadata: child_meta_named(cache, shared_claim_name(&cache.name_any()))?,
        spec: Some(spec),
        status: None,
    }))
}

/// A PodDisruptionBudget that lets a drain take one replica at a time; none for one replica,
/// whose budget would block every drain.
pub fn build_pdb(
    cache: &OrasCache,
    registry: &DeployedRegistry,
) -> Result<Option<PodDisruptionBudget>, BuildError> {
    if registry.replicas <= 1 {
        return Ok(None);
    }
    Ok(Some(PodDisruptionBudget {
        metadata: child_meta(cache)?,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&cache.name_any())),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }))
}

/// The Secret `<cache>-http-secret` with a `REGISTRY_HTTP_SECRET` of `value`: upload sessions are
/// signed with it, so a chunked upload started on one replica can finish on another only when
/// they share it (distribution's docs/configuration.md, `http.secret`).
pub fn build_http_secret(cache: &OrasCache, value: &str) -> Result<Secret, BuildError> {
    Ok(Secret {
        metadata: child_meta_named(cache, http_secret_name(&cache.name_any()))?,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            DEFAULT_REGISTRY_HTTP_KEY.to_string(),
            ByteString(value.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    })
}

/// Whether `current` differs from `desired` in a field a StatefulSet update may not change (the
/// claim templates, the selector, the service name), so that it has to be recreated: after a
/// storage change, or for a StatefulSet left by the original operator (selector
/// `oras-namespace`).
pub fn needs_recreate(current: &StatefulSet, desired: &StatefulSet) -> bool {
    current.spec.selector != desired.spec.selector
        || current.spec.service_name != desired.spec.service_name
        || claims_differ(current, desired)
}

fn claims_differ(current: &StatefulSet, desired: &StatefulSet) -> bool {
    let storage = |s: &StatefulSet| {
        s.spec
            .volume_claim_templates
            .iter()
            .flatten()
            .map(|c| {
                let spec = c.spec.clone().unwrap_or_default();
                (
                    c.metadata.name.clone(),
                    spec.storage_class_name,
                    spec.resources.and_then(|r| r.requests),
                )
            })
            .collect::<Vec<_>>()
    };
    storage(current) != storage(desired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::cache;
    use crate::plan::{Plan, plan};

    fn deployed(c: &OrasCache) -> DeployedRegistry {
        match plan(&c.spec).unwrap() {
            Plan::Deployed(r) => *r,
            other => panic!("expected a deployed registry, got {other:?}"),
        }
    }

    fn container(sts: &StatefulSet) -> &Container {
        &sts.spec.template.spec.as_ref().unwrap().containers[0]
    }

    fn env<'a>(sts: &'a StatefulSet, name: &str) -> Option<&'a EnvVar> {
        container(sts).env.iter().flatten().find(|e| e.name == name)
    }

    /// The Secret and key the variable `name` takes its value from; it has no literal value.
    fn secret_key_ref<'a>(sts: &'a StatefulSet, name: &str) -> (&'a str, &'a str) {
        let var = env(sts, name).unwrap();
        assert!(var.value.is_none(), "{name} has no literal value");
        let key_ref = var
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        (key_ref.name.as_str(), key_ref.key.as_str())
    }

    #[test]
    fn defaults_build_one_registry_on_5000_with_an_empty_dir() {
        let c = cache("{}");
        let sts = build_statefulset(&c, &deployed(&c)).unwrap();
        assert_eq!(sts.metadata.name.as_deref(), Some("cache"));
        assert_eq!(sts.metadata.namespace.as_deref(), Some("ns"));
        let owner = &sts.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("OrasCache", "uid-1", Some(true))
        );
        assert_eq!(sts.spec.replicas, Some(1));
        assert_eq!(sts.spec.service_name.as_deref(), Some("cache"));
        let ctr = container(&sts);
        assert_eq!(ctr.image.as_deref(), Some(crate::crd::DEFAULT_IMAGE));
        assert_eq!(ctr.ports.as_ref().unwrap()[0].container_port, 5000);
        assert_eq!(
            env(&sts, "REGISTRY_HTTP_ADDR").unwrap().value.as_deref(),
            Some(":5000")
        );
        assert!(env(&sts, "REGISTRY_HTTP_SECRET").is_none());
        assert!(ctr.env_from.is_none());
        for probe in [&ctr.readiness_probe, &ctr.liveness_probe] {
            let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
            assert_eq!(get.path.as_deref(), Some("/v2/"));
            assert_eq!(get.port, IntOrString::String("registry".into()));
        }
        let volumes = sts
            .spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .volumes
            .as_ref()
            .unwrap();
        assert!(volumes[0].empty_dir.is_some());
        assert!(sts.spec.volume_claim_templates.is_none());
        let pod_security = sts
            .spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .security_context
            .as_ref()
            .unwrap();
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(pod_security.fs_group, Some(REGISTRY_UID));
        let security = ctr.security_context.as_ref().unwrap();
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(
            security.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..])
        );
        assert_eq!(
            sts.spec.selector.match_labels.as_ref(),
            sts.spec
                .template
                .metadata
                .as_ref()
                .unwrap()
                .labels
                .as_ref()
                .map(|l| {
                    l.iter()
                        .filter(|(k, _)| selector_labels("cache").contains_key(*k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<BTreeMap<_, _>>()
                })
                .as_ref()
        );
    }

    #[test]
    fn the_service_exposes_the_registry_port_and_selects_the_pods() {
        let c = cache("{service: {port: 5500}}");
        let registry = deployed(&c);
        let svc = build_service(&c, &registry).unwrap();
        let spec = svc.spec.unwrap();
        let port = &spec.ports.unwrap()[0];
        assert_eq!(port.port, 5500);
        assert_eq!(
            port.target_port,
            Some(IntOrString::String("registry".into()))
        );
        assert_eq!(spec.selector.unwrap(), selector_labels("cache"));
        assert_eq!(spec.cluster_ip, None, "a ClusterIP service, not headless");
        let sts = build_statefulset(&c, &registry).unwrap();
        assert_eq!(
            container(&sts).ports.as_ref().unwrap()[0].container_port,
            5500
        );
        assert_eq!(
            env(&sts, "REGISTRY_HTTP_ADDR").unwrap().value.as_deref(),
            Some(":5500")
        );
        assert_eq!(
            service_address("cache", "ns", "cluster.local", 5500),
            "cache.ns.svc.cluster.local:5500"
        );
    }

    #[test]
    fn storage_becomes_a_claim_template_with_its_class() {
        let c = cache("{storage: {size: 10Gi, storageClassName: fast}}");
        let sts = build_statefulset(&c, &deployed(&c)).unwrap();
        let claim = &sts.spec.volume_claim_templates.as_ref().unwrap()[0];
        assert_eq!(claim.metadata.name.as_deref(), Some(DATA_VOLUME));
        let spec = claim.spec.as_ref().unwrap();
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
            "10Gi"
        );
        assert!(sts.spec.template.spec.as_ref().unwrap().volumes.is_none());
        assert_eq!(
            container(&sts).volume_mounts.as_ref().unwrap()[0].mount_path,
            DATA_PATH
        );
        let without = cache("{}");
        let plain = build_statefulset(&without, &deployed(&without)).unwrap();
        assert!(needs_recreate(&plain, &sts));
        assert!(!needs_recreate(&sts, &sts.clone()));
        let mut original_operator = sts.clone();
        original_operator.spec.selector.match_labels = Some(BTreeMap::from([(
            "oras-namespace".to_string(),
            "ns".to_string(),
        )]));
        assert!(needs_recreate(&original_operator, &sts));
    }

    #[test]
    fn secrets_are_references_never_plain_values() {
        let c = cache(
            "{secrets: {orasEnv: registry-env, registryHttp: http-secret}, resources: {limits: {memory: 256Mi}}}",
        );
        let sts = build_statefulset(&c, &deployed(&c)).unwrap();
        assert_eq!(
            secret_key_ref(&sts, "REGISTRY_HTTP_SECRET"),
            ("http-secret", "REGISTRY_HTTP_SECRET")
        );
        let env_from = container(&sts).env_from.as_ref().unwrap();
        assert_eq!(
            env_from[0].secret_ref.as_ref().unwrap().name,
            "registry-env"
        );
        assert_eq!(
            container(&sts)
                .resources
                .as_ref()
                .unwrap()
                .limits
                .as_ref()
                .unwrap()["memory"]
                .0,
            "256Mi"
        );
    }

    #[test]
    fn a_mirror_reads_its_upstream_credentials_by_secret_key_ref_only() {
        let c = cache("{mirror: {address: ghcr.io, credentialsSecret: ghcr-creds}}");
        let sts = build_statefulset(&c, &deployed(&c)).unwrap();
        let names: Vec<_> = container(&sts)
            .env
            .iter()
            .flatten()
            .map(|e| e.name.as_str())
            .collect();
        // The URL refers to the two variables, so they come before it.
        assert_eq!(
            names,
            [
                "REGISTRY_HTTP_ADDR",
                PROXY_USERNAME,
                PROXY_PASSWORD,
                PROXY_REMOTE_URL
            ]
        );
        for (name, key) in [
            (PROXY_USERNAME, "ORAS_USER"),
            (PROXY_PASSWORD, "ORAS_PULL_PASS"),
        ] {
            assert_eq!(secret_key_ref(&sts, name), ("ghcr-creds", key));
        }
        assert_eq!(
            env(&sts, PROXY_REMOTE_URL).unwrap().value.as_deref(),
            Some("https://$(REGISTRY_PROXY_USERNAME):$(REGISTRY_PROXY_PASSWORD)@ghcr.io")
        );
    }

    #[test]
    fn credentials_that_a_url_cannot_carry_as_they_are_are_told_apart() {
        for fine in [
            "ghp_AbC123",
            "user.name",
            "pass:w=rd!",
            "a-b~c*d+e,f;g$h&i'j(k)l",
        ] {
            assert!(userinfo_safe(fine), "{fine}");
        }
        // `@` would do for Go's parser (it splits at the last one); refused to stay on the
        // safe side of every URL parser.
        for bad in ["with space", "a/b", "a?b", "a#b", "100%", "pässword", "a@b"] {
            assert!(!userinfo_safe(bad), "{bad}");
        }
    }

    #[test]
    fn an_anonymous_mirror_names_only_its_upstream() {
        let c = cache("{mirror: {address: 'upstream.example:5000', plainHttp: true}}");
        let sts = build_statefulset(&c, &deployed(&c)).unwrap();
        assert_eq!(
            env(&sts, PROXY_REMOTE_URL).unwrap().value.as_deref(),
            Some("http://upstream.example:5000")
        );
        assert!(env(&sts, PROXY_USERNAME).is_none() && env(&sts, PROXY_PASSWORD).is_none());
        let plain = cache("{}");
        let sts = build_statefulset(&plain, &deployed(&plain)).unwrap();
        assert!(env(&sts, PROXY_REMOTE_URL).is_none());
    }

    #[test]
    fn replicas_on_a_read_write_many_claim_share_it_and_spread_over_nodes() {
        let c = cache("{replicas: 3, storage: {size: 50Gi, accessMode: ReadWriteMany}}");
        let registry = deployed(&c);
        let sts = build_statefulset(&c, &registry).unwrap();
        assert_eq!(sts.spec.replicas, Some(3));
        assert!(
            sts.spec.volume_claim_templates.is_none(),
            "one claim, not one each"
        );
        let pod = sts.spec.template.spec.as_ref().unwrap();
        let volume = &pod.volumes.as_ref().unwrap()[0];
        assert_eq!(
            volume.persistent_volume_claim.as_ref().unwrap().claim_name,
            "cache-data"
        );
        let spread = &pod.topology_spread_constraints.as_ref().unwrap()[0];
        assert_eq!(spread.topology_key, "kubernetes.io/hostname");
        assert_eq!(spread.when_unsatisfiable, "ScheduleAnyway");
        let claim = build_shared_claim(&c, &registry).unwrap().unwrap();
        assert_eq!(claim.metadata.name.as_deref(), Some("cache-data"));
        assert_eq!(
            claim.spec.unwrap().access_modes.unwrap(),
            ["ReadWriteMany".to_string()]
        );
        let pdb = build_pdb(&c, &registry).unwrap().unwrap();
        let spec = pdb.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(
            spec.selector.unwrap().match_labels.unwrap(),
            selector_labels("cache")
        );
        // The replicas share the Secret the controller keeps.
        assert_eq!(
            secret_key_ref(&sts, "REGISTRY_HTTP_SECRET"),
            ("cache-http-secret", "REGISTRY_HTTP_SECRET")
        );
        let secret = build_http_secret(&c, "abc").unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("cache-http-secret"));
        assert_eq!(secret.data.unwrap()["REGISTRY_HTTP_SECRET"].0, b"abc");
    }

    #[test]
    fn one_replica_gets_no_budget_no_shared_claim_and_no_spread() {
        let c = cache("{storage: {size: 1Gi}}");
        let registry = deployed(&c);
        assert!(build_pdb(&c, &registry).unwrap().is_none());
        assert!(build_shared_claim(&c, &registry).unwrap().is_none());
        let sts = build_statefulset(&c, &registry).unwrap();
        assert!(
            sts.spec
                .template
                .spec
                .unwrap()
                .topology_spread_constraints
                .is_none()
        );
        let object = cache("{replicas: 2, secrets: {orasEnv: s3-env, registryHttp: shared}}");
        let sts = build_statefulset(&object, &deployed(&object)).unwrap();
        assert_eq!(
            secret_key_ref(&sts, "REGISTRY_HTTP_SECRET").0,
            "shared",
            "a named secret wins"
        );
    }

    #[test]
    fn deploy_false_and_remote_registries_build_nothing() {
        for yaml in [
            "{deploy: false}",
            "{deploy: false, registry: {address: ghcr.io}}",
        ] {
            let c = cache(yaml);
            assert!(
                !matches!(plan(&c.spec).unwrap(), Plan::Deployed(_)),
                "{yaml} must not deploy a registry"
            );
        }
    }

    #[test]
    fn a_cache_without_uid_cannot_own_children() {
        let mut c = cache("{}");
        c.metadata.uid = None;
        assert_eq!(
            build_service(&c, &deployed(&c)).unwrap_err(),
            BuildError::MissingMetadata("metadata.uid")
        );
    }
}
