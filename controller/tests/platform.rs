//! The controller as itself against a real Kubernetes control plane (etcd, kube-apiserver and
//! kube-controller-manager built from their Go modules by scripts/peers.sh; the harness is
//! `oras_test_support::cluster`).
//!
//! The install (`deploy/crd.yaml`, `deploy/oras-cache.yaml`, with Kubewarden's real
//! ClusterAdmissionPolicy CRD) is applied server-side; the controller binary runs authenticated
//! as its own ServiceAccount with exactly the shipped RBAC; then the scenarios below run in order,
//! each in its own namespace: children and their owners, objects of the user's named like a
//! child, hostile specs, every example cache, and, once everything settled, no write for 60 s
//! and none after a restart. Last, the RBAC table: every verb the shipped ClusterRole grants, and
//! the scenario whose requests needed it (from the API server's audit log); a verb no scenario
//! needed fails the suite.
//!
//! A test binary of its own (`harness = false`): the scenarios share one control plane and one
//! controller and must run in order, the storm and RBAC checks last. It prints one line per
//! scenario and `N passed, N failed`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use oras_test_support::Registry;
use oras_test_support::cluster::{ControlPlane, ControlPlaneOptions, spawn_kept};
use serde_json::{Value, json};

type Outcome = Result<(), String>;
type Scenario = for<'a> fn(&'a Suite) -> Pin<Box<dyn Future<Output = Outcome> + 'a>>;

const CONTROLLER_NAMESPACE: &str = "oras-cache-system";
const CONTROLLER_ACCOUNT: &str = "oras-cache-controller";
const GROUP: &str = "cache.converged-computing.github.io";

macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared state of the scenarios.
struct Suite {
    plane: ControlPlane,
    controller: std::sync::Mutex<Option<Child>>,
    /// A loopback registry with htpasswd that plays every remote registry and upstream the
    /// examples name (no test sends anything off this machine).
    remote: Registry,
    /// Scenario names with the time each started, for the RBAC table.
    started: std::sync::Mutex<Vec<(String, String)>>,
}

