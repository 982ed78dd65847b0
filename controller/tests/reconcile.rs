//! Reconciler scenarios with the Kubernetes API played by the test (kube-rs's tower-test
//! `ApiServerVerifier` way): each scenario asserts the method, path, query and body of every
//! request the reconciler sends and answers it. When the reconciler is done the client is
//! dropped, so a missing request fails the verifier and an extra one fails the reconciler.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::{Method, Request, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::runtime::controller::Action;
use oras_cache_controller::crd::OrasCache;
use oras_cache_controller::fixtures::cache;
use oras_cache_controller::metrics::Metrics;
use oras_cache_controller::reconcile::{Context, ReconcileError, ReconcilerConfig, reconcile};
use oras_cache_controller::registry_check::RegistryChecker;
use oras_cache_controller::status::{Observation, build_status};
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

const CACHES: &str = "/apis/cache.converged-computing.github.io/v1alpha1/namespaces/ns/orascaches";
const STATEFULSET: &str = "/apis/apps/v1/namespaces/ns/statefulsets/cache";
const SERVICE: &str = "/api/v1/namespaces/ns/services/cache";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";
const CLAIM: &str = "/api/v1/namespaces/ns/persistentvolumeclaims/cache-data";
const BUDGET: &str = "/apis/policy/v1/namespaces/ns/poddisruptionbudgets/cache";
const HTTP_SECRET: &str = "cache-http-secret";
const HTTP_SECRET_PATH: &str = "/api/v1/namespaces/ns/secrets/cache-http-secret";
const DOCKER_CONFIG: &str = "/api/v1/namespaces/ns/secrets/cache-docker-config";
const CLIENT_CONFIG: &str = "/api/v1/namespaces/ns/configmaps/cache-client-config";
/// The children a deployed cache of one replica wants, read before anything is applied.
const DEPLOYED: [&str; 4] = [SERVICE, STATEFULSET, DOCKER_CONFIG, CLIENT_CONFIG];
/// The children a remote cache wants.
const REMOTE: [&str; 2] = [DOCKER_CONFIG, CLIENT_CONFIG];
/// The children of replicas on a shared claim with a kept HTTP secret.
const REPLICAS: [&str; 7] = [
    HTTP_SECRET_PATH,
    SERVICE,
    CLAIM,
    BUDGET,
    STATEFULSET,
    DOCKER_CONFIG,
    CLIENT_CONFIG,
];
/// The leftovers a deployed cache of one replica looks for on its first reconcile: none.
const FIRST: [(&str, Found); 2] = [(BUDGET, Found::Nothing), (HTTP_SECRET_PATH, Found::Nothing)];

/// Who owns a child the reconciler reads before it removes it.
#[derive(Clone, Copy)]
enum Found {
    /// There is none (404).
    Nothing,
    /// The cache (its uid, `uid-1`, as controller owner): the reconciler deletes it.
    OwnedByTheCache,
    /// Another owner: the reconciler leaves it.
    OwnedByAnother,
}

/// The test's side of the API server.
struct ApiServer(ApiHandle);

impl ApiServer {
    /// The next request, which must have this method and path; returns its JSON body (Null when
    /// empty) and the responder.
    async fn expect(
        &mut self,
        method: Method,
        path: &str,
    ) -> (Value, SendResponse<Response<Body>>) {
        let (request, send) = self.0.next_request().await.unwrap_or_else(|| {
            panic!("expected {method} {path}, but the reconciler sent nothing more")
        });
        assert_eq!(
            request.method(),
            method,
            "method of the request to {}",
            request.uri()
        );
        assert_eq!(request.uri().path(), path);
        if method == Method::PATCH {
            let query = request.uri().query().unwrap_or_default();
            assert!(
                query.contains("fieldManager=oras-cache-controller")
                    && query.contains("force=true"),
                "server-side apply with the controller's field manager, forced: {query}"
            );
            assert_eq!(
                request.headers()["content-type"],
                "application/apply-patch+yaml",
                "server-side apply"
            );
        }
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (body, send)
    }

    /// A server-side apply to `path`, answered with the applied object; returns its body.
    async fn expect_apply(&mut self, path: &str) -> Value {
        let (body, send) = self.expect(Method::PATCH, path).await;
        respond(send, 200, &body);
        body
    }

    /// The apply of the StatefulSet, answered with `replicas` of which `ready` are ready;
    /// returns its body.
    async fn expect_statefulset_apply(&mut self, replicas: i32, ready: i32) -> Value {
        let (statefulset, send) = self.expect(Method::PATCH, STATEFULSET).await;
        let mut answer = statefulset.clone();
        answer["status"] = json!({"replicas": replicas, "readyReplicas": ready});
        respond(send, 200, &answer);
        statefulset
    }

    /// The reads of the children a plan wants, before anything is applied: none exists yet.
    async fn expect_reads(&mut self, paths: &[&str]) {
        for path in paths {
            let (_, send) = self.expect(Method::GET, path).await;
            not_found(send);
        }
    }

