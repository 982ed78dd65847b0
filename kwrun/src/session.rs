//! kwctl's host-capability session files (`--record-host-capabilities-interactions` /
//! `--replay-host-capabilities-interactions`).
//!
//! A session is a YAML list of exchanges. Each `request` is itself a YAML document, the
//! serialization of policy-evaluator's `CallbackRequestType` with the variant as a YAML tag
//! (`!KubernetesGetResource`); `response` is `{type: Success, payload}` or `{type: Error, message}`.
//! Replay answers requests strictly in order and refuses a request that differs from the next
//! recorded one, which is what makes a replayed test fail when the policy's lookups change.
//!
//! Every variant of `CallbackRequestType` is read, with its field names and shapes, as
//! policy-evaluator defines it (kubewarden-controller monorepo,
//! `crates/policy-evaluator/src/callback_requests.rs`; the nested Sigstore, certificate and
//! SubjectAccessReview types are kubewarden-policy-sdk's `host_capabilities` ones).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Annotations every signer must have given (`None`: no requirement).
pub type SignatureAnnotations = Option<BTreeMap<String, String>>;

/// A keyless signer (the SDK's `verification::KeylessInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeylessInfo {
    /// OIDC issuer.
    pub issuer: String,
    /// Identity the issuer vouched for.
    pub subject: String,
}

/// A keyless signer matched by URL prefix (the SDK's `verification::KeylessPrefixInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeylessPrefixInfo {
    /// OIDC issuer.
    pub issuer: String,
    /// Prefix of the subject URL.
    pub url_prefix: String,
}

/// How a certificate's bytes are encoded (the SDK's `crypto::CertificateEncoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertificateEncoding {
    /// Binary DER.
    Der,
    /// PEM text.
    Pem,
}

/// A certificate (the SDK's `crypto::Certificate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// Encoding of `data`.
    pub encoding: CertificateEncoding,
    /// The certificate's bytes.
    pub data: Vec<u8>,
}

/// `crypto/v1/is_certificate_trusted`'s request (the SDK's
/// `crypto_v1::CertificateVerificationRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateVerificationRequest {
    /// The certificate to check.
    pub cert: Certificate,
    /// Intermediates first, root last; `None`: the certificate is trusted as is.
    #[serde(default)]
    pub cert_chain: Option<Vec<Certificate>>,
    /// RFC 3339 instant to check expiry against; an empty string means none, as in the SDK.
    #[serde(default, deserialize_with = "empty_string_as_none")]
    pub not_after: Option<String>,
}

fn empty_string_as_none<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.is_empty()))
}

/// What a `can_i` call asks about (the SDK's `kubernetes::ResourceAttributes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceAttributes {
    /// API group.
    #[serde(default)]
    pub group: Option<String>,
    /// Object name.
    #[serde(default)]
    pub name: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Plural resource name.
    pub resource: String,
    /// Subresource.
    #[serde(default)]
    pub subresource: Option<String>,
    /// `get`, `create`, ...
    pub verb: String,
    /// API version.
    #[serde(default)]
    pub version: Option<String>,
}

/// The SubjectAccessReview of a `can_i` call (the SDK's `kubernetes::SubjectAccessReview`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectAccessReview {
    /// Groups of the user.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// The action.
    pub resource_attributes: ResourceAttributes,
    /// The user.
    pub user: String,
}

