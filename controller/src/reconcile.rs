//! The reconciler: applies what [`crate::resources`] builds, checks remote registries, and
//! patches the status [`crate::status`] computes, only when it changed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{Timestamp, TimestampRound, Unit};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use oras_cache_api::credentials::{Operation, UserPassword, select};
use thiserror::Error;
use tracing::{info, warn};

use crate::children::{self, Child, ChildKind};
use crate::client_config::{
    ClientTarget, build_client_configs, client_config_name, docker_config_name,
};
use crate::crd::DEFAULT_REGISTRY_HTTP_KEY;
use crate::crd::{OrasCache, OrasCacheStatus};
use crate::metrics::Metrics;
use crate::plan::{
    CredentialKeys, DeployedRegistry, Plan, RemoteTarget, Sharing, credential_keys,
    is_object_storage_key, plan_cache,
};
use crate::registry_check::{
    CheckReport, Credentials, RegistryChecker, Verdict, credentials_from_secret,
};
use crate::resources::{
    BuildError, FIELD_MANAGER, MANAGED_BY_SELECTOR, build_http_secret, build_pdb, build_service,
    build_shared_claim, build_statefulset, http_secret_name, needs_recreate, service_address,
    userinfo_safe,
};
use crate::status::{MirrorObservation, Observation, build_status, transitions};

/// A reconciliation that failed; the controller retries it after `error_requeue`.
#[derive(Debug, Error)]
pub enum ReconcileError {
    /// The object lacks what owner references need.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Server-side apply of a child was refused.
    #[error("applying {kind} {namespace}/{name}: {source}")]
    Apply {
        /// Child kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Child name.
        name: String,
        /// API error.
        source: kube::Error,
    },
    /// A child could not be deleted.
    #[error("deleting {kind} {namespace}/{name}: {source}")]
    Delete {
        /// Child kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Child name.
        name: String,
        /// API error.
        source: kube::Error,
    },
    /// A child could not be read to learn who owns it.
    #[error("reading {kind} {namespace}/{name}: {source}")]
    ReadChild {
        /// Child kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Child name.
        name: String,
        /// API error.
        source: kube::Error,
    },
    /// The credentials Secret could not be read (other than not existing).
    #[error("reading Secret {namespace}/{name}: {source}")]
    ReadSecret {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// API error.
        source: kube::Error,
    },
    /// No random value for a generated Secret.
    #[error("reading random bytes for the REGISTRY_HTTP_SECRET: {0}")]
    Random(#[source] std::io::Error),
    /// The status patch was refused.
    #[error("patching the status of OrasCache {namespace}/{name}: {source}")]
    PatchStatus {
        /// Namespace.
        namespace: String,
        /// Cache name.
        name: String,
        /// API error.
        source: kube::Error,
    },
}

impl ReconcileError {
    /// A short category for metrics labels and event reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ReconcileError::Build(_) => "build",
            ReconcileError::Apply { .. } => "apply",
            ReconcileError::Delete { .. } => "delete",
            ReconcileError::ReadChild { .. } => "read_child",
            ReconcileError::ReadSecret { .. } => "read_secret",
            ReconcileError::PatchStatus { .. } => "patch_status",
            ReconcileError::Random(_) => "random",
        }
    }
}

/// Settings of the reconciler.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcilerConfig {
    /// DNS domain of the cluster in the cache address.
    pub cluster_domain: String,
    /// How often a deployed cache is reconciled without any change (missed watch events).
    pub resync_interval: Duration,
    /// How often a remote registry is checked again.
    pub remote_check_interval: Duration,
    /// How long to wait after a failed reconciliation.
    pub error_requeue: Duration,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            cluster_domain: oras_cache_api::settings::DEFAULT_CLUSTER_DOMAIN.to_string(),
            resync_interval: Duration::from_secs(300),
            remote_check_interval: Duration::from_secs(60),
            error_requeue: Duration::from_secs(30),
        }
    }
}

/// What every reconciliation shares.
pub struct Context {
    /// API client.
    pub client: Client,
    /// The one event recorder (it aggregates repeats into series).
    pub recorder: Recorder,
    /// Reconciler metrics.
    pub metrics: Arc<Metrics>,
    /// Remote registry checker.
    pub checker: RegistryChecker,
    /// Settings.
    pub config: ReconcilerConfig,
}

