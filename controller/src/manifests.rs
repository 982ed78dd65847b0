//! The install manifests, rendered from Rust so that they cannot drift from the code:
//! the CRD, the controller's Namespace, ServiceAccount, least-privilege RBAC and Deployment, the
//! read grant for Kubewarden's policy server, and the `ClusterAdmissionPolicy` that installs the
//! policy. `deploy/oras-cache.yaml` is this output with the defaults.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace,
    ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, SecurityContext, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

/// Namespace the controller is installed into by default.
pub const DEFAULT_NAMESPACE: &str = "oras-cache-system";
/// Controller image by default.
pub const DEFAULT_CONTROLLER_IMAGE: &str = "ghcr.io/oras-cache/oras-cache-controller:v0.1.0";
/// Policy module the ClusterAdmissionPolicy installs by default.
pub const DEFAULT_POLICY_MODULE: &str = "registry://ghcr.io/oras-cache/policies/oras-cache:v0.1.0";
/// Agent image the policy injects by default.
pub const DEFAULT_AGENT_IMAGE: &str = oras_cache_api::settings::DEFAULT_AGENT_IMAGE;
/// Namespace of Kubewarden's default policy server: the namespace the `kubewarden-defaults` chart
/// is installed in, `kubewarden` in Kubewarden's install guide.
pub const DEFAULT_POLICY_SERVER_NAMESPACE: &str = "kubewarden";
/// ServiceAccount the default PolicyServer runs as. Its Deployment and Service are called
/// `policy-server-default`, but the ServiceAccount is `policy-server`: kubewarden/helm-charts,
/// `charts/kubewarden-defaults/values.yaml` (`policyServer.serviceAccountName: policy-server`),
/// used by `templates/policyserver-default.yaml` as the PolicyServer's `serviceAccountName`.
pub const DEFAULT_POLICY_SERVER_ACCOUNT: &str = "policy-server";
/// The PolicyServer the policy runs on (`kubewarden-defaults` creates one called `default`).
pub const DEFAULT_POLICY_SERVER: &str = "default";
/// `spec.timeoutSeconds` of the ClusterAdmissionPolicy: the webhook's own deadline.
pub const POLICY_TIMEOUT_SECONDS: i32 = 10;
/// `spec.timeoutEvalSeconds`: the policy-server's budget for one evaluation, host calls included.
/// A container without `command` costs a registry round trip for its image's config, which the
/// policy server's 2 s default cannot always cover. Kubewarden accepts 2 to 30 and no more than
/// `timeoutSeconds` (kubewarden-controller `api/policies/v1/policy_validation.go`,
/// `validateTimeoutSeconds`, and the CRD's `minimum`/`maximum`).
pub const POLICY_TIMEOUT_EVAL_SECONDS: i32 = 8;
/// `io.kubewarden.policy.severity` of the policy, as `metadata.yml` says.
pub const POLICY_SEVERITY: &str = "low";
/// `io.kubewarden.policy.category` of the policy, as `metadata.yml` says.
pub const POLICY_CATEGORY: &str = "Workflow";
/// Name of the controller's ServiceAccount, ClusterRole, ClusterRoleBinding and Deployment.
pub const CONTROLLER_NAME: &str = "oras-cache-controller";
/// Name of the ClusterRole and binding that let the policy server read OrasCaches.
pub const POLICY_READER_NAME: &str = "oras-cache-policy-server-reader";
/// Name of the ClusterAdmissionPolicy.
pub const POLICY_NAME: &str = "oras-cache";
/// The annotation prefix the policy acts on; the policy's webhook only sees objects carrying it.
pub const ANNOTATION_PREFIX: &str = oras_cache_api::annotations::PREFIX;