/// A host-capability request, named and shaped as kwctl's session files name them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallbackRequest {
    /// `oci` / `v1/manifest_digest`.
    OciManifestDigest {
        /// Image reference.
        image: String,
    },
    /// `oci` / `v1/oci_manifest`.
    OciManifest {
        /// Image reference.
        image: String,
    },
    /// `oci` / `v1/oci_manifest_config`.
    OciManifestAndConfig {
        /// Image reference.
        image: String,
    },
    /// `oci` / `v1/verify` or `v2/verify`: signed with one of these public keys.
    SigstorePubKeyVerify {
        /// Image reference.
        image: String,
        /// PEM public keys.
        pub_keys: Vec<String>,
        /// Required signature annotations.
        annotations: SignatureAnnotations,
    },
    /// `oci` / `v1/verify` or `v2/verify`: signed keyless by these identities.
    SigstoreKeylessVerify {
        /// Image reference.
        image: String,
        /// Accepted signers.
        keyless: Vec<KeylessInfo>,
        /// Required signature annotations.
        annotations: SignatureAnnotations,
    },
    /// `oci` / `v2/verify`: signed keyless by identities under these URL prefixes.
    SigstoreKeylessPrefixVerify {
        /// Image reference.
        image: String,
        /// Accepted signers.
        keyless_prefix: Vec<KeylessPrefixInfo>,
        /// Required signature annotations.
        annotations: SignatureAnnotations,
    },
    /// `oci` / `v2/verify`: signed keyless in GitHub Actions.
    SigstoreGithubActionsVerify {
        /// Image reference.
        image: String,
        /// Repository owner.
        owner: String,
        /// Repository.
        #[serde(default)]
        repo: Option<String>,
        /// Required signature annotations.
        annotations: SignatureAnnotations,
    },
    /// `oci` / `v2/verify`: signed with the key of this certificate.
    SigstoreCertificateVerify {
        /// Image reference.
        image: String,
        /// PEM certificate bytes.
        certificate: Vec<u8>,
        /// Chain that vouches for the certificate.
        #[serde(default)]
        certificate_chain: Option<Vec<Vec<u8>>>,
        /// Whether the signature must carry a Rekor bundle.
        require_rekor_bundle: bool,
        /// Required signature annotations.
        annotations: SignatureAnnotations,
    },
    /// `net` / `v1/dns_lookup_host`.
    #[serde(rename = "DNSLookupHost")]
    DnsLookupHost {
        /// Host name.
        host: String,
    },
    /// `kubernetes` / `list_resources_by_namespace`.
    KubernetesListResourceNamespace {
        /// `v1`, `apps/v1`, ...
        api_version: String,
        /// Singular PascalCase kind.
        kind: String,
        /// Namespace to list.
        namespace: String,
        /// Label selector.
        #[serde(default)]
        label_selector: Option<String>,
        /// Field selector.
        #[serde(default)]
        field_selector: Option<String>,
        /// Fields to keep (absent in older session files).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field_masks: Option<BTreeSet<String>>,
    },
    /// `kubernetes` / `list_resources_all`.
    KubernetesListResourceAll {
        /// `v1`, `apps/v1`, ...
        api_version: String,
        /// Singular PascalCase kind.
        kind: String,
        /// Label selector.
        #[serde(default)]
        label_selector: Option<String>,
        /// Field selector.
        #[serde(default)]
        field_selector: Option<String>,
        /// Fields to keep (absent in older session files).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field_masks: Option<BTreeSet<String>>,
    },
    /// `kubernetes` / `get_resource`.
    KubernetesGetResource {
        /// `v1`, `apps/v1`, ...
        api_version: String,
        /// Singular PascalCase kind.
        kind: String,
        /// Object name.
        name: String,
        /// Namespace, `None` for cluster-scoped kinds.
        #[serde(default)]
        namespace: Option<String>,
        /// Bypass the host's 5 s cache.
        #[serde(default)]
        disable_cache: bool,
        /// Fields to keep (absent in older session files).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field_masks: Option<BTreeSet<String>>,
    },
    /// The plural name of a kind (`v1/Service` -> `services`). Not a waPC call: policy-evaluator
    /// sends it for Rego policies' context.
    KubernetesGetResourcePluralName {
        /// `v1`, `apps/v1`, ...
        api_version: String,
        /// Singular PascalCase kind.
        kind: String,
    },
    /// Whether a `list_resources_all` answer changed since an instant. Not a waPC call:
    /// policy-evaluator sends it for Rego policies' context.
    HasKubernetesListResourceAllResultChangedSinceInstant {
        /// `v1`, `apps/v1`, ...
        api_version: String,
        /// Singular PascalCase kind.
        kind: String,
        /// Label selector.
        #[serde(default)]
        label_selector: Option<String>,
        /// Field selector.
        #[serde(default)]
        field_selector: Option<String>,
        /// Fields to keep (absent in older session files).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field_masks: Option<BTreeSet<String>>,
        /// The instant, as kwctl writes it: its age when recorded (`{secs, nanos}`).
        since: Duration,
    },
    /// `kubernetes` / `can_i`.
    KubernetesCanI {
        /// The SubjectAccessReview to submit.
        request: SubjectAccessReview,
        /// Bypass the host's cache.
        #[serde(default)]
        disable_cache: bool,
    },
    /// `crypto` / `v1/is_certificate_trusted`.
    CryptoIsCertificateTrusted {
        /// The certificate and its chain.
        request: CertificateVerificationRequest,
    },
}

