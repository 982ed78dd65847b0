//! The one list of a cache's children: every object the controller may make for an `OrasCache`,
//! by kind and name, which ones a plan wants, and which ones an earlier plan may have left.
//!
//! The reconciler checks each wanted child's owner before it applies anything (a child that
//! exists and is not the cache's own is a conflict, reported in the status, never changed,
//! adopted or deleted), and removes leftovers only when the cache owns them.

use std::fmt;

use crate::client_config::{client_config_name, docker_config_name};
use crate::plan::{Plan, Sharing};
use crate::resources::{http_secret_name, shared_claim_name};

/// The kinds of object a cache makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChildKind {
    /// The registry's Service.
    Service,
    /// The registry's StatefulSet.
    StatefulSet,
    /// The claim the replicas share.
    PersistentVolumeClaim,
    /// The budget of several replicas.
    PodDisruptionBudget,
    /// The kept HTTP secret, the docker config.
    Secret,
    /// The client configurations.
    ConfigMap,
}

impl ChildKind {
    /// The kind as the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChildKind::Service => "Service",
            ChildKind::StatefulSet => "StatefulSet",
            ChildKind::PersistentVolumeClaim => "PersistentVolumeClaim",
            ChildKind::PodDisruptionBudget => "PodDisruptionBudget",
            ChildKind::Secret => "Secret",
            ChildKind::ConfigMap => "ConfigMap",
        }
    }
}

impl fmt::Display for ChildKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One child of a cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Child {
    /// Its kind.
    pub kind: ChildKind,
    /// Its name, in the cache's namespace.
    pub name: String,
}

impl Child {
    fn new(kind: ChildKind, name: impl Into<String>) -> Child {
        Child {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// The children `plan` of the cache `name` makes, in the order the reconciler applies them.
pub fn wanted(name: &str, plan: &Plan) -> Vec<Child> {
    let mut children = Vec::new();
    match plan {
        Plan::Deployed(registry) => {
            if registry.generate_http_secret {
                children.push(Child::new(ChildKind::Secret, http_secret_name(name)));
            }
            children.push(Child::new(ChildKind::Service, name));
            if registry.sharing == Sharing::SharedClaim {
                children.push(Child::new(
                    ChildKind::PersistentVolumeClaim,
                    shared_claim_name(name),
                ));
            }
            if registry.replicas > 1 {
                children.push(Child::new(ChildKind::PodDisruptionBudget, name));
            }
            children.push(Child::new(ChildKind::StatefulSet, name));
            children.extend(client_configs(name));
        }
        Plan::Remote(_) => children.extend(client_configs(name)),
        Plan::Unconfigured => {}
    }
    children
}

/// What an earlier plan of the cache `name` may have made that `plan` does not want, in the
/// order the reconciler removes them (each only when the cache owns it). A Secret the plan reads
/// (`secrets.orasEnv`, `secrets.registryHttp`, credentials) is never one. Claims are not either:
/// the data in them outlives a spec change, as the StatefulSet's claims do
/// (`persistentVolumeClaimRetentionPolicy` defaults to `Retain`), and goes with the cache.
pub fn leftovers(name: &str, plan: &Plan) -> Vec<Child> {
    let keep = wanted(name, plan);
    let referenced = referenced_secrets(plan);
    let mut possible = vec![
        Child::new(ChildKind::StatefulSet, name),
        Child::new(ChildKind::Service, name),
        Child::new(ChildKind::PodDisruptionBudget, name),
        Child::new(ChildKind::Secret, http_secret_name(name)),
    ];
    possible.extend(client_configs(name));
    possible
        .into_iter()
        .filter(|child| !keep.contains(child))
        .filter(|child| !(child.kind == ChildKind::Secret && referenced.contains(&child.name)))
        .collect()
}

fn client_configs(name: &str) -> [Child; 2] {
    [
        Child::new(ChildKind::Secret, docker_config_name(name)),
        Child::new(ChildKind::ConfigMap, client_config_name(name)),
    ]
}

/// The Secrets `plan` reads, which are the user's, whatever their names.
fn referenced_secrets(plan: &Plan) -> Vec<String> {
    match plan {
        Plan::Deployed(registry) => [
            registry.env_from_secret.clone(),
            registry.http_secret.as_ref().map(|s| s.name.clone()),
            registry
                .mirror
                .as_ref()
                .and_then(|m| m.upstream.credentials_secret.clone()),
        ]
        .into_iter()
        .flatten()
        .collect(),
        Plan::Remote(target) => target.credentials_secret.clone().into_iter().collect(),
        Plan::Unconfigured => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan;

    fn planned(yaml: &str) -> Plan {
        plan(&serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    fn names(children: &[Child]) -> Vec<String> {
        children.iter().map(Child::to_string).collect()
    }

    #[test]
    fn a_deployed_cache_wants_its_registry_and_client_configs() {
        assert_eq!(
            names(&wanted("c", &planned("{}"))),
            [
                "Service c",
                "StatefulSet c",
                "Secret c-docker-config",
                "ConfigMap c-client-config"
            ]
        );
        assert_eq!(
            names(&wanted(
                "c",
                &planned("replicas: 3\nstorage: {size: 1Gi, accessMode: ReadWriteMany}")
            )),
            [
                "Secret c-http-secret",
                "Service c",
                "PersistentVolumeClaim c-data",
                "PodDisruptionBudget c",
                "StatefulSet c",
                "Secret c-docker-config",
                "ConfigMap c-client-config"
            ]
        );
    }

    #[test]
    fn a_remote_cache_leaves_the_registry_a_deployed_spec_made() {
        let remote = planned("deploy: false\nregistry: {address: ghcr.io}");
        assert_eq!(
            names(&wanted("c", &remote)),
            ["Secret c-docker-config", "ConfigMap c-client-config"]
        );
        assert_eq!(
            names(&leftovers("c", &remote)),
            [
                "StatefulSet c",
                "Service c",
                "PodDisruptionBudget c",
                "Secret c-http-secret"
            ]
        );
        assert_eq!(
            names(&leftovers("c", &planned("deploy: false"))),
            [
                "StatefulSet c",
                "Service c",
                "PodDisruptionBudget c",
                "Secret c-http-secret",
                "Secret c-docker-config",
                "ConfigMap c-client-config"
            ]
        );
    }

    #[test]
    fn a_secret_the_spec_reads_is_never_a_leftover() {
        let spec = "secrets: {registryHttp: c-http-secret}";
        assert!(!names(&leftovers("c", &planned(spec))).contains(&"Secret c-http-secret".into()));
        assert_eq!(
            names(&leftovers("c", &planned("{}"))),
            ["PodDisruptionBudget c", "Secret c-http-secret"]
        );
    }
}
