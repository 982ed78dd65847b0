//! The policy's settings, as a cluster operator writes them in the `ClusterAdmissionPolicy`.
//!
//! Every field has a default, so `{}` (what Kubewarden sends when the policy has no settings) is
//! valid. Unknown fields are refused: a misspelt setting would otherwise be silently ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::annotations::is_dns_subdomain;
use crate::reference::{split_host_port, validate_registry};

/// Image of the injected agent containers when the settings name none.
pub const DEFAULT_AGENT_IMAGE: &str = "ghcr.io/oras-cache/oras-agent:v0.1.0";
/// Pull policy of the agent image when the settings name none.
pub const DEFAULT_PULL_POLICY: &str = "IfNotPresent";
/// The cluster's DNS domain when the settings name none.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// User id of the injected containers: the "nonroot" user of distroless images.
pub const DEFAULT_RUN_AS_USER: i64 = 65532;

/// The settings of the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Image of the `oras-init` and `oras` containers (the `oras-agent` image).
    pub agent_image: String,
    /// `imagePullPolicy` of the agent containers: `Always`, `IfNotPresent` or `Never`.
    pub agent_image_pull_policy: String,
    /// DNS domain of the cluster, used by the fallback cache address.
    pub cluster_domain: String,
    /// Registries the `registry` annotation may name. An entry is a host (`ghcr.io`) or `*.domain`
    /// for any host under a domain, then optionally `:port` or `:*`. The port rule is explicit:
    /// an entry without a port allows only a registry written without one (the default HTTPS
    /// port), `:5000` only that port, `:*` any port. Names compare without case. Empty: any
    /// registry.
    pub allowed_registries: Vec<String>,
    /// Read the named `OrasCache` with the `get_resource` host capability. `false` for policy
    /// servers that are not granted context-aware reads: the cache is then assumed at
    /// `<cache>.<namespace>.svc.<clusterDomain>:5000`, over plain HTTP.
    pub context_aware: bool,
    /// Reject an object that names an `OrasCache` the policy cannot read. `false` falls back to
    /// the address above, with a warning.
    pub missing_cache_is_error: bool,
    /// Resources of the injected containers.
    pub resources: ResourceSettings,
    /// Identity of the injected containers.
    pub security_context: SecuritySettings,
    /// Seconds the push sidecar waits for the application to start.
    pub sidecar_start_timeout_seconds: u64,
    /// Seconds without a heartbeat after which the push sidecar deems the application dead.
    pub sidecar_heartbeat_timeout_seconds: u64,
    /// CSI drivers whose inline volumes the policy serves itself: each such volume becomes an
    /// emptyDir filled by the `oras-volumes` init container. `[]` turns this off where a real
    /// CSI driver is installed.
    pub volume_drivers: Vec<String>,
}

/// `requests` and `limits` of the injected containers, as Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceSettings {
    /// Resource name (`cpu`, `memory`, ...) to quantity.
    pub requests: BTreeMap<String, String>,
    /// Resource name to quantity.
    pub limits: BTreeMap<String, String>,
}

/// The user and group the injected containers run as. The rest of their security context is fixed
/// to what the "restricted" Pod Security Standard asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct SecuritySettings {
    /// Numeric user id, never 0.
    pub run_as_user: i64,
    /// Numeric group id.
    pub run_as_group: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            agent_image: DEFAULT_AGENT_IMAGE.into(),
            agent_image_pull_policy: DEFAULT_PULL_POLICY.into(),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.into(),
            allowed_registries: Vec::new(),
            context_aware: true,
            missing_cache_is_error: true,
            resources: ResourceSettings::default(),
            security_context: SecuritySettings::default(),
            sidecar_start_timeout_seconds: crate::agent::DEFAULT_START_TIMEOUT_SECS,
            sidecar_heartbeat_timeout_seconds: crate::agent::DEFAULT_HEARTBEAT_TIMEOUT_SECS,
            volume_drivers: vec![crate::volumes::DEFAULT_DRIVER.to_string()],
        }
    }
}

impl Default for ResourceSettings {
    fn default() -> Self {
        Self {
            requests: BTreeMap::from([
                ("cpu".to_string(), "10m".to_string()),
                ("memory".to_string(), "32Mi".to_string()),
            ]),
            limits: BTreeMap::from([("memory".to_string(), "256Mi".to_string())]),
        }
    }
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            run_as_user: DEFAULT_RUN_AS_USER,
            run_as_group: DEFAULT_RUN_AS_USER,
        }
    }
}