impl Suite {
    fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        self.plane.kubectl_ok(args).map_err(|e| e.to_string())
    }

    /// `kubectl apply --server-side` of `manifest` (YAML or JSON).
    fn apply(&self, manifest: &str) -> Result<String, String> {
        self.plane
            .kubectl_with_input(
                &[
                    "apply",
                    "--server-side",
                    "--field-manager=platform-test",
                    "-f",
                    "-",
                ],
                manifest,
            )
            .map_err(|e| e.to_string())
    }

    /// The object, or `None` when there is none.
    fn get(&self, kind: &str, namespace: &str, name: &str) -> Result<Option<Value>, String> {
        let output = self
            .plane
            .kubectl()
            .args([
                "get",
                kind,
                name,
                "-n",
                namespace,
                "-o",
                "json",
                "--ignore-not-found",
                "--show-managed-fields",
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        if output.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&output.stdout)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    fn namespace(&self, name: &str) -> Result<String, String> {
        self.kubectl(&["create", "namespace", name])?;
        Ok(name.to_string())
    }

    /// Polls `check` every 250 ms until it gives a value, for at most `limit`.
    async fn wait<T>(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut() -> Result<Option<T>, String>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(value) = check()? {
                return Ok(value);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out after {limit:?} waiting for {what}; controller log:\n{}",
                    self.controller_log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The cache once its status describes its current generation and its `Ready` condition
    /// has `reason` (any reason when `None`).
    async fn settled_cache(
        &self,
        namespace: &str,
        name: &str,
        reason: Option<&str>,
    ) -> Result<Value, String> {
        self.wait(
            &format!("OrasCache {namespace}/{name} to settle (reason {reason:?})"),
            Duration::from_secs(60),
            || {
                let Some(cache) = self.get("orascache", namespace, name)? else {
                    return Ok(None);
                };
                let current =
                    cache["status"]["observedGeneration"] == cache["metadata"]["generation"];
                let ready = ready_condition(&cache);
                let matches = ready.is_some_and(|c| reason.is_none_or(|r| c["reason"] == r));
                Ok((current && matches).then_some(cache))
            },
        )
        .await
    }

    /// Merge-patches the cache `sample` of `namespace` with `patch`, waits until it settled
    /// (with `reason` when given), then until none of `removed` (kind, name) is left.
    async fn change_and_expect_removed(
        &self,
        namespace: &str,
        patch: Value,
        reason: Option<&str>,
        removed: &[(&str, &str)],
    ) -> Outcome {
        let patch = patch.to_string();
        self.kubectl(&[
            "patch",
            "orascache",
            "sample",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            &patch,
        ])?;
        self.settled_cache(namespace, "sample", reason).await?;
        self.wait(
            &format!("{removed:?} removed after {patch}"),
            Duration::from_secs(30),
            || {
                for (kind, name) in removed {
                    if self.get(kind, namespace, name)?.is_some() {
                        return Ok(None);
                    }
                }
                Ok(Some(()))
            },
        )
        .await
    }

    fn controller_log(&self) -> String {
        std::fs::read_to_string(self.plane.dir().join("controller.log")).unwrap_or_default()
    }

    fn controller_log_tail(&self) -> String {
        let log = self.controller_log();
        let lines: Vec<String> = log
            .lines()
            .map(|line| line.chars().take(400).collect())
            .collect();
        lines[lines.len().saturating_sub(12)..].join("\n")
    }

    /// Starts the controller binary as its ServiceAccount (a TokenRequest token), with short
    /// resync and re-check intervals so that the steady-state window sees several of each.
    fn start_controller(&self) -> Result<(), String> {
        let kubeconfig = self
            .plane
            .service_account_kubeconfig(CONTROLLER_NAMESPACE, CONTROLLER_ACCOUNT)
            .map_err(|e| e.to_string())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.plane.dir().join("controller.log"))
            .map_err(|e| e.to_string())?;
        let port = oras_test_support::free_port().map_err(|e| e.to_string())?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_oras-cache-controller"));
        command
            .arg("run")
            .env("KUBECONFIG", &kubeconfig)
            .env("LISTEN_ADDRESS", format!("127.0.0.1:{port}"))
            .env("RESYNC_SECONDS", "15")
            .env("REMOTE_CHECK_SECONDS", "15")
            .env("REMOTE_CHECK_TIMEOUT_SECONDS", "3")
            .env("ERROR_REQUEUE_SECONDS", "5")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let child = spawn_kept(command).map_err(|e| e.to_string())?;
        *self.controller.lock().unwrap() = Some(child);
        Ok(())
    }

    fn stop_controller(&self) {
        if let Some(mut child) = self.controller.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Audit events of requests the controller's ServiceAccount sent.
    fn controller_requests(&self) -> Vec<Value> {
        let user = format!("system:serviceaccount:{CONTROLLER_NAMESPACE}:{CONTROLLER_ACCOUNT}");
        self.plane
            .audit_events()
            .unwrap_or_default()
            .into_iter()
            .filter(|event| event["user"]["username"] == user.as_str())
            .collect()
    }
}

fn ready_condition(cache: &Value) -> Option<&Value> {
    cache["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
}

fn is_write(event: &Value) -> bool {
    matches!(
        event["verb"].as_str(),
        Some("create" | "update" | "patch" | "delete" | "deletecollection")
    )
}

fn owner_uid_of_controller(object: &Value) -> Option<&str> {
    object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)?["uid"]
        .as_str()
}

fn cache_manifest(namespace: &str, name: &str, spec: Value) -> String {
    json!({
        "apiVersion": format!("{GROUP}/v1alpha1"),
        "kind": "OrasCache",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
    .to_string()
}

// ---- the install ----------------------------------------------------------------------------

/// Kubewarden's CRD (from its controller's Go module, scripts/peers.sh), the project's CRD and
/// install, all applied server-side as the README says.
fn install(plane: &ControlPlane) -> Result<(), String> {
    plane
        .install_kubewarden_crd()
        .map_err(|e| format!("install Kubewarden's CRD: {e}"))?;
    for file in ["deploy/crd.yaml", "deploy/oras-cache.yaml"] {
        plane
            .apply_file(&repo_root().join(file))
            .map_err(|e| format!("install {file}: {e}"))?;
    }
    Ok(())
}

/// What the install put in the cluster is what the README says: the CRD with its name rule,
/// the ClusterAdmissionPolicy accepted against Kubewarden's own schema, and for Kubewarden's
/// policy-server account exactly the read of OrasCaches.
fn the_install_is_accepted(s: &Suite) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let policy = s
            .get(
                "clusteradmissionpolicies.policies.kubewarden.io",
                "",
                "oras-cache",
            )?
            .ok_or("the ClusterAdmissionPolicy oras-cache is missing")?;
        ensure!(policy["spec"]["mutating"] == true, "{policy}");
        ensure!(
            policy["spec"]["matchConditions"][0]["expression"].is_string(),
            "Kubewarden's schema kept the matchConditions: {policy}"
        );
        let crd = s
            .get("crd", "", "orascaches.cache.converged-computing.github.io")?
            .ok_or("no OrasCache CRD")?;
        let rules =
            &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"];
        ensure!(
            rules[0]["rule"] == oras_cache_controller::crd::NAME_RULE,
            "the name rule is served: {rules}"
        );
        let policy_server = "system:serviceaccount:kubewarden:policy-server";
        for (verb, resource, allowed) in [
            (
                "get",
                "orascaches.cache.converged-computing.github.io",
                true,
            ),
            (
                "list",
                "orascaches.cache.converged-computing.github.io",
                true,
            ),
            // Its list lookups (list_resources_by_namespace) are served from a reflector, a
            // watch: kubewarden adm-controller crates/policy-evaluator/src/callback_handler/
            // kubernetes/reflector.rs (`watcher(api, filter)`, commit 3460bb71).
            (
                "watch",
                "orascaches.cache.converged-computing.github.io",
                true,
            ),
            (
                "create",
                "orascaches.cache.converged-computing.github.io",
                false,
            ),
            (
                "patch",
                "orascaches.cache.converged-computing.github.io",
                false,
            ),
            (
                "delete",
                "orascaches.cache.converged-computing.github.io",
                false,
            ),
            ("get", "secrets", false),
            ("list", "pods", false),
            ("get", "statefulsets.apps", false),
        ] {
            let answer = s
                .plane
                .kubectl()
                .args([
                    "auth",
                    "can-i",
                    verb,
                    resource,
                    "--all-namespaces",
                    "--as",
                    policy_server,
                ])
                .output()
                .map_err(|e| e.to_string())?;
            let said = String::from_utf8_lossy(&answer.stdout).trim().to_string();
            ensure!(
                (said == "yes") == allowed,
                "policy-server {verb} {resource}: the authorizer said {said:?}, expected {}",
                if allowed { "yes" } else { "no" }
            );
        }
        Ok(())
    })
}

// ---- children and owners --------------------------------------------------------------------

/// A cache's children carry its controller owner reference and the controller's field manager;
/// the status goes through the status subresource; a spec change adds and removes children;
/// deleting the cache lets kube-controller-manager's garbage collector take every child.
fn children_are_owned_and_collected(s: &Suite) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let ns = s.namespace("owned")?;
        s.apply(&cache_manifest(&ns, "sample", json!({})))?;
        let cache = s
            .settled_cache(&ns, "sample", Some("RegistryNotReady"))
            .await?;
        ensure!(
            cache["status"]["address"] == format!("sample.{ns}.svc.cluster.local:5000"),
            "{}",
            cache["status"]
        );
        ensure!(
            cache["status"]["dockerConfigSecret"] == "sample-docker-config",
            "{}",
            cache["status"]
        );
        let uid = cache["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let status_manager = cache["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["manager"] == "oras-cache-controller" && f["subresource"] == "status");
        ensure!(
            status_manager,
            "the status is written through the status subresource: {}",
            cache["metadata"]
        );
        for (kind, name) in [
            ("statefulset", "sample"),
            ("service", "sample"),
            ("secret", "sample-docker-config"),
            ("configmap", "sample-client-config"),
        ] {
            let child = s.get(kind, &ns, name)?.ok_or(format!("no {kind} {name}"))?;
            ensure!(
                owner_uid_of_controller(&child) == Some(uid.as_str()),
                "{kind} {name}: {}",
                child["metadata"]
            );
            let applied = child["metadata"]["managedFields"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| f["manager"] == "oras-cache-controller" && f["operation"] == "Apply");
            ensure!(
                applied,
                "{kind} {name} is applied by the controller: {}",
                child["metadata"]
            );
        }

        // Replicas on a shared claim: a budget, the claim and a kept HTTP secret appear.
        s.kubectl(&[
            "patch",
            "orascache",
            "sample",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":2,"storage":{"size":"1Gi","accessMode":"ReadWriteMany"}}}"#,
        ])?;
        s.settled_cache(&ns, "sample", None).await?;
        for (kind, name) in [
            ("poddisruptionbudget", "sample"),
            ("persistentvolumeclaim", "sample-data"),
            ("secret", "sample-http-secret"),
        ] {
            let child = s
                .get(kind, &ns, name)?
                .ok_or(format!("no {kind} {name} for replicas"))?;
            ensure!(
                owner_uid_of_controller(&child) == Some(uid.as_str()),
                "{kind} {name}"
            );
        }
        // Back to one: the budget and the HTTP secret are leftovers, removed; the claim stays.
        s.change_and_expect_removed(
            &ns,
            json!({"spec": {"replicas": 1}}),
            None,
            &[
                ("poddisruptionbudget", "sample"),
                ("secret", "sample-http-secret"),
            ],
        )
        .await?;
        ensure!(
            s.get("persistentvolumeclaim", &ns, "sample-data")?
                .is_some(),
            "the claim is kept"
        );
        // Turned remote: the registry is a leftover.
        let remote = json!({"spec": {"deploy": false, "storage": null,
            "registry": {"address": s.remote.host(), "plainHttp": true}}});
        s.change_and_expect_removed(
            &ns,
            remote,
            None,
            &[("statefulset", "sample"), ("service", "sample")],
        )
        .await?;
        // Unconfigured: the client configurations go too.
        s.change_and_expect_removed(
            &ns,
            json!({"spec": {"registry": null}}),
            Some("NoRegistry"),
            &[
                ("configmap", "sample-client-config"),
                ("secret", "sample-docker-config"),
            ],
        )
        .await?;

        // Deleted: the garbage collector takes what is left (the claim).
        s.kubectl(&["delete", "orascache", "sample", "-n", &ns, "--wait=true"])?;
        s.wait(
            "the garbage collector to delete the claim",
            Duration::from_secs(60),
            || {
                Ok(s.get("persistentvolumeclaim", &ns, "sample-data")?
                    .is_none()
                    .then_some(()))
            },
        )
        .await?;
        Ok(())
    })
}

