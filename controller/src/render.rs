//! `oras-cache-controller render FILE`: what the reconciler would apply for each `OrasCache` in a
//! file, without a cluster, from the same [`crate::plan`] and [`crate::resources`] builders.
//!
//! The docker-config Secret is printed as it would be applied (its `config.json` holds a remote
//! registry's credentials when the file has its Secret).
//!
//! A Secret in the same file that a mirror names as its credentials stands in for the one in the
//! cluster: its keys decide which keys the registry container reads, as the reconciler decides
//! from the Secret it reads. Its values are never printed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::client_config::{
    ClientTarget, build_client_configs, client_config_name, docker_config_name,
};
use crate::crd::DEFAULT_REGISTRY_HTTP_KEY;
use crate::crd::OrasCache;
use crate::plan::{Plan, Sharing, credential_keys, is_object_storage_key, plan_cache};
use crate::resources::{
    BuildError, build_http_secret, build_pdb, build_service, build_shared_claim, build_statefulset,
    service_address,
};
use crate::status::{MirrorObservation, Observation, build_status};
use oras_cache_api::credentials::{Operation, select};

/// Namespace of an `OrasCache` in the file without one (as `kubectl apply` would use).
pub const DEFAULT_NAMESPACE: &str = "default";
/// The uid owner references carry in a rendered object: the API server assigns the real one.
pub const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

/// A file that cannot be rendered.
#[derive(Debug, Error)]
pub enum RenderError {
    /// A document is not YAML.
    #[error("document {index} is not YAML: {source}")]
    Yaml {
        /// 1-based document number.
        index: usize,
        /// Parser error.
        source: serde_yaml::Error,
    },
    /// An `OrasCache` document does not fit the CRD.
    #[error("document {index} is not a valid OrasCache: {source}")]
    Cache {
        /// 1-based document number.
        index: usize,
        /// Deserialization error.
        source: serde_json::Error,
    },
    /// The file holds no `OrasCache`.
    #[error("no OrasCache in the file")]
    NoCache,
    /// A builder refused the object.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// What `render` prints: the YAML documents, and warnings for standard error.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Every object the controller would apply, then each cache with the status it can know.
    pub objects: Vec<Value>,
    /// Things the output could not know (such as a Secret that is not in the file).
    pub warnings: Vec<String>,
}

impl Rendered {
    /// The objects as one multi-document YAML stream.
    pub fn to_yaml(&self) -> String {
        self.objects
            .iter()
            .map(|o| serde_yaml::to_string(o).expect("JSON values serialize to YAML"))
            .collect::<Vec<_>>()
            .join("---\n")
    }
}

/// Renders every `OrasCache` of `text` (a multi-document YAML stream) with the cache addresses
/// under `cluster_domain`.
pub fn render(text: &str, cluster_domain: &str) -> Result<Rendered, RenderError> {
    let mut documents = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|source| RenderError::Yaml {
            index: index + 1,
            source,
        })?;
        if !value.is_null() {
            documents.push((index + 1, value));
        }
    }
    let secrets: Vec<Secret> = documents
        .iter()
        .filter(|(_, d)| d["kind"] == "Secret" && d["apiVersion"] == "v1")
        .filter_map(|(_, d)| serde_json::from_value(d.clone()).ok())
        .collect();
    let mut rendered = Rendered {
        objects: Vec::new(),
        warnings: Vec::new(),
    };
    let mut caches = 0;
    for (index, document) in &documents {
        if document["kind"] != OrasCache::kind(&()).as_ref()
            || document["apiVersion"] != OrasCache::api_version(&()).as_ref()
        {
            continue;
        }
        caches += 1;
        let mut cache: OrasCache =
            serde_json::from_value(document.clone()).map_err(|source| RenderError::Cache {
                index: *index,
                source,
            })?;
        if cache.metadata.namespace.is_none() {
            cache.metadata.namespace = Some(DEFAULT_NAMESPACE.into());
        }
        if cache.metadata.uid.is_none() {
            cache.metadata.uid = Some(PLACEHOLDER_UID.into());
        }
        render_cache(&cache, &secrets, cluster_domain, &mut rendered)?;
    }
    if caches == 0 {
        return Err(RenderError::NoCache);
    }
    Ok(rendered)
}

