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
use tokio::task::JoinHandle;
use tower_test::mock::{Handle, SendResponse};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

const CACHES: &str = "/apis/cache.converged-computing.github.io/v1alpha1/namespaces/ns/orascaches";
const STATEFULSET: &str = "/apis/apps/v1/namespaces/ns/statefulsets/cache";
const SERVICE: &str = "/api/v1/namespaces/ns/services/cache";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";

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

    /// An event POST; returns its body.
    async fn expect_event(&mut self) -> Value {
        let (event, send) = self.expect(Method::POST, EVENTS).await;
        respond(send, 201, &event);
        event
    }

    /// The status patch of the cache; returns its body and the responder.
    async fn expect_status_patch(&mut self) -> (Value, SendResponse<Response<Body>>) {
        self.expect(Method::PATCH, &format!("{CACHES}/cache/status"))
            .await
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

    /// A remote cache deletes the StatefulSet and Service of a deployed one; there are none.
    async fn expect_no_registry_to_delete(&mut self) {
        for path in [STATEFULSET, SERVICE] {
            let (_, send) = self.expect(Method::DELETE, path).await;
            not_found(send);
        }
    }

    /// Answers the status patch of a checked registry, expects the two events of the check
    /// (reachability, authentication), and then nothing more.
    async fn finish_checked_status(mut self, send: SendResponse<Response<Body>>, patch: &Value) {
        status_patched(send, patch);
        self.expect_event().await;
        self.expect_event().await;
        self.expect_silence().await;
    }

    /// The docker-config Secret and the client-config ConfigMap, applied; returns their bodies.
    async fn expect_client_configs(&mut self) -> (Value, Value) {
        let (secret, send) = self
            .expect(
                Method::PATCH,
                "/api/v1/namespaces/ns/secrets/cache-docker-config",
            )
            .await;
        respond(send, 200, &secret);
        let (map, send) = self
            .expect(
                Method::PATCH,
                "/api/v1/namespaces/ns/configmaps/cache-client-config",
            )
            .await;
        respond(send, 200, &map);
        (secret, map)
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

/// Answers a status patch with the whole object, as the API server does.
fn status_patched(send: SendResponse<Response<Body>>, patch: &Value) {
    respond(
        send,
        200,
        &json!({"apiVersion": patch["apiVersion"], "kind": patch["kind"],
            "metadata": {"name": "cache", "namespace": "ns", "uid": "uid-1"},
            "spec": {}, "status": patch["status"]}),
    );
}

fn not_found(send: SendResponse<Response<Body>>) {
    respond(
        send,
        404,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    );
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

/// Runs `reconcile` against the scripted API server, then drops the client so that the script
/// sees the end of the conversation.
async fn run(
    object: OrasCache,
    script: impl FnOnce(ApiServer) -> JoinHandle<()>,
) -> (Result<Action, ReconcileError>, Arc<Metrics>) {
    let (ctx, server) = context(Duration::from_secs(5));
    let metrics = ctx.metrics.clone();
    let verifier = script(server);
    let result = reconcile(Arc::new(object), ctx).await;
    verifier.await.expect("the API server script passed");
    (result, metrics)
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

/// Answers the two applies of a deployed cache; the StatefulSet reports `ready` replicas.
async fn applies(server: &mut ApiServer, ready: i32) -> (Value, Value) {
    let (service, send) = server.expect(Method::PATCH, SERVICE).await;
    respond(send, 200, &service);
    let (statefulset, send) = server.expect(Method::PATCH, STATEFULSET).await;
    let mut answer = statefulset.clone();
    answer["status"] = json!({"replicas": 1, "readyReplicas": ready});
    respond(send, 200, &answer);
    server.expect_client_configs().await;
    (service, statefulset)
}

#[tokio::test]
async fn a_new_cache_gets_its_registry_applied_and_its_status_patched() {
    let (result, metrics) = run(cache("{}"), |mut server| {
        tokio::spawn(async move {
            let (service, statefulset) = applies(&mut server, 0).await;
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

            let (patch, send) = server.expect_status_patch().await;
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
            status_patched(send, &patch);

            let event = server.expect_event().await;
            assert_eq!(event["reason"], "RegistryNotReady");
            assert_eq!(event["type"], "Warning");
            assert_eq!(event["regarding"]["name"], "cache");
            assert_eq!(event["reportingController"], "oras-cache-controller");
            server.expect_silence().await;
        })
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
    let (result, _) = run(object, |mut server| {
        tokio::spawn(async move {
            applies(&mut server, 1).await;
            server.expect_silence().await;
        })
    })
    .await;
    result.unwrap();
}

#[tokio::test]
async fn pods_becoming_ready_flip_the_condition_and_emit_a_normal_event() {
    let object = with_status(cache("{}"), &deployed(0));
    let (result, _) = run(object, |mut server| {
        tokio::spawn(async move {
            applies(&mut server, 1).await;
            let (patch, send) = server.expect_status_patch().await;
            let ready = condition(&patch["status"], "Ready");
            assert_eq!(ready["status"], "True");
            assert_ne!(
                ready["lastTransitionTime"], "2023-11-14T22:13:20Z",
                "the status changed, so the time moves"
            );
            status_patched(send, &patch);
            server.expect_event_of("Normal", "RegistryReady").await;
            server.expect_silence().await;
        })
    })
    .await;
    result.unwrap();
}

#[tokio::test]
async fn deploy_false_deletes_the_registry_and_reports_no_address() {
    // The user turned `deploy` off: generation 2, status still of generation 1.
    let mut object = with_status(cache("{deploy: false}"), &deployed(1));
    object.metadata.generation = Some(2);
    let (result, _) = run(object, |mut server| {
        tokio::spawn(async move {
            let (body, send) = server.expect(Method::DELETE, STATEFULSET).await;
            assert_eq!(body["propagationPolicy"], "Background");
            respond(
                send,
                200,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
            );
            // Already gone: a 404 is success.
            let (_, send) = server.expect(Method::DELETE, SERVICE).await;
            not_found(send);
            let (patch, send) = server.expect_status_patch().await;
            assert!(patch["status"].get("address").is_none(), "{patch}");
            assert_condition(&patch["status"], "Ready", "False", "NoRegistry");
            status_patched(send, &patch);
            assert_eq!(server.expect_event().await["reason"], "NoRegistry");
            server.expect_silence().await;
        })
    })
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_cache_being_deleted_is_left_to_garbage_collection() {
    let mut object = cache("{}");
    object.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(1_700_000_000).unwrap()));
    let (result, _) = run(object, |server| tokio::spawn(server.expect_silence())).await;
    assert_eq!(result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn an_invalid_spec_is_reported_without_touching_children() {
    let (result, _) = run(
        cache("{deploy: true, registry: {address: ghcr.io}}"),
        |mut server| {
            tokio::spawn(async move {
                let (patch, send) = server.expect_status_patch().await;
                let ready = condition(&patch["status"], "Ready");
                assert_eq!(ready["reason"], "InvalidSpec");
                assert!(
                    ready["message"].as_str().unwrap().contains("spec.registry"),
                    "{ready}"
                );
                status_patched(send, &patch);
                server.expect_event_of("Warning", "InvalidSpec").await;
                server.expect_silence().await;
            })
        },
    )
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_refused_apply_fails_with_an_event_and_a_metric() {
    let (result, metrics) = run(cache("{}"), |mut server| {
        tokio::spawn(async move {
            let (_, send) = server.expect(Method::PATCH, SERVICE).await;
            respond(
                send,
                403,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "Forbidden", "code": 403, "message": "services \"cache\" is forbidden"}),
            );
            let event = server.expect_event_of("Warning", "ReconcileFailed").await;
            assert!(
                event["note"]
                    .as_str()
                    .unwrap()
                    .contains("applying Service ns/cache"),
                "{event}"
            );
            server.expect_silence().await;
        })
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
    let spec = format!(
        "{{deploy: false, registry: {{address: '{}', plainHttp: true, credentialsSecret: creds}}}}",
        registry.host()
    );
    let host = registry.host();
    let (result, _) = run(cache(&spec), move |mut server| {
        tokio::spawn(async move {
            server.expect_no_registry_to_delete().await;
            let (_, send) = server
                .expect(Method::GET, "/api/v1/namespaces/ns/secrets/creds")
                .await;
            // base64 of "alice" and "s3cret".
            respond(
                send,
                200,
                &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "creds", "namespace": "ns"},
                "data": {"ORAS_USER": "YWxpY2U=", "ORAS_PASS": "czNjcmV0"}}),
            );
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
            let (patch, send) = server.expect_status_patch().await;
            assert_eq!(patch["status"]["dockerConfigSecret"], "cache-docker-config");
            assert_eq!(patch["status"]["clientConfigMap"], "cache-client-config");
            let status = &patch["status"];
            assert_eq!(status["address"], host.as_str());
            assert_eq!(status["plainHttp"], true);
            assert_eq!(condition(status, "Ready")["status"], "True");
            assert_condition(status, "AuthReady", "True", "Authenticated");
            status_patched(send, &patch);
            assert_eq!(server.expect_event().await["reason"], "RegistryReachable");
            assert_eq!(server.expect_event().await["reason"], "Authenticated");
            server.expect_silence().await;
        })
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(60)));
}

#[tokio::test]
async fn a_missing_credentials_secret_makes_auth_ready_false() {
    let registry = oras_test_support::Registry::start_with_basic_auth("alice", "s3cret");
    let spec = format!(
        "{{deploy: false, registry: {{address: '{}', plainHttp: true, credentialsSecret: nope}}}}",
        registry.host()
    );
    let (result, _) = run(cache(&spec), |mut server| {
        tokio::spawn(async move {
            server.expect_no_registry_to_delete().await;
            let (_, send) = server
                .expect(Method::GET, "/api/v1/namespaces/ns/secrets/nope")
                .await;
            not_found(send);
            server.expect_client_configs().await;
            let (patch, send) = server.expect_status_patch().await;
            assert_condition_naming(
                &patch["status"],
                "AuthReady",
                "False",
                "SecretNotFound",
                "ns/nope",
            );
            server.finish_checked_status(send, &patch).await;
        })
    })
    .await;
    result.unwrap();
}

#[tokio::test]
async fn a_storage_change_recreates_the_statefulset() {
    let (result, _) = run(cache("{storage: {size: 5Gi}}"), |mut server| {
        tokio::spawn(async move {
            let (service, send) = server.expect(Method::PATCH, SERVICE).await;
            respond(send, 200, &service);
            let (statefulset, send) = server.expect(Method::PATCH, STATEFULSET).await;
            assert_eq!(
                statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
                "5Gi"
            );
            respond(send, 422, &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "Invalid", "code": 422,
                "message": "StatefulSet.apps \"cache\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"}));
            // The current StatefulSet still has the emptyDir of the old spec.
            let (_, send) = server.expect(Method::GET, STATEFULSET).await;
            let mut current = statefulset.clone();
            current["spec"].as_object_mut().unwrap().remove("volumeClaimTemplates");
            respond(send, 200, &current);
            let (_, send) = server.expect(Method::DELETE, STATEFULSET).await;
            respond(send, 200, &current);
            assert_eq!(server.expect_event().await["reason"], "StorageChanged");
            server.expect_silence().await;
        })
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(5)));
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
    let spec = format!(
        "{{deploy: false, registry: {{address: '{}', plainHttp: true}}}}",
        registry.host()
    );
    let first = cache(&spec);
    let address = registry.host();
    // The first pass deletes any registry left by an earlier spec and writes the status.
    let (result, _) = run(first.clone(), |mut server| {
        tokio::spawn(async move {
            server.expect_no_registry_to_delete().await;
            server.expect_client_configs().await;
            let (patch, send) = server.expect_status_patch().await;
            assert_eq!(patch["status"]["address"], address.as_str());
            assert_eq!(
                condition(&patch["status"], "AuthReady")["reason"],
                "AnonymousAccess"
            );
            server.finish_checked_status(send, &patch).await;
        })
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(60)));
    // The periodic re-check of the same generation: the registry is checked and the client
    // configurations applied again (a no-op unless the credentials changed), nothing else.
    let checked = oras_cache_controller::registry_check::CheckReport {
        reachable: oras_cache_controller::registry_check::Verdict::pass(
            "RegistryReachable",
            format!("GET http://{}/v2/ answered 200", registry.host()),
        ),
        auth: oras_cache_controller::registry_check::Verdict::pass(
            "AnonymousAccess",
            "the registry answers GET /v2/ without credentials",
        ),
    };
    let again = with_status(
        first,
        &Observation::Remote {
            address: registry.host(),
            plain_http: true,
            report: checked,
        },
    );
    let (result, _) = run(again, |mut server| {
        tokio::spawn(async move {
            server.expect_client_configs().await;
            server.expect_silence().await;
        })
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(60)));
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
    let spec = format!(
        "{{mirror: {{address: '{}', plainHttp: true, credentialsSecret: upstream-creds, repository: org/app}}}}",
        upstream.host()
    );
    let host = upstream.host();
    let (result, _) = run(cache(&spec), move |mut server| {
        tokio::spawn(async move {
            let (_, send) = server
                .expect(Method::GET, "/api/v1/namespaces/ns/secrets/upstream-creds")
                .await;
            // A basic-auth Secret: base64 of "alice" and "s3cret".
            respond(
                send,
                200,
                &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "upstream-creds", "namespace": "ns"},
                "type": "kubernetes.io/basic-auth",
                "data": {"username": "YWxpY2U=", "password": "czNjcmV0"}}),
            );
            let (_, statefulset) = applies(&mut server, 0).await;
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

            let (patch, send) = server.expect_status_patch().await;
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
            status_patched(send, &patch);
            server.expect_event_of("Warning", "RegistryNotReady").await;
            server.expect_event_of("Normal", "Authenticated").await;
            server.expect_silence().await;
        })
    })
    .await;
    // The upstream is checked again as often as a remote registry.
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(60)));
}

