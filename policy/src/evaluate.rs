//! The decision for one admission request: leave the object alone, mutate it, or reject it.

use kubewarden_policy_sdk::request::KubernetesAdmissionRequest;
use kubewarden_policy_sdk::response::ValidationResponse;
use oras_cache_api::agent::{
    InitArgs, LaunchArgs, SHARE_MOUNT, SidecarArgs, UnpackLimits, shared_agent_path,
};
use oras_cache_api::annotations::{
    CONTAINER, INJECTED, INPUT_URI, InjectionRequest, OUTPUT_URI, OrasAnnotations, RegistrySource,
    key,
};
use oras_cache_api::settings::Settings;
use std::borrow::Cow;

use serde_json::Value;

use crate::command::resolve_argv;
use crate::containers::{INIT_CONTAINER, SIDECAR_CONTAINER, agent_container};
use crate::error::PolicyError;
use crate::host::Host;
use crate::mirror::{self, MirrorLookup};
use crate::mutate::{PodPatch, apply, mark_injected, object_at};
use crate::pod_spec::PodSpecView;
use crate::registry::{ResolvedRegistry, resolve};
use crate::volumes;
use crate::workload::{Workload, annotations};

/// The outcome of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Accept the object as it is.
    Accept {
        /// Messages for the user.
        warnings: Vec<String>,
    },
    /// Accept the object with the injection.
    Mutate {
        /// The whole mutated object.
        object: Value,
        /// Messages for the user.
        warnings: Vec<String>,
    },
    /// Refuse the object.
    Reject {
        /// Why, and how to fix it.
        message: String,
        /// Messages for the user.
        warnings: Vec<String>,
    },
}

impl Verdict {
    /// The Kubewarden response for this verdict. Warnings travel with every kind of answer, which
    /// the SDK's `mutate_request` cannot do, so the response is built here.
    pub fn into_response(self) -> ValidationResponse {
        let (accepted, message, mutated_object, warnings) = match self {
            Self::Accept { warnings } => (true, None, None, warnings),
            Self::Mutate { object, warnings } => (true, None, Some(object), warnings),
            Self::Reject { message, warnings } => (false, Some(message), None, warnings),
        };
        ValidationResponse {
            accepted,
            message,
            code: None,
            mutated_object,
            audit_annotations: None,
            warnings: (!warnings.is_empty()).then_some(warnings),
        }
    }
}

/// Evaluates one admission request.
pub fn evaluate(
    request: &KubernetesAdmissionRequest,
    settings: &Settings,
    host: &dyn Host,
) -> Verdict {
    evaluate_object(request, Cow::Borrowed(&request.object), settings, host)
}