/// What the rendered install varies on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOptions {
    /// Namespace of the controller.
    pub namespace: String,
    /// Controller image.
    pub image: String,
    /// `registry://` reference of the policy module.
    pub policy_module: String,
    /// Agent image the policy injects.
    pub agent_image: String,
    /// DNS domain of the cluster.
    pub cluster_domain: String,
    /// Namespace of Kubewarden's policy server.
    pub policy_server_namespace: String,
    /// Service account of Kubewarden's policy server.
    pub policy_server_account: String,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            namespace: DEFAULT_NAMESPACE.into(),
            image: DEFAULT_CONTROLLER_IMAGE.into(),
            policy_module: DEFAULT_POLICY_MODULE.into(),
            agent_image: DEFAULT_AGENT_IMAGE.into(),
            cluster_domain: oras_cache_api::settings::DEFAULT_CLUSTER_DOMAIN.into(),
            policy_server_namespace: DEFAULT_POLICY_SERVER_NAMESPACE.into(),
            policy_server_account: DEFAULT_POLICY_SERVER_ACCOUNT.into(),
        }
    }
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), CONTROLLER_NAME.into()),
        ("app.kubernetes.io/part-of".into(), "oras-cache".into()),
    ])
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

/// Binds the ClusterRole `name` (a binding of the same name) to a ServiceAccount.
fn cluster_role_binding(name: &str, account: &str, account_namespace: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name, None),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.into(),
            namespace: Some(account_namespace.into()),
            ..Subject::default()
        }]),
    }
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    }
}

/// The rules the controller needs and nothing more (the platform suite, controller/tests/platform.rs,
/// measures each verb's use from the API server's audit log and fails on one no test needs): it
/// watches OrasCaches and patches their status; reads every child it would make before applying
/// (get: an object of that name that is not the cache's own is a conflict, never taken over);
/// owns StatefulSets, Services, ConfigMaps and disruption budgets through server-side apply
/// (create and patch) and watches them (list and watch, for `Controller::owns`); creates and
/// patches the claim replicas share and watches it; deletes what a changed spec no longer wants
/// (the cache's own only; claims never); reads the Secrets a spec names and applies the two it
/// makes (the docker config, the replicas' HTTP secret) without listing or watching any: a watch
/// of Secrets needs list and watch on every Secret of the cluster (RBAC cannot narrow a list by
/// label), and the resync puts a changed or deleted Secret of the cache's back within
/// `RESYNC_SECONDS`; and records events (`patch` for event series).
pub fn controller_rules() -> Vec<PolicyRule> {
    let group = oras_cache_api::cache::GROUP;
    let owned = ["get", "list", "watch", "create", "patch", "delete"];
    vec![
        rule(group, &["orascaches"], &["list", "watch"]),
        rule(group, &["orascaches/status"], &["patch"]),
        rule("apps", &["statefulsets"], &owned),
        rule("", &["services"], &owned),
        rule("", &["secrets"], &["get", "create", "patch", "delete"]),
        rule("", &["configmaps"], &owned),
        rule(
            "",
            &["persistentvolumeclaims"],
            &["get", "list", "watch", "create", "patch"],
        ),
        rule("policy", &["poddisruptionbudgets"], &owned),
        rule("events.k8s.io", &["events"], &["create", "patch"]),
    ]
}