#[tokio::test]
async fn a_mirror_of_a_repository_the_upstream_lacks_is_not_auth_ready() {
    let upstream = oras_test_support::Registry::start();
    let spec = format!(
        "{{mirror: {{address: '{}', plainHttp: true, repository: org/missing}}}}",
        upstream.host()
    );
    let (result, _) = run(cache(&spec), move |mut server| {
        tokio::spawn(async move {
            applies(&mut server, 1).await;
            let (patch, send) = server.expect_status_patch().await;
            assert_condition(&patch["status"], "Ready", "True", "RegistryReady");
            assert_condition_naming(
                &patch["status"],
                "AuthReady",
                "False",
                "RepositoryNotFound",
                "org/missing",
            );
            server.finish_checked_status(send, &patch).await;
        })
    })
    .await;
    result.unwrap();
}

/// Three replicas on a ReadWriteMany claim: the controller makes the shared HTTP secret once,
/// applies the shared claim and a disruption budget before the StatefulSet, and Ready counts
/// the ready replicas.
#[tokio::test]
async fn replicas_get_a_kept_http_secret_a_shared_claim_and_a_budget() {
    let spec = "{replicas: 3, storage: {size: 10Gi, accessMode: ReadWriteMany}}";
    let (result, _) = run(cache(spec), |mut server| {
        tokio::spawn(async move {
            let (_, send) = server
                .expect(
                    Method::GET,
                    "/api/v1/namespaces/ns/secrets/cache-http-secret",
                )
                .await;
            not_found(send);
            let (secret, send) = server
                .expect(
                    Method::PATCH,
                    "/api/v1/namespaces/ns/secrets/cache-http-secret",
                )
                .await;
            let value = secret["data"]["REGISTRY_HTTP_SECRET"].as_str().unwrap();
            // base64 of 64 hex digits.
            assert_eq!(value.len(), 88, "{secret}");
            assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], "uid-1");
            respond(send, 200, &secret);
            let (service, send) = server.expect(Method::PATCH, SERVICE).await;
            respond(send, 200, &service);
            let (claim, send) = server
                .expect(
                    Method::PATCH,
                    "/api/v1/namespaces/ns/persistentvolumeclaims/cache-data",
                )
                .await;
            assert_eq!(claim["spec"]["accessModes"], json!(["ReadWriteMany"]));
            respond(send, 200, &claim);
            let (pdb, send) = server
                .expect(
                    Method::PATCH,
                    "/apis/policy/v1/namespaces/ns/poddisruptionbudgets/cache",
                )
                .await;
            assert_eq!(pdb["spec"]["maxUnavailable"], 1);
            respond(send, 200, &pdb);
            let (statefulset, send) = server.expect(Method::PATCH, STATEFULSET).await;
            assert_eq!(statefulset["spec"]["replicas"], 3);
            let mut answer = statefulset.clone();
            answer["status"] = json!({"replicas": 3, "readyReplicas": 2});
            respond(send, 200, &answer);
            server.expect_client_configs().await;
            let (patch, send) = server.expect_status_patch().await;
            let ready = assert_condition(&patch["status"], "Ready", "True", "RegistryDegraded");
            assert_eq!(ready["message"], "2/3 registry pods ready");
            status_patched(send, &patch);
            server.expect_event().await;
            server.expect_silence().await;
        })
    })
    .await;
    result.unwrap();
}