/// The user's object named like a child, for each kind a cache makes: the cache reports
/// `ChildConflict` naming it, and the object is never changed, adopted or deleted, not even when
/// the cache is deleted.
fn objects_of_the_user_are_never_touched(s: &Suite) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let replicas =
            json!({"replicas": 2, "storage": {"size": "1Gi", "accessMode": "ReadWriteMany"}});
        let cases: [(&str, &str, &str, Value, Value); 7] = [
            (
                "service",
                "Service",
                "sample",
                json!({"apiVersion": "v1", "kind": "Service",
                "spec": {"selector": {"app": "mine"}, "ports": [{"port": 80}]}}),
                json!({}),
            ),
            (
                "statefulset",
                "StatefulSet",
                "sample",
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "spec": {"serviceName": "mine", "selector": {"matchLabels": {"app": "mine"}},
                    "template": {"metadata": {"labels": {"app": "mine"}},
                        "spec": {"containers": [{"name": "app", "image": "busybox"}]}}}}),
                json!({}),
            ),
            (
                "secret",
                "Secret",
                "sample-docker-config",
                json!({"apiVersion": "v1", "kind": "Secret",
                "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": "eyJhdXRocyI6e319"}}),
                json!({}),
            ),
            (
                "configmap",
                "ConfigMap",
                "sample-client-config",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                "data": {"mine": "yes"}}),
                json!({}),
            ),
            (
                "poddisruptionbudget",
                "PodDisruptionBudget",
                "sample",
                json!({"apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "mine"}}}}),
                replicas.clone(),
            ),
            (
                "secret",
                "Secret",
                "sample-http-secret",
                json!({"apiVersion": "v1", "kind": "Secret",
                "data": {"REGISTRY_HTTP_SECRET": "bWluZQ=="}}),
                replicas.clone(),
            ),
            (
                "persistentvolumeclaim",
                "PersistentVolumeClaim",
                "sample-data",
                json!({"apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
                replicas.clone(),
            ),
        ];
        for (index, (kind, kind_name, name, mut object, spec)) in cases.into_iter().enumerate() {
            let ns = s.namespace(&format!("conflict-{index}-{kind}"))?;
            object["metadata"] = json!({"name": name, "namespace": ns});
            s.apply(&object.to_string())?;
            let before = s.get(kind, &ns, name)?.ok_or("the user's object")?;
            s.apply(&cache_manifest(&ns, "sample", spec))?;
            let cache = s
                .settled_cache(&ns, "sample", Some("ChildConflict"))
                .await?;
            let message = ready_condition(&cache)
                .map(|c| c["message"].to_string())
                .unwrap_or_default();
            ensure!(
                message.contains(&format!("{kind_name} {name}"))
                    && message.contains("rename or delete"),
                "the condition names the object and the fix: {message}"
            );
            ensure!(
                cache["status"]["address"].is_null(),
                "no address while in conflict: {}",
                cache["status"]
            );
            let after = s
                .get(kind, &ns, name)?
                .ok_or(format!("the user's {kind} was deleted"))?;
            ensure!(
                after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"],
                "the user's {kind} {name} was changed:\nbefore {before}\nafter {after}"
            );
            ensure!(
                after["metadata"]["ownerReferences"].is_null(),
                "{kind} {name} was adopted: {after}"
            );
            // Nothing else was made either.
            if kind != "statefulset" {
                ensure!(
                    s.get("statefulset", &ns, "sample")?.is_none(),
                    "a StatefulSet was applied beside a conflict"
                );
            }
            s.kubectl(&["delete", "orascache", "sample", "-n", &ns, "--wait=true"])?;
        }

        // A remote cache's first reconcile removes a deployed registry it owns, and nothing else:
        // the user's StatefulSet and Service named like the cache stay as they were.
        let ns = s.namespace("conflict-remote")?;
        s.apply(&json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "sample", "namespace": ns},
            "spec": {"selector": {"app": "mine"}, "ports": [{"port": 80}]}}).to_string())?;
        s.apply(&json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "sample", "namespace": ns},
            "spec": {"serviceName": "mine", "selector": {"matchLabels": {"app": "mine"}},
                "template": {"metadata": {"labels": {"app": "mine"}},
                    "spec": {"containers": [{"name": "app", "image": "busybox"}]}}}}).to_string())?;
        let service = s.get("service", &ns, "sample")?.ok_or("service")?;
        let statefulset = s.get("statefulset", &ns, "sample")?.ok_or("statefulset")?;
        s.apply(&cache_manifest(
            &ns,
            "sample",
            json!({"deploy": false,
            "registry": {"address": s.remote.host(), "plainHttp": true}}),
        ))?;
        let cache = s.settled_cache(&ns, "sample", None).await?;
        ensure!(
            cache["status"]["address"] == s.remote.host(),
            "{}",
            cache["status"]
        );
        for (kind, before) in [("service", service), ("statefulset", statefulset)] {
            let after = s
                .get(kind, &ns, "sample")?
                .ok_or(format!("the user's {kind} was deleted"))?;
            ensure!(
                after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"],
                "{kind} changed"
            );
        }
        Ok(())
    })
}