impl Context {
    /// A context with a recorder reporting as `oras-cache-controller` from `instance`.
    pub fn new(
        client: Client,
        instance: Option<String>,
        metrics: Arc<Metrics>,
        checker: RegistryChecker,
        config: ReconcilerConfig,
    ) -> Context {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_string(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            checker,
            config,
        }
    }

    async fn publish(&self, cache: &OrasCache, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate(note, 1024)),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &cache.object_ref(&())).await {
            warn!(%error, reason, "could not publish an event");
        }
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// Reconciles one `OrasCache`; failures are counted and published as Warning events.
pub async fn reconcile(cache: Arc<OrasCache>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let _timer = ctx.metrics.start_reconcile();
    match reconcile_cache(&cache, &ctx).await {
        Ok(action) => Ok(action),
        Err(error) => {
            ctx.metrics.failure(error.metric_label());
            ctx.publish(
                &cache,
                EventType::Warning,
                "ReconcileFailed",
                error.to_string(),
            )
            .await;
            Err(error)
        }
    }
}

/// What the controller does after a failed reconciliation.
pub fn error_policy(cache: Arc<OrasCache>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    warn!(cache = %cache.name_any(), %error, "reconcile failed");
    Action::requeue(ctx.config.error_requeue)
}

async fn reconcile_cache(cache: &OrasCache, ctx: &Context) -> Result<Action, ReconcileError> {
    let Some(namespace) = cache.namespace() else {
        return Err(BuildError::MissingMetadata("metadata.namespace").into());
    };
    // Owned children go with the cache through garbage collection; nothing outside the cluster
    // needs cleaning up, so there is no finalizer and nothing to do while it is being deleted.
    if cache.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = cache.name_any();
    let planned = plan_cache(&name, &cache.spec);
    // Nothing is applied while an object of someone else's holds a child's name: applying would
    // take it over (server-side apply with force), and deleting the cache would then collect it.
    let (existing, conflict) = match &planned {
        Ok(plan) => read_children(cache, &children::wanted(&name, plan), &namespace, ctx).await?,
        Err(_) => (Existing::default(), None),
    };
    let storage_problem = match &planned {
        Ok(Plan::Deployed(_)) if conflict.is_some() => None,
        Ok(Plan::Deployed(registry)) => object_storage_problem(registry, &namespace, ctx).await?,
        _ => None,
    };
    let (observation, action) = match planned {
        Err(error) => (
            Observation::InvalidSpec(error.to_string()),
            Action::await_change(),
        ),
        // The other object may be renamed or deleted without a change to the cache.
        Ok(_) if conflict.is_some() => (
            Observation::ChildConflict(conflict.unwrap_or_default()),
            Action::requeue(ctx.config.resync_interval),
        ),
        Ok(Plan::Deployed(_)) if storage_problem.is_some() => (
            Observation::InvalidSpec(storage_problem.unwrap_or_default()),
            // The Secret may be fixed without a change to the cache.
            Action::requeue(ctx.config.remote_check_interval),
        ),
        Ok(Plan::Deployed(mut registry)) => {
            if registry.generate_http_secret {
                keep_http_secret(cache, &existing, &namespace, ctx).await?;
            }
            // A mirror's container reads the keys its Secret has, so the Secret is read before
            // the StatefulSet is built.
            let mirror_credentials = match registry.mirror.as_mut() {
                Some(mirror) => {
                    let read = read_credentials(
                        mirror.upstream.credentials_secret.as_deref(),
                        &namespace,
                        ctx,
                    )
                    .await?;
                    if let Some(keys) = read.keys.clone() {
                        mirror.credential_keys = Some(keys);
                    }
                    Some(read)
                }
                None => None,
            };
            let ready_replicas =
                apply_registry(cache, &registry, &existing, &namespace, ctx).await?;
            if spec_changed(cache) {
                let plan = Plan::Deployed(registry.clone());
                remove_leftovers(cache, &children::leftovers(&name, &plan), &namespace, ctx)
                    .await?;
            }
            let address =
                service_address(&name, &namespace, &ctx.config.cluster_domain, registry.port);
            if ready_replicas.is_some() {
                // The deployed registry has no authentication of its own: no credentials.
                let target = ClientTarget {
                    address: address.clone(),
                    plain_http: true,
                    login: None,
                };
                apply_client_configs(cache, &target, &existing, &namespace, ctx).await?;
            }
            let mirror = match (&registry.mirror, mirror_credentials) {
                (Some(mirror), Some(read)) => {
                    let mut report = ctx
                        .checker
                        .check_repository(&mirror.upstream, read.credentials.as_ref())
                        .await;
                    if let Some(problem) = read.problem {
                        report.auth = problem;
                    }
                    Some(MirrorObservation {
                        upstream: mirror.upstream.address.clone(),
                        auth: Some(report.auth),
                    })
                }
                _ => None,
            };
            // A mirror's upstream is checked as often as a remote registry.
            let requeue = if mirror.is_some() {
                ctx.config.remote_check_interval
            } else {
                ctx.config.resync_interval
            };
            match ready_replicas {
                Some(ready_replicas) => (
                    Observation::Deployed {
                        address,
                        ready_replicas,
                        replicas: registry.replicas,
                        mirror,
                    },
                    Action::requeue(requeue),
                ),
                // The StatefulSet is being recreated for new storage; look again shortly.
                None => return Ok(Action::requeue(Duration::from_secs(5))),
            }
        }
        Ok(Plan::Remote(target)) => {
            if spec_changed(cache) {
                let plan = Plan::Remote(target.clone());
                remove_leftovers(cache, &children::leftovers(&name, &plan), &namespace, ctx)
                    .await?;
            }
            let (report, login) = check_remote(&target, &namespace, ctx).await?;
            let client = ClientTarget {
                address: target.address.clone(),
                plain_http: target.plain_http,
                login,
            };
            apply_client_configs(cache, &client, &existing, &namespace, ctx).await?;
            (
                Observation::Remote {
                    address: target.address.clone(),
                    plain_http: target.plain_http,
                    report,
                },
                Action::requeue(ctx.config.remote_check_interval),
            )
        }
        Ok(Plan::Unconfigured) => {
            if spec_changed(cache) {
                let leftovers = children::leftovers(&name, &Plan::Unconfigured);
                remove_leftovers(cache, &leftovers, &namespace, ctx).await?;
            }
            (Observation::Unconfigured, Action::await_change())
        }
    };
    let now = Time(
        Timestamp::now()
            .round(TimestampRound::new().smallest(Unit::Second))
            .unwrap_or_else(|_| Timestamp::now()),
    );
    let previous = cache.status.as_ref();
    let mut next = build_status(previous, cache.metadata.generation, &observation, &now);
    if has_client_configs(&observation) {
        next.docker_config_secret = Some(docker_config_name(&name));
        next.client_config_map = Some(client_config_name(&name));
    }
    if previous != Some(&next) {
        patch_status(cache, &namespace, &next, ctx).await?;
        for condition in transitions(previous, &next) {
            let type_ = if condition.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            };
            ctx.publish(
                cache,
                type_,
                &condition.reason,
                format!(
                    "{} is {}: {}",
                    condition.type_, condition.status, condition.message
                ),
            )
            .await;
        }
        info!(cache = %name, %namespace, "status updated");
    }
    Ok(action)
}