fn render_cache(
    cache: &OrasCache,
    secrets: &[Secret],
    cluster_domain: &str,
    out: &mut Rendered,
) -> Result<(), RenderError> {
    let name = cache.name_any();
    let namespace = cache
        .namespace()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.into());
    let observation = match plan_cache(&name, &cache.spec) {
        Err(error) => Observation::InvalidSpec(error.to_string()),
        Ok(Plan::Deployed(mut registry)) => {
            if let Some(mirror) = registry.mirror.as_mut()
                && let Some(secret_name) = mirror.upstream.credentials_secret.clone()
            {
                match secret_in_file(secrets, &secret_name, &namespace) {
                    Some(data) => {
                        match credential_keys(&secret_name, |k| data.get(k).cloned()) {
                            Ok(Some(keys)) => mirror.credential_keys = Some(keys),
                            Ok(None) => out.warnings.push(format!(
                                "OrasCache {namespace}/{name}: Secret {secret_name} has no credentials; the cluster would report AuthReady=False"
                            )),
                            Err(error) => out.warnings.push(format!(
                                "OrasCache {namespace}/{name}: Secret {secret_name}: {error}"
                            )),
                        }
                    }
                    None => out.warnings.push(format!(
                        "OrasCache {namespace}/{name}: Secret {namespace}/{secret_name} is not in the file; the registry reads keys ORAS_USER and ORAS_PULL_PASS (the controller picks the keys the Secret has)"
                    )),
                }
            }
            if let Sharing::ObjectStorage { secret } = &registry.sharing {
                match secret_in_file(secrets, secret, &namespace) {
                    Some(data) if data.keys().any(|k| is_object_storage_key(k)) => {}
                    Some(_) => out.warnings.push(format!(
                        "OrasCache {namespace}/{name}: Secret {secret} has no REGISTRY_STORAGE_* key of an object store; the cluster would report the spec invalid"
                    )),
                    None => out.warnings.push(format!(
                        "OrasCache {namespace}/{name}: Secret {namespace}/{secret} is not in the file; the controller checks that it configures object storage (REGISTRY_STORAGE_*)"
                    )),
                }
            }
            if registry.generate_http_secret {
                // The value is random and made once in the cluster; the rendered Secret says so.
                let mut secret = build_http_secret(cache, "")?;
                secret.data = None;
                secret.string_data = Some(BTreeMap::from([(
                    DEFAULT_REGISTRY_HTTP_KEY.to_string(),
                    "<32 random bytes as hex, made once by the controller>".to_string(),
                )]));
                out.objects.push(to_value(&secret));
            }
            if let Some(claim) = build_shared_claim(cache, &registry)? {
                out.objects.push(to_value(&claim));
            }
            if let Some(pdb) = build_pdb(cache, &registry)? {
                out.objects.push(to_value(&pdb));
            }
            out.objects
                .push(to_value(&build_service(cache, &registry)?));
            out.objects
                .push(to_value(&build_statefulset(cache, &registry)?));
            let address = service_address(&name, &namespace, cluster_domain, registry.port);
            push_client_configs(
                cache,
                &ClientTarget {
                    address: address.clone(),
                    plain_http: true,
                    login: None,
                },
                out,
            )?;
            Observation::Deployed {
                address,
                ready_replicas: 0,
                replicas: registry.replicas,
                mirror: registry.mirror.as_ref().map(|m| MirrorObservation {
                    upstream: m.upstream.address.clone(),
                    auth: None,
                }),
            }
        }
        Ok(Plan::Remote(target)) => {
            let login = target
                .credentials_secret
                .as_deref()
                .and_then(|secret| secret_in_file(secrets, secret, &namespace))
                .and_then(|data| {
                    select(Operation::Push, |k| data.get(k).cloned())
                        .ok()
                        .flatten()
                });
            if target.credentials_secret.is_some() && login.is_none() {
                out.warnings.push(format!(
                    "OrasCache {namespace}/{name}: the credentials Secret is not in the file (or has none); the rendered docker config has no credentials, the cluster's would"
                ));
            }
            push_client_configs(
                cache,
                &ClientTarget {
                    address: target.address.clone(),
                    plain_http: target.plain_http,
                    login,
                },
                out,
            )?;
            Observation::Remote {
                address: target.address.clone(),
                plain_http: target.plain_http,
                report: crate::registry_check::CheckReport {
                    reachable: crate::registry_check::Verdict::pass("NotChecked", ""),
                    auth: crate::registry_check::Verdict::pass("NotChecked", ""),
                },
            }
        }
        Ok(Plan::Unconfigured) => Observation::Unconfigured,
    };
    let invalid = matches!(observation, Observation::InvalidSpec(_));
    let configs = matches!(
        observation,
        Observation::Deployed { .. } | Observation::Remote { .. }
    );
    let now = Time(Timestamp::now());
    let mut status = build_status(None, cache.metadata.generation, &observation, &now);
    if configs {
        status.docker_config_secret = Some(docker_config_name(&name));
        status.client_config_map = Some(client_config_name(&name));
    }
    // Readiness and the upstream check need a cluster; an invalid spec is known without one.
    if !invalid {
        status.conditions.clear();
    }
    out.objects.push(serde_json::json!({
        "apiVersion": OrasCache::api_version(&()),
        "kind": OrasCache::kind(&()),
        "metadata": {"name": name, "namespace": namespace},
        "status": status,
    }));
    Ok(())
}