// ---- hostile specs --------------------------------------------------------------------------

/// Names too long for a StatefulSet's pods or with dots, images with control characters and
/// absurd replicas are refused by the API server with the field named (the CRD's schema and its
/// CEL rule, which this real server evaluates); what the schema cannot say ends in
/// `InvalidSpec` naming the field.
fn hostile_specs_are_refused_naming_the_field(
    s: &Suite,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let ns = s.namespace("hostile")?;
        let long = "a".repeat(53);
        for (name, spec, field) in [
            ("with.dots", json!({}), "metadata.name"),
            (long.as_str(), json!({}), "metadata.name"),
            ("Upper", json!({}), "metadata.name"),
            (
                "image",
                json!({"image": "reg.example/app:1\nnext"}),
                "spec.image",
            ),
            (
                "image-space",
                json!({"image": "reg.example/app:1 x"}),
                "spec.image",
            ),
            ("replicas", json!({"replicas": 100000}), "spec.replicas"),
        ] {
            match s.apply(&cache_manifest(&ns, name, spec)) {
                Ok(_) => return Err(format!("the API server accepted {name:?} ({field})")),
                Err(message) => ensure!(
                    message.contains(field),
                    "the refusal names {field}: {message}"
                ),
            }
        }
        // Accepted by the schema, refused by the plan: several replicas without shared storage.
        s.apply(&cache_manifest(&ns, "unshared", json!({"replicas": 2})))?;
        let cache = s
            .settled_cache(&ns, "unshared", Some("InvalidSpec"))
            .await?;
        let message = ready_condition(&cache)
            .map(|c| c["message"].to_string())
            .unwrap_or_default();
        ensure!(message.contains("spec.replicas"), "{message}");
        Ok(())
    })
}