/// Applies the Service and the StatefulSet; returns the StatefulSet's ready replicas, or `None`
/// when the StatefulSet had to be deleted so that new storage can take effect.
async fn apply_registry(
    cache: &OrasCache,
    registry: &DeployedRegistry,
    existing: &Existing,
    namespace: &str,
    ctx: &Context,
) -> Result<Option<i32>, ReconcileError> {
    apply(
        ctx,
        namespace,
        "Service",
        &build_service(cache, registry)?,
        existing,
    )
    .await?;

    if let Some(claim) = build_shared_claim(cache, registry)? {
        apply(ctx, namespace, "PersistentVolumeClaim", &claim, existing).await?;
    }
    if let Some(pdb) = build_pdb(cache, registry)? {
        apply(ctx, namespace, "PodDisruptionBudget", &pdb, existing).await?;
    }

    let params = PatchParams::apply(FIELD_MANAGER).force();
    let statefulset = build_statefulset(cache, registry)?;
    let name = cache.name_any();
    if let Some(current) = existing.unchanged::<StatefulSet>("StatefulSet", &statefulset) {
        return Ok(Some(
            current.status.and_then(|s| s.ready_replicas).unwrap_or(0),
        ));
    }
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
    match statefulsets
        .patch(&name, &params, &Patch::Apply(&statefulset))
        .await
    {
        Ok(applied) => Ok(Some(
            applied.status.and_then(|s| s.ready_replicas).unwrap_or(0),
        )),
        // Claim templates, selector and service name are immutable: a storage change (or a
        // StatefulSet of the original operator) needs a new StatefulSet. The data of an emptyDir
        // is lost either way; claims are kept by the default retention policy.
        Err(kube::Error::Api(status)) if status.is_invalid() => {
            let current = statefulsets.get_opt(&name).await.ok().flatten();
            if current.is_some_and(|current| needs_recreate(&current, &statefulset)) {
                delete(&statefulsets, "StatefulSet", &name, namespace).await?;
                ctx.publish(
                    cache,
                    EventType::Normal,
                    "StorageChanged",
                    format!(
                        "StatefulSet {name} is recreated: spec.storage (or its selector) changed, which a StatefulSet cannot update"
                    ),
                )
                .await;
                Ok(None)
            } else {
                Err(ReconcileError::Apply {
                    kind: "StatefulSet",
                    namespace: namespace.to_string(),
                    name,
                    source: kube::Error::Api(status),
                })
            }
        }
        Err(source) => Err(ReconcileError::Apply {
            kind: "StatefulSet",
            namespace: namespace.to_string(),
            name,
            source,
        }),
    }
}

