//! The policy and the agent read references with one grammar: whatever registry and reference the
//! policy admits, the agent parses the reference the policy writes into the same parts, and
//! whatever full reference the agent accepts splits into parts the policy admits.

use oras_agent::Reference;
use oras_cache_api::reference::{join, parse_relative, validate_reference, validate_registry};
use proptest::prelude::*;

/// Registries as users write them: host names (one label or several, any case), IPv4, IPv6 in
/// brackets, with or without a port, and noise.
fn registry() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => ("[a-zA-Z0-9][a-zA-Z0-9-]{0,10}(\\.[a-zA-Z0-9-]{1,8}){0,3}", prop::option::of(0u32..70000))
            .prop_map(|(h, p)| match p { Some(p) => format!("{h}:{p}"), None => h }),
        1 => "\\[[0-9a-f:]{1,12}\\](:[0-9]{1,5})?",
        1 => "[^/@]{0,20}",
    ]
}

/// References relative to a registry: repository, optional tag, optional digest, and noise.
fn relative() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (
            "[a-z0-9]{1,6}([._-]{1,2}[a-z0-9]{1,6}){0,2}(/[a-z0-9]{1,6}([._-][a-z0-9]{1,4})?){0,3}",
            prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}"),
            prop::option::of(prop_oneof![
                "sha256:[0-9a-f]{64}",
                "sha512:[0-9a-f]{128}",
                "sha256:[0-9a-fA-F]{60,66}",
                "[a-z0-9]{3,8}:[a-zA-Z0-9=_-]{32,70}",
            ]),
        )
            .prop_map(|(repo, tag, digest)| {
                let mut s = repo;
                if let Some(tag) = tag { s = format!("{s}:{tag}"); }
                if let Some(digest) = digest { s = format!("{s}@{digest}"); }
                s
            }),
        1 => "\\PC{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn what_the_policy_admits_the_agent_parses_to_the_same_parts(
        registry in registry(),
        relative in relative(),
    ) {
        let admitted = validate_registry(&registry).is_ok() && validate_reference(&relative).is_ok();
        let full = join(&registry, &relative);
        let parsed = Reference::parse(&full);
        prop_assert_eq!(admitted, parsed.is_ok(), "{} -> {:?}", full, parsed);
        if let Ok(reference) = parsed {
            let parts = parse_relative(&relative).unwrap();
            prop_assert_eq!(&reference.registry, &registry);
            prop_assert_eq!(&reference.repository, &parts.repository);
            prop_assert_eq!(reference.digest.as_ref().map(|d| d.to_string()), parts.digest.clone());
            match parts.tag {
                Some(tag) => prop_assert_eq!(reference.tag, Some(tag)),
                // No tag and no digest means `latest`, for both.
                None if parts.digest.is_none() => prop_assert_eq!(reference.tag.as_deref(), Some("latest")),
                None => prop_assert_eq!(reference.tag, None),
            }
        }
    }

    #[test]
    fn what_the_agent_accepts_the_policy_admits(full in "\\PC{0,60}") {
        if let Ok(reference) = Reference::parse(&full) {
            let (registry, relative) = full.split_once('/').unwrap();
            prop_assert_eq!(registry, reference.registry.as_str());
            prop_assert!(validate_registry(registry).is_ok(), "{}", full);
            prop_assert!(validate_reference(relative).is_ok(), "{}", full);
        }
    }
}

/// The defect that was: a Service in the pod's namespace named by `registry: my-registry` passed
/// the policy and was then refused by the agent in `oras-init`.
#[test]
fn a_service_name_as_registry_reaches_the_agent_intact() {
    assert_eq!(validate_registry("my-registry"), Ok(()));
    let reference = Reference::parse(&join("my-registry", "team/data:1")).unwrap();
    assert_eq!(reference.registry, "my-registry");
    assert_eq!(reference.repository, "team/data");
    let reference = Reference::parse(&join("my-registry:5000", "team/data:1")).unwrap();
    assert_eq!(reference.registry, "my-registry:5000");
}