// ---- refused children ----------------------------------------------------------------------

/// A child the API server refuses (a ResourceQuota of no claims, counted by
/// kube-controller-manager's quota controller, against the claim replicas share) fails each
/// reconcile with a Warning event naming the child and the server's reason; the repeats are one
/// event series (kube-rs's Recorder patches the series' count), not a new event each time.
fn a_refused_child_is_one_event_series(s: &Suite) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let ns = s.namespace("quota")?;
        s.apply(
            &json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "no-claims", "namespace": ns},
            "spec": {"hard": {"persistentvolumeclaims": "0"}}})
            .to_string(),
        )?;
        s.wait("the quota counted", Duration::from_secs(30), || {
            Ok(s.get("resourcequota", &ns, "no-claims")?
                .filter(|q| !q["status"]["hard"].is_null())
                .map(|_| ()))
        })
        .await?;
        s.apply(&cache_manifest(
            &ns,
            "sample",
            json!({"replicas": 2,
            "storage": {"size": "1Gi", "accessMode": "ReadWriteMany"}}),
        ))?;
        let event = s
            .wait(
                "a ReconcileFailed event series",
                Duration::from_secs(60),
                || {
                    let listed =
                        s.kubectl(&["get", "events.events.k8s.io", "-n", &ns, "-o", "json"])?;
                    let listed: Value = serde_json::from_str(&listed).map_err(|e| e.to_string())?;
                    Ok(listed["items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|e| {
                            e["reason"] == "ReconcileFailed"
                                && e["regarding"]["name"] == "sample"
                                && e["series"]["count"].as_i64().unwrap_or(0) >= 2
                        })
                        .cloned())
                },
            )
            .await?;
        let note = event["note"].as_str().unwrap_or_default();
        ensure!(
            note.contains("PersistentVolumeClaim")
                && note.contains("sample-data")
                && note.contains("quota"),
            "the event names the child and the server's reason: {note}"
        );
        // A cache in error retries for ever; it goes, so that the steady state below is steady.
        s.kubectl(&["delete", "orascache", "sample", "-n", &ns, "--wait=true"])?;
        Ok(())
    })
}

