//! metadata.yml, artifacthub-pkg.yml and the README say the same things about the policy.

use oras_cache_api::annotations::{PREFIX, key};
use oras_cache_api::settings::Settings;
use serde_yaml::Value;

fn read(path: &str) -> String {
    let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn section<'a>(readme: &'a str, name: &str) -> &'a str {
    let start = format!("<!-- section: {name} -->");
    let end = format!("<!-- /section: {name} -->");
    let from = readme.find(&start).expect("section start") + start.len();
    let to = readme.find(&end).expect("section end");
    &readme[from..to]
}

fn annotation<'a>(metadata: &'a Value, name: &str) -> &'a str {
    metadata["annotations"][name]
        .as_str()
        .unwrap_or_else(|| panic!("metadata.yml has no annotation {name}"))
}

#[test]
fn metadata_declares_a_mutating_context_aware_policy_for_pod_and_job_creation() {
    let metadata = yaml("metadata.yml");
    assert_eq!(metadata["mutating"], Value::Bool(true));
    let rules = metadata["rules"].as_sequence().unwrap();
    let resources: Vec<&str> = rules
        .iter()
        .flat_map(|r| r["resources"].as_sequence().unwrap())
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(resources, ["pods", "jobs"]);
    for rule in rules {
        assert_eq!(
            rule["operations"],
            serde_yaml::from_str::<Value>("[CREATE]").unwrap()
        );
    }
    assert_eq!(
        metadata["contextAwareResources"][0]["apiVersion"],
        Value::from(oras_cache_api::cache::API_VERSION)
    );
    assert_eq!(
        metadata["contextAwareResources"][0]["kind"],
        Value::from("OrasCache")
    );
    let capabilities: Vec<&str> = metadata["hostCapabilities"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        capabilities,
        [
            "kubernetes/get_resource",
            "kubernetes/list_resources_by_namespace",
            "oci/v1/oci_manifest_config"
        ]
    );
}

#[test]
fn artifacthub_package_agrees_with_metadata() {
    let metadata = yaml("metadata.yml");
    let package = yaml("artifacthub-pkg.yml");
    let version = annotation(&metadata, "io.kubewarden.policy.version");
    assert_eq!(package["version"].as_str(), Some(version));
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        package["name"].as_str(),
        Some(annotation(&metadata, "io.kubewarden.policy.title"))
    );
    assert_eq!(
        package["displayName"].as_str(),
        Some(annotation(&metadata, "io.artifacthub.displayName"))
    );
    assert_eq!(
        package["description"].as_str(),
        Some(annotation(&metadata, "io.kubewarden.policy.description"))
    );
    assert_eq!(
        package["license"].as_str(),
        Some(annotation(&metadata, "io.kubewarden.policy.license"))
    );
    assert_eq!(
        package["homeURL"].as_str(),
        Some(annotation(&metadata, "io.kubewarden.policy.url"))
    );
    assert_eq!(
        package["containersImages"][0]["image"].as_str().unwrap(),
        format!(
            "{}:v{version}",
            annotation(&metadata, "io.kubewarden.policy.ociUrl")
        )
    );
    let keywords: Vec<&str> = package["keywords"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let declared: Vec<&str> = annotation(&metadata, "io.artifacthub.keywords")
        .split(',')
        .map(str::trim)
        .collect();
    assert_eq!(keywords, declared);

    let annotations = &package["annotations"];
    assert_eq!(annotations["kubewarden/mutation"], Value::from("true"));
    assert_eq!(
        annotations["kubewarden/resources"].as_str(),
        Some(annotation(&metadata, "io.artifacthub.resources"))
    );
    let rules: Value =
        serde_yaml::from_str(annotations["kubewarden/rules"].as_str().unwrap()).unwrap();
    assert_eq!(rules, metadata["rules"]);
    let context: Value = serde_yaml::from_str(
        annotations["kubewarden/contextAwareResources"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(context, metadata["contextAwareResources"]);
}

#[test]
fn readme_documents_every_annotation_key() {
    let readme = read("README.md");
    let table = section(&readme, "annotations");
    let others = [
        "input-uri_<suffix>",
        "entrypoint",
        "oras-entrypoint",
        "injected",
    ];
    for field in oras_cache_api::annotations::SINGLE_FIELDS
        .iter()
        .chain(&others)
    {
        assert!(
            table.contains(&format!("`{field}`")),
            "README annotation table lacks `{field}`"
        );
    }
    assert!(table.contains(PREFIX.trim_end_matches('/')));
    assert!(key("injected").starts_with(PREFIX));
}

#[test]
fn readme_documents_every_setting() {
    let readme = read("README.md");
    let settings = section(&readme, "settings");
    let defaults = serde_json::to_value(Settings::default()).unwrap();
    for name in defaults.as_object().unwrap().keys() {
        assert!(
            settings.contains(&format!("`{name}`")),
            "README settings lack `{name}`"
        );
    }
    assert!(settings.contains(oras_cache_api::settings::DEFAULT_AGENT_IMAGE));
}
