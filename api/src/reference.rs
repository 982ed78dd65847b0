//! The OCI reference grammar, written once for the policy, the agent and the controller.
//!
//! A full reference is `<registry>/<repository>[:<tag>][@<digest>]`. As in oras-go
//! (`registry/remote/properties/reference.go`, `NewReference` and `splitRegistry`), everything
//! before the first `/` is the registry, whatever it looks like: `my-registry/team/data:1` names the
//! Service `my-registry`, and nothing is ever read as an implicit `docker.io`. The repository, tag
//! and digest follow the OCI distribution spec's grammar.

use thiserror::Error;

/// What is wrong with `<repository>[:<tag>][@<digest>]`; the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    /// A URL scheme in front of the reference.
    #[error("drop the scheme")]
    Scheme,
    /// Nothing names the repository.
    #[error("the repository is empty")]
    EmptyRepository,
    /// The distribution spec caps repository names.
    #[error("the repository is longer than 255 characters")]
    RepositoryTooLong,
    /// One `/`-separated part of the repository breaks the grammar.
    #[error(
        "repository part {0:?} must be lower-case letters and digits, separated by '.', '_', '__' or '-'"
    )]
    RepositoryPart(String),
    /// The tag breaks the grammar.
    #[error(
        "tag {0:?} must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
    )]
    Tag(String),
    /// The digest is malformed.
    #[error("digest {0:?} must be sha256:<64 lower-case hex digits> or sha512:<128>")]
    Digest(String),
}

/// Why a full reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReferenceError {
    /// No `/`, so no registry.
    #[error(
        "reference {0:?} has no registry host: write host[:port]/repository[:tag], e.g. 127.0.0.1:5000/results:v1"
    )]
    MissingRegistry(String),
    /// The part before the first `/` is not `host[:port]`.
    #[error("reference {reference:?}: registry {registry:?} is not host[:port] ({reason})")]
    InvalidRegistry {
        /// The whole reference.
        reference: String,
        /// The part before the first `/`.
        registry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The part after the registry is wrong.
    #[error("reference {reference:?}: {source}")]
    InvalidPath {
        /// The whole reference.
        reference: String,
        /// What is wrong.
        source: PathError,
    },
}

/// `<repository>[:<tag>][@<digest>]`, checked and split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryReference {
    /// `team/results`.
    pub repository: String,
    /// The tag, if written.
    pub tag: Option<String>,
    /// The digest (`algorithm:encoded`), if written.
    pub digest: Option<String>,
}

/// A full reference, checked and split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactReference {
    /// `host[:port]`, as written.
    pub registry: String,
    /// The rest.
    pub path: RepositoryReference,
}

impl ArtifactReference {
    /// Parses `<registry>/<repository>[:<tag>][@<digest>]`.
    pub fn parse(value: &str) -> Result<Self, ReferenceError> {
        let Some((registry, rest)) = value.split_once('/') else {
            return Err(ReferenceError::MissingRegistry(value.into()));
        };
        if registry.is_empty() {
            return Err(ReferenceError::MissingRegistry(value.into()));
        }
        validate_registry(registry).map_err(|reason| ReferenceError::InvalidRegistry {
            reference: value.into(),
            registry: registry.into(),
            reason,
        })?;
        let path = parse_relative(rest).map_err(|source| ReferenceError::InvalidPath {
            reference: value.into(),
            source,
        })?;
        Ok(Self {
            registry: registry.into(),
            path,
        })
    }
}

/// Written back as parsed: `<repository>[:<tag>][@<digest>]`.
impl std::fmt::Display for RepositoryReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Written back as parsed: `<registry>/<repository>[:<tag>][@<digest>]`.
impl std::fmt::Display for ArtifactReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)
    }
}

/// The full reference of `relative` (`<repository>[:<tag>][@<digest>]`) in `registry`.
pub fn join(registry: &str, relative: &str) -> String {
    format!("{registry}/{relative}")
}

/// Splits and checks a reference relative to a registry: `<repository>[:<tag>][@<digest>]`.
pub fn parse_relative(value: &str) -> Result<RepositoryReference, PathError> {
    if value.contains("://") {
        return Err(PathError::Scheme);
    }
    let (name_tag, digest) = match value.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (value, None),
    };
    // A tag follows the first ':' of the last '/'-separated part.
    let (path, last) = match name_tag.rsplit_once('/') {
        Some((path, last)) => (Some(path), last),
        None => (None, name_tag),
    };
    let (last_name, tag) = match last.split_once(':') {
        Some((name, tag)) => (name, Some(tag)),
        None => (last, None),
    };
    let repository = match path {
        Some(path) => format!("{path}/{last_name}"),
        None => last_name.to_string(),
    };
    if repository.is_empty() {
        return Err(PathError::EmptyRepository);
    }
    if repository.len() > 255 {
        return Err(PathError::RepositoryTooLong);
    }
    if let Some(part) = repository.split('/').find(|c| !is_path_component(c)) {
        return Err(PathError::RepositoryPart(part.into()));
    }
    if let Some(tag) = tag
        && !is_tag(tag)
    {
        return Err(PathError::Tag(tag.into()));
    }
    if let Some(digest) = digest
        && !is_digest(digest)
    {
        return Err(PathError::Digest(digest.into()));
    }
    Ok(RepositoryReference {
        repository,
        tag: tag.map(str::to_string),
        digest: digest.map(str::to_string),
    })
}

/// Checks an artifact reference relative to a registry: `<repository>[:<tag>][@<digest>]`, with
/// the grammar of the OCI distribution spec. The error says what is wrong.
pub fn validate_reference(value: &str) -> Result<(), String> {
    parse_relative(value).map(|_| ()).map_err(|e| e.to_string())
}

