//! The reconciler in-process (`reconcile::run`, as `main.rs` runs it) against a real API server
//! (oras_test_support::cluster; etcd and kube-apiserver from scripts/peers.sh). No kubelet runs
//! there, so the registry pod never starts: the test plays the StatefulSet controller's part by
//! writing the StatefulSet's status through its status subresource, as the real one does when
//! pods become ready, and the cache's `Ready` follows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use oras_cache_controller::crd::{OrasCache, OrasCacheSpec};
use oras_cache_controller::metrics::Metrics;
use oras_cache_controller::reconcile::{Context, ReconcilerConfig, run};
use oras_cache_controller::registry_check::RegistryChecker;
use oras_cache_controller::status::{READY, condition};
use oras_test_support::cluster::ControlPlane;

/// The cache's status once `done` holds, polled for at most a minute.
async fn wait_for(
    caches: &Api<OrasCache>,
    name: &str,
    what: &str,
    done: impl Fn(&OrasCache) -> bool,
) -> OrasCache {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cache = caches.get(name).await.unwrap();
        if done(&cache) {
            return cache;
        }
        assert!(Instant::now() < deadline, "{what}: {:?}", cache.status);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_cache_gets_its_address_and_becomes_ready_when_its_pods_are() {
    oras_cache_controller::install_crypto_provider();
    let plane = ControlPlane::start().expect("a control plane (make peers builds its parts)");
    let client = plane.client().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        oras_cache_controller::crd::CRD_NAME,
        &PatchParams::apply("oras-cache-test").force(),
        &Patch::Apply(oras_cache_controller::crd::crd()),
    )
    .await
    .unwrap();
    plane
        .kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "crd",
            oras_cache_controller::crd::CRD_NAME,
        ])
        .unwrap();

    let namespace = "oras-cache-test";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(namespace.into());
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();

    let ctx = Arc::new(Context::new(
        client.clone(),
        None,
        Arc::new(Metrics::new()),
        RegistryChecker::new(Duration::from_secs(5)).unwrap(),
        ReconcilerConfig::default(),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(run(
        ctx,
        Some(namespace.into()),
        async {
            let _ = stopped.await;
        },
        || {},
    ));

    let caches: Api<OrasCache> = Api::namespaced(client.clone(), namespace);
    let spec: OrasCacheSpec = serde_yaml::from_str("{}").unwrap();
    caches
        .create(&PostParams::default(), &OrasCache::new("cache", spec))
        .await
        .unwrap();
    let cache = wait_for(&caches, "cache", "an address", |c| {
        c.status.as_ref().is_some_and(|s| s.address.is_some())
    })
    .await;
    let status = cache.status.unwrap();
    assert_eq!(
        status.address.as_deref(),
        Some(format!("cache.{namespace}.svc.cluster.local:5000").as_str())
    );
    let ready = condition(Some(&status), READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "RegistryNotReady")
    );

    // The StatefulSet controller's part: one ready replica. The controller watches the
    // StatefulSet it owns, so the change reaches it without waiting for the resync.
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    statefulsets
        .patch_status(
            "cache",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"replicas": 1, "readyReplicas": 1}})),
        )
        .await
        .unwrap();
    wait_for(&caches, "cache", "Ready after the pod is", |c| {
        condition(c.status.as_ref(), READY).is_some_and(|c| c.status == "True")
    })
    .await;

    let _ = stop.send(());
    controller.await.unwrap().unwrap();
}
