//! The annotation parser answers for any input, and its input order is a total order.

use std::cmp::Ordering;

use oras_cache_api::annotations::{OrasAnnotations, PREFIX, natural_cmp};
use oras_cache_api::reference::{validate_reference, validate_registry};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(&[
            "oras-cache", "input-uri", "input-uri_1", "input-uri_02", "input-uri_", "output-uri",
            "output-path", "output-pipe", "registry", "plain-http", "container", "unpack", "debug",
            "oras-env", "oras-container", "push-on-failure", "max-unpacked-size", "entrypoint", "injected", "x",
        ][..]).prop_map(|f| format!("{PREFIX}{f}")),
        1 => "\\PC{0,30}".prop_map(|s| format!("{PREFIX}{s}")),
        1 => "\\PC{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

    #[test]
    fn collect_and_validate_answer_for_any_annotations(
        pairs in prop::collection::vec((key(), "\\PC{0,40}"), 0..12)
    ) {
        let collected = OrasAnnotations::collect(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Ok(request) = collected.validate() {
            // Whatever validates is a request the agent can be given.
            for input in &request.inputs {
                prop_assert!(validate_reference(input).is_ok());
            }
            prop_assert!(request.output_uri.is_none() || request.packed_path().is_some());
        }
    }

    #[test]
    fn the_validators_answer_for_any_string(s in "\\PC{0,80}") {
        let _ = validate_reference(&s);
        let _ = validate_registry(&s);
    }

    #[test]
    fn natural_order_is_a_total_order(a in "[a-c0-9]{0,6}", b in "[a-c0-9]{0,6}", c in "[a-c0-9]{0,6}") {
        prop_assert_eq!(natural_cmp(&a, &b), natural_cmp(&b, &a).reverse());
        prop_assert_eq!(natural_cmp(&a, &b) == Ordering::Equal, a == b);
        if natural_cmp(&a, &b) != Ordering::Greater && natural_cmp(&b, &c) != Ordering::Greater {
            prop_assert_ne!(natural_cmp(&a, &c), Ordering::Greater);
        }
    }

    #[test]
    fn numeric_suffixes_sort_as_numbers(x in 0u64..1_000_000, y in 0u64..1_000_000) {
        prop_assert_eq!(natural_cmp(&x.to_string(), &y.to_string()), x.cmp(&y));
    }
}
