//! Shared test helpers: a fake Kubewarden host, admission request builders, and checks on the
//! mutated object.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashMap;

use kubewarden_policy_sdk::request::KubernetesAdmissionRequest;
use oras_cache_api::cache::OrasCacheView;
use oras_cache_api::settings::Settings;
use oras_cache_policy::evaluate::{Verdict, evaluate};
use oras_cache_policy::host::{Host, ImageCommand};
use serde_json::{Value, json};

pub const PREFIX: &str = "oras.converged-computing.github.io/";

/// A host that answers from maps and records what it was asked.
#[derive(Debug, Default)]
pub struct FakeHost {
    pub caches: HashMap<(String, String), Result<OrasCacheView, String>>,
    pub images: HashMap<String, Result<ImageCommand, String>>,
    /// What `list_resources_by_namespace` answers; `None` is an empty list.
    pub listed: Option<Result<Vec<OrasCacheView>, String>>,
    pub calls: RefCell<Vec<String>>,
}

impl FakeHost {
    /// A host where `namespace/name` is a reconciled cache at `address`.
    pub fn with_cache(
        namespace: &str,
        name: &str,
        address: &str,
        plain_http: Option<bool>,
    ) -> Self {
        let mut host = Self::default();
        host.add_cache(namespace, name, address, plain_http);
        host
    }

    pub fn add_cache(
        &mut self,
        namespace: &str,
        name: &str,
        address: &str,
        plain_http: Option<bool>,
    ) {
        let view: OrasCacheView = serde_json::from_value(json!({
            "apiVersion": "cache.converged-computing.github.io/v1alpha1",
            "kind": "OrasCache",
            "metadata": {"name": name, "namespace": namespace},
            "status": {"address": address, "plainHttp": plain_http,
                        "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("a valid cache view");
        self.caches
            .insert((namespace.to_string(), name.to_string()), Ok(view));
    }

    /// Adds a cache from its JSON (`spec`, `status`), as the API server would return it.
    pub fn add_cache_object(&mut self, namespace: &str, name: &str, object: Value) {
        let mut object = object;
        object["metadata"] = json!({"name": name, "namespace": namespace});
        let view: OrasCacheView = serde_json::from_value(object).expect("a valid cache view");
        self.caches
            .insert((namespace.to_string(), name.to_string()), Ok(view));
    }

    pub fn add_image(&mut self, image: &str, entrypoint: &[&str], cmd: &[&str]) {
        self.images.insert(
            image.to_string(),
            Ok(ImageCommand {
                entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
            }),
        );
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
}

impl Host for FakeHost {
    fn oras_cache(&self, namespace: &str, name: &str) -> Result<OrasCacheView, String> {
        self.calls
            .borrow_mut()
            .push(format!("get_resource {namespace}/{name}"));
        self.caches
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
            // What the policy gets on a real policy server (policy-evaluator's
            // `callback_handler/kubernetes/client.rs`, `get_resource`, wrapped by
            // `runtimes/callback.rs` and the SDK).
            .unwrap_or_else(|| {
                Err(format!(
                    "error invoking host capability kubernetes.get_resource: Host error: Callback evaluation failure: Cannot find cache.converged-computing.github.io/v1alpha1/OrasCache named '{name}' inside of namespace 'Some(\"{namespace}\")'"
                ))
            })
    }

    fn oras_caches(&self, namespace: &str) -> Result<Vec<OrasCacheView>, String> {
        self.calls
            .borrow_mut()
            .push(format!("list_resources_by_namespace {namespace}"));
        self.listed.clone().unwrap_or(Ok(Vec::new()))
    }

    fn image_command(&self, image: &str) -> Result<ImageCommand, String> {
        self.calls
            .borrow_mut()
            .push(format!("oci_manifest_config {image}"));
        self.images
            .get(image)
            .cloned()
            .unwrap_or_else(|| Err(format!("manifest unknown: {image}")))
    }
}

/// An AdmissionRequest as `kwctl run` takes it, parsed the way the SDK parses it.
pub fn admission(object: &Value, operation: &str) -> KubernetesAdmissionRequest {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("Pod");
    let (group, version, resource) = match kind {
        "Job" => ("batch", "v1", "jobs"),
        "Pod" => ("", "v1", "pods"),
        other => ("", "v1", other),
    };
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    serde_json::from_value(json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": object.pointer("/metadata/name").cloned().unwrap_or(json!("")),
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "object": object,
    }))
    .expect("a valid admission request")
}

pub fn create(object: &Value) -> KubernetesAdmissionRequest {
    admission(object, "CREATE")
}

/// Evaluates with default settings.
pub fn run(object: &Value, host: &FakeHost) -> Verdict {
    evaluate(&create(object), &Settings::default(), host)
}

/// The mutated object of a verdict, or a panic with what came instead.
pub fn mutated(verdict: Verdict) -> (Value, Vec<String>) {
    match verdict {
        Verdict::Mutate { object, warnings } => (object, warnings),
        other => panic!("expected a mutation, got {other:?}"),
    }
}

pub fn rejection(verdict: Verdict) -> String {
    match verdict {
        Verdict::Reject { message, .. } => message,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

pub fn accepted_warnings(verdict: Verdict) -> Vec<String> {
    match verdict {
        Verdict::Accept { warnings } => warnings,
        other => panic!("expected an acceptance without patch, got {other:?}"),
    }
}

/// The container named `name` in the pod spec at `spec`.
pub fn container<'a>(spec: &'a Value, list: &str, name: &str) -> &'a Value {
    spec[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list}"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {list} entry {name}: {spec:#}"))
}

pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// Asserts that every field of `original` is still in `mutated` with its value, lists having only
/// grown at their end, except the paths in `replaced` (JSON pointers).
pub fn assert_keeps_fields(original: &Value, mutated: &Value, replaced: &[&str]) {
    fn walk(original: &Value, mutated: &Value, path: &str, replaced: &[&str]) {
        if replaced.contains(&path) {
            return;
        }
        match (original, mutated) {
            (Value::Object(a), Value::Object(b)) => {
                for (key, value) in a {
                    let child = format!("{path}/{key}");
                    match b.get(key) {
                        Some(m) => walk(value, m, &child, replaced),
                        None => panic!("field {child} was dropped"),
                    }
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                assert!(b.len() >= a.len(), "list {path} shrank");
                for (i, value) in a.iter().enumerate() {
                    walk(value, &b[i], &format!("{path}/{i}"), replaced);
                }
            }
            (a, b) => assert_eq!(a, b, "field {path} changed"),
        }
    }
    walk(original, mutated, "", replaced);
}
