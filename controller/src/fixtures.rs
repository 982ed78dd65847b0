//! `OrasCache` objects as the API server returns them, for tests of the builders and the
//! reconciler (they carry the `uid` owner references need).

use kube::api::ObjectMeta;

use crate::crd::{OrasCache, OrasCacheSpec};

/// An `OrasCache` named `cache` in namespace `ns` (uid `uid-1`, generation 1) with the spec
/// given as YAML. Panics on a spec that does not parse: fixtures are written by tests.
pub fn cache(spec_yaml: &str) -> OrasCache {
    let spec: OrasCacheSpec = serde_yaml::from_str(spec_yaml).expect("fixture spec parses");
    let mut cache = OrasCache::new("cache", spec);
    cache.metadata = ObjectMeta {
        name: Some("cache".into()),
        namespace: Some("ns".into()),
        uid: Some("uid-1".into()),
        generation: Some(1),
        resource_version: Some("1".into()),
        ..ObjectMeta::default()
    };
    cache
}