/// As [`evaluate`], with the request's object given apart: the waPC entry point moves it out of
/// the request, so the mutated object is built in place rather than from a deep copy
/// (`request.object` is not read).
pub fn evaluate_object(
    request: &KubernetesAdmissionRequest,
    object: Cow<'_, Value>,
    settings: &Settings,
    host: &dyn Host,
) -> Verdict {
    // Pod specs are immutable after creation: mutating anything but CREATE would only make
    // updates fail.
    if request.operation != "CREATE" {
        return Verdict::Accept {
            warnings: Vec::new(),
        };
    }
    let Some(workload) = Workload::from_kind(&request.kind.group, &request.kind.kind) else {
        return Verdict::Accept {
            warnings: Vec::new(),
        };
    };
    if !object.is_object() {
        return Verdict::Accept {
            warnings: Vec::new(),
        };
    }
    let already_injected = workload.marked_metadata_pointers().iter().any(|pointer| {
        annotations(&object, pointer)
            .iter()
            .any(|(k, _)| k == INJECTED)
    });
    if already_injected {
        return Verdict::Accept {
            warnings: Vec::new(),
        };
    }

    let pairs = annotations(&object, "/metadata");
    let collected = OrasAnnotations::collect(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let found_volumes = match volumes::find(
        &object,
        workload.pod_spec_pointer(),
        &settings.volume_drivers,
    ) {
        Ok(found) => found,
        Err(error) => {
            return Verdict::Reject {
                message: error.to_string(),
                warnings: collected.key_warnings(),
            };
        }
    };
    if !collected.is_marked() && found_volumes.is_empty() {
        return Verdict::Accept {
            warnings: collected.key_warnings(),
        };
    }
    let injection = if collected.is_marked() {
        match collected.validate() {
            Ok(injection) => Some(injection),
            Err(error) => {
                return Verdict::Reject {
                    message: error.to_string(),
                    warnings: collected.key_warnings(),
                };
            }
        }
    } else {
        None
    };
    let mut warnings = match &injection {
        Some(injection) => injection.warnings.clone(),
        None => collected.key_warnings(),
    };
    let annotation_work = injection.as_ref().is_some_and(InjectionRequest::has_work);
    if injection.is_some() && !annotation_work && found_volumes.is_empty() {
        warnings.push(format!(
            "nothing to pull or push: add {} or {} for oras-cache to inject its agent",
            key(INPUT_URI),
            key(OUTPUT_URI)
        ));
        return Verdict::Accept { warnings };
    }

    let namespace = namespace_of(request, &object);
    let mut mutated = object.into_owned();
    let outcome = inject_all(
        &mut mutated,
        workload,
        injection.as_ref(),
        &found_volumes,
        &namespace,
        settings,
        host,
        &mut warnings,
    );
    match outcome {
        Ok(()) => Verdict::Mutate {
            object: mutated,
            warnings,
        },
        Err(error) => Verdict::Reject {
            message: error.to_string(),
            warnings,
        },
    }
}

/// The annotations' injection (when they ask for work) and the artifact volumes' (when there are
/// any), sharing one lookup of the pod's registry.
#[allow(clippy::too_many_arguments)]
fn inject_all(
    object: &mut Value,
    workload: Workload,
    injection: Option<&InjectionRequest>,
    found_volumes: &[volumes::FoundVolume],
    namespace: &str,
    settings: &Settings,
    host: &dyn Host,
    warnings: &mut Vec<String>,
) -> Result<(), PolicyError> {
    // Checks that need no host call come first, so a wrong object is refused without a lookup.
    let spec = PodSpecView::read(object, workload.pod_spec_pointer())?;
    let annotation_work = injection.filter(|i| i.has_work());
    let target = match annotation_work {
        Some(injection) => {
            let target = spec.target(injection.container.as_deref())?;
            if injection.container.is_none() && spec.containers.len() > 1 {
                warnings.push(format!(
                    "the pod has several containers and {} is not set: oras-cache wraps the first, {:?}; set the annotation to choose another",
                    key(CONTAINER),
                    spec.containers[target].name
                ));
            }
            spec.check_free_names(injection.output_uri.is_some())?;
            Some(target)
        }
        None => None,
    };
    let registry = match injection {
        Some(injection) => Some(resolve(
            &injection.source,
            namespace,
            settings,
            host,
            warnings,
        )?),
        None => None,
    };
    if let (Some(injection), Some(registry)) = (annotation_work, &registry)
        && injection.output_uri.is_some()
        && let (Some(upstream), RegistrySource::Cache(cache)) =
            (&registry.mirror_of, &injection.source)
    {
        return Err(PolicyError::PushToMirror {
            cache: cache.clone(),
            upstream: upstream.clone(),
        });
    }
    // Pulls from a remote registry go through the namespace's mirror of it, when there is one.
    let pod_registry_is_remote =
        injection.is_some_and(|i| matches!(i.source, RegistrySource::Remote { .. }));
    let mut mirrors = MirrorLookup::new(namespace, settings, host);
    let input_registry = match (annotation_work, &registry) {
        (Some(injection), Some(registry))
            if !injection.inputs.is_empty() && pod_registry_is_remote =>
        {
            match mirrors.of(&registry.address, warnings) {
                Some(mirror) => {
                    warnings.push(mirror::redirected("pulling the inputs", &mirror));
                    Some(ResolvedRegistry {
                        address: mirror.address,
                        plain_http: mirror.plain_http,
                        credentials_secret: None,
                        mirror_of: None,
                    })
                }
                None => Some(registry.clone()),
            }
        }
        _ => registry.clone(),
    };
    let image = injection
        .and_then(|i| i.agent_image.as_deref())
        .unwrap_or(&settings.agent_image);
    // The pod's own Secret replaces the one its remote OrasCache names, never mixes with it.
    let oras_env = injection.and_then(|i| i.oras_env.as_deref()).or_else(|| {
        registry
            .as_ref()
            .and_then(|r| r.credentials_secret.as_deref())
    });

    let volume_plan = if found_volumes.is_empty() {
        None
    } else {
        let context = volumes::VolumeContext {
            pod_registry: registry.as_ref(),
            pod_registry_is_remote,
            pod_credentials: oras_env,
            image,
            debug: injection.is_some_and(|i| i.debug),
            limits: UnpackLimits {
                max_unpacked_size: injection.and_then(|i| i.max_unpacked_size),
                max_unpack_ratio: None,
            },
        };
        Some(volumes::plan(
            found_volumes,
            &context,
            &mut mirrors,
            settings,
            warnings,
        )?)
    };

    if let (Some(injection), Some(target), Some(output), Some(inputs)) =
        (annotation_work, target, &registry, &input_registry)
    {
        let container = spec
            .containers
            .get(target)
            .ok_or(PolicyError::NoContainers)?;
        let argv = resolve_argv(container, host)?;
        let registries = Registries { inputs, output };
        let patch = pod_patch(
            injection, target, argv, registries, image, oras_env, settings,
        );
        apply(object, workload, patch)?;
    }
    if let Some(plan) = volume_plan {
        volumes::apply(object_at(object, workload.pod_spec_pointer())?, plan)?;
    }
    mark_injected(object, workload)
}

/// Where the inputs are pulled from (a mirror, possibly) and where the outputs are pushed.
struct Registries<'a> {
    inputs: &'a ResolvedRegistry,
    output: &'a ResolvedRegistry,
}