// ---- the examples ---------------------------------------------------------------------------

/// Every manifest of `examples/cache/` applied as written (remote and upstream addresses moved
/// to a loopback registry, so that nothing leaves this machine); each cache settles with status.
fn every_example_cache_reconciles(s: &Suite) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let dir = repo_root().join("examples/cache");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        let mut caches = Vec::new();
        let _ = s.namespace("workflows");
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
            for document in serde_yaml::Deserializer::from_str(&text) {
                let mut object: Value =
                    serde::Deserialize::deserialize(document).map_err(|e| e.to_string())?;
                if object.is_null() {
                    continue;
                }
                if object["kind"] == "OrasCache" {
                    for field in ["registry", "mirror"] {
                        if object["spec"][field].is_object() {
                            object["spec"][field]["address"] = json!(s.remote.host());
                            object["spec"][field]["plainHttp"] = json!(true);
                        }
                    }
                    caches.push((
                        object["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or("default")
                            .to_string(),
                        object["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    ));
                }
                s.apply(&object.to_string())
                    .map_err(|e| format!("{}: {e}", file.display()))?;
            }
        }
        ensure!(
            caches.len() >= 6,
            "the examples name {} caches",
            caches.len()
        );
        for (ns, name) in &caches {
            let cache = s.settled_cache(ns, name, None).await?;
            ensure!(
                !cache["status"]["conditions"].is_null(),
                "{ns}/{name}: {}",
                cache["status"]
            );
        }
        Ok(())
    })
}

