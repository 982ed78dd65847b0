//! The status the controller writes, computed from what it observed.
//!
//! Deterministic by construction: a condition keeps its `lastTransitionTime` unless its status
//! changes, so reconciling an unchanged cache computes an identical status and the reconciler
//! skips the patch (no reconcile storm from the controller's own writes).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::OrasCacheStatus;
use crate::registry_check::{CheckReport, Verdict};

/// Condition type: the registry can serve pods.
pub const READY: &str = "Ready";
/// Condition type: the credentials of a remote registry were accepted.
pub const AUTH_READY: &str = "AuthReady";

/// What the reconciler found, the input of [`build_status`].
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The spec cannot be acted on; the message names the field and the fix.
    InvalidSpec(String),
    /// The controller deploys the registry.
    Deployed {
        /// Service address.
        address: String,
        /// `status.readyReplicas` of the StatefulSet.
        ready_replicas: i32,
        /// Desired replicas.
        replicas: i32,
        /// For a mirror, its upstream's `host[:port]` and the check of the upstream with the
        /// mirror's credentials (`AuthReady`).
        mirror: Option<MirrorObservation>,
    },
    /// A remote registry and the outcome of its `/v2/` check.
    Remote {
        /// `host[:port]`.
        address: String,
        /// Plain HTTP rather than HTTPS.
        plain_http: bool,
        /// Reachability and authentication verdicts.
        report: CheckReport,
    },
    /// `deploy: false` and no remote registry.
    Unconfigured,
    /// An object named like a child the cache would make exists and is not the cache's own:
    /// nothing was applied, and the message names the object and the fix.
    ChildConflict(String),
}

/// What the controller knows of a mirror's upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorObservation {
    /// `host[:port]` of the upstream (`status.mirrorOf`).
    pub upstream: String,
    /// The upstream check with the mirror's credentials; `None` before any check (`render`).
    pub auth: Option<Verdict>,
}

/// A condition before its transition time is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Desired {
    type_: &'static str,
    verdict: Verdict,
}

fn desired_conditions(observation: &Observation) -> Vec<Desired> {
    let ready = |verdict| Desired {
        type_: READY,
        verdict,
    };
    match observation {
        Observation::InvalidSpec(message) => vec![ready(Verdict::fail("InvalidSpec", message))],
        Observation::ChildConflict(message) => {
            vec![ready(Verdict::fail("ChildConflict", message))]
        }
        Observation::Deployed {
            ready_replicas,
            replicas,
            mirror,
            ..
        } => {
            let message = format!("{ready_replicas}/{replicas} registry pods ready");
            // One ready pod serves the cache; fewer than asked for is said in the reason.
            let mut conditions = if *ready_replicas >= *replicas {
                vec![ready(Verdict::pass("RegistryReady", message))]
            } else if *ready_replicas >= 1 {
                vec![ready(Verdict::pass("RegistryDegraded", message))]
            } else {
                vec![ready(Verdict::fail("RegistryNotReady", message))]
            };
            if let Some(auth) = mirror.as_ref().and_then(|m| m.auth.clone()) {
                conditions.push(Desired {
                    type_: AUTH_READY,
                    verdict: auth,
                });
            }
            conditions
        }
        Observation::Remote { report, .. } => vec![
            ready(report.reachable.clone()),
            Desired {
                type_: AUTH_READY,
                verdict: report.auth.clone(),
            },
        ],
        Observation::Unconfigured => vec![ready(Verdict::fail(
            "NoRegistry",
            "deploy is false and spec.registry is not set: set spec.registry.address, or name a registry on each pod with the registry annotation",
        ))],
    }
}

