//! Every rejection names the key (or field) and the fix; every warning reaches the response.

mod common;

use common::*;
use oras_cache_api::settings::Settings;
use oras_cache_policy::evaluate::{Verdict, evaluate};
use serde_json::{Value, json};

fn pod(annotations: Value, containers: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "work", "annotations": annotations},
        "spec": {"containers": containers}
    })
}

fn one_container() -> Value {
    json!([{"name": "app", "image": "busybox", "command": ["sh", "-c", "date > out.txt"]}])
}

fn cache_host() -> FakeHost {
    FakeHost::with_cache("work", "c", "c.work.svc.cluster.local:5000", None)
}

fn reject(annotations: Value) -> String {
    rejection(run(&pod(annotations, one_container()), &cache_host()))
}

#[test]
fn an_empty_value_is_rejected_naming_the_key() {
    let message =
        reject(json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}output-uri"): ""}));
    assert_eq!(
        message,
        format!("annotation {PREFIX}output-uri is empty: give it a value or remove it")
    );
}

#[test]
fn a_missing_cache_and_registry_is_rejected() {
    let message = reject(json!({format!("{PREFIX}input-uri"): "a/b:1"}));
    assert!(
        message.contains(&format!("{PREFIX}oras-cache is missing")),
        "{message}"
    );
    assert!(message.contains(&format!("{PREFIX}registry")), "{message}");
}

/// The original operator's user guide: "container" defaults to the first container of the pod
/// (`../shared/seeds/oras-operator-user-guide.txt`). With several, a warning names the one chosen.
#[test]
fn several_containers_without_container_wrap_the_first_with_a_warning() {
    let containers = json!([
        {"name": "app", "image": "busybox", "command": ["true"]},
        {"name": "helper", "image": "busybox", "command": ["sleep", "1"]}
    ]);
    let (object, warnings) = mutated(run(
        &pod(
            json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri"): "a:1"}),
            containers,
        ),
        &cache_host(),
    ));
    assert_eq!(
        object["spec"]["containers"][0]["command"][0],
        "/mnt/oras/bin/oras-agent"
    );
    assert_eq!(
        object["spec"]["containers"][1]["command"],
        json!(["sleep", "1"])
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("wraps the first, \"app\""),
        "{warnings:?}"
    );
    assert!(
        warnings[0].contains(&format!("{PREFIX}container")),
        "{warnings:?}"
    );
}

#[test]
fn one_container_needs_no_warning() {
    let (_, warnings) = mutated(run(
        &pod(
            json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri"): "a:1"}),
            one_container(),
        ),
        &cache_host(),
    ));
    assert!(warnings.is_empty(), "{warnings:?}");
}

/// A cache with `deploy: false` and no `registry` gives no address (its status has none): a pod
/// that names it without its own `registry` annotation is refused at admission with the fix,
/// instead of being admitted with an address that leads nowhere.
#[test]
fn a_cache_that_deploys_nothing_and_names_no_registry_is_refused() {
    let mut host = FakeHost::default();
    host.add_cache_object(
        "work",
        "c",
        json!({"spec": {"deploy": false}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
    );
    let message = rejection(run(
        &pod(
            json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri"): "a:1"}),
            one_container(),
        ),
        &host,
    ));
    assert!(
        message.contains("OrasCache \"c\" in namespace \"work\""),
        "{message}"
    );
    assert!(
        message.contains("deploy: false and no spec.registry"),
        "{message}"
    );
    assert!(
        message.contains(&format!("set annotation {PREFIX}registry")),
        "{message}"
    );
    // The pod's own registry annotation makes the cache irrelevant.
    let (object, _) = mutated(run(
        &pod(
            json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}registry"): "ghcr.io",
                   format!("{PREFIX}input-uri"): "a:1"}),
            one_container(),
        ),
        &host,
    ));
    assert!(
        object["spec"]["initContainers"][0]["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--input=ghcr.io/a:1"))
    );
}

