//! Artifact references: `host[:port]/repository[:tag|@digest]`.

use crate::digest::{Digest, InvalidDigest};
use std::fmt;
use std::str::FromStr;

/// Tag used when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed reference. The registry host is mandatory: the agent never guesses `docker.io`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host[:port]`, e.g. `127.0.0.1:5000` or `ghcr.io`.
    pub registry: String,
    /// Repository path, e.g. `team/results`.
    pub repository: String,
    /// Tag, if the reference has one (`latest` when it names neither tag nor digest).
    pub tag: Option<String>,
    /// Digest, if the reference pins one.
    pub digest: Option<Digest>,
}

/// Why a reference was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// Nothing before the first `/` looks like a registry host.
    #[error(
        "reference {0:?} has no registry host: write host[:port]/repository[:tag], e.g. 127.0.0.1:5000/results:v1"
    )]
    MissingRegistry(String),
    /// The part before the first `/` is not `host[:port]`.
    #[error(
        "reference {reference:?}: registry {registry:?} is not host[:port] ({reason}): write host[:port]/repository[:tag], e.g. 127.0.0.1:5000/results:v1"
    )]
    InvalidRegistry {
        /// The whole reference.
        reference: String,
        /// The part before the first `/`.
        registry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The repository path breaks the distribution grammar.
    #[error("reference {reference:?}: {reason}")]
    InvalidRepository {
        /// The whole reference.
        reference: String,
        /// What is wrong, naming the part.
        reason: String,
    },

    /// The tag breaks the distribution grammar.
    #[error(
        "reference {reference:?}: tag {tag:?} is invalid: a tag is 1-128 letters, digits, '_', '.' or '-' and does not start with '.' or '-'"
    )]
    InvalidTag {
        /// The whole reference.
        reference: String,
        /// The offending tag.
        tag: String,
    },
    /// The digest is malformed.
    #[error("reference {reference:?}: {source}")]
    InvalidDigest {
        /// The whole reference.
        reference: String,
        /// What is wrong with it.
        source: InvalidDigest,
    },
}

impl Reference {
    /// Parses `host[:port]/repository[:tag][@digest]` with the contract's grammar
    /// ([`oras_cache_api::reference`]): everything before the first `/` is the registry, as in
    /// oras, so the references the policy writes always parse to the parts it meant.
    pub fn parse(value: &str) -> Result<Reference, ReferenceError> {
        use oras_cache_api::reference::{
            ArtifactReference, PathError, ReferenceError as ContractError,
        };
        let parsed = ArtifactReference::parse(value).map_err(|error| match error {
            ContractError::MissingRegistry(_) => ReferenceError::MissingRegistry(value.into()),
            ContractError::InvalidRegistry {
                registry, reason, ..
            } => ReferenceError::InvalidRegistry {
                reference: value.into(),
                registry,
                reason,
            },
            ContractError::InvalidPath {
                source: PathError::Tag(tag),
                ..
            } => ReferenceError::InvalidTag {
                reference: value.into(),
                tag,
            },
            ContractError::InvalidPath {
                source: PathError::Digest(digest),
                ..
            } => ReferenceError::InvalidDigest {
                reference: value.into(),
                source: InvalidDigest(digest),
            },
            ContractError::InvalidPath { source, .. } => ReferenceError::InvalidRepository {
                reference: value.into(),
                reason: source.to_string(),
            },
        })?;
        let digest = match &parsed.path.digest {
            Some(digest) => {
                Some(
                    Digest::parse(digest).map_err(|source| ReferenceError::InvalidDigest {
                        reference: value.into(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let tag = match (parsed.path.tag, &digest) {
            (Some(tag), _) => Some(tag),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry: parsed.registry,
            repository: parsed.path.repository,
            tag,
            digest,
        })
    }

    /// What goes after `/manifests/` when fetching: the digest when pinned, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => DEFAULT_TAG.into(),
        }
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.into()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository pinned to a digest (and no tag).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_nested_repository_and_tag() {
        let r = Reference::parse("127.0.0.1:5000/team/results:v1.2").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/results");
        assert_eq!(r.tag.as_deref(), Some("v1.2"));
        assert_eq!(r.digest, None);
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/results:v1.2");
    }

    #[test]
    fn a_missing_tag_means_latest_and_a_digest_pins() {
        let r = Reference::parse("ghcr.io/a/b").unwrap();
        assert_eq!(r.manifest_reference(), "latest");
        let digest = format!("sha256:{}", "0".repeat(64));
        let r = Reference::parse(&format!("localhost/a@{digest}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_reference(), digest);
        let r = Reference::parse(&format!("localhost:1/a:t@{digest}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("t"));
        assert_eq!(r.manifest_reference(), digest);
    }

    #[test]
    fn bad_references_name_the_part_to_fix() {
        assert!(matches!(
            Reference::parse("ubuntu:22.04"),
            Err(ReferenceError::MissingRegistry(_))
        ));
        // As in oras-go (`registry/remote/properties/reference.go`, `splitRegistry`), the part
        // before the first '/' is the registry: `library/ubuntu` names a registry "library",
        // never an implicit docker.io; a Kubernetes Service name works as a registry.
        let r = Reference::parse("my-registry/ubuntu:22.04").unwrap();
        assert_eq!(r.registry, "my-registry");
        assert!(matches!(
            Reference::parse("bad_host/ubuntu"),
            Err(ReferenceError::InvalidRegistry { .. })
        ));
        assert!(matches!(
            Reference::parse("r.io/Upper/x"),
            Err(ReferenceError::InvalidRepository { .. })
        ));
        assert!(matches!(
            Reference::parse("r.io/a/../b"),
            Err(ReferenceError::InvalidRepository { .. })
        ));
        assert!(matches!(
            Reference::parse("r.io/a:-bad"),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert!(matches!(
            Reference::parse("r.io/a@sha256:xyz"),
            Err(ReferenceError::InvalidDigest { .. })
        ));
        let message = Reference::parse("ubuntu").unwrap_err().to_string();
        assert!(message.contains("host[:port]/repository"), "{message}");
    }
}