/// What the reconciler reads, applies and deletes: a namespaced object of the API that it can
/// serialize and read back (every child kind of [`ChildKind`]).
trait ChildObject:
    Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + serde::Serialize
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> ChildObject for K where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
{
}

/// Server-side apply of one namespaced child.
async fn apply<K>(
    ctx: &Context,
    namespace: &str,
    kind: &'static str,
    object: &K,
    existing: &Existing,
) -> Result<K, ReconcileError>
where
    K: ChildObject,
{
    if let Some(current) = existing.unchanged(kind, object) {
        return Ok(current);
    }
    let name = object.name_any();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|source| ReconcileError::Apply {
        kind,
        namespace: namespace.to_string(),
        name,
        source,
    })
}

/// The Secret `name` of the namespace, or `None` when there is none.
async fn read_secret(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<Secret>, ReconcileError> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    secrets
        .get_opt(name)
        .await
        .map_err(|source| ReconcileError::ReadSecret {
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        })
}

/// For replicas on object storage: why the `secrets.orasEnv` Secret does not configure it, if
/// it does not (read each time, since the Secret can change without the cache).
async fn object_storage_problem(
    registry: &DeployedRegistry,
    namespace: &str,
    ctx: &Context,
) -> Result<Option<String>, ReconcileError> {
    let Sharing::ObjectStorage { secret } = &registry.sharing else {
        return Ok(None);
    };
    let found = read_secret(ctx, namespace, secret).await?;
    let configured = found.is_some_and(|s| {
        s.data
            .iter()
            .flatten()
            .any(|(k, _)| is_object_storage_key(k))
            || s.string_data
                .iter()
                .flatten()
                .any(|(k, _)| is_object_storage_key(k))
    });
    Ok((!configured).then(|| {
        format!(
            "spec.replicas is {} without a ReadWriteMany claim, so the replicas need object storage, but Secret {namespace}/{secret} (spec.secrets.orasEnv) has no REGISTRY_STORAGE_* key of an object store (such as REGISTRY_STORAGE=s3 with REGISTRY_STORAGE_S3_BUCKET): add them, or set spec.storage.accessMode: ReadWriteMany",
            registry.replicas
        )
    }))
}