fn push_client_configs(
    cache: &OrasCache,
    target: &ClientTarget,
    out: &mut Rendered,
) -> Result<(), RenderError> {
    let (secret, map) = build_client_configs(cache, target)?;
    out.objects.push(to_value(&secret));
    out.objects.push(to_value(&map));
    Ok(())
}

/// The text values of Secret `name` in `namespace` (`data` decoded, `stringData` over it).
fn secret_in_file(
    secrets: &[Secret],
    name: &str,
    namespace: &str,
) -> Option<BTreeMap<String, String>> {
    let secret = secrets.iter().find(|s| {
        s.metadata.name.as_deref() == Some(name)
            && s.metadata.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE) == namespace
    })?;
    let mut values: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?)))
        .collect();
    values.extend(secret.string_data.clone().unwrap_or_default());
    Some(values)
}

fn to_value(object: &impl serde::Serialize) -> Value {
    serde_json::to_value(object).expect("Kubernetes objects serialize to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIRROR: &str = "\
apiVersion: cache.converged-computing.github.io/v1alpha1
kind: OrasCache
metadata: {name: ghcr-mirror, namespace: builds}
spec:
  mirror: {address: ghcr.io, credentialsSecret: ghcr, repository: org/app}
---
apiVersion: v1
kind: Secret
metadata: {name: ghcr, namespace: builds}
stringData: {username: me, password: token-value}
";

    #[test]
    fn a_mirror_renders_its_service_statefulset_and_status() {
        let rendered = render(MIRROR, "cluster.local").unwrap();
        let kinds: Vec<_> = rendered
            .objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["Service", "StatefulSet", "Secret", "ConfigMap", "OrasCache"]
        );
        let env = &rendered.objects[1]["spec"]["template"]["spec"]["containers"][0]["env"];
        let key = |name: &str| {
            env.as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .unwrap()["valueFrom"]["secretKeyRef"]["key"]
                .clone()
        };
        // The keys the Secret in the file has.
        assert_eq!(key("REGISTRY_PROXY_USERNAME"), "username");
        assert_eq!(key("REGISTRY_PROXY_PASSWORD"), "password");
        let status = &rendered.objects[4]["status"];
        assert_eq!(status["dockerConfigSecret"], "ghcr-mirror-docker-config");
        assert_eq!(status["clientConfigMap"], "ghcr-mirror-client-config");
        assert_eq!(
            status["address"],
            "ghcr-mirror.builds.svc.cluster.local:5000"
        );
        assert_eq!(status["mirrorOf"], "ghcr.io");
        assert_eq!(status["conditions"], serde_json::json!([]));
        assert!(rendered.warnings.is_empty(), "{:?}", rendered.warnings);
        let yaml = rendered.to_yaml();
        assert!(
            !yaml.contains("token-value"),
            "Secret values are never printed"
        );
        assert_eq!(yaml.matches("\n---\n").count() + 1, 5);
    }

    #[test]
    fn a_missing_secret_and_an_invalid_spec_are_reported() {
        let without_secret = MIRROR.split("---").next().unwrap();
        let rendered = render(without_secret, "cluster.local").unwrap();
        assert!(
            rendered.warnings[0].contains("not in the file"),
            "{:?}",
            rendered.warnings
        );
        let invalid = "apiVersion: cache.converged-computing.github.io/v1alpha1\nkind: OrasCache\nmetadata: {name: bad}\nspec: {deploy: false, mirror: {address: ghcr.io}}\n";
        let rendered = render(invalid, "cluster.local").unwrap();
        assert_eq!(rendered.objects.len(), 1, "nothing to apply");
        let condition = &rendered.objects[0]["status"]["conditions"][0];
        assert_eq!(condition["reason"], "InvalidSpec");
        assert_eq!(rendered.objects[0]["metadata"]["namespace"], "default");
        assert!(matches!(
            render("kind: Pod\n", "x"),
            Err(RenderError::NoCache)
        ));
    }
}