/// A failing host call reaches the guest as `Callback evaluation failure: <error>` in Kubewarden's
/// policy-evaluator (`crates/policy-evaluator/src/runtimes/callback.rs`,
/// `send_request_and_wait_for_response`), which the SDK 0.17 presents as
/// `error invoking host capability <capability>: Host error: <that>`; wrapped like that, the
/// rejection still names the cache, the namespace and the fix.
#[test]
fn a_host_failure_as_kubewarden_words_it_still_names_the_cache_namespace_and_fix() {
    let mut host = FakeHost::default();
    host.caches.insert(
        ("work".into(), "c".into()),
        Err("error invoking host capability kubernetes.get_resource: Host error: Callback evaluation failure: orascaches.cache.converged-computing.github.io \"c\" is forbidden: User \"system:serviceaccount:kubewarden:policy-server\" cannot get resource \"orascaches\"".into()),
    );
    let message = rejection(run(
        &pod(
            json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri"): "a:1"}),
            one_container(),
        ),
        &host,
    ));
    assert!(message.starts_with(&format!("annotation {PREFIX}oras-cache: OrasCache \"c\" in namespace \"work\" could not be read (error invoking host capability kubernetes.get_resource: Host error: Callback evaluation failure: ")), "{message}");
    assert!(message.contains("create it in that namespace"), "{message}");

    let mut host = cache_host();
    host.images.insert(
        "distroless".into(),
        Err("error invoking host capability oci.oci_manifest_config: Host error: Callback evaluation failure: cannot fetch manifest of distroless: timeout".into()),
    );
    let message = rejection(run(
        &pod(
            json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri"): "a:1"}),
            json!([{"name": "app", "image": "distroless"}]),
        ),
        &host,
    ));
    assert!(
        message.contains("container \"app\" has no command"),
        "{message}"
    );
    assert!(
        message.contains("Host error: Callback evaluation failure: cannot fetch manifest"),
        "{message}"
    );
    assert!(
        message.contains("set command (and args) on the container"),
        "{message}"
    );
}

#[test]
fn a_container_annotation_that_names_nothing_is_rejected() {
    let message = reject(json!({
        format!("{PREFIX}oras-cache"): "c",
        format!("{PREFIX}input-uri"): "a:1",
        format!("{PREFIX}container"): "launcher"
    }));
    assert!(
        message.contains(&format!("{PREFIX}container names container \"launcher\"")),
        "{message}"
    );
    assert!(message.contains("(app)"), "{message}");
}

#[test]
fn a_malformed_reference_is_rejected() {
    let message = reject(
        json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri_7"): "Dinosaur/Hello:latest"}),
    );
    assert!(message.starts_with(&format!("annotation {PREFIX}input-uri_7: \"Dinosaur/Hello:latest\" is not a valid artifact reference")), "{message}");
    let message = reject(json!({
        format!("{PREFIX}oras-cache"): "c",
        format!("{PREFIX}output-uri"): "a/b:bad tag",
        format!("{PREFIX}output-pipe"): "x"
    }));
    assert!(
        message.contains(&format!("{PREFIX}output-uri")),
        "{message}"
    );
}

#[test]
fn a_malformed_registry_is_rejected() {
    let message = reject(
        json!({format!("{PREFIX}registry"): "https://ghcr.io", format!("{PREFIX}input-uri"): "a:1"}),
    );
    assert!(
        message.contains(&format!("{PREFIX}registry")) && message.contains("drop the scheme"),
        "{message}"
    );
}

#[test]
fn a_registry_outside_allowed_registries_is_rejected() {
    let settings = Settings {
        allowed_registries: vec!["ghcr.io".into()],
        ..Settings::default()
    };
    let object = pod(
        json!({format!("{PREFIX}registry"): "docker.io", format!("{PREFIX}input-uri"): "a:1"}),
        one_container(),
    );
    let message = rejection(evaluate(&create(&object), &settings, &FakeHost::default()));
    assert!(
        message.contains("\"docker.io\" is not allowed") && message.contains("ghcr.io"),
        "{message}"
    );
    let object = pod(
        json!({format!("{PREFIX}registry"): "ghcr.io", format!("{PREFIX}input-uri"): "a:1"}),
        one_container(),
    );
    mutated(evaluate(&create(&object), &settings, &FakeHost::default()));
}

#[test]
fn a_bad_boolean_is_rejected() {
    let message = reject(
        json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri"): "a:1", format!("{PREFIX}debug"): "verbose"}),
    );
    assert_eq!(
        message,
        format!("annotation {PREFIX}debug must be \"true\" or \"false\", not \"verbose\"")
    );
}

#[test]
fn an_output_uri_with_nothing_to_push_is_rejected() {
    let message =
        reject(json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}output-uri"): "a:1"}));
    assert!(
        message.contains(&format!("{PREFIX}output-path"))
            && message.contains(&format!("{PREFIX}output-pipe")),
        "{message}"
    );
}