fn controller_deployment(opts: &InstallOptions) -> Deployment {
    let env = |name: &str, value: &str| EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    };
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    };
    let quantities = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ])
    };
    let selector = BTreeMap::from([(
        "app.kubernetes.io/name".to_string(),
        CONTROLLER_NAME.to_string(),
    )]);
    Deployment {
        metadata: meta(CONTROLLER_NAME, Some(&opts.namespace)),
        spec: DeploymentSpec {
            // One replica: there is no leader election, and two controllers would race on status.
            replicas: Some(1),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(CONTROLLER_NAME.into()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        run_as_group: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![Container {
                        name: "controller".into(),
                        image: Some(opts.image.clone()),
                        args: Some(vec!["run".into()]),
                        env: Some(vec![
                            env("CLUSTER_DOMAIN", &opts.cluster_domain),
                            env("LISTEN_ADDRESS", "0.0.0.0:8080"),
                            env("RUST_LOG", "info"),
                            EnvVar {
                                name: "POD_NAME".into(),
                                value_from: Some(EnvVarSource {
                                    field_ref: Some(ObjectFieldSelector {
                                        field_path: "metadata.name".into(),
                                        ..ObjectFieldSelector::default()
                                    }),
                                    ..EnvVarSource::default()
                                }),
                                ..EnvVar::default()
                            },
                        ]),
                        ports: Some(vec![ContainerPort {
                            name: Some("http".into()),
                            container_port: 8080,
                            protocol: Some("TCP".into()),
                            ..ContainerPort::default()
                        }]),
                        liveness_probe: Some(probe("/healthz")),
                        readiness_probe: Some(probe("/readyz")),
                        resources: Some(ResourceRequirements {
                            requests: Some(quantities("50m", "64Mi")),
                            limits: Some(quantities("500m", "256Mi")),
                            ..ResourceRequirements::default()
                        }),
                        security_context: Some(SecurityContext {
                            allow_privilege_escalation: Some(false),
                            read_only_root_filesystem: Some(true),
                            capabilities: Some(Capabilities {
                                drop: Some(vec!["ALL".into()]),
                                ..Capabilities::default()
                            }),
                            ..SecurityContext::default()
                        }),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    }
}

/// Name of the policy's one match condition.
pub const MATCH_CONDITION_NAME: &str = "has-oras-annotation-or-artifact-volume";

/// The CEL expression of the policy's match condition: the object carries an annotation of the
/// prefix, or its pod spec has an inline CSI volume of one of `drivers` (the `volumeDrivers`
/// setting), so that only those reach the policy. The API server ANDs several conditions, so both
/// cases live in one expression. Pods and Jobs always have `spec` and a Job
/// `spec.template.spec`, so `has()` is only asked of optional fields.
pub fn match_expression(drivers: &[String]) -> String {
    let annotated = format!(
        "(has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('{ANNOTATION_PREFIX}')))"
    );
    if drivers.is_empty() {
        return annotated;
    }
    let list = drivers
        .iter()
        .map(|d| format!("'{d}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let has_volume = |spec: &str| {
        format!(
            "(has({spec}.volumes) && {spec}.volumes.exists(v, has(v.csi) && v.csi.driver in [{list}]))"
        )
    };
    format!(
        "{annotated} || (object.kind == 'Pod' && {}) || (object.kind == 'Job' && {})",
        has_volume("object.spec"),
        has_volume("object.spec.template.spec")
    )
}

/// The ClusterAdmissionPolicy: mutating, context-aware for OrasCache, Pods and Jobs on CREATE,
/// and only for objects that carry an annotation of the prefix or an artifact volume, so that an
/// unavailable policy server never blocks unrelated workloads.
pub fn cluster_admission_policy(opts: &InstallOptions) -> Value {
    let volume_drivers = vec![oras_cache_api::volumes::DEFAULT_DRIVER.to_string()];
    json!({
        "apiVersion": "policies.kubewarden.io/v1",
        "kind": "ClusterAdmissionPolicy",
        "metadata": {
            "name": POLICY_NAME,
            "labels": labels(),
            // What `kwctl scaffold manifest` copies from the policy's metadata (kwctl
            // `src/scaffold/manifest.rs`, `build_objmetadata`); Kubewarden's printer columns and
            // UI read them.
            "annotations": {
                "io.kubewarden.policy.severity": POLICY_SEVERITY,
                "io.kubewarden.policy.category": POLICY_CATEGORY,
            },
        },
        "spec": {
            "module": opts.policy_module,
            "mode": "protect",
            "mutating": true,
            "policyServer": DEFAULT_POLICY_SERVER,
            "failurePolicy": "Fail",
            "timeoutSeconds": POLICY_TIMEOUT_SECONDS,
            "timeoutEvalSeconds": POLICY_TIMEOUT_EVAL_SECONDS,
            "backgroundAudit": false,
            "contextAwareResources": [
                {"apiVersion": oras_cache_api::cache::API_VERSION, "kind": oras_cache_api::cache::KIND}
            ],
            "rules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "operations": ["CREATE"]},
                {"apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["jobs"], "operations": ["CREATE"]}
            ],
            "matchConditions": [{
                "name": MATCH_CONDITION_NAME,
                "expression": match_expression(&volume_drivers),
            }],
            "settings": {
                "agentImage": opts.agent_image,
                "clusterDomain": opts.cluster_domain,
                "volumeDrivers": volume_drivers,
            },
        },
    })
}

fn to_value<T: serde::Serialize>(object: T) -> Value {
    serde_json::to_value(object).expect("Kubernetes objects serialize to JSON")
}

/// Every install object, in the order `kubectl apply -f` needs (Namespace and CRD first).
pub fn objects(opts: &InstallOptions) -> Vec<Value> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            labels: Some({
                let mut l = labels();
                l.insert(
                    "pod-security.kubernetes.io/enforce".into(),
                    "restricted".into(),
                );
                l
            }),
            ..meta(&opts.namespace, None)
        },
        ..Namespace::default()
    };
    let controller_binding =
        cluster_role_binding(CONTROLLER_NAME, CONTROLLER_NAME, &opts.namespace);
    let reader = ClusterRole {
        metadata: meta(POLICY_READER_NAME, None),
        rules: Some(vec![rule(
            oras_cache_api::cache::GROUP,
            &["orascaches"],
            &["get", "list", "watch"],
        )]),
        ..ClusterRole::default()
    };
    let reader_binding = cluster_role_binding(
        POLICY_READER_NAME,
        &opts.policy_server_account,
        &opts.policy_server_namespace,
    );
    vec![
        to_value(namespace),
        to_value(crate::crd::crd()),
        to_value(ServiceAccount {
            metadata: meta(CONTROLLER_NAME, Some(&opts.namespace)),
            automount_service_account_token: Some(true),
            ..ServiceAccount::default()
        }),
        to_value(ClusterRole {
            metadata: meta(CONTROLLER_NAME, None),
            rules: Some(controller_rules()),
            ..ClusterRole::default()
        }),
        to_value(controller_binding),
        to_value(controller_deployment(opts)),
        to_value(reader),
        to_value(reader_binding),
        cluster_admission_policy(opts),
    ]
}

/// The install objects as one multi-document YAML file.
pub fn render(opts: &InstallOptions) -> String {
    let mut out = String::from(
        "# oras-cache install manifests, generated by `oras-cache-controller manifests`\n\
         # (`make controller-manifests`); do not edit by hand. Apply with `kubectl apply -f`.\n",
    );
    for object in objects(opts) {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&object).expect("JSON values serialize to YAML"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbac_is_least_privilege() {
        let rules = controller_rules();
        let verbs = |resource: &str| {
            rules
                .iter()
                .find(|r| {
                    r.resources
                        .as_ref()
                        .unwrap()
                        .contains(&resource.to_string())
                })
                .unwrap()
                .verbs
                .clone()
        };
        let owned = ["get", "list", "watch", "create", "patch", "delete"];
        assert_eq!(
            verbs("secrets"),
            ["get", "create", "patch", "delete"],
            "no list or watch of Secrets: that would be every Secret of the cluster"
        );
        assert_eq!(verbs("configmaps"), owned);
        assert_eq!(
            verbs("persistentvolumeclaims"),
            ["get", "list", "watch", "create", "patch"],
            "claims are read, watched and applied, never deleted"
        );
        assert_eq!(verbs("poddisruptionbudgets"), owned);
        assert_eq!(
            verbs("orascaches"),
            ["list", "watch"],
            "the watch's cache serves every read"
        );
        assert!(!verbs("orascaches/status").contains(&"update".to_string()));
        assert_eq!(verbs("events"), ["create", "patch"]);
        assert!(rules.iter().all(|r| !r.verbs.contains(&"*".to_string())));
        assert!(
            rules
                .iter()
                .all(|r| !r.resources.as_ref().unwrap().contains(&"pods".to_string()))
        );
    }

    #[test]
    fn options_reach_the_objects() {
        let opts = InstallOptions {
            namespace: "tools".into(),
            policy_server_account: "ps".into(),
            policy_server_namespace: "kw".into(),
            ..InstallOptions::default()
        };
        let objects = objects(&opts);
        let find = |kind: &str, name: &str| {
            objects
                .iter()
                .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
                .unwrap()
                .clone()
        };
        assert_eq!(
            find("Deployment", CONTROLLER_NAME)["metadata"]["namespace"],
            "tools"
        );
        let binding = find("ClusterRoleBinding", POLICY_READER_NAME);
        assert_eq!(binding["subjects"][0]["name"], "ps");
        assert_eq!(binding["subjects"][0]["namespace"], "kw");
        let policy = find("ClusterAdmissionPolicy", POLICY_NAME);
        assert_eq!(policy["spec"]["mutating"], true);
        assert!(
            policy["spec"]["module"]
                .as_str()
                .unwrap()
                .starts_with("registry://")
        );
    }
}
