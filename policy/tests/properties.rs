//! Whatever the object and whatever the annotation values, the policy answers: it never panics
//! (a panic traps the wasm module and fails the admission with a 500). And whatever it injects, a
//! second evaluation leaves alone.

mod common;

use std::collections::BTreeMap;

use common::*;
use oras_cache_api::cache::OrasCacheView;
use oras_cache_api::settings::Settings;
use oras_cache_policy::evaluate::{Verdict, evaluate};
use oras_cache_policy::host::ImageCommand;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Every key, and some that only look like one.
fn field() -> impl Strategy<Value = String> {
    let odd = [
        "input-uri_1",
        "input-uri_10",
        "input-uri_",
        "input-uri_a",
        "entrypoint",
        "oras-entrypoint",
        "injected",
        "unknown-key",
    ];
    prop::sample::select(
        oras_cache_api::annotations::SINGLE_FIELDS
            .iter()
            .chain(&odd)
            .map(|f| f.to_string())
            .collect::<Vec<_>>(),
    )
}

fn annotation_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop_oneof![
            Just("c"), Just("cache"), Just("a/b:1"), Just("dinosaur/hello-world:latest"),
            Just("true"), Just("false"), Just(""), Just("app"), Just("ghcr.io"),
            Just("127.0.0.1:5000"), Just("out.txt"), Just("UPPER/Case"),
        ].prop_map(|s| json!(s)),
        2 => ".{0,40}".prop_map(Value::String),
        1 => any_json(),
    ]
}

fn annotations() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop_oneof![
            4 => field().prop_map(|f| format!("{PREFIX}{f}")),
            1 => ".{0,20}".prop_map(|s| s),
            1 => ".{0,8}".prop_map(|s| format!("{PREFIX}{s}")),
        ],
        annotation_value(),
        0..8,
    )
    .prop_map(|m: BTreeMap<String, Value>| Value::Object(m.into_iter().collect()))
}

fn container_json() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just(json!("app")), Just(json!("oras")), Just(json!("side")), any_json()],
        prop_oneof![Just(json!("busybox")), Just(Value::Null), any_json()],
        prop_oneof![Just(json!(["sh", "-c", "x"])), Just(Value::Null), Just(json!([])), any_json()],
        prop_oneof![Just(json!(["a"])), Just(Value::Null), any_json()],
        prop_oneof![Just(Value::Null), any_json()],
    )
        .prop_map(|(name, image, command, args, mounts)| {
            json!({"name": name, "image": image, "command": command, "args": args, "volumeMounts": mounts})
        })
}

/// Volumes, artifact volumes among them, with attributes right or wrong.
fn volume_json() -> impl Strategy<Value = Value> {
    let attribute = prop_oneof![
        Just("oras.artifact.reference"),
        Just("oras.artifact.layers.mediatype"),
        Just("oras.options.plainhttp"),
        Just("oras.options.concurrency"),
        Just("oras.options.sizelimit"),
        Just("oras.options.pullalways"),
        Just("other"),
    ];
    let value = prop_oneof![
        Just(json!("ghcr.io/a/b:1")),
        Just(json!("a/b:1")),
        Just(json!("true")),
        Just(json!("4")),
        Just(json!("1Gi")),
        Just(json!("text/plain")),
        any_json(),
    ];
    (
        prop_oneof![Just(json!("data")), Just(json!("oras-share")), any_json()],
        prop_oneof![
            Just(json!("csi.oras.land")),
            Just(json!("other.csi")),
            any_json()
        ],
        prop::collection::btree_map(attribute, value, 0..4),
        prop_oneof![
            Just(Value::Null),
            Just(json!({"name": "creds"})),
            any_json()
        ],
    )
        .prop_map(|(name, driver, attributes, secret)| {
            json!({"name": name, "csi": {"driver": driver,
                   "volumeAttributes": attributes.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>(),
                   "nodePublishSecretRef": secret}})
        })
}

fn pod_spec() -> impl Strategy<Value = Value> {
    (
        prop_oneof![prop::collection::vec(container_json(), 0..4).prop_map(Value::Array), any_json()],
        prop_oneof![
            Just(Value::Null),
            prop::collection::vec(volume_json(), 0..3).prop_map(Value::Array),
            any_json()
        ],
        prop_oneof![Just(Value::Null), any_json()],
    )
        .prop_map(|(containers, volumes, init)| {
            json!({"containers": containers, "volumes": volumes, "initContainers": init})
        })
}

/// Annotations that usually validate: a cache and an input, plus optional keys with values that
/// are right more often than not.
fn plausible_annotations() -> impl Strategy<Value = Value> {
    let optional = prop::collection::btree_map(
        prop::sample::select(
            &[
                "input-uri_2",
                "output-uri",
                "output-path",
                "output-pipe",
                "input-path",
                "debug",
                "unpack",
                "push-on-failure",
                "oras-env",
                "entrypoint",
                "unknown-key",
            ][..],
        ),
        prop::sample::select(&["true", "false", "x/y:2", "out.txt", "secret"][..]),
        0..5,
    );
    (optional, prop::sample::select(&["c", "cache"][..])).prop_map(|(optional, cache)| {
        let mut map = Map::new();
        map.insert(format!("{PREFIX}oras-cache"), json!(cache));
        map.insert(format!("{PREFIX}input-uri"), json!("a/b:1"));
        for (k, v) in optional {
            map.insert(format!("{PREFIX}{k}"), json!(v));
        }
        Value::Object(map)
    })
}