    /// The read of a wanted child that exists and is the cache's own, answered with `object`
    /// (given the cache as controller owner).
    async fn expect_owned_read(&mut self, path: &str, mut object: Value) {
        let (_, send) = self.expect(Method::GET, path).await;
        object["metadata"]["ownerReferences"] = json!([{"apiVersion": "cache.converged-computing.github.io/v1alpha1",
            "kind": "OrasCache", "name": "cache", "uid": "uid-1", "controller": true}]);
        respond(send, 200, &object);
    }

    /// The read of the Secret `name`, answered with `secret`, or 404 when it is None.
    async fn expect_secret_read(&mut self, name: &str, secret: Option<Value>) {
        let (_, send) = self
            .expect(
                Method::GET,
                &format!("/api/v1/namespaces/ns/secrets/{name}"),
            )
            .await;
        match secret {
            Some(secret) => respond(send, 200, &secret),
            None => not_found(send),
        }
    }

    /// An event POST; returns its body.
    async fn expect_event(&mut self) -> Value {
        let (event, send) = self.expect(Method::POST, EVENTS).await;
        respond(send, 201, &event);
        event
    }

    /// The status patch of the cache, answered with the whole object as the API server does;
    /// returns the patch.
    async fn expect_status_patch(&mut self) -> Value {
        let (patch, send) = self
            .expect(Method::PATCH, &format!("{CACHES}/cache/status"))
            .await;
        respond(
            send,
            200,
            &json!({"apiVersion": patch["apiVersion"], "kind": patch["kind"],
                "metadata": {"name": "cache", "namespace": "ns", "uid": "uid-1"},
                "spec": {}, "status": patch["status"]}),
        );
        patch
    }

    /// An event of this type and reason; returns its body.
    async fn expect_event_of(&mut self, type_: &str, reason: &str) -> Value {
        let event = self.expect_event().await;
        assert_eq!(
            (event["type"].as_str(), event["reason"].as_str()),
            (Some(type_), Some(reason)),
            "{event}"
        );
        event
    }

    /// A remote cache removes the StatefulSet and Service of a deployed one it owns; there are
    /// none.
    async fn expect_no_registry_to_delete(&mut self) {
        for path in [STATEFULSET, SERVICE] {
            self.expect_leftover(path, Found::Nothing).await;
        }
    }

    /// The leftovers a remote cache looks for on its first reconcile: none.
    async fn expect_first_remote_leftovers(&mut self) {
        self.expect_no_registry_to_delete().await;
        for path in [BUDGET, HTTP_SECRET_PATH] {
            self.expect_leftover(path, Found::Nothing).await;
        }
    }

    /// The two events of a registry check (reachability, authentication).
    async fn expect_check_events(&mut self) {
        self.expect_event().await;
        self.expect_event().await;
    }

    /// The status patch of a checked registry whose AuthReady is False for `reason`, with a
    /// message that names `hint`, and the two events of the check; returns the patch.
    async fn expect_not_auth_ready(&mut self, reason: &str, hint: &str) -> Value {
        let patch = self.expect_status_patch().await;
        assert_condition_naming(&patch["status"], "AuthReady", "False", reason, hint);
        self.expect_check_events().await;
        patch
    }

    /// The docker-config Secret and the client-config ConfigMap, applied; returns their bodies.
    async fn expect_client_configs(&mut self) -> (Value, Value) {
        let secret = self
            .expect_apply("/api/v1/namespaces/ns/secrets/cache-docker-config")
            .await;
        let map = self
            .expect_apply("/api/v1/namespaces/ns/configmaps/cache-client-config")
            .await;
        (secret, map)
    }

    /// The two applies of a deployed cache, the `leftovers` it looks for, and its client
    /// configurations; the StatefulSet reports `ready` of one replica. Returns the Service and
    /// the StatefulSet.
    async fn expect_registry_applies(
        &mut self,
        ready: i32,
        leftovers: &[(&str, Found)],
    ) -> (Value, Value) {
        let service = self.expect_apply(SERVICE).await;
        let statefulset = self.expect_statefulset_apply(1, ready).await;
        for (path, found) in leftovers {
            self.expect_leftover(path, *found).await;
        }
        self.expect_client_configs().await;
        (service, statefulset)
    }