#[test]
fn a_cache_that_does_not_exist_is_rejected_naming_cache_and_namespace() {
    let message =
        reject(json!({format!("{PREFIX}oras-cache"): "nope", format!("{PREFIX}input-uri"): "a:1"}));
    assert!(
        message.contains("OrasCache \"nope\" in namespace \"work\" could not be read"),
        "{message}"
    );
    assert!(
        message.contains(
            "Cannot find cache.converged-computing.github.io/v1alpha1/OrasCache named 'nope'"
        ),
        "{message}"
    );
}

#[test]
fn a_missing_cache_falls_back_with_a_warning_when_the_settings_say_so() {
    let settings = Settings {
        missing_cache_is_error: false,
        ..Settings::default()
    };
    let object = pod(
        json!({format!("{PREFIX}oras-cache"): "nope", format!("{PREFIX}input-uri"): "a:1"}),
        one_container(),
    );
    let (object, warnings) = mutated(evaluate(&create(&object), &settings, &FakeHost::default()));
    assert!(
        warnings[0].contains("could not be read")
            && warnings[0].contains("nope.work.svc.cluster.local:5000"),
        "{warnings:?}"
    );
    let init = container(&object["spec"], "initContainers", "oras-init");
    assert!(
        strings(&init["args"])
            .contains(&"--input=nope.work.svc.cluster.local:5000/a:1".to_string())
    );
}

#[test]
fn without_context_aware_reads_the_cache_service_name_is_used() {
    let settings = Settings {
        context_aware: false,
        cluster_domain: "corp.internal".into(),
        ..Settings::default()
    };
    let host = FakeHost::default();
    let object = pod(
        json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri"): "a:1"}),
        one_container(),
    );
    let (object, warnings) = mutated(evaluate(&create(&object), &settings, &host));
    assert!(warnings.is_empty());
    assert!(host.calls().is_empty(), "no host capability may be used");
    let args = strings(&container(&object["spec"], "initContainers", "oras-init")["args"]);
    assert!(args.contains(&"--input=c.work.svc.corp.internal:5000/a:1".to_string()));
    assert!(args.contains(&"--plain-http".to_string()));
}

#[test]
fn a_cache_without_address_yet_falls_back_with_a_warning() {
    let mut host = FakeHost::default();
    host.caches.insert(
        ("work".into(), "c".into()),
        Ok(serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap()),
    );
    let object = pod(
        json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri"): "a:1"}),
        one_container(),
    );
    let (_, warnings) = mutated(run(&object, &host));
    assert!(warnings[0].contains("no status.address"), "{warnings:?}");
}

#[test]
fn a_cache_that_reports_tls_is_reached_over_tls() {
    let host = FakeHost::with_cache("work", "c", "registry.example.com", Some(false));
    let object = pod(
        json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri"): "a:1"}),
        one_container(),
    );
    let (object, _) = mutated(run(&object, &host));
    let args = strings(&container(&object["spec"], "initContainers", "oras-init")["args"]);
    assert_eq!(
        args,
        [
            "init",
            "--share=/mnt/oras",
            "--input=registry.example.com/a:1"
        ]
    );
}

#[test]
fn no_command_and_an_unreadable_image_is_rejected_asking_for_command() {
    let containers = json!([{"name": "app", "image": "private.example.com/app:1"}]);
    let object = pod(
        json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri"): "a:1"}),
        containers,
    );
    let message = rejection(run(&object, &cache_host()));
    assert!(
        message.contains("container \"app\" has no command"),
        "{message}"
    );
    assert!(
        message.contains("private.example.com/app:1") && message.contains("set command"),
        "{message}"
    );
}

#[test]
fn no_command_uses_the_image_entrypoint_and_cmd() {
    let mut host = cache_host();
    host.add_image("python:3.12", &["/entry.sh"], &["python3"]);
    let containers = json!([{"name": "app", "image": "python:3.12", "args": ["-c", "print(1)"]}]);
    let object = pod(
        json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri"): "a:1"}),
        containers,
    );
    let (object, _) = mutated(run(&object, &host));
    let args = strings(&container(&object["spec"], "containers", "app")["args"]);
    let sep = args.iter().position(|a| a == "--").unwrap();
    assert_eq!(&args[sep + 1..], ["/entry.sh", "-c", "print(1)"]);
    assert!(
        host.calls()
            .contains(&"oci_manifest_config python:3.12".to_string())
    );
}

