//! Artifact references: `host[:port]/repository[:tag|@digest]`.

use crate::digest::Digest;
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
    /// The repository path breaks the distribution grammar.
    #[error(
        "reference {reference:?}: repository {repository:?} is invalid: use lowercase letters, digits and single '.', '_', '__' or '-' separators between '/'-separated parts"
    )]
    InvalidRepository {
        /// The whole reference.
        reference: String,
        /// The offending repository.
        repository: String,
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
        source: crate::digest::InvalidDigest,
    },
}

impl Reference {
    /// Parses `host[:port]/repository[:tag][@digest]`.
    pub fn parse(value: &str) -> Result<Reference, ReferenceError> {
        let (registry, rest) = value
            .split_once('/')
            .ok_or_else(|| ReferenceError::MissingRegistry(value.into()))?;
        if !looks_like_host(registry) {
            return Err(ReferenceError::MissingRegistry(value.into()));
        }
        let (name_and_tag, digest) = match rest.split_once('@') {
            Some((name, digest)) => {
                let digest =
                    Digest::parse(digest).map_err(|source| ReferenceError::InvalidDigest {
                        reference: value.into(),
                        source,
                    })?;
                (name, Some(digest))
            }
            None => (rest, None),
        };
        // A ':' after the last '/' separates the tag; one before it would be a port, and the
        // host was already split off.
        let last_slash = name_and_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (repository, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
            }
            None => (name_and_tag, None),
        };
        if !valid_repository(repository) {
            return Err(ReferenceError::InvalidRepository {
                reference: value.into(),
                repository: repository.into(),
            });
        }
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(ReferenceError::InvalidTag {
                reference: value.into(),
                tag: tag.into(),
            });
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry: registry.into(),
            repository: repository.into(),
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

fn looks_like_host(host: &str) -> bool {
    let valid_chars = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    valid_chars && (host.contains('.') || host.contains(':') || host == "localhost")
}

fn valid_repository(repository: &str) -> bool {
    !repository.is_empty() && repository.len() <= 255 && repository.split('/').all(valid_component)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
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
        assert!(matches!(
            Reference::parse("library/ubuntu"),
            Err(ReferenceError::MissingRegistry(_))
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