    /// The read of a child that the spec no longer wants, answered as `found` says; a child
    /// the cache owns is then deleted, with the uid it was read with as a precondition.
    async fn expect_leftover(&mut self, path: &str, found: Found) {
        let (_, send) = self.expect(Method::GET, path).await;
        let owner = match found {
            Found::Nothing => return not_found(send),
            Found::OwnedByTheCache => "uid-1",
            Found::OwnedByAnother => "uid-of-another",
        };
        let (api_version, kind) = if path.contains("/poddisruptionbudgets/") {
            ("policy/v1", "PodDisruptionBudget")
        } else if path.contains("/statefulsets/") {
            ("apps/v1", "StatefulSet")
        } else if path.contains("/services/") {
            ("v1", "Service")
        } else if path.contains("/configmaps/") {
            ("v1", "ConfigMap")
        } else {
            ("v1", "Secret")
        };
        let name = path.rsplit('/').next().unwrap();
        respond(
            send,
            200,
            &json!({"apiVersion": api_version, "kind": kind,
                "metadata": {"name": name, "namespace": "ns", "uid": "child-uid",
                    "ownerReferences": [{"apiVersion": "cache.converged-computing.github.io/v1alpha1",
                        "kind": "OrasCache", "name": "cache", "uid": owner, "controller": true}]}}),
        );
        if let Found::OwnedByTheCache = found {
            let (body, send) = self.expect(Method::DELETE, path).await;
            assert_eq!(body["preconditions"]["uid"], "child-uid", "{body}");
            assert_eq!(body["propagationPolicy"], "Background");
            respond(
                send,
                200,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
            );
        }
    }

    /// The reconciler must have finished talking to the API.
    async fn expect_silence(mut self) {
        if let Some((request, _)) = self.0.next_request().await {
            panic!("unexpected {} {}", request.method(), request.uri());
        }
    }
}

fn respond(send: SendResponse<Response<Body>>, code: u16, body: &Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

/// A failure `Status` with this code, reason and message.
fn fail(send: SendResponse<Response<Body>>, code: u16, reason: &str, message: &str) {
    respond(
        send,
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": reason, "code": code, "message": message}),
    );
}

fn not_found(send: SendResponse<Response<Body>>) {
    fail(send, 404, "NotFound", "not found");
}

/// A Secret `name` in the namespace with this `data`.
fn secret(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "ns"},
        "data": data})
}

fn context(handle_checker_timeout: Duration) -> (Arc<Context>, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let ctx = Context::new(
        client,
        Some("test-pod".into()),
        Arc::new(Metrics::new()),
        RegistryChecker::new(handle_checker_timeout).unwrap(),
        ReconcilerConfig::default(),
    );
    (Arc::new(ctx), ApiServer(handle))
}

/// Runs `reconcile` against the scripted API server; when the reconciler is done its client is
/// dropped, and after the script the server must have heard nothing more.
async fn try_run(
    object: OrasCache,
    script: impl AsyncFnOnce(&mut ApiServer),
) -> (Result<Action, ReconcileError>, Arc<Metrics>) {
    let (ctx, mut server) = context(Duration::from_secs(5));
    let metrics = ctx.metrics.clone();
    let verifier = async move {
        script(&mut server).await;
        server.expect_silence().await;
    };
    let (result, ()) = tokio::join!(reconcile(Arc::new(object), ctx), verifier);
    (result, metrics)
}

/// [`try_run`] for a reconcile that succeeds; returns its action.
async fn run(object: OrasCache, script: impl AsyncFnOnce(&mut ApiServer)) -> Action {
    try_run(object, script).await.0.unwrap()
}

fn with_status(mut object: OrasCache, observation: &Observation) -> OrasCache {
    let at = Time(Timestamp::from_second(1_700_000_000).unwrap());
    let mut status = build_status(None, object.metadata.generation, observation, &at);
    if matches!(
        observation,
        Observation::Deployed { .. } | Observation::Remote { .. }
    ) {
        status.docker_config_secret = Some("cache-docker-config".into());
        status.client_config_map = Some("cache-client-config".into());
    }
    object.status = Some(status);
    object
}

fn deployed(ready_replicas: i32) -> Observation {
    Observation::Deployed {
        address: "cache.ns.svc.cluster.local:5000".into(),
        ready_replicas,
        replicas: 1,
        mirror: None,
    }
}

/// The condition `type_` of `status`, asserted to have this status and reason.
fn assert_condition<'a>(status: &'a Value, type_: &str, expected: &str, reason: &str) -> &'a Value {
    let found = condition(status, type_);
    assert_eq!(
        (found["status"].as_str(), found["reason"].as_str()),
        (Some(expected), Some(reason)),
        "{found}"
    );
    found
}