/// Creates `<cache>-http-secret` with a random `REGISTRY_HTTP_SECRET` unless it is there: the
/// value must stay the same for the life of the cache (replicas and restarts share it), so an
/// existing one is never rewritten.
async fn keep_http_secret(
    cache: &OrasCache,
    existing: &Existing,
    namespace: &str,
    ctx: &Context,
) -> Result<(), ReconcileError> {
    let name = http_secret_name(&cache.name_any());
    let current: Option<Secret> = existing.current("Secret", &name);
    let usable = current.is_some_and(|s| {
        s.data
            .unwrap_or_default()
            .get(DEFAULT_REGISTRY_HTTP_KEY)
            .is_some_and(|v| !v.0.is_empty())
    });
    if !usable {
        let secret = build_http_secret(cache, &random_secret().map_err(ReconcileError::Random)?)?;
        apply(ctx, namespace, "Secret", &secret, existing).await?;
    }
    Ok(())
}

/// 32 random bytes from the kernel, as hex.
fn random_secret() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether the status describes an older spec (or there is none yet). A registry is only left
/// behind by a spec change, so the deletions are skipped on the periodic re-checks of a remote
/// registry.
fn spec_changed(cache: &OrasCache) -> bool {
    cache
        .status
        .as_ref()
        .is_none_or(|s| s.observed_generation != cache.metadata.generation)
}

/// Deletes each leftover child that the cache owns (its controller owner reference); one that
/// another owner or a user made under the same name is left alone.
async fn remove_leftovers(
    cache: &OrasCache,
    leftovers: &[Child],
    namespace: &str,
    ctx: &Context,
) -> Result<(), ReconcileError> {
    for child in leftovers {
        let (kind, name) = (child.kind.as_str(), child.name.as_str());
        let removed = match child.kind {
            ChildKind::StatefulSet => {
                delete_owned::<StatefulSet>(cache, kind, name, namespace, ctx).await?
            }
            ChildKind::Service => {
                delete_owned::<Service>(cache, kind, name, namespace, ctx).await?
            }
            ChildKind::PersistentVolumeClaim => {
                delete_owned::<PersistentVolumeClaim>(cache, kind, name, namespace, ctx).await?
            }
            ChildKind::PodDisruptionBudget => {
                delete_owned::<PodDisruptionBudget>(cache, kind, name, namespace, ctx).await?
            }
            ChildKind::ConfigMap => {
                delete_owned::<ConfigMap>(cache, kind, name, namespace, ctx).await?
            }
            ChildKind::Secret => delete_owned::<Secret>(cache, kind, name, namespace, ctx).await?,
        };
        if removed {
            info!(cache = %cache.name_any(), %namespace, kind, child = %name, "removed a child the spec no longer wants");
        }
    }
    Ok(())
}

/// Reads each of `wanted`: what exists of them (the cache's own), and the first one that
/// exists and is not controlled by the cache, as the message of a `ChildConflict` condition.
async fn read_children(
    cache: &OrasCache,
    wanted: &[Child],
    namespace: &str,
    ctx: &Context,
) -> Result<(Existing, Option<String>), ReconcileError> {
    let mut existing = Existing::default();
    for child in wanted {
        let (kind, name) = (child.kind.as_str(), child.name.as_str());
        let holder = match child.kind {
            ChildKind::StatefulSet => {
                holder::<StatefulSet>(cache, kind, name, namespace, ctx).await?
            }
            ChildKind::Service => holder::<Service>(cache, kind, name, namespace, ctx).await?,
            ChildKind::PersistentVolumeClaim => {
                holder::<PersistentVolumeClaim>(cache, kind, name, namespace, ctx).await?
            }
            ChildKind::PodDisruptionBudget => {
                holder::<PodDisruptionBudget>(cache, kind, name, namespace, ctx).await?
            }
            ChildKind::ConfigMap => holder::<ConfigMap>(cache, kind, name, namespace, ctx).await?,
            ChildKind::Secret => holder::<Secret>(cache, kind, name, namespace, ctx).await?,
        };
        match holder {
            Holder::Absent => {}
            Holder::Cache(current) => existing.insert(kind, name, current),
            Holder::Other(owner) => {
                let message = format!(
                    "{child} already exists in namespace {namespace} and is not this OrasCache's own ({owner}); the cache would take its name. Nothing was changed: rename or delete that {kind}, or give the OrasCache another name"
                );
                return Ok((existing, Some(message)));
            }
        }
    }
    Ok((existing, None))
}