// ---- steady state ---------------------------------------------------------------------------

/// Once every cache settled, the controller writes nothing for 60 s (four resyncs and remote
/// re-checks at the suite's 15 s intervals), and nothing in the 60 s after a restart either.
/// Counted from the API server's audit log; a count, not a timing.
fn no_writes_in_steady_state(s: &Suite) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let window = Duration::from_secs(60);
        for phase in ["steady state", "after a restart"] {
            if phase == "after a restart" {
                s.stop_controller();
                s.start_controller()?;
            } else {
                // Let every cache's last change go round once more.
                tokio::time::sleep(Duration::from_secs(20)).await;
            }
            let seen = s.controller_requests().len();
            tokio::time::sleep(window).await;
            let requests = s.controller_requests();
            let writes: Vec<String> = requests[seen.min(requests.len())..]
                .iter()
                .filter(|e| is_write(e))
                .map(|e| {
                    format!(
                        "{} {} {}/{} {}",
                        e["verb"].as_str().unwrap_or(""),
                        e["objectRef"]["resource"].as_str().unwrap_or(""),
                        e["objectRef"]["namespace"].as_str().unwrap_or(""),
                        e["objectRef"]["name"].as_str().unwrap_or(""),
                        e["objectRef"]["subresource"].as_str().unwrap_or("")
                    )
                })
                .collect();
            let reads = requests.len() - seen.min(requests.len()) - writes.len();
            println!(
                "    {phase}: {} requests in {window:?}, {reads} reads, {} writes",
                reads + writes.len(),
                writes.len()
            );
            ensure!(
                writes.is_empty(),
                "{phase}: the controller wrote {} times in {window:?}:\n{}",
                writes.len(),
                writes.join("\n")
            );
            ensure!(
                reads > 0,
                "{phase}: the controller sent nothing at all (is it running?)"
            );
        }
        Ok(())
    })
}

// ---- least privilege ------------------------------------------------------------------------

/// Each verb the shipped ClusterRole grants the controller, and the first scenario whose
/// requests used it (audit log; a server-side apply that created its object used `create` as
/// well as `patch`, which the API server authorizes both). Writes the table to
/// `target/platform-rbac.md` and prints it; a verb no scenario used fails.
fn rbac_is_what_the_scenarios_need(s: &Suite) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        let role = s
            .get("clusterrole", "", "oras-cache-controller")?
            .ok_or("no ClusterRole oras-cache-controller")?;
        let mut granted = BTreeSet::new();
        for rule in role["rules"].as_array().into_iter().flatten() {
            for group in rule["apiGroups"].as_array().into_iter().flatten() {
                for resource in rule["resources"].as_array().into_iter().flatten() {
                    for verb in rule["verbs"].as_array().into_iter().flatten() {
                        granted.insert((
                            group.as_str().unwrap_or("").to_string(),
                            resource.as_str().unwrap_or("").to_string(),
                            verb.as_str().unwrap_or("").to_string(),
                        ));
                    }
                }
            }
        }
        let started = s.started.lock().unwrap().clone();
        let scenario_at = |timestamp: &str| {
            started
                .iter()
                .rev()
                .find(|(_, start)| start.as_str() <= timestamp)
                .map(|(name, _)| name.clone())
                .unwrap_or_else(|| "start-up".into())
        };
        let mut used: BTreeMap<(String, String, String), String> = BTreeMap::new();
        for event in s.controller_requests() {
            let code = event["responseStatus"]["code"].as_i64().unwrap_or(0);
            if event["annotations"]["authorization.k8s.io/decision"] == "forbid" {
                return Err(format!("the authorizer refused the controller: {event}"));
            }
            let group = event["objectRef"]["apiGroup"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let mut resource = event["objectRef"]["resource"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if let Some(sub) = event["objectRef"]["subresource"].as_str() {
                resource = format!("{resource}/{sub}");
            }
            let verb = event["verb"].as_str().unwrap_or("").to_string();
            let when = scenario_at(event["requestReceivedTimestamp"].as_str().unwrap_or(""));
            let mut verbs = vec![verb.clone()];
            if verb == "patch" && code == 201 {
                verbs.push("create".into());
            }
            for verb in verbs {
                used.entry((group.clone(), resource.clone(), verb))
                    .or_insert_with(|| when.clone());
            }
        }
        let mut table =
            String::from("| API group | resource | verb | first needed by |\n|---|---|---|---|\n");
        let mut unused = Vec::new();
        for (group, resource, verb) in &granted {
            let group_shown = if group.is_empty() { "core" } else { group };
            match used.get(&(group.clone(), resource.clone(), verb.clone())) {
                Some(scenario) => table.push_str(&format!(
                    "| {group_shown} | {resource} | {verb} | {scenario} |\n"
                )),
                None => {
                    table.push_str(&format!(
                        "| {group_shown} | {resource} | {verb} | **none** |\n"
                    ));
                    unused.push(format!("{verb} {resource} ({group_shown})"));
                }
            }
        }
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("platform-rbac.md");
        let _ = std::fs::write(&out, &table);
        println!("{table}");
        ensure!(
            unused.is_empty(),
            "granted and needed by no scenario (drop them): {}",
            unused.join(", ")
        );
        Ok(())
    })
}