/// The HTTP secret the controller made is kept: an existing one is never rewritten.
#[tokio::test]
async fn an_existing_http_secret_is_kept() {
    let spec = "{replicas: 2, storage: {size: 10Gi, accessMode: ReadWriteMany}}";
    let (result, _) = run(cache(spec), |mut server| {
        tokio::spawn(async move {
            let (_, send) = server
                .expect(
                    Method::GET,
                    "/api/v1/namespaces/ns/secrets/cache-http-secret",
                )
                .await;
            respond(
                send,
                200,
                &json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "cache-http-secret", "namespace": "ns"},
                    "data": {"REGISTRY_HTTP_SECRET": "c2VjcmV0"}}),
            );
            // Straight to the registry: no write of the Secret.
            let (service, send) = server.expect(Method::PATCH, SERVICE).await;
            respond(send, 200, &service);
            for path in [
                "/api/v1/namespaces/ns/persistentvolumeclaims/cache-data",
                "/apis/policy/v1/namespaces/ns/poddisruptionbudgets/cache",
                STATEFULSET,
            ] {
                let (body, send) = server.expect(Method::PATCH, path).await;
                respond(send, 200, &body);
            }
            server.expect_client_configs().await;
            let (patch, send) = server.expect_status_patch().await;
            status_patched(send, &patch);
            server.expect_event().await;
            server.expect_silence().await;
        })
    })
    .await;
    result.unwrap();
}