/// The children of a cache as they were read at the start of a reconcile, the cache's own only.
#[derive(Debug, Default)]
struct Existing(std::collections::HashMap<(&'static str, String), serde_json::Value>);

impl Existing {
    fn insert(&mut self, kind: &'static str, name: &str, current: serde_json::Value) {
        self.0.insert((kind, name.to_string()), current);
    }

    /// The child `kind name` as read, if it exists.
    fn current<K: serde::de::DeserializeOwned>(&self, kind: &'static str, name: &str) -> Option<K> {
        let value = self.0.get(&(kind, name.to_string()))?;
        serde_json::from_value(value.clone()).ok()
    }

    /// The child as read when it already holds everything `desired` sets (so that applying it
    /// would change nothing): a steady cache then costs reads only, never a write. Whatever
    /// another writer changed of what the controller sets makes it differ, and it is applied.
    fn unchanged<K>(&self, kind: &'static str, desired: &K) -> Option<K>
    where
        K: Resource + serde::Serialize + serde::de::DeserializeOwned,
    {
        let name = desired.meta().name.clone()?;
        let current = self.0.get(&(kind, name))?;
        let desired = serde_json::to_value(desired).ok()?;
        if !holds(current, &desired) {
            return None;
        }
        serde_json::from_value(current.clone()).ok()
    }
}

/// Whether `current` holds every field `desired` sets, with the same value: what server-side
/// apply of `desired` would leave unchanged. Lists are compared item by item, in order.
fn holds(current: &serde_json::Value, desired: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (current, desired) {
        // The API server drops empty values it is sent: a missing one holds an empty one.
        (Value::Object(current), Value::Object(desired)) => desired.iter().all(|(key, want)| {
            current.get(key).map_or_else(
                || match want {
                    Value::Null => true,
                    Value::Object(map) => map.is_empty(),
                    Value::Array(items) => items.is_empty(),
                    _ => false,
                },
                |have| holds(have, want),
            )
        }),
        (Value::Array(current), Value::Array(desired)) => {
            current.len() == desired.len()
                && current
                    .iter()
                    .zip(desired)
                    .all(|(have, want)| holds(have, want))
        }
        (current, desired) => current == desired,
    }
}

/// Who controls an object named like a child.
enum Holder {
    /// Nothing of that name.
    Absent,
    /// The cache (its controller owner reference, by uid), as read.
    Cache(serde_json::Value),
    /// Someone else, described for the message.
    Other(String),
}

async fn holder<K>(
    cache: &OrasCache,
    kind: &'static str,
    name: &str,
    namespace: &str,
    ctx: &Context,
) -> Result<Holder, ReconcileError>
where
    K: ChildObject,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let found = api
        .get_opt(name)
        .await
        .map_err(|source| ReconcileError::ReadChild {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        })?;
    let Some(found) = found else {
        return Ok(Holder::Absent);
    };
    if controlled_by(found.meta(), cache) {
        let current = serde_json::to_value(&found).map_err(|e| ReconcileError::ReadChild {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
            source: kube::Error::SerdeError(e),
        })?;
        return Ok(Holder::Cache(current));
    }
    let controller = found
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true));
    Ok(Holder::Other(match controller {
        Some(owner) => format!("controlled by {} {}", owner.kind, owner.name),
        None => "it has no controller owner".to_string(),
    }))
}

/// Whether the cache is the object's controller owner (matched by uid, so a cache deleted and
/// made again under the same name does not own what the first one made).
fn controlled_by(meta: &kube::api::ObjectMeta, cache: &OrasCache) -> bool {
    meta.owner_references.iter().flatten().any(|owner| {
        owner.controller == Some(true) && Some(&owner.uid) == cache.metadata.uid.as_ref()
    })
}

/// Reads the child `name` and deletes it when the cache is its controller owner, with the uid it
/// was read with as a precondition (so an object made again meanwhile is not deleted). Whether
/// it was deleted.
async fn delete_owned<K>(
    cache: &OrasCache,
    kind: &'static str,
    name: &str,
    namespace: &str,
    ctx: &Context,
) -> Result<bool, ReconcileError>
where
    K: ChildObject,
{
    let failed = |source| ReconcileError::Delete {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
        source,
    };
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(found) = api.get_opt(name).await.map_err(failed)? else {
        return Ok(false);
    };
    if !controlled_by(found.meta(), cache) {
        return Ok(false);
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: found.meta().uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(false),
        Err(source) => Err(failed(source)),
    }
}