/// The answer recorded for a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RecordedResponse {
    /// The host answered; `payload` is the UTF-8 JSON given to the guest.
    Success {
        /// JSON text.
        payload: String,
    },
    /// The host failed with this message.
    Error {
        /// Error text given to the guest.
        message: String,
    },
}

/// One request and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "Exchange")]
pub struct Exchange {
    /// YAML of a tagged [`CallbackRequest`].
    pub request: String,
    /// What the host answered.
    pub response: RecordedResponse,
}

/// Errors of session files.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The file cannot be read or written.
    #[error("cannot access the host capabilities session file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a list of exchanges.
    #[error(
        "{path} is not a kwctl session file (a YAML list of `type: Exchange` items with `request` and `response`): {source}"
    )]
    Format {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: serde_yaml::Error,
    },
    /// An item's `request` is not a known tagged request.
    #[error(
        "exchange #{index} of {path}: `request` is not a tagged host capability request such as `!KubernetesGetResource` or `!OciManifestAndConfig`: {source}"
    )]
    Request {
        /// The file.
        path: String,
        /// 1-based position.
        index: usize,
        /// Why.
        #[source]
        source: serde_yaml::Error,
    },
}

impl CallbackRequest {
    /// The YAML text kwctl stores in an exchange's `request`.
    pub fn to_session_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_else(|e| format!("unserializable request: {e}"))
    }
}

/// Replays a recorded session, in order.
#[derive(Debug, Default)]
pub struct Replay {
    exchanges: Vec<(CallbackRequest, RecordedResponse)>,
    next: usize,
}