/// [`assert_condition`], with a message that names `hint`.
fn assert_condition_naming(status: &Value, type_: &str, expected: &str, reason: &str, hint: &str) {
    let found = assert_condition(status, type_, expected, reason);
    assert!(found["message"].as_str().unwrap().contains(hint), "{found}");
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

#[tokio::test]
async fn a_new_cache_gets_its_registry_applied_and_its_status_patched() {
    let (result, metrics) = try_run(cache("{}"), async |server| {
        server.expect_reads(&DEPLOYED).await;
        let (service, statefulset) = server.expect_registry_applies(0, &FIRST).await;
        assert_eq!(service["kind"], "Service");
        assert_eq!(service["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(service["spec"]["ports"][0]["port"], 5000);
        assert_eq!(statefulset["kind"], "StatefulSet");
        assert_eq!(
            statefulset["metadata"]["ownerReferences"][0]["kind"],
            "OrasCache"
        );
        assert_eq!(
            statefulset["spec"]["template"]["spec"]["containers"][0]["image"],
            "ghcr.io/oras-project/registry:latest"
        );

        let patch = server.expect_status_patch().await;
        assert_eq!(
            patch["apiVersion"],
            "cache.converged-computing.github.io/v1alpha1"
        );
        assert_eq!(patch["kind"], "OrasCache");
        let status = &patch["status"];
        assert_eq!(status["address"], "cache.ns.svc.cluster.local:5000");
        assert_eq!(status["plainHttp"], true);
        assert_eq!(status["observedGeneration"], 1);
        assert_condition(status, "Ready", "False", "RegistryNotReady");

        let event = server.expect_event().await;
        assert_eq!(event["reason"], "RegistryNotReady");
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["regarding"]["name"], "cache");
        assert_eq!(event["reportingController"], "oras-cache-controller");
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(300)));
    assert!(
        metrics
            .render()
            .contains("oras_cache_reconciliations_total 1")
    );
}

#[tokio::test]
async fn an_unchanged_cache_gets_no_status_patch() {
    let object = with_status(cache("{}"), &deployed(1));
    run(object, async |server| {
        server.expect_reads(&DEPLOYED).await;
        server.expect_registry_applies(1, &[]).await;
    })
    .await;
}

#[tokio::test]
async fn pods_becoming_ready_flip_the_condition_and_emit_a_normal_event() {
    let object = with_status(cache("{}"), &deployed(0));
    run(object, async |server| {
        server.expect_reads(&DEPLOYED).await;
        server.expect_registry_applies(1, &[]).await;
        let patch = server.expect_status_patch().await;
        let ready = condition(&patch["status"], "Ready");
        assert_eq!(ready["status"], "True");
        assert_ne!(
            ready["lastTransitionTime"], "2023-11-14T22:13:20Z",
            "the status changed, so the time moves"
        );
        server.expect_event_of("Normal", "RegistryReady").await;
    })
    .await;
}

#[tokio::test]
async fn deploy_false_deletes_the_registry_and_reports_no_address() {
    // The user turned `deploy` off: generation 2, status still of generation 1.
    let mut object = with_status(cache("{deploy: false}"), &deployed(1));
    object.metadata.generation = Some(2);
    let action = run(object, async |server| {
        // The registry the cache owns goes (with the uid it was read with as a precondition);
        // a child already gone is no error.
        server
            .expect_leftover(STATEFULSET, Found::OwnedByTheCache)
            .await;
        server.expect_leftover(SERVICE, Found::Nothing).await;
        // What the cache made for its registry goes too, and a cache without a registry has
        // no client configurations.
        server.expect_leftover(BUDGET, Found::Nothing).await;
        server
            .expect_leftover(HTTP_SECRET_PATH, Found::Nothing)
            .await;
        server
            .expect_leftover(DOCKER_CONFIG, Found::OwnedByTheCache)
            .await;
        server
            .expect_leftover(CLIENT_CONFIG, Found::OwnedByTheCache)
            .await;
        let patch = server.expect_status_patch().await;
        assert!(patch["status"].get("address").is_none(), "{patch}");
        assert_condition(&patch["status"], "Ready", "False", "NoRegistry");
        assert_eq!(server.expect_event().await["reason"], "NoRegistry");
    })
    .await;
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_cache_being_deleted_is_left_to_garbage_collection() {
    let mut object = cache("{}");
    object.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(1_700_000_000).unwrap()));
    let action = run(object, async |_| {}).await;
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn an_invalid_spec_is_reported_without_touching_children() {
    let spec = "{deploy: true, registry: {address: ghcr.io}}";
    let action = run(cache(spec), async |server| {
        let patch = server.expect_status_patch().await;
        let ready = condition(&patch["status"], "Ready");
        assert_eq!(ready["reason"], "InvalidSpec");
        assert!(
            ready["message"].as_str().unwrap().contains("spec.registry"),
            "{ready}"
        );
        server.expect_event_of("Warning", "InvalidSpec").await;
    })
    .await;
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_refused_apply_fails_with_an_event_and_a_metric() {
    let (result, metrics) = try_run(cache("{}"), async |server| {
        server.expect_reads(&DEPLOYED).await;
        let (_, send) = server.expect(Method::PATCH, SERVICE).await;
        fail(send, 403, "Forbidden", "services \"cache\" is forbidden");
        let event = server.expect_event_of("Warning", "ReconcileFailed").await;
        assert!(
            event["note"]
                .as_str()
                .unwrap()
                .contains("applying Service ns/cache"),
            "{event}"
        );
    })
    .await;
    assert!(matches!(
        result,
        Err(ReconcileError::Apply {
            kind: "Service",
            ..
        })
    ));
    assert!(
        metrics
            .render()
            .contains("oras_cache_reconcile_failures_total{reason=\"apply\"} 1")
    );
}

#[tokio::test]
async fn a_remote_registry_is_checked_with_the_credentials_of_its_secret() {
    let registry = oras_test_support::Registry::start_with_basic_auth("alice", "s3cret");
    let host = registry.host();
    let spec = format!(
        "{{deploy: false, registry: {{address: '{host}', plainHttp: true, credentialsSecret: creds}}}}"
    );
    let action = run(cache(&spec), async |server| {
        server.expect_reads(&REMOTE).await;
        server.expect_first_remote_leftovers().await;
        // base64 of "alice" and "s3cret".
        let creds = secret(
            "creds",
            json!({"ORAS_USER": "YWxpY2U=", "ORAS_PASS": "czNjcmV0"}),
        );
        server.expect_secret_read("creds", Some(creds)).await;
        // Builder pods of a remote registry get its credentials in the docker config.
        let (secret, map) = server.expect_client_configs().await;
        assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
        let config: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(secret["data"][".dockerconfigjson"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        // base64 of "alice:s3cret".
        assert_eq!(config["auths"][host.as_str()]["auth"], "YWxpY2U6czNjcmV0");
        assert!(
            map["data"]["registries.conf"]
                .as_str()
                .unwrap()
                .contains("insecure = true")
        );
        let patch = server.expect_status_patch().await;
        assert_eq!(patch["status"]["dockerConfigSecret"], "cache-docker-config");
        assert_eq!(patch["status"]["clientConfigMap"], "cache-client-config");
        let status = &patch["status"];
        assert_eq!(status["address"], host.as_str());
        assert_eq!(status["plainHttp"], true);
        assert_eq!(condition(status, "Ready")["status"], "True");
        assert_condition(status, "AuthReady", "True", "Authenticated");
        assert_eq!(server.expect_event().await["reason"], "RegistryReachable");
        assert_eq!(server.expect_event().await["reason"], "Authenticated");
    })
    .await;
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
}

#[tokio::test]
async fn a_missing_credentials_secret_makes_auth_ready_false() {
    let registry = oras_test_support::Registry::start_with_basic_auth("alice", "s3cret");
    let spec = format!(
        "{{deploy: false, registry: {{address: '{}', plainHttp: true, credentialsSecret: nope}}}}",
        registry.host()
    );
    run(cache(&spec), async |server| {
        server.expect_reads(&REMOTE).await;
        server.expect_first_remote_leftovers().await;
        server.expect_secret_read("nope", None).await;
        server.expect_client_configs().await;
        server
            .expect_not_auth_ready("SecretNotFound", "ns/nope")
            .await;
    })
    .await;
}

#[tokio::test]
async fn a_storage_change_recreates_the_statefulset() {
    let action = run(cache("{storage: {size: 5Gi}}"), async |server| {
        server.expect_reads(&DEPLOYED).await;
        server.expect_apply(SERVICE).await;
        let (statefulset, send) = server.expect(Method::PATCH, STATEFULSET).await;
        assert_eq!(
            statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
            "5Gi"
        );
        fail(
            send,
            422,
            "Invalid",
            "StatefulSet.apps \"cache\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        );
        // The current StatefulSet still has the emptyDir of the old spec.
        let (_, send) = server.expect(Method::GET, STATEFULSET).await;
        let mut current = statefulset.clone();
        current["spec"].as_object_mut().unwrap().remove("volumeClaimTemplates");
        respond(send, 200, &current);
        let (_, send) = server.expect(Method::DELETE, STATEFULSET).await;
        respond(send, 200, &current);
        assert_eq!(server.expect_event().await["reason"], "StorageChanged");
        for (path, found) in FIRST {
            server.expect_leftover(path, found).await;
        }
    })
    .await;
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
}

#[tokio::test]
async fn a_missing_crd_stops_the_controller_with_a_hint() {
    let (ctx, mut server) = context(Duration::from_secs(5));
    let verifier = tokio::spawn(async move {
        let (request, send) = server.0.next_request().await.expect("the preflight list");
        assert_eq!(request.method(), Method::GET);
        assert_eq!(
            request.uri().path(),
            "/apis/cache.converged-computing.github.io/v1alpha1/orascaches"
        );
        assert!(
            request
                .uri()
                .query()
                .unwrap_or_default()
                .contains("limit=1")
        );
        not_found(send);
        server.expect_silence().await;
    });
    let ready = std::sync::atomic::AtomicBool::new(false);
    let error = oras_cache_controller::reconcile::run(ctx, None, std::future::pending(), || {
        ready.store(true, std::sync::atomic::Ordering::SeqCst)
    })
    .await
    .unwrap_err();
    verifier.await.unwrap();
    assert!(error.to_string().contains("install the CRD"), "{error}");
    assert!(
        !ready.load(std::sync::atomic::Ordering::SeqCst),
        "not ready without the CRD"
    );
}

#[tokio::test]
async fn an_unchanged_remote_cache_is_rechecked_without_deletions() {
    let registry = oras_test_support::Registry::start();
    let address = registry.host();
    let spec = format!("{{deploy: false, registry: {{address: '{address}', plainHttp: true}}}}");
    let first = cache(&spec);
    // The first pass deletes any registry left by an earlier spec and writes the status.
    let action = run(first.clone(), async |server| {
        server.expect_reads(&REMOTE).await;
        server.expect_first_remote_leftovers().await;
        server.expect_client_configs().await;
        let patch = server.expect_status_patch().await;
        assert_eq!(patch["status"]["address"], address.as_str());
        assert_eq!(
            condition(&patch["status"], "AuthReady")["reason"],
            "AnonymousAccess"
        );
        server.expect_check_events().await;
    })
    .await;
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    // The periodic re-check of the same generation: the registry is checked and the client
    // configurations applied again (a no-op unless the credentials changed), nothing else.
    let checked = oras_cache_controller::registry_check::CheckReport {
        reachable: oras_cache_controller::registry_check::Verdict::pass(
            "RegistryReachable",
            format!("GET http://{address}/v2/ answered 200"),
        ),
        auth: oras_cache_controller::registry_check::Verdict::pass(
            "AnonymousAccess",
            "the registry answers GET /v2/ without credentials",
        ),
    };
    let again = with_status(
        first,
        &Observation::Remote {
            address: address.clone(),
            plain_http: true,
            report: checked,
        },
    );
    let action = run(again, async |server| {
        server.expect_reads(&REMOTE).await;
        server.expect_client_configs().await;
    })
    .await;
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
}

/// A mirror: the controller reads the credentials Secret first (its keys go into the
/// StatefulSet's `secretKeyRef`s), applies the registry, and checks the upstream by reading the
/// mirror's repository with those credentials.
#[tokio::test]
async fn a_mirror_reads_its_secret_applies_a_pull_through_registry_and_checks_the_upstream() {
    let upstream = oras_test_support::Registry::start_with_basic_auth("alice", "s3cret");
    oras_test_support::http::Client::new(upstream.addr())
        .with_basic_auth(upstream.auth().unwrap())
        .push_artifact("org/app", "v1", &[("a.txt", b"a")])
        .unwrap();
    let host = upstream.host();
    let spec = format!(
        "{{mirror: {{address: '{host}', plainHttp: true, credentialsSecret: upstream-creds, repository: org/app}}}}"
    );
    let action = run(cache(&spec), async |server| {
        server.expect_reads(&DEPLOYED).await;
        // A basic-auth Secret: base64 of "alice" and "s3cret".
        let mut creds = secret(
            "upstream-creds",
            json!({"username": "YWxpY2U=", "password": "czNjcmV0"}),
        );
        creds["type"] = json!("kubernetes.io/basic-auth");
        server
            .expect_secret_read("upstream-creds", Some(creds))
            .await;
        let (_, statefulset) = server.expect_registry_applies(0, &FIRST).await;
        let env = statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .clone();
        let var = |name: &str| env.iter().find(|e| e["name"] == name).unwrap().clone();
        assert_eq!(
            var("REGISTRY_PROXY_USERNAME")["valueFrom"]["secretKeyRef"],
            json!({"name": "upstream-creds", "key": "username", "optional": false})
        );
        assert_eq!(
            var("REGISTRY_PROXY_PASSWORD")["valueFrom"]["secretKeyRef"]["key"],
            "password"
        );
        assert_eq!(
            var("REGISTRY_PROXY_REMOTEURL")["value"],
            format!("http://$(REGISTRY_PROXY_USERNAME):$(REGISTRY_PROXY_PASSWORD)@{host}")
        );
        assert!(
            !statefulset.to_string().contains("s3cret"),
            "no credential in the StatefulSet"
        );
        assert_eq!(
            statefulset["spec"]["template"]["spec"]["containers"][0]["image"],
            oras_cache_controller::crd::MIRROR_IMAGE,
            "a mirror runs distribution v3, which fetches each blob once"
        );

        let patch = server.expect_status_patch().await;
        let status = &patch["status"];
        assert_eq!(status["address"], "cache.ns.svc.cluster.local:5000");
        assert_eq!(status["mirrorOf"], host.as_str());
        assert_condition(status, "Ready", "False", "RegistryNotReady");
        assert_condition_naming(
            status,
            "AuthReady",
            "True",
            "Authenticated",
            "/v2/org/app/tags/list answered 200",
        );
        server.expect_event_of("Warning", "RegistryNotReady").await;
        server.expect_event_of("Normal", "Authenticated").await;
    })
    .await;
    // The upstream is checked again as often as a remote registry.
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
}

#[tokio::test]
async fn a_mirror_of_a_repository_the_upstream_lacks_is_not_auth_ready() {
    let upstream = oras_test_support::Registry::start();
    let spec = format!(
        "{{mirror: {{address: '{}', plainHttp: true, repository: org/missing}}}}",
        upstream.host()
    );
    run(cache(&spec), async |server| {
        server.expect_reads(&DEPLOYED).await;
        server.expect_registry_applies(1, &FIRST).await;
        let patch = server
            .expect_not_auth_ready("RepositoryNotFound", "org/missing")
            .await;
        assert_condition(&patch["status"], "Ready", "True", "RegistryReady");
    })
    .await;
}

/// Three replicas on a ReadWriteMany claim: the controller makes the shared HTTP secret once,
/// applies the shared claim and a disruption budget before the StatefulSet, and Ready counts
/// the ready replicas.
#[tokio::test]
async fn replicas_get_a_kept_http_secret_a_shared_claim_and_a_budget() {
    let spec = "{replicas: 3, storage: {size: 10Gi, accessMode: ReadWriteMany}}";
    run(cache(spec), async |server| {
        server.expect_reads(&REPLICAS).await;
        let secret = server
            .expect_apply(&format!("/api/v1/namespaces/ns/secrets/{HTTP_SECRET}"))
            .await;
        let value = secret["data"]["REGISTRY_HTTP_SECRET"].as_str().unwrap();
        // base64 of 64 hex digits.
        assert_eq!(value.len(), 88, "{secret}");
        assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        server.expect_apply(SERVICE).await;
        let claim = server.expect_apply(CLAIM).await;
        assert_eq!(claim["spec"]["accessModes"], json!(["ReadWriteMany"]));
        let pdb = server.expect_apply(BUDGET).await;
        assert_eq!(pdb["spec"]["maxUnavailable"], 1);
        let statefulset = server.expect_statefulset_apply(3, 2).await;
        assert_eq!(statefulset["spec"]["replicas"], 3);
        server.expect_client_configs().await;
        let patch = server.expect_status_patch().await;
        let ready = assert_condition(&patch["status"], "Ready", "True", "RegistryDegraded");
        assert_eq!(ready["message"], "2/3 registry pods ready");
        server.expect_event().await;
    })
    .await;
}

/// The HTTP secret the controller made is kept: an existing one is never rewritten.
#[tokio::test]
async fn an_existing_http_secret_is_kept() {
    let spec = "{replicas: 2, storage: {size: 10Gi, accessMode: ReadWriteMany}}";
    run(cache(spec), async |server| {
        let kept = secret(HTTP_SECRET, json!({"REGISTRY_HTTP_SECRET": "c2VjcmV0"}));
        server.expect_owned_read(HTTP_SECRET_PATH, kept).await;
        server.expect_reads(&REPLICAS[1..]).await;
        // Straight to the registry: no write of the Secret.
        for path in [SERVICE, CLAIM, BUDGET, STATEFULSET] {
            server.expect_apply(path).await;
        }
        server.expect_client_configs().await;
        server.expect_status_patch().await;
        server.expect_event().await;
    })
    .await;
}

/// Replicas on object storage: an orasEnv Secret without REGISTRY_STORAGE_* keys is an invalid
/// spec, and nothing is applied.
#[tokio::test]
async fn replicas_without_object_storage_keys_are_an_invalid_spec() {
    let spec = "{replicas: 3, secrets: {orasEnv: registry-env, registryHttp: shared}}";
    let action = run(cache(spec), async |server| {
        server
            .expect_reads(&[SERVICE, BUDGET, STATEFULSET, DOCKER_CONFIG, CLIENT_CONFIG])
            .await;
        let env = secret("registry-env", json!({"REGISTRY_LOG_LEVEL": "aW5mbw=="}));
        server.expect_secret_read("registry-env", Some(env)).await;
        let patch = server.expect_status_patch().await;
        let ready = assert_condition(&patch["status"], "Ready", "False", "InvalidSpec");
        let message = ready["message"].as_str().unwrap();
        assert!(
            message.contains("ns/registry-env") && message.contains("REGISTRY_STORAGE"),
            "{message}"
        );
        assert!(patch["status"].get("address").is_none());
        server.expect_event_of("Warning", "InvalidSpec").await;
    })
    .await;
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
}

/// A mirror whose credentials Secret does not exist yet: the registry is still applied (its pod
/// waits for the Secret, with the contract's first keys), and AuthReady says what is missing.
#[tokio::test]
async fn a_mirror_without_its_secret_is_applied_and_not_auth_ready() {
    let spec = "{mirror: {address: '127.0.0.1:9', plainHttp: true, credentialsSecret: later}}";
    run(cache(spec), async |server| {
        server.expect_reads(&DEPLOYED).await;
        server.expect_secret_read("later", None).await;
        let (_, statefulset) = server.expect_registry_applies(0, &FIRST).await;
        let env = statefulset["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
        assert!(
            env.contains("\"key\":\"ORAS_USER\"") && env.contains("\"key\":\"ORAS_PULL_PASS\""),
            "{env}"
        );
        let patch = server
            .expect_not_auth_ready("SecretNotFound", "ns/later")
            .await;
        assert_eq!(patch["status"]["mirrorOf"], "127.0.0.1:9");
    })
    .await;
}

/// A cache whose status is of generation 1 and whose spec is now of generation 2.
fn changed(object: OrasCache, before: &Observation) -> OrasCache {
    let mut object = with_status(object, before);
    object.metadata.generation = Some(2);
    object
}

fn replicas(ready_replicas: i32, replicas: i32) -> Observation {
    Observation::Deployed {
        address: "cache.ns.svc.cluster.local:5000".into(),
        ready_replicas,
        replicas,
        mirror: None,
    }
}

/// Three replicas back to one: the PodDisruptionBudget (which would block every drain of the
/// one pod) and the kept HTTP secret go, after the registry is applied.
#[tokio::test]
async fn replicas_back_to_one_remove_the_budget_and_the_kept_http_secret() {
    let object = changed(cache("{storage: {size: 10Gi}}"), &replicas(3, 3));
    run(object, async |server| {
        server.expect_reads(&DEPLOYED).await;
        server.expect_apply(SERVICE).await;
        let statefulset = server.expect_statefulset_apply(1, 1).await;
        assert_eq!(statefulset["spec"]["replicas"], 1);
        server.expect_leftover(BUDGET, Found::OwnedByTheCache).await;
        server
            .expect_leftover(HTTP_SECRET_PATH, Found::OwnedByTheCache)
            .await;
        server.expect_client_configs().await;
        let patch = server.expect_status_patch().await;
        assert_eq!(patch["status"]["observedGeneration"], 2);
    })
    .await;
}

/// A child of the same name that the cache does not own (a user's, another controller's) is
/// never deleted; neither is a Secret the spec names, even the one the controller once kept.
#[tokio::test]
async fn leftovers_the_cache_does_not_own_or_still_reads_are_kept() {
    let object = changed(cache("{}"), &replicas(2, 2));
    run(object, async |server| {
        server.expect_reads(&DEPLOYED).await;
        server.expect_apply(SERVICE).await;
        server.expect_statefulset_apply(1, 1).await;
        server.expect_leftover(BUDGET, Found::OwnedByAnother).await;
        server
            .expect_leftover(HTTP_SECRET_PATH, Found::OwnedByAnother)
            .await;
        server.expect_client_configs().await;
        server.expect_status_patch().await;
    })
    .await;
    // The user now names the Secret the controller kept for the replicas: it stays.
    let spec = "{secrets: {registryHttp: cache-http-secret}}";
    let object = changed(cache(spec), &replicas(2, 2));
    run(object, async |server| {
        server.expect_reads(&DEPLOYED).await;
        server.expect_apply(SERVICE).await;
        server.expect_statefulset_apply(1, 1).await;
        server.expect_leftover(BUDGET, Found::Nothing).await;
        server.expect_client_configs().await;
        server.expect_status_patch().await;
    })
    .await;
}

/// A mirror turned back into a plain cache: the registry is applied without the proxy
/// environment and with the default image, leftovers are looked for, and the status no longer
/// names an upstream.
#[tokio::test]
async fn a_removed_mirror_leaves_no_proxy_and_no_upstream_in_the_status() {
    use oras_cache_controller::status::MirrorObservation;
    let before = Observation::Deployed {
        address: "cache.ns.svc.cluster.local:5000".into(),
        ready_replicas: 1,
        replicas: 1,
        mirror: Some(MirrorObservation {
            upstream: "ghcr.io".into(),
            auth: None,
        }),
    };
    let object = changed(cache("{}"), &before);
    assert_eq!(
        object.status.as_ref().unwrap().mirror_of.as_deref(),
        Some("ghcr.io")
    );
    run(object, async |server| {
        server.expect_reads(&DEPLOYED).await;
        server.expect_apply(SERVICE).await;
        let statefulset = server.expect_statefulset_apply(1, 1).await;
        let container = &statefulset["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "ghcr.io/oras-project/registry:latest");
        assert!(
            !container["env"].to_string().contains("REGISTRY_PROXY_"),
            "{container}"
        );
        server.expect_leftover(BUDGET, Found::Nothing).await;
        server
            .expect_leftover(HTTP_SECRET_PATH, Found::Nothing)
            .await;
        server.expect_client_configs().await;
        let patch = server.expect_status_patch().await;
        assert!(patch["status"].get("mirrorOf").is_none(), "{patch}");
    })
    .await;
}

/// A remote registry instead of a deployed one: the registry's budget and HTTP secret go, the
/// client configurations stay (they now name the remote registry).
#[tokio::test]
async fn a_cache_turned_remote_removes_what_its_registry_had() {
    let registry = oras_test_support::Registry::start();
    let spec = format!(
        "{{deploy: false, registry: {{address: '{}', plainHttp: true}}}}",
        registry.host()
    );
    let object = changed(cache(&spec), &replicas(2, 2));
    run(object, async |server| {
        server.expect_reads(&REMOTE).await;
        server.expect_no_registry_to_delete().await;
        server.expect_leftover(BUDGET, Found::OwnedByTheCache).await;
        server
            .expect_leftover(HTTP_SECRET_PATH, Found::OwnedByTheCache)
            .await;
        server.expect_client_configs().await;
        server.expect_status_patch().await;
        server.expect_check_events().await;
    })
    .await;
}