async fn delete<K>(
    api: &Api<K>,
    kind: &'static str,
    name: &str,
    namespace: &str,
) -> Result<(), ReconcileError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(source) => Err(ReconcileError::Delete {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        }),
    }
}

/// What the controller found in a credentials Secret.
#[derive(Debug, Default)]
struct CredentialsRead {
    /// The user name and password for a pull.
    credentials: Option<Credentials>,
    /// The keys they were found under.
    keys: Option<CredentialKeys>,
    /// Why the Secret cannot be used, as the `AuthReady` verdict.
    problem: Option<Verdict>,
    /// The user name and password for a push, which builder pods of a remote registry get in
    /// the cache's docker config.
    push_login: Option<UserPassword>,
}

/// Reads the credentials Secret, if one is named. A missing or unusable Secret is a `problem`
/// (reported in `AuthReady`), not an error: reachability is still checked anonymously.
async fn read_credentials(
    secret_name: Option<&str>,
    namespace: &str,
    ctx: &Context,
) -> Result<CredentialsRead, ReconcileError> {
    let Some(secret_name) = secret_name else {
        return Ok(CredentialsRead::default());
    };
    let source = format!("Secret {namespace}/{secret_name}");
    let Some(secret) = read_secret(ctx, namespace, secret_name).await? else {
        return Ok(CredentialsRead {
            problem: Some(Verdict::fail(
                "SecretNotFound",
                format!("{source} named as the registry credentials does not exist"),
            )),
            ..CredentialsRead::default()
        });
    };
    let data = secret.data.unwrap_or_default();
    match credentials_from_secret(&source, &data) {
        Ok(found) => {
            let text = |key: &str| {
                data.get(key)
                    .and_then(|v| String::from_utf8(v.0.clone()).ok())
            };
            let keys = credential_keys(secret_name, text).ok().flatten();
            let push_login = select(Operation::Push, text).ok().flatten();
            let problem = (!userinfo_safe(&found.login.user)
                || found.login.user.contains(':')
                || !userinfo_safe(&found.login.password))
            .then(|| {
                Verdict::fail(
                    "CredentialsNotUrlSafe",
                    format!(
                        "{source}: a mirror passes its upstream credentials in the user information of REGISTRY_PROXY_REMOTEURL, which cannot carry '/', '?', '#', '%', spaces or non-ASCII characters; use a token without them"
                    ),
                )
            });
            Ok(CredentialsRead {
                credentials: Some(found),
                keys,
                problem,
                push_login,
            })
        }
        Err(error) => Ok(CredentialsRead {
            problem: Some(Verdict::fail("CredentialsInvalid", error.to_string())),
            ..CredentialsRead::default()
        }),
    }
}

/// Reads the credentials (if any) and runs the `/v2/` check. A missing or unusable Secret makes
/// `AuthReady` False with the reason, while reachability is still checked anonymously.
async fn check_remote(
    target: &RemoteTarget,
    namespace: &str,
    ctx: &Context,
) -> Result<(CheckReport, Option<UserPassword>), ReconcileError> {
    let read = read_credentials(target.credentials_secret.as_deref(), namespace, ctx).await?;
    let mut report = ctx.checker.check(target, read.credentials.as_ref()).await;
    // The URL rule is the mirror's; a remote registry's credentials never go into a URL.
    if let Some(problem) = read.problem.filter(|p| p.reason != "CredentialsNotUrlSafe") {
        report.auth = problem;
    }
    Ok((report, read.push_login))
}

/// Whether the cache gets client configurations: a registry it deploys or a remote one.
fn has_client_configs(observation: &Observation) -> bool {
    matches!(
        observation,
        Observation::Deployed { .. } | Observation::Remote { .. }
    )
}

/// Applies the docker-config Secret and the client-config ConfigMap of the cache.
async fn apply_client_configs(
    cache: &OrasCache,
    target: &ClientTarget,
    existing: &Existing,
    namespace: &str,
    ctx: &Context,
) -> Result<(), ReconcileError> {
    let (secret, map) = build_client_configs(cache, target)?;
    apply(ctx, namespace, "Secret", &secret, existing).await?;
    apply(ctx, namespace, "ConfigMap", &map, existing).await?;
    Ok(())
}