/// Splits `host[:port]` at its port: the host (an IPv6 address keeps its brackets) and what
/// follows the `:`, unchecked. The one reading of an address for references, settings and
/// `allowedRegistries` patterns; only text after an IPv6 address's `]` that is not `:port`, or a
/// `[` never closed, is an error here.
pub fn split_host_port(address: &str) -> Result<(&str, Option<&str>), &'static str> {
    if address.starts_with('[') {
        let Some(end) = address.find(']') else {
            return Err("unclosed '[' in an IPv6 address");
        };
        let (host, rest) = address.split_at(end + 1);
        if rest.is_empty() {
            return Ok((host, None));
        }
        return rest
            .strip_prefix(':')
            .map(|port| (host, Some(port)))
            .ok_or("unexpected text after the IPv6 address");
    }
    Ok(match address.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (address, None),
    })
}

/// Checks a `host[:port]` registry address; the error says what is wrong.
pub fn validate_registry(value: &str) -> Result<(), String> {
    if value.contains("://") {
        return Err("drop the scheme".into());
    }
    if value.contains('/') {
        return Err("a registry address has no path".into());
    }
    let (host, port) = split_host_port(value)?;
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ip) if ip.is_empty() || !ip.chars().all(|c| c.is_ascii_hexdigit() || c == ':') => {
            return Err("malformed IPv6 address".into());
        }
        None if !is_hostname(host) => return Err("malformed host name".into()),
        _ => {}
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 && !port.starts_with('+') => {}
            _ => return Err(format!("port {port:?} is not a number from 1 to 65535")),
        }
    }
    Ok(())
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_path_component(s: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*: alternating runs, starting and ending with an alnum run.
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !s.starts_with(alnum) || !s.ends_with(alnum) {
        return false;
    }
    let mut rest = s;
    let mut in_alnum = true;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| alnum(c) != in_alnum)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        let separator_ok = run == "." || run == "_" || run == "__" || run.chars().all(|c| c == '-');
        if !in_alnum && !separator_ok {
            return false;
        }
        rest = tail;
        in_alnum = !in_alnum;
    }
    true
}

fn is_tag(s: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().next().is_some_and(word)
        && s.bytes().all(|b| word(b) || b == b'.' || b == b'-')
}

/// A digest the project can verify: `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`,
/// the two algorithms the OCI image spec registers (`descriptor.md`, "Registered Algorithms").
/// The policy admits no digest the agent could not check.
pub fn is_digest(s: &str) -> bool {
    let Some((algorithm, encoded)) = s.split_once(':') else {
        return false;
    };
    let length = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    encoded.len() == length
        && encoded
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_split_at_its_port_one_way_for_every_reader() {
        assert_eq!(split_host_port("ghcr.io"), Ok(("ghcr.io", None)));
        assert_eq!(split_host_port("h:5000"), Ok(("h", Some("5000"))));
        assert_eq!(split_host_port("*.example:*"), Ok(("*.example", Some("*"))));
        assert_eq!(split_host_port("[::1]"), Ok(("[::1]", None)));
        assert_eq!(split_host_port("[::1]:5000"), Ok(("[::1]", Some("5000"))));
        assert!(split_host_port("[::1]x").is_err());
        assert!(split_host_port("[::1").is_err());
        assert_eq!(
            validate_registry("[::1]x"),
            Err("unexpected text after the IPv6 address".to_string())
        );
        assert_eq!(
            validate_registry("[::1"),
            Err("unclosed '[' in an IPv6 address".to_string())
        );
        assert_eq!(
            validate_registry("[]:5"),
            Err("malformed IPv6 address".to_string())
        );
        assert_eq!(
            validate_registry("a]b:5"),
            Err("malformed host name".to_string())
        );
        assert_eq!(validate_registry("[::1]:5000"), Ok(()));
    }

    #[test]
    fn a_parsed_reference_is_written_back_as_it_was() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for written in [
            "ghcr.io/singularityhub/github-ci:latest".to_string(),
            "127.0.0.1:5000/workflow/summary:step2".to_string(),
            format!("[::1]:5000/a/b@{digest}"),
            format!("registry.example/team/results:v1@{digest}"),
            "host/repo".to_string(),
        ] {
            let parsed = ArtifactReference::parse(&written).unwrap();
            assert_eq!(parsed.to_string(), written);
            assert_eq!(
                ArtifactReference::parse(&parsed.to_string()).unwrap(),
                parsed
            );
        }
    }

    #[test]
    fn the_registry_is_everything_before_the_first_slash() {
        // oras-go `registry/remote/properties/reference.go`: a Service name is a registry.
        let r = ArtifactReference::parse("my-registry/team/data:1").unwrap();
        assert_eq!(r.registry, "my-registry");
        assert_eq!(r.path.repository, "team/data");
        assert_eq!(r.path.tag.as_deref(), Some("1"));
        let r = ArtifactReference::parse("127.0.0.1:5000/a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.path.tag, None);
        assert!(r.path.digest.unwrap().starts_with("sha256:"));
    }

    #[test]
    fn a_full_reference_without_a_registry_says_how_to_write_one() {
        for bad in ["ubuntu:22.04", "/a", ""] {
            let error = ArtifactReference::parse(bad).unwrap_err();
            assert!(matches!(error, ReferenceError::MissingRegistry(_)), "{bad}");
            assert!(error.to_string().contains("host[:port]/repository"));
        }
        assert!(matches!(
            ArtifactReference::parse("bad_host/a"),
            Err(ReferenceError::InvalidRegistry { .. })
        ));
        assert!(matches!(
            ArtifactReference::parse("r.io/a:-x"),
            Err(ReferenceError::InvalidPath {
                source: PathError::Tag(_),
                ..
            })
        ));
    }
}