/// The status for `observation`, keeping each condition's `lastTransitionTime` from `previous`
/// while its status is unchanged. `now` is passed in so that tests are deterministic.
pub fn build_status(
    previous: Option<&OrasCacheStatus>,
    generation: Option<i64>,
    observation: &Observation,
    now: &Time,
) -> OrasCacheStatus {
    let mirror_of = match observation {
        Observation::Deployed {
            mirror: Some(mirror),
            ..
        } => Some(mirror.upstream.clone()),
        _ => None,
    };
    let (address, plain_http) = match observation {
        Observation::Deployed { address, .. } => (Some(address.clone()), Some(true)),
        Observation::Remote {
            address,
            plain_http,
            ..
        } => (Some(address.clone()), Some(*plain_http)),
        Observation::InvalidSpec(_) | Observation::Unconfigured | Observation::ChildConflict(_) => {
            (None, None)
        }
    };
    let conditions = desired_conditions(observation)
        .into_iter()
        .map(|desired| {
            let status = if desired.verdict.ok { "True" } else { "False" };
            let last_transition_time = previous
                .and_then(|p| p.conditions.iter().find(|c| c.type_ == desired.type_))
                .filter(|c| c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: desired.type_.to_string(),
                status: status.to_string(),
                reason: desired.verdict.reason,
                message: desired.verdict.message,
                last_transition_time,
                observed_generation: generation,
            }
        })
        .collect();
    OrasCacheStatus {
        address,
        plain_http,
        mirror_of,
        docker_config_secret: None,
        client_config_map: None,
        conditions,
        observed_generation: generation,
    }
}

/// The condition of a type, if any.
pub fn condition<'a>(status: Option<&'a OrasCacheStatus>, type_: &str) -> Option<&'a Condition> {
    status?.conditions.iter().find(|c| c.type_ == type_)
}