async fn patch_status(
    cache: &OrasCache,
    namespace: &str,
    status: &OrasCacheStatus,
    ctx: &Context,
) -> Result<(), ReconcileError> {
    let caches: Api<OrasCache> = Api::namespaced(ctx.client.clone(), namespace);
    let body = serde_json::json!({
        "apiVersion": OrasCache::api_version(&()),
        "kind": OrasCache::kind(&()),
        "status": status,
    });
    caches
        .patch_status(
            &cache.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map(|_| ())
        .map_err(|source| ReconcileError::PatchStatus {
            namespace: namespace.to_string(),
            name: cache.name_any(),
            source,
        })
}

/// The CRD is not installed or not readable.
#[derive(Debug, Error)]
#[error(
    "cannot list OrasCaches ({0}); install the CRD (`oras-cache-controller crd | kubectl apply -f -`) and check the RBAC of the service account"
)]
pub struct PreflightError(#[source] kube::Error);

/// Runs the controller until `shutdown` resolves; `on_ready` is called once the CRD was listed.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    on_ready: impl FnOnce(),
) -> Result<(), PreflightError> {
    let client = ctx.client.clone();
    let caches = match &namespace {
        Some(ns) => Api::<OrasCache>::namespaced(client.clone(), ns),
        None => Api::<OrasCache>::all(client.clone()),
    };
    caches
        .list(&ListParams::default().limit(1))
        .await
        .map_err(PreflightError)?;
    on_ready();
    // Every kind of child the reconciler applies is watched, so that a child changed or deleted
    // by someone else is put back at once rather than at the next resync: kube-rs's
    // `Controller::owns` maps an event of a child to the cache named by its controller owner
    // reference (docs.rs/kube, `kube::runtime::Controller`, "Changes to managed child resources
    // will also trigger the reconciler for the managing object by traversing owner references").
    // Only objects with the controller's label are watched. The claims of the StatefulSet's
    // claim templates are owned by no cache and trigger nothing; the shared claim does.
    // Secrets are not watched: that needs list and watch on every Secret of the cluster (RBAC
    // cannot narrow a list by label), and the resync puts back a Secret of the cache's that
    // someone changed or deleted (manifests::controller_rules).
    let owned = watcher::Config::default().labels(MANAGED_BY_SELECTOR);
    Controller::new(caches, watcher::Config::default().any_semantic())
        .owns(scoped::<StatefulSet>(&client, &namespace), owned.clone())
        .owns(scoped::<Service>(&client, &namespace), owned.clone())
        .owns(scoped::<ConfigMap>(&client, &namespace), owned.clone())
        .owns(
            scoped::<PersistentVolumeClaim>(&client, &namespace),
            owned.clone(),
        )
        .owns(scoped::<PodDisruptionBudget>(&client, &namespace), owned)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(%object, "reconciled"),
                Err(error) => warn!(%error, "reconcile loop error"),
            }
        })
        .await;
    Ok(())
}

/// An API of kind `K` in `namespace`, or in every namespace.
fn scoped<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::holds;
    use serde_json::json;

    #[test]
    fn what_the_server_added_holds_and_what_someone_changed_does_not() {
        let desired = json!({"metadata": {"name": "c", "labels": {"a": "1"}},
            "spec": {"ports": [{"port": 5000}], "selector": {}}});
        let applied = json!({"metadata": {"name": "c", "uid": "u", "labels": {"a": "1"}},
            "spec": {"ports": [{"port": 5000, "protocol": "TCP"}], "clusterIP": "10.0.0.9"}});
        assert!(holds(&applied, &desired));
        let relabelled = json!({"metadata": {"name": "c", "labels": {"a": "2"}},
            "spec": {"ports": [{"port": 5000}]}});
        assert!(!holds(&relabelled, &desired));
        let another_port = json!({"metadata": {"name": "c", "labels": {"a": "1"}},
            "spec": {"ports": [{"port": 5000}, {"port": 80}]}});
        assert!(!holds(&another_port, &desired));
    }
}
