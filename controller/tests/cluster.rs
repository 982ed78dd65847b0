//! Against a real cluster (kind, k3d), opt-in: `make controller-cluster-test` or
//! `cargo test -p oras-cache-controller --test cluster -- --ignored`. Uses the current kubeconfig
//! context, installs the CRD, runs the controller in-process and waits for a cache to become
//! Ready with its Service address. It pulls `ghcr.io/oras-project/registry:latest` in the cluster.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use oras_cache_controller::crd::{OrasCache, OrasCacheSpec};
use oras_cache_controller::metrics::Metrics;
use oras_cache_controller::reconcile::{Context, ReconcilerConfig, run};
use oras_cache_controller::registry_check::RegistryChecker;
use oras_cache_controller::status::{READY, condition};

#[tokio::test]
#[ignore = "needs a Kubernetes cluster in the current kubeconfig context"]
async fn a_cache_becomes_ready_in_a_real_cluster() {
    oras_cache_controller::install_crypto_provider();
    let client = Client::try_default().await.expect("a kubeconfig context");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        oras_cache_controller::crd::CRD_NAME,
        &PatchParams::apply("oras-cache-test").force(),
        &Patch::Apply(OrasCache::crd()),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let namespace = format!("oras-cache-test-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(namespace.clone());
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
        Some(namespace.clone()),
        async {
            let _ = stopped.await;
        },
        || {},
    ));

    let caches: Api<OrasCache> = Api::namespaced(client.clone(), &namespace);
    let spec: OrasCacheSpec = serde_yaml::from_str("{}").unwrap();
    caches
        .create(&PostParams::default(), &OrasCache::new("cache", spec))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        let cache = caches.get("cache").await.unwrap();
        if condition(cache.status.as_ref(), READY).is_some_and(|c| c.status == "True") {
            break cache.status.unwrap();
        }
        assert!(Instant::now() < deadline, "not Ready: {:?}", cache.status);
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    assert_eq!(
        status.address.as_deref(),
        Some(format!("cache.{namespace}.svc.cluster.local:5000").as_str())
    );

    let _ = stop.send(());
    controller.await.unwrap().unwrap();
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .unwrap();
}