// ---- the runner -----------------------------------------------------------------------------

fn main() -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let plane = match ControlPlane::start_with(ControlPlaneOptions {
        controller_manager: true,
    }) {
        Ok(plane) => plane,
        Err(error) => {
            eprintln!(
                "cannot start the control plane (scripts/peers.sh builds its parts): {error}"
            );
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = install(&plane) {
        eprintln!("{error}");
        return ExitCode::FAILURE;
    }
    let remote = Registry::start_with_basic_auth("platform", "platform-pass");
    let suite = Suite {
        plane,
        controller: std::sync::Mutex::new(None),
        remote,
        started: std::sync::Mutex::new(Vec::new()),
    };
    if let Err(error) = suite.start_controller() {
        eprintln!("cannot start the controller: {error}");
        return ExitCode::FAILURE;
    }
    let scenarios: [(&str, Scenario); 8] = [
        ("the_install_is_accepted", the_install_is_accepted),
        (
            "children_are_owned_and_collected",
            children_are_owned_and_collected,
        ),
        (
            "objects_of_the_user_are_never_touched",
            objects_of_the_user_are_never_touched,
        ),
        (
            "hostile_specs_are_refused_naming_the_field",
            hostile_specs_are_refused_naming_the_field,
        ),
        (
            "a_refused_child_is_one_event_series",
            a_refused_child_is_one_event_series,
        ),
        (
            "every_example_cache_reconciles",
            every_example_cache_reconciles,
        ),
        ("no_writes_in_steady_state", no_writes_in_steady_state),
        (
            "rbac_is_what_the_scenarios_need",
            rbac_is_what_the_scenarios_need,
        ),
    ];
    let (mut passed, mut failed) = (0, 0);
    println!("\nrunning {} platform scenarios", scenarios.len());
    for (name, scenario) in scenarios {
        suite
            .started
            .lock()
            .unwrap()
            .push((name.to_string(), now_rfc3339()));
        let began = Instant::now();
        match runtime.block_on(scenario(&suite)) {
            Ok(()) => {
                passed += 1;
                println!(
                    "test {name} ... ok ({:.1} s)",
                    began.elapsed().as_secs_f64()
                );
            }
            Err(error) => {
                failed += 1;
                println!("test {name} ... FAILED\n{error}\n");
            }
        }
    }
    suite.stop_controller();
    if failed > 0 {
        // The plane's directory goes with it: its logs are copied where they can be read.
        let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("platform-logs");
        let _ = std::fs::create_dir_all(&kept);
        for log in [
            "etcd.log",
            "kube-apiserver.log",
            "kube-controller-manager.log",
            "controller.log",
            "audit.log",
        ] {
            let _ = std::fs::copy(suite.plane.dir().join(log), kept.join(log));
        }
        println!("the control plane's logs: {}", kept.display());
    }
    println!("\n{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Now as the API server's audit log writes its timestamps (RFC 3339 with microseconds, UTC,
/// Go's `metav1.MicroTime`), so that the two compare as text: the time a scenario starts, for
/// the RBAC table.
fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}