/// Replicas on object storage: an orasEnv Secret without REGISTRY_STORAGE_* keys is an invalid
/// spec, and nothing is applied.
#[tokio::test]
async fn replicas_without_object_storage_keys_are_an_invalid_spec() {
    let spec = "{replicas: 3, secrets: {orasEnv: registry-env, registryHttp: shared}}";
    let (result, _) = run(cache(spec), |mut server| {
        tokio::spawn(async move {
            let (_, send) = server
                .expect(Method::GET, "/api/v1/namespaces/ns/secrets/registry-env")
                .await;
            respond(
                send,
                200,
                &json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "registry-env", "namespace": "ns"},
                    "data": {"REGISTRY_LOG_LEVEL": "aW5mbw=="}}),
            );
            let (patch, send) = server.expect_status_patch().await;
            let ready = assert_condition(&patch["status"], "Ready", "False", "InvalidSpec");
            let message = ready["message"].as_str().unwrap();
            assert!(
                message.contains("ns/registry-env") && message.contains("REGISTRY_STORAGE"),
                "{message}"
            );
            assert!(patch["status"].get("address").is_none());
            status_patched(send, &patch);
            server.expect_event_of("Warning", "InvalidSpec").await;
            server.expect_silence().await;
        })
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(60)));
}

/// A mirror whose credentials Secret does not exist yet: the registry is still applied (its pod
/// waits for the Secret, with the contract's first keys), and AuthReady says what is missing.
#[tokio::test]
async fn a_mirror_without_its_secret_is_applied_and_not_auth_ready() {
    let spec = "{mirror: {address: '127.0.0.1:9', plainHttp: true, credentialsSecret: later}}";
    let (result, _) = run(cache(spec), |mut server| {
        tokio::spawn(async move {
            let (_, send) = server
                .expect(Method::GET, "/api/v1/namespaces/ns/secrets/later")
                .await;
            not_found(send);
            let (_, statefulset) = applies(&mut server, 0).await;
            let env = statefulset["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
            assert!(
                env.contains("\"key\":\"ORAS_USER\"") && env.contains("\"key\":\"ORAS_PULL_PASS\""),
                "{env}"
            );
            let (patch, send) = server.expect_status_patch().await;
            assert_eq!(patch["status"]["mirrorOf"], "127.0.0.1:9");
            let auth = assert_condition(&patch["status"], "AuthReady", "False", "SecretNotFound");
            assert!(
                auth["message"].as_str().unwrap().contains("ns/later"),
                "{auth}"
            );
            status_patched(send, &patch);
            server.expect_event().await;
            server.expect_event().await;
            server.expect_silence().await;
        })
    })
    .await;
    result.unwrap();
}