impl Replay {
    /// Reads and checks a session file.
    pub fn from_file(path: &Path) -> Result<Self, SessionError> {
        let text = std::fs::read_to_string(path).map_err(|source| SessionError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parses session YAML; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, SessionError> {
        let items: Vec<Exchange> =
            serde_yaml::from_str(text).map_err(|source| SessionError::Format {
                path: origin.to_owned(),
                source,
            })?;
        let exchanges = items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                serde_yaml::from_str::<CallbackRequest>(&item.request)
                    .map(|request| (request, item.response))
                    .map_err(|source| SessionError::Request {
                        path: origin.to_owned(),
                        index: index + 1,
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Replay { exchanges, next: 0 })
    }

    /// The answer to `request`: the next recorded exchange, which must be for the same request.
    pub fn answer(&mut self, request: &CallbackRequest) -> Result<Vec<u8>, String> {
        let Some((expected, response)) = self.exchanges.get(self.next).cloned() else {
            return Err("the list of recorded responses is empty".to_owned());
        };
        self.next += 1;
        if &expected != request {
            return Err(format!(
                "Replay error: unexpected request. Was expecting {expected:?}, got {request:?} instead"
            ));
        }
        match response {
            RecordedResponse::Success { payload } => Ok(payload.into_bytes()),
            RecordedResponse::Error { message } => Err(message),
        }
    }

    /// Exchanges that were never asked for (kwctl only warns about them).
    pub fn leftovers(&self) -> usize {
        self.exchanges.len() - self.next
    }

    /// Starts the session over, so that every evaluation of a benchmark sees the same answers.
    pub fn rewind(&mut self) {
        self.next = 0;
    }
}

/// Records exchanges into a session file in kwctl's format.
#[derive(Debug, Default)]
pub struct Recorder {
    exchanges: Vec<Exchange>,
}

impl Recorder {
    /// Adds an exchange.
    pub fn record(&mut self, request: &CallbackRequest, answer: &Result<Vec<u8>, String>) {
        let response = match answer {
            Ok(bytes) => RecordedResponse::Success {
                payload: String::from_utf8_lossy(bytes).into_owned(),
            },
            Err(message) => RecordedResponse::Error {
                message: message.clone(),
            },
        };
        self.exchanges.push(Exchange {
            request: request.to_session_yaml(),
            response,
        });
    }

    /// The session YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(&self.exchanges).unwrap_or_default()
    }

    /// Writes the session file.
    pub fn write(&self, path: &Path) -> Result<(), SessionError> {
        std::fs::write(path, self.to_yaml()).map_err(|source| SessionError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

/// Builds a session's YAML from requests and JSON answers (for fixtures written by tests).
pub fn session_yaml(exchanges: &[(CallbackRequest, Result<Value, String>)]) -> String {
    let mut recorder = Recorder::default();
    for (request, answer) in exchanges {
        let answer = answer
            .as_ref()
            .map(|value| value.to_string().into_bytes())
            .map_err(Clone::clone);
        recorder.record(request, &answer);
    }
    recorder.to_yaml()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KWCTL_SESSION: &str = r#"---
- type: Exchange
  request: "!KubernetesGetResource\napi_version: v1\nkind: Namespace\nname: x\nnamespace: null\ndisable_cache: false\n"
  response:
    type: Success
    payload: '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}}'
- type: Exchange
  request: "!OciManifestAndConfig\nimage: busybox:1.36\n"
  response:
    type: Error
    message: "manifest unknown"
"#;

    fn namespace_x() -> CallbackRequest {
        CallbackRequest::KubernetesGetResource {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            name: "x".into(),
            namespace: None,
            disable_cache: false,
            field_masks: None,
        }
    }

    #[test]
    fn a_kwctl_session_replays_in_order() {
        let mut replay = Replay::from_yaml(KWCTL_SESSION, "test").unwrap();
        let answer = replay.answer(&namespace_x()).unwrap();
        assert!(String::from_utf8(answer).unwrap().contains("Namespace"));
        let err = replay
            .answer(&CallbackRequest::OciManifestAndConfig {
                image: "busybox:1.36".into(),
            })
            .unwrap_err();
        assert_eq!(err, "manifest unknown");
        assert_eq!(
            replay.answer(&namespace_x()).unwrap_err(),
            "the list of recorded responses is empty"
        );
    }

    #[test]
    fn a_request_other_than_the_recorded_one_is_a_replay_error() {
        let mut replay = Replay::from_yaml(KWCTL_SESSION, "test").unwrap();
        let err = replay
            .answer(&CallbackRequest::OciManifest {
                image: "busybox".into(),
            })
            .unwrap_err();
        assert!(err.starts_with("Replay error: unexpected request"), "{err}");
        assert_eq!(replay.leftovers(), 1);
    }

    #[test]
    fn requests_are_written_with_the_variant_as_yaml_tag() {
        let yaml = namespace_x().to_session_yaml();
        assert!(yaml.starts_with("!KubernetesGetResource\n"), "{yaml}");
        assert!(yaml.contains("api_version: v1"), "{yaml}");
        assert!(!yaml.contains("field_masks"), "{yaml}");
        let dns = CallbackRequest::DnsLookupHost { host: "a".into() }.to_session_yaml();
        assert!(dns.starts_with("!DNSLookupHost"), "{dns}");
    }

    #[test]
    fn a_recorded_session_replays() {
        let yaml = session_yaml(&[
            (namespace_x(), Ok(serde_json::json!({"kind": "Namespace"}))),
            (namespace_x(), Err("not found".into())),
        ]);
        assert!(yaml.contains("type: Exchange"), "{yaml}");
        let mut replay = Replay::from_yaml(&yaml, "recorded").unwrap();
        assert_eq!(
            replay.answer(&namespace_x()).unwrap(),
            br#"{"kind":"Namespace"}"#
        );
        assert_eq!(replay.answer(&namespace_x()).unwrap_err(), "not found");
        replay.rewind();
        assert_eq!(replay.leftovers(), 2);
        assert!(replay.answer(&namespace_x()).is_ok());
    }

    #[test]
    fn a_malformed_session_names_the_item_and_the_expected_shape() {
        let err = Replay::from_yaml("- type: Exchange\n  request: \"!Nope\\na: 1\"\n  response: {type: Error, message: m}\n", "s.yml")
            .unwrap_err();
        assert!(err.to_string().contains("exchange #1 of s.yml"), "{err}");
        let err = Replay::from_yaml("{a: 1}", "s.yml").unwrap_err();
        assert!(err.to_string().contains("kwctl session file"), "{err}");
    }
}
