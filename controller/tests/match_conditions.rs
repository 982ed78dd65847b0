//! The ClusterAdmissionPolicy's matchConditions expression, evaluated with a CEL interpreter
//! (cel-rust's `cel-interpreter`; the API server uses cel-go, but the expression uses only the
//! standard `has`, `exists`, `startsWith` and `in` of the CEL language definition). Objects with
//! an oras annotation or an artifact volume of a configured driver reach the policy; no other.

use cel_interpreter::{Context, Program, Value as CelValue};
use oras_cache_controller::manifests::{
    InstallOptions, cluster_admission_policy, match_expression,
};
use serde_json::{Value, json};

fn matches(expression: &str, object: &Value) -> bool {
    let program = Program::compile(expression).expect("the expression compiles");
    let mut context = Context::default();
    context
        .add_variable("object", object.clone())
        .expect("the object converts");
    match program.execute(&context) {
        Ok(CelValue::Bool(b)) => b,
        other => panic!("{expression} on {object}: {other:?}"),
    }
}

fn pod(metadata: Value, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

fn job(spec: Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": spec}}})
}

fn csi(driver: &str) -> Value {
    json!([{"name": "v", "csi": {"driver": driver}}, {"name": "e", "emptyDir": {}}])
}

#[test]
fn annotated_objects_and_artifact_volumes_reach_the_policy_and_nothing_else() {
    let policy = cluster_admission_policy(&InstallOptions::default());
    let expression = policy["spec"]["matchConditions"][0]["expression"]
        .as_str()
        .unwrap()
        .to_string();
    let containers = json!([{"name": "c", "image": "busybox"}]);
    let annotated =
        json!({"name": "p", "annotations": {"oras.converged-computing.github.io/oras-cache": "c"}});
    let plain = json!({"name": "p", "annotations": {"other": "x"}});
    let bare = json!({"name": "p"});

    assert!(matches(
        &expression,
        &pod(annotated.clone(), json!({"containers": containers}))
    ));
    assert!(matches(
        &expression,
        &pod(
            bare.clone(),
            json!({"containers": containers, "volumes": csi("csi.oras.land")})
        )
    ));
    assert!(matches(
        &expression,
        &job(json!({"containers": containers, "volumes": csi("csi.oras.land")}))
    ));
    assert!(!matches(
        &expression,
        &pod(plain.clone(), json!({"containers": containers}))
    ));
    assert!(!matches(
        &expression,
        &pod(bare.clone(), json!({"containers": containers}))
    ));
    assert!(!matches(
        &expression,
        &pod(
            plain,
            json!({"containers": containers, "volumes": csi("secrets-store.csi.k8s.io")})
        )
    ));
    assert!(!matches(
        &expression,
        &pod(
            bare,
            json!({"containers": containers, "volumes": [{"name": "e", "emptyDir": {}}]})
        )
    ));
    assert!(!matches(
        &expression,
        &job(json!({"containers": containers}))
    ));
}

#[test]
fn without_volume_drivers_only_annotations_count() {
    let expression = match_expression(&[]);
    let volumes_only = pod(
        json!({"name": "p"}),
        json!({"containers": [], "volumes": csi("csi.oras.land")}),
    );
    assert!(!matches(&expression, &volumes_only));
}

/// The expression's drivers are the settings' `volumeDrivers`, in the kubectl install and in the
/// chart (whose template writes the expression out).
#[test]
fn the_expression_names_the_drivers_of_the_settings() {
    let policy = cluster_admission_policy(&InstallOptions::default());
    let drivers: Vec<String> =
        serde_json::from_value(policy["spec"]["settings"]["volumeDrivers"].clone()).unwrap();
    assert_eq!(
        policy["spec"]["matchConditions"][0]["expression"],
        match_expression(&drivers)
    );
}
