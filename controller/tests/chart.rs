//! The Helm chart without helm: its templates use only a handful of constructs, which this test
//! renders itself (anything else fails the test, keeping the chart simple). The rendered chart must
//! produce exactly the objects of `oras-cache-controller manifests`, and its CRD is the generated
//! one (checked in `manifests.rs`).

use std::path::{Path, PathBuf};

use oras_cache_controller::manifests::{InstallOptions, objects};
mod support;

use serde_json::Value;
use support::schema_check::{check_document, parse_documents};

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("charts/oras-cache")
}

fn lookup<'a>(values: &'a Value, path: &str) -> &'a Value {
    let path = path
        .strip_prefix(".Values.")
        .unwrap_or_else(|| panic!("unsupported reference {path}"));
    path.split('.').fold(values, |v, key| {
        v.get(key)
            .unwrap_or_else(|| panic!("values.yaml has no {path} (missing {key})"))
    })
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("{other} is not a scalar"),
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Renders the subset of Go templates the chart uses: `.Release.Namespace`, `.Values.x`,
/// `.Values.x | quote`, `toYaml .Values.x | nindent N`, `if .Values.x` / `end`, and `{{-`.
fn render(template: &str, values: &Value, namespace: &str) -> String {
    let mut out = String::new();
    let mut emitting: Vec<bool> = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let on = emitting.iter().all(|e| *e);
        if on {
            out.push_str(&rest[..start]);
        }
        let end = rest[start..].find("}}").expect("unterminated action") + start;
        let mut action = &rest[start + 2..end];
        rest = &rest[end + 2..];
        if let Some(trimmed) = action.strip_prefix('-') {
            action = trimmed;
            if on {
                out.truncate(out.trim_end().len());
            }
        }
        let action = action.trim();
        let words: Vec<&str> = action.split_whitespace().collect();
        match words.as_slice() {
            ["if", path] => emitting.push(truthy(lookup(values, path))),
            ["end"] => {
                emitting.pop().expect("end without if");
            }
            _ if !on => {}
            [".Release.Namespace"] => out.push_str(namespace),
            [path] => out.push_str(&scalar_text(lookup(values, path))),
            [path, "|", "quote"] => {
                out.push_str(&serde_json::to_string(&scalar_text(lookup(values, path))).unwrap())
            }
            ["toYaml", path, "|", "nindent", n] => {
                let indent = " ".repeat(n.parse().unwrap());
                let yaml = serde_yaml::to_string(lookup(values, path)).unwrap();
                for line in yaml.lines() {
                    out.push('\n');
                    out.push_str(&indent);
                    out.push_str(line);
                }
            }
            _ => panic!("unsupported template construct {{{{ {action} }}}}"),
        }
    }
    assert!(emitting.is_empty(), "if without end");
    out.push_str(rest);
    out
}

fn values() -> Value {
    let text = std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    serde_yaml::from_str(&text).expect("values.yaml parses")
}

fn render_chart(values: &Value) -> Vec<Value> {
    let mut docs = Vec::new();
    let mut templates: Vec<_> = std::fs::read_dir(chart_dir().join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    templates.sort();
    for template in templates {
        let text = std::fs::read_to_string(&template).unwrap();
        let rendered = render(&text, values, "oras-cache-system");
        docs.extend(parse_documents(&rendered).unwrap_or_else(|e| {
            panic!(
                "{} renders to bad YAML: {e}\n{rendered}",
                template.display()
            )
        }));
    }
    docs
}

fn key(object: &Value) -> (String, String) {
    (
        object["kind"].as_str().unwrap().to_string(),
        object["metadata"]["name"].as_str().unwrap().to_string(),
    )
}

#[test]
fn the_chart_with_default_values_renders_the_install_manifests() {
    let chart = render_chart(&values());
    let expected: Vec<Value> = objects(&InstallOptions::default())
        .into_iter()
        .filter(|o| {
            !matches!(
                o["kind"].as_str(),
                Some("Namespace" | "CustomResourceDefinition")
            )
        })
        .collect();
    let mut chart_keys: Vec<_> = chart.iter().map(key).collect();
    let mut expected_keys: Vec<_> = expected.iter().map(key).collect();
    chart_keys.sort();
    expected_keys.sort();
    assert_eq!(chart_keys, expected_keys);
    for object in &expected {
        let rendered = chart.iter().find(|c| key(c) == key(object)).unwrap();
        assert_eq!(
            rendered,
            object,
            "{:?} differs between the chart and the manifests",
            key(object)
        );
        check_document(rendered).unwrap();
    }
}

#[test]
fn values_change_what_the_chart_renders() {
    let mut values = values();
    values["policy"]["enabled"] = Value::Bool(false);
    values["policyServer"]["serviceAccount"] = "custom-policy-server".into();
    values["controller"]["image"] = "registry.local/controller:dev".into();
    let chart = render_chart(&values);
    assert!(chart.iter().all(|o| o["kind"] != "ClusterAdmissionPolicy"));
    let binding = chart
        .iter()
        .find(|o| {
            key(o)
                == (
                    "ClusterRoleBinding".into(),
                    "oras-cache-policy-server-reader".into(),
                )
        })
        .unwrap();
    assert_eq!(binding["subjects"][0]["name"], "custom-policy-server");
    let deployment = chart.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local/controller:dev"
    );
}