/// The agent containers and the wrapped command of the annotations' injection.
fn pod_patch(
    injection: &InjectionRequest,
    target: usize,
    argv: Vec<String>,
    registries: Registries<'_>,
    image: &str,
    oras_env: Option<&str>,
    settings: &Settings,
) -> PodPatch {
    let with_sidecar = injection.output_uri.is_some();
    let init = InitArgs {
        share: SHARE_MOUNT.into(),
        inputs: injection
            .inputs
            .iter()
            .map(|uri| registries.inputs.reference(uri))
            .collect(),
        plain_http: registries.inputs.plain_http,
        debug: injection.debug,
    };
    let launch = LaunchArgs {
        share: SHARE_MOUNT.into(),
        input_path: injection.input_path.clone(),
        output_path: injection.packed_path().map(str::to_string),
        output_pipe: injection.output_pipe.clone(),
        unpack: injection.unpack,
        push_on_failure: injection.push_on_failure,
        pack_outputs: with_sidecar,
        debug: injection.debug,
        command: argv,
    };
    let sidecar = injection.output_uri.as_ref().map(|uri| {
        let args = SidecarArgs {
            share: SHARE_MOUNT.into(),
            output: registries.output.reference(uri),
            plain_http: registries.output.plain_http,
            start_timeout_secs: settings.sidecar_start_timeout_seconds,
            heartbeat_timeout_secs: settings.sidecar_heartbeat_timeout_seconds,
            debug: injection.debug,
        };
        agent_container(SIDECAR_CONTAINER, image, settings, args.to_args(), oras_env)
    });
    PodPatch {
        target,
        command: vec![shared_agent_path()],
        args: launch.to_args_with_limits(&UnpackLimits {
            max_unpacked_size: injection.max_unpacked_size,
            max_unpack_ratio: None,
        }),
        init_container: agent_container(INIT_CONTAINER, image, settings, init.to_args(), oras_env),
        sidecar,
    }
}

/// The namespace of the object: the request's, else the object's, else `default` (what the API
/// server would use).
fn namespace_of(request: &KubernetesAdmissionRequest, object: &Value) -> String {
    if !request.namespace.is_empty() {
        return request.namespace.clone();
    }
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
        .unwrap_or("default")
        .to_string()
}