#[test]
fn a_name_the_injection_needs_is_refused_when_taken() {
    let mut object = pod(
        json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri"): "a:1"}),
        one_container(),
    );
    object["spec"]["volumes"] = json!([{"name": "oras-share", "emptyDir": {}}]);
    let message = rejection(run(&object, &cache_host()));
    assert!(message.contains("volume named \"oras-share\""), "{message}");

    let containers = json!([
        {"name": "app", "image": "busybox", "command": ["true"]},
        {"name": "oras", "image": "busybox", "command": ["true"]}
    ]);
    let object = pod(
        json!({
            format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}container"): "app",
            format!("{PREFIX}output-uri"): "a:1", format!("{PREFIX}output-pipe"): "log"
        }),
        containers,
    );
    let message = rejection(run(&object, &cache_host()));
    assert!(message.contains("container named \"oras\""), "{message}");
}

#[test]
fn a_malformed_pod_spec_is_rejected_naming_the_field() {
    let object = pod(
        json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri"): "a:1"}),
        json!("app"),
    );
    let message = rejection(run(&object, &cache_host()));
    assert_eq!(
        message,
        "/spec/containers is malformed (not a list): fix the object"
    );
    let object = pod(
        json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri"): "a:1"}),
        json!([{"name": "app", "command": "sh -c x"}]),
    );
    let message = rejection(run(&object, &cache_host()));
    assert!(
        message.starts_with("/spec/containers/0/command is malformed"),
        "{message}"
    );
}

#[test]
fn a_pod_without_containers_is_rejected() {
    let object = pod(
        json!({format!("{PREFIX}oras-cache"): "c", format!("{PREFIX}input-uri"): "a:1"}),
        json!([]),
    );
    assert!(rejection(run(&object, &cache_host())).contains("no containers"));
}

#[test]
fn unknown_keys_are_warned_about_with_and_without_injection() {
    let (_, warnings) = mutated(run(
        &pod(
            json!({
                format!("{PREFIX}oras-cache"): "c",
                format!("{PREFIX}input-uri"): "a:1",
                format!("{PREFIX}ouput-path"): "typo"
            }),
            one_container(),
        ),
        &cache_host(),
    ));
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains(&format!("{PREFIX}ouput-path is not known")),
        "{warnings:?}"
    );

    let warnings = accepted_warnings(run(
        &pod(json!({format!("{PREFIX}colour"): "blue"}), one_container()),
        &cache_host(),
    ));
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains(&format!("{PREFIX}colour")));
}

#[test]
fn rejections_carry_the_key_warnings_too() {
    let verdict = run(
        &pod(
            json!({format!("{PREFIX}entrypoint"): "https://x", format!("{PREFIX}input-uri"): "a:1"}),
            one_container(),
        ),
        &cache_host(),
    );
    match verdict {
        Verdict::Reject { warnings, .. } => assert!(warnings[0].contains("is ignored")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn nothing_to_pull_or_push_is_accepted_with_a_warning() {
    let warnings = accepted_warnings(run(
        &pod(json!({format!("{PREFIX}oras-cache"): "c"}), one_container()),
        &cache_host(),
    ));
    assert!(
        warnings[0].contains("nothing to pull or push"),
        "{warnings:?}"
    );
}

#[test]
fn the_warnings_reach_the_kubewarden_response() {
    let verdict = run(
        &pod(json!({format!("{PREFIX}oras-cache"): "c"}), one_container()),
        &cache_host(),
    );
    let response = serde_json::to_value(verdict.into_response()).unwrap();
    assert_eq!(response["accepted"], true);
    assert!(response["mutated_object"].is_null());
    assert!(
        response["warnings"][0]
            .as_str()
            .unwrap()
            .contains("nothing to pull or push")
    );

    let verdict = run(
        &pod(
            json!({format!("{PREFIX}input-uri"): "a:1"}),
            one_container(),
        ),
        &cache_host(),
    );
    let response = serde_json::to_value(verdict.into_response()).unwrap();
    assert_eq!(response["accepted"], false);
    assert!(response["message"].as_str().unwrap().contains("is missing"));
    assert!(response["warnings"].is_null());
}