impl Settings {
    /// Checks every field; the message names the setting and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.agent_image.trim().is_empty()
            || self
                .agent_image
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "agentImage {:?} is not an image reference: write e.g. {DEFAULT_AGENT_IMAGE}",
                self.agent_image
            ));
        }
        if !["Always", "IfNotPresent", "Never"].contains(&self.agent_image_pull_policy.as_str()) {
            return Err(format!(
                "agentImagePullPolicy {:?} must be Always, IfNotPresent or Never",
                self.agent_image_pull_policy
            ));
        }
        if !is_dns_subdomain(&self.cluster_domain) {
            return Err(format!(
                "clusterDomain {:?} is not a DNS domain: write e.g. {DEFAULT_CLUSTER_DOMAIN}",
                self.cluster_domain
            ));
        }
        for entry in &self.allowed_registries {
            let (host, port) = split_host_port(entry).map_err(|reason| {
                format!(
                    "allowedRegistries entry {entry:?} is not a registry pattern ({reason}): write host, host:port, host:* or *.domain with the same port forms"
                )
            })?;
            let host = host.strip_prefix("*.").unwrap_or(host);
            let checked = match port {
                Some("*") | None => host.to_string(),
                Some(port) => format!("{host}:{port}"),
            };
            if let Err(reason) = validate_registry(&checked) {
                return Err(format!(
                    "allowedRegistries entry {entry:?} is not a registry pattern ({reason}): write host, host:port, host:* or *.domain with the same port forms"
                ));
            }
        }
        for (kind, map) in [
            ("requests", &self.resources.requests),
            ("limits", &self.resources.limits),
        ] {
            for (name, quantity) in map {
                if name.trim().is_empty() {
                    return Err(format!("resources.{kind} has an empty resource name"));
                }
                if !is_quantity(quantity) {
                    return Err(format!(
                        "resources.{kind}.{name} {quantity:?} is not a Kubernetes quantity: write e.g. 100m or 64Mi"
                    ));
                }
            }
        }
        if self.security_context.run_as_user <= 0 {
            return Err(format!(
                "securityContext.runAsUser {} must be a non-root user id (> 0), e.g. {DEFAULT_RUN_AS_USER}",
                self.security_context.run_as_user
            ));
        }
        if self.security_context.run_as_group < 0 {
            return Err(format!(
                "securityContext.runAsGroup {} must not be negative",
                self.security_context.run_as_group
            ));
        }
        for driver in &self.volume_drivers {
            if !crate::volumes::is_csi_driver_name(driver) {
                return Err(format!(
                    "volumeDrivers entry {driver:?} is not a CSI driver name: write e.g. {}",
                    crate::volumes::DEFAULT_DRIVER
                ));
            }
        }
        if self.sidecar_start_timeout_seconds == 0 || self.sidecar_heartbeat_timeout_seconds == 0 {
            return Err(
                "sidecarStartTimeoutSeconds and sidecarHeartbeatTimeoutSeconds must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }

    /// Whether the `registry` annotation may name `registry` (`host[:port]`), by the rules of
    /// [`Settings::allowed_registries`].
    pub fn registry_allowed(&self, registry: &str) -> bool {
        if self.allowed_registries.is_empty() {
            return true;
        }
        let Ok((name, port)) = split_host_port(registry) else {
            return false;
        };
        let name = name.to_ascii_lowercase();
        self.allowed_registries.iter().any(|entry| {
            // Entries were checked with the settings; one that cannot be read matches nothing.
            let Ok((pattern, pattern_port)) = split_host_port(entry) else {
                return false;
            };
            let port_ok = match pattern_port {
                Some("*") => true,
                Some(p) => port == Some(p),
                None => port.is_none(),
            };
            let pattern = pattern.to_ascii_lowercase();
            let name_ok = match pattern.strip_prefix("*.") {
                Some(domain) => {
                    name.len() > domain.len() + 1 && name.ends_with(&format!(".{domain}"))
                }
                None => name == pattern,
            };
            port_ok && name_ok
        })
    }

    /// The address of a cache when it cannot be read: its Service in the object's namespace.
    pub fn fallback_cache_address(&self, cache: &str, namespace: &str) -> String {
        crate::cache::service_address(
            cache,
            namespace,
            &self.cluster_domain,
            crate::cache::DEFAULT_PORT,
        )
    }
}

/// A Kubernetes quantity: a decimal number with an optional binary, decimal or exponent suffix.
pub fn is_quantity(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let number_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_end);
    let number_ok = !number.is_empty()
        && number != "."
        && number.matches('.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    let suffix_ok = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .map(|exp| exp.strip_prefix(['+', '-']).unwrap_or(exp))
        .is_some_and(|exp| !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit()));
    number_ok && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowed_registry_entry_with_text_after_an_ipv6_address_is_refused() {
        // Before one reader of addresses, "[::1]x" was read as "[::1]" and allowed it.
        let settings: Settings = serde_json::from_value(serde_json::json!({
            "allowedRegistries": ["[::1]x"]
        }))
        .unwrap();
        let err = settings.validate().unwrap_err();
        assert!(err.contains("allowedRegistries entry \"[::1]x\""), "{err}");
        assert!(!settings.registry_allowed("[::1]"));
    }

    #[test]
    fn empty_settings_take_the_defaults_and_are_valid() {
        let s: Settings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.validate(), Ok(()));
        assert!(s.context_aware && s.missing_cache_is_error);
    }

    #[test]
    fn settings_read_camel_case_names() {
        let s: Settings = serde_json::from_value(serde_json::json!({
            "agentImage": "localhost/oras-agent:dev",
            "agentImagePullPolicy": "Never",
            "clusterDomain": "example.internal",
            "allowedRegistries": ["ghcr.io", "*.example.com"],
            "contextAware": false,
            "missingCacheIsError": false,
            "resources": {"requests": {"cpu": "50m"}, "limits": {"memory": "1Gi"}},
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
            "sidecarStartTimeoutSeconds": 60,
            "sidecarHeartbeatTimeoutSeconds": 10
        }))
        .unwrap();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.agent_image, "localhost/oras-agent:dev");
        assert!(!s.context_aware);
        assert_eq!(
            s.fallback_cache_address("c", "ns"),
            "c.ns.svc.example.internal:5000"
        );
    }

    #[test]
    fn unknown_settings_are_refused_by_name() {
        let err = serde_json::from_str::<Settings>(r#"{"agentimage": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("agentimage"));
    }

    #[test]
    fn each_malformed_setting_has_a_message_naming_it() {
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (serde_json::json!({"agentImage": ""}), "agentImage"),
            (
                serde_json::json!({"agentImagePullPolicy": "Sometimes"}),
                "agentImagePullPolicy",
            ),
            (
                serde_json::json!({"clusterDomain": "Not A Domain"}),
                "clusterDomain",
            ),
            (
                serde_json::json!({"allowedRegistries": ["https://x"]}),
                "allowedRegistries",
            ),
            (
                serde_json::json!({"resources": {"limits": {"memory": "lots"}}}),
                "resources.limits.memory",
            ),
            (
                serde_json::json!({"securityContext": {"runAsUser": 0}}),
                "runAsUser",
            ),
            (
                serde_json::json!({"securityContext": {"runAsGroup": -1}}),
                "runAsGroup",
            ),
            (
                serde_json::json!({"sidecarStartTimeoutSeconds": 0}),
                "sidecarStartTimeoutSeconds",
            ),
        ];
        for (json, name) in cases {
            let s: Settings = serde_json::from_value(json.clone()).unwrap();
            let err = s.validate().unwrap_err();
            assert!(err.contains(name), "{json}: {err}");
        }
    }

    #[test]
    fn allowed_registries_match_hosts_and_domains() {
        let s = Settings {
            allowed_registries: vec!["ghcr.io".into(), "*.example.com".into()],
            ..Settings::default()
        };
        assert!(s.registry_allowed("ghcr.io"));
        assert!(s.registry_allowed("GHCR.io"));
        assert!(s.registry_allowed("r.example.com"));
        assert!(!s.registry_allowed("example.com"));
        assert!(!s.registry_allowed("evil-example.com"));
        assert!(!s.registry_allowed("docker.io"));
        assert!(Settings::default().registry_allowed("anything.io"));
    }

    /// The port rule of an entry is explicit: none means no port, `:N` that port, `:*` any.
    #[test]
    fn a_pattern_allows_only_the_ports_it_names() {
        let s = Settings {
            allowed_registries: vec![
                "ghcr.io".into(),
                "*.example.com".into(),
                "*.corp.internal:*".into(),
                "cache.local:5000".into(),
                "[::1]:*".into(),
            ],
            ..Settings::default()
        };
        assert_eq!(s.validate(), Ok(()));
        assert!(!s.registry_allowed("ghcr.io:8443"));
        assert!(!s.registry_allowed("r.example.com:5000"));
        assert!(s.registry_allowed("R.Example.COM"));
        assert!(s.registry_allowed("r.corp.internal:31000"));
        assert!(s.registry_allowed("r.corp.internal"));
        assert!(s.registry_allowed("cache.local:5000"));
        assert!(!s.registry_allowed("cache.local:5001"));
        assert!(!s.registry_allowed("cache.local"));
        assert!(s.registry_allowed("[::1]:5000"));
        for bad in ["*.example.com:port", "ghcr.io:*x", "*", "https://ghcr.io"] {
            let settings = Settings {
                allowed_registries: vec![bad.into()],
                ..Settings::default()
            };
            let error = settings.validate().unwrap_err();
            assert!(error.contains("allowedRegistries"), "{bad}: {error}");
        }
    }

    #[test]
    fn quantities() {
        for ok in ["1", "10m", "0.5", "64Mi", "1Gi", "1e3", "+2", "1.5E-2"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "lots", "1.2.3", "Mi", "1Xi", ".", "1e"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