/// A condition that changed status between two statuses, for events: `(type, new condition)`.
pub fn transitions<'a>(
    previous: Option<&OrasCacheStatus>,
    next: &'a OrasCacheStatus,
) -> Vec<&'a Condition> {
    next.conditions
        .iter()
        .filter(|c| {
            condition(previous, &c.type_)
                .is_none_or(|p| p.status != c.status || p.reason != c.reason)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn deployed(ready: i32) -> Observation {
        Observation::Deployed {
            address: "cache.ns.svc.cluster.local:5000".into(),
            ready_replicas: ready,
            replicas: 1,
            mirror: None,
        }
    }

    #[test]
    fn ready_counts_the_ready_replicas() {
        let replicas = |ready| Observation::Deployed {
            address: "cache.ns.svc.cluster.local:5000".into(),
            ready_replicas: ready,
            replicas: 3,
            mirror: None,
        };
        let reason = |ready| {
            let status = build_status(None, Some(1), &replicas(ready), &at(1));
            let c = condition(Some(&status), READY).unwrap().clone();
            (c.status, c.reason, c.message)
        };
        assert_eq!(
            reason(0),
            (
                "False".into(),
                "RegistryNotReady".into(),
                "0/3 registry pods ready".into()
            )
        );
        assert_eq!(
            reason(2),
            (
                "True".into(),
                "RegistryDegraded".into(),
                "2/3 registry pods ready".into()
            )
        );
        assert_eq!(
            reason(3),
            (
                "True".into(),
                "RegistryReady".into(),
                "3/3 registry pods ready".into()
            )
        );
    }

    #[test]
    fn a_mirror_reports_its_upstream_and_the_upstream_check() {
        let observation = Observation::Deployed {
            address: "mirror.ns.svc.cluster.local:5000".into(),
            ready_replicas: 1,
            replicas: 1,
            mirror: Some(MirrorObservation {
                upstream: "ghcr.io".into(),
                auth: Some(Verdict::fail("AuthenticationFailed", "rejected")),
            }),
        };
        let status = build_status(None, Some(1), &observation, &at(1));
        assert_eq!(status.mirror_of.as_deref(), Some("ghcr.io"));
        assert_eq!(status.plain_http, Some(true));
        assert_eq!(condition(Some(&status), READY).unwrap().status, "True");
        assert_eq!(
            condition(Some(&status), AUTH_READY).unwrap().reason,
            "AuthenticationFailed"
        );
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["mirrorOf"], "ghcr.io", "the field the policy reads");
        assert!(deployed_status_has_no_mirror());
    }

    fn deployed_status_has_no_mirror() -> bool {
        let status = build_status(None, Some(1), &deployed(1), &at(1));
        status.mirror_of.is_none() && condition(Some(&status), AUTH_READY).is_none()
    }

    #[test]
    fn an_unchanged_observation_yields_an_identical_status() {
        let first = build_status(None, Some(1), &deployed(1), &at(100));
        let second = build_status(Some(&first), Some(1), &deployed(1), &at(200));
        assert_eq!(first, second, "no timestamp may move while nothing changes");
        assert!(transitions(Some(&first), &second).is_empty());
    }

    #[test]
    fn last_transition_time_moves_only_when_the_status_flips() {
        let not_ready = build_status(None, Some(1), &deployed(0), &at(100));
        let ready = build_status(Some(&not_ready), Some(1), &deployed(1), &at(200));
        let ready_cond = condition(Some(&ready), READY).unwrap();
        assert_eq!(ready_cond.status, "True");
        assert_eq!(ready_cond.last_transition_time, at(200));
        assert_eq!(transitions(Some(&not_ready), &ready).len(), 1);
    }

    #[test]
    fn the_deployed_cache_reports_its_service_address_over_plain_http() {
        let status = build_status(None, Some(3), &deployed(0), &at(1));
        assert_eq!(
            status.address.as_deref(),
            Some("cache.ns.svc.cluster.local:5000")
        );
        assert_eq!(status.plain_http, Some(true));
        assert_eq!(status.observed_generation, Some(3));
        let ready = condition(Some(&status), READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "RegistryNotReady")
        );
        assert_eq!(ready.observed_generation, Some(3));
        assert!(condition(Some(&status), AUTH_READY).is_none());
    }

    #[test]
    fn remote_registries_report_ready_and_auth_ready() {
        let observation = Observation::Remote {
            address: "ghcr.io".into(),
            plain_http: false,
            report: CheckReport {
                reachable: Verdict::pass("RegistryReachable", "GET /v2/ answered 401"),
                auth: Verdict::fail("AuthenticationFailed", "rejected"),
            },
        };
        let status = build_status(None, Some(1), &observation, &at(1));
        assert_eq!(status.address.as_deref(), Some("ghcr.io"));
        assert_eq!(status.plain_http, Some(false));
        assert_eq!(condition(Some(&status), READY).unwrap().status, "True");
        let auth = condition(Some(&status), AUTH_READY).unwrap();
        assert_eq!(
            (auth.status.as_str(), auth.reason.as_str()),
            ("False", "AuthenticationFailed")
        );
    }

    #[test]
    fn switching_to_a_deployed_cache_drops_auth_ready() {
        let remote = Observation::Remote {
            address: "ghcr.io".into(),
            plain_http: false,
            report: CheckReport {
                reachable: Verdict::pass("RegistryReachable", "ok"),
                auth: Verdict::pass("Authenticated", "ok"),
            },
        };
        let before = build_status(None, Some(1), &remote, &at(1));
        let after = build_status(Some(&before), Some(2), &deployed(1), &at(2));
        assert_eq!(after.conditions.len(), 1);
        // Ready stayed True, so its transition time is kept even though the reason changed.
        assert_eq!(
            condition(Some(&after), READY).unwrap().last_transition_time,
            at(1)
        );
    }

    #[test]
    fn invalid_and_unconfigured_caches_have_no_address() {
        for observation in [
            Observation::InvalidSpec("bad".into()),
            Observation::Unconfigured,
        ] {
            let status = build_status(None, Some(1), &observation, &at(1));
            assert!(status.address.is_none());
            assert_eq!(condition(Some(&status), READY).unwrap().status, "False");
        }
    }

    #[test]
    fn the_status_reads_as_the_policy_view() {
        let status = build_status(None, Some(2), &deployed(1), &at(1_700_000_000));
        let object = serde_json::json!({
            "apiVersion": oras_cache_api::cache::API_VERSION,
            "kind": oras_cache_api::cache::KIND,
            "metadata": {"name": "cache", "namespace": "ns"},
            "spec": {},
            "status": status,
        });
        let view: oras_cache_api::cache::OrasCacheView = serde_json::from_value(object).unwrap();
        let view_status = view.status.unwrap();
        assert_eq!(view_status.address, status.address);
        assert_eq!(view_status.plain_http, Some(true));
        assert_eq!(view_status.observed_generation, Some(2));
        let ready = view_status.condition(READY).unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason.as_deref(), Some("RegistryReady"));
        assert_eq!(ready.message.as_deref(), Some("1/1 registry pods ready"));
    }
}