fn plausible_container() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just(json!(["sh", "-c", "x"])), Just(Value::Null)],
        prop_oneof![Just(json!(["a"])), Just(Value::Null)],
        prop_oneof![
            Just(Value::Null),
            Just(json!([{"name": "d", "mountPath": "/d"}]))
        ],
        any_json(),
    )
        .prop_map(|(command, args, mounts, extra)| {
            json!({"name": "app", "image": "busybox", "command": command, "args": args,
                   "volumeMounts": mounts, "extra": extra})
        })
}

/// Objects shaped like Pods and Jobs with random parts, and objects of any shape at all.
fn object() -> impl Strategy<Value = (String, Value)> {
    prop_oneof![
        3 => (plausible_annotations(), plausible_container(), any_json()).prop_map(|(a, c, extra)| {
            ("Pod".to_string(), json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns", "annotations": a},
                "spec": {"containers": [c], "extra": extra}, "status": extra}))
        }),
        2 => (plausible_annotations(), plausible_container()).prop_map(|(a, c)| {
            ("Job".to_string(), json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "j", "annotations": a},
                "spec": {"template": {"spec": {"containers": [c]}}}}))
        }),
        3 => (annotations(), pod_spec()).prop_map(|(a, spec)| {
            ("Pod".to_string(), json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns", "annotations": a}, "spec": spec}))
        }),
        3 => (annotations(), annotations(), pod_spec()).prop_map(|(a, t, spec)| {
            ("Job".to_string(), json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "j", "annotations": a},
                "spec": {"template": {"metadata": {"annotations": t}, "spec": spec}}}))
        }),
        1 => (annotations(), any_json()).prop_map(|(a, spec)| {
            ("Pod".to_string(), json!({"metadata": {"annotations": a}, "spec": spec}))
        }),
        1 => (prop_oneof![Just("Pod"), Just("Job")], any_json())
            .prop_map(|(k, v)| (k.to_string(), v)),
    ]
}

fn host() -> impl Strategy<Value = FakeHost> {
    (
        prop_oneof![
            Just(None),
            Just(Some(json!({"metadata": {"name": "c"}}))),
            Just(Some(
                json!({"status": {"address": "c.ns.svc:5000", "plainHttp": false}})
            )),
            any_json().prop_map(Some),
        ],
        prop_oneof![
            Just(Err("manifest unknown".to_string())),
            Just(Ok(ImageCommand::default())),
            Just(Ok(ImageCommand {
                entrypoint: vec!["/e".into()],
                cmd: vec!["x".into()]
            })),
        ],
    )
        .prop_map(|(cache, image)| {
            let mut host = FakeHost::default();
            if let Some(cache) = cache.and_then(|c| serde_json::from_value::<OrasCacheView>(c).ok())
            {
                for name in ["c", "cache"] {
                    host.caches
                        .insert(("ns".into(), name.into()), Ok(cache.clone()));
                    host.caches
                        .insert(("default".into(), name.into()), Ok(cache.clone()));
                }
            }
            host.images.insert("busybox".into(), image);
            host
        })
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(vec![]), Just(vec!["ghcr.io".to_string()])],
    )
        .prop_map(
            |(context_aware, missing_cache_is_error, allowed_registries)| Settings {
                context_aware,
                missing_cache_is_error,
                allowed_registries,
                ..Settings::default()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn evaluation_never_panics_and_injection_is_idempotent(
        (kind, object) in object(),
        host in host(),
        settings in settings(),
        operation in prop_oneof![4 => Just("CREATE"), 1 => Just("UPDATE"), 1 => Just("DELETE")],
    ) {
        let mut request = admission(&json!({"kind": kind}), operation);
        request.object = object;
        let verdict = evaluate(&request, &settings, &host);
        if let Verdict::Mutate { object, .. } = verdict {
            prop_assert_eq!(operation, "CREATE");
            request.object = object;
            let again = evaluate(&request, &settings, &host);
            prop_assert!(matches!(again, Verdict::Accept { .. }), "second evaluation: {:?}", again);
        }
    }

    #[test]
    fn the_wapc_entry_point_never_fails_on_a_well_formed_payload(
        (kind, object) in object(),
    ) {
        let mut request = serde_json::to_value(admission(&json!({"kind": kind}), "CREATE")).unwrap();
        request["object"] = object;
        let payload = serde_json::to_vec(&json!({"request": request, "settings": {}})).unwrap();
        let response = oras_cache_policy::validate(&payload);
        prop_assert!(response.is_ok());
    }
}
