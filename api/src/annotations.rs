//! The annotation contract: the keys a user writes on a Pod or a Job, how they are read, and the
//! typed request they validate into.
//!
//! Every key lives under [`PREFIX`]. The keys of the original oras-operator keep their meaning;
//! the new ones ([`PLAIN_HTTP`], [`PUSH_ON_FAILURE`], [`INJECTED`]) are documented in the README's
//! annotation table. Reading happens in two steps, so that the policy can report every problem
//! with a message naming the key and the fix:
//!
//! 1. [`OrasAnnotations::collect`] sorts the prefixed keys into known fields, the ordered list of
//!    inputs, ignored keys and unknown keys. It never fails.
//! 2. [`OrasAnnotations::validate`] checks the values and gives an [`InjectionRequest`], or the
//!    first [`AnnotationError`] found.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use thiserror::Error;

use crate::reference::{validate_reference, validate_registry};

/// The prefix of every key, slash included.
pub const PREFIX: &str = "oras.converged-computing.github.io/";

/// Field: name of the `OrasCache` in the object's namespace whose registry is used.
pub const ORAS_CACHE: &str = "oras-cache";
/// Field: an artifact to pull before the step runs; `input-uri_<suffix>` adds more.
pub const INPUT_URI: &str = "input-uri";
/// Field: the artifact to push after the step ends.
pub const OUTPUT_URI: &str = "output-uri";
/// Field: where the inputs are placed (default: the working directory).
pub const INPUT_PATH: &str = "input-path";
/// Field: the file or directory pushed as the output.
pub const OUTPUT_PATH: &str = "output-path";
/// Field: a file the step's stdout is copied to (pushed when there is no `output-path`).
pub const OUTPUT_PIPE: &str = "output-pipe";
/// Field: a remote registry `host[:port]` used instead of the cache.
pub const REGISTRY: &str = "registry";
/// Field (new): `"true"` when the `registry` speaks plain HTTP instead of TLS.
pub const PLAIN_HTTP: &str = "plain-http";
/// Field: name of a Secret with registry credentials, given to the agent containers only.
pub const ORAS_ENV: &str = "oras-env";
/// Field: image of the agent containers of this object, instead of the policy's `agentImage`.
pub const ORAS_CONTAINER: &str = "oras-container";
/// Field: name of the container to wrap when the pod has several.
pub const CONTAINER: &str = "container";
/// Field: `"false"` keeps directory layers of the inputs packed (default `"true"`).
pub const UNPACK: &str = "unpack";
/// Field: `"true"` makes the agent log every step.
pub const DEBUG: &str = "debug";
/// Field (new): `"true"` pushes the outputs even when the step failed.
pub const PUSH_ON_FAILURE: &str = "push-on-failure";
/// Field of the original that pointed at a downloaded wrapper script; ignored with a warning.
pub const ENTRYPOINT: &str = "entrypoint";
/// Field of the original that pointed at a downloaded sidecar script; ignored with a warning.
pub const ORAS_ENTRYPOINT: &str = "oras-entrypoint";

/// The full key the policy writes on every object it injected (and on a Job's pod template), so
/// that a second evaluation, or a Pod made from an injected template, is left alone.
pub const INJECTED: &str = "oras.converged-computing.github.io/injected";
/// Key (new): the largest uncompressed size of one directory layer of the inputs, raising or
/// lowering the agent's default (`--max-unpacked-size`).
pub const MAX_UNPACKED_SIZE: &str = "max-unpacked-size";
/// The value written under [`INJECTED`].
pub const INJECTED_VALUE: &str = "true";

/// The separator between `input-uri` and the suffix of its list form.
const LIST_SEPARATOR: char = '_';

/// Fields whose value is a single string: every key but the `input-uri_<suffix>` list form, the
/// ignored script keys and the marker. The README's annotation table documents each.
pub const SINGLE_FIELDS: [&str; 15] = [
    ORAS_CACHE,
    INPUT_URI,
    OUTPUT_URI,
    INPUT_PATH,
    OUTPUT_PATH,
    OUTPUT_PIPE,
    REGISTRY,
    PLAIN_HTTP,
    ORAS_ENV,
    ORAS_CONTAINER,
    CONTAINER,
    UNPACK,
    DEBUG,
    PUSH_ON_FAILURE,
    MAX_UNPACKED_SIZE,
];

/// The full annotation key of a field.
pub fn key(field: &str) -> String {
    format!("{PREFIX}{field}")
}

/// A problem with the annotations that makes the request unusable. The message names the key and
/// says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AnnotationError {
    /// A known key with an empty value.
    #[error("annotation {key} is empty: give it a value or remove it")]
    Empty {
        /// The full key.
        key: String,
    },
    /// Neither a cache nor a registry says where the artifacts live.
    #[error(
        "annotation {PREFIX}{ORAS_CACHE} is missing: name the OrasCache of this namespace, or set {PREFIX}{REGISTRY} to a remote registry host[:port]"
    )]
    MissingTarget,
    /// A boolean key with a value other than `true`/`false`.
    #[error("annotation {key} must be \"true\" or \"false\", not {value:?}")]
    InvalidBool {
        /// The full key.
        key: String,
        /// The value found.
        value: String,
    },
    /// An artifact reference that does not parse.
    #[error(
        "annotation {key}: {value:?} is not a valid artifact reference ({reason}); write <repository>[:<tag>][@<digest>] relative to the registry, e.g. dinosaur/hello-world:latest"
    )]
    InvalidReference {
        /// The full key.
        key: String,
        /// The value found.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A registry address that does not parse.
    #[error(
        "annotation {key}: {value:?} is not a registry address ({reason}); write host[:port], e.g. ghcr.io or registry.example.com:5000"
    )]
    InvalidRegistry {
        /// The full key.
        key: String,
        /// The value found.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A Kubernetes object name (cache, secret, container) that Kubernetes would refuse.
    #[error(
        "annotation {key}: {value:?} is not a valid {what} name: use lower-case letters, digits and '-', starting and ending with a letter or digit"
    )]
    InvalidName {
        /// The full key.
        key: String,
        /// The value found.
        value: String,
        /// What the name names.
        what: &'static str,
    },
    /// An image reference with characters no image reference has.
    #[error(
        "annotation {key}: {value:?} is not an image reference: write e.g. ghcr.io/org/oras-agent:v1"
    )]
    InvalidImage {
        /// The full key.
        key: String,
        /// The value found.
        value: String,
    },
    /// A path containing a character no path may contain.
    #[error("annotation {key}: {value:?} is not a usable path: remove control characters")]
    InvalidPath {
        /// The full key.
        key: String,
        /// The value found.
        value: String,
    },
    /// A path that would read as a command-line flag, or that names the agent's share or the
    /// whole filesystem.
    #[error("annotation {key}: {value:?} {reason}")]
    UnsafePath {
        /// The full key.
        key: String,
        /// The value found.
        value: String,
        /// Why, and the fix.
        reason: String,
    },
    /// A size that does not parse.
    #[error("annotation {key}: {reason}")]
    InvalidSize {
        /// The full key.
        key: String,
        /// What is wrong, and the forms that parse.
        reason: String,
    },
    /// `input-uri_` with nothing after the separator.
    #[error(
        "annotation {key} has an empty suffix: write {PREFIX}{INPUT_URI}_<suffix>, e.g. {PREFIX}{INPUT_URI}_2"
    )]
    EmptyInputSuffix {
        /// The full key.
        key: String,
    },
    /// An output to push with nothing to push.
    #[error(
        "annotation {PREFIX}{OUTPUT_URI} is set but neither {PREFIX}{OUTPUT_PATH} nor {PREFIX}{OUTPUT_PIPE} is: name the file or directory to push"
    )]
    OutputWithoutPath,
}

/// The prefixed annotations of one object, sorted by meaning. Built by
/// [`OrasAnnotations::collect`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrasAnnotations {
    /// Known single-valued fields (by field name, without prefix) and their raw values.
    pub fields: BTreeMap<String, String>,
    /// `input-uri` and `input-uri_<suffix>`: (full key, value), the plain key first, then the
    /// suffixes in natural order.
    pub inputs: Vec<(String, String)>,
    /// Full keys of the original's script URLs, accepted and ignored.
    pub ignored: Vec<String>,
    /// Full keys under the prefix that mean nothing to this project.
    pub unknown: Vec<String>,
    /// The object carries the [`INJECTED`] marker.
    pub injected: bool,
}

/// Where the artifacts of a request live, as the annotations say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrySource {
    /// The `OrasCache` of this name in the object's namespace.
    Cache(String),
    /// A remote registry named by the `registry` annotation.
    Remote {
        /// `host[:port]`.
        host: String,
        /// Speak plain HTTP (the `plain-http` annotation); TLS otherwise.
        plain_http: bool,
    },
}

/// The validated meaning of an object's annotations: what the policy injects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectionRequest {
    /// Where the artifacts live.
    pub source: RegistrySource,
    /// Artifact references relative to the registry, in pull order.
    pub inputs: Vec<String>,
    /// Artifact reference relative to the registry to push to.
    pub output_uri: Option<String>,
    /// Where the inputs are placed; `None` means the working directory.
    pub input_path: Option<String>,
    /// The file or directory to push.
    pub output_path: Option<String>,
    /// The file the step's stdout is copied to.
    pub output_pipe: Option<String>,
    /// Secret with registry credentials for the agent containers.
    pub oras_env: Option<String>,
    /// Image of the agent containers, overriding the policy setting.
    pub agent_image: Option<String>,
    /// Name of the container to wrap.
    pub container: Option<String>,
    /// Unpack directory layers of the inputs.
    pub unpack: bool,
    /// Verbose agent logs.
    pub debug: bool,
    /// Push the outputs even when the step failed.
    pub push_on_failure: bool,
    /// Largest uncompressed size in bytes of one directory layer of the inputs; `None` keeps the
    /// agent's default.
    pub max_unpacked_size: Option<u64>,
    /// Things the user should know that do not stop the injection.
    pub warnings: Vec<String>,
}

impl InjectionRequest {
    /// What the launcher packs after the run: `output-path`, else `output-pipe`; nothing when there
    /// is no `output-uri`.
    pub fn packed_path(&self) -> Option<&str> {
        self.output_uri.as_ref()?;
        self.output_path.as_deref().or(self.output_pipe.as_deref())
    }

    /// Whether there is anything to pull or to push.
    pub fn has_work(&self) -> bool {
        !self.inputs.is_empty() || self.output_uri.is_some()
    }
}

impl OrasAnnotations {
    /// Sorts the prefixed keys of `annotations`; keys without the prefix are skipped.
    pub fn collect<'a, I>(annotations: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut collected = Self::default();
        let mut inputs: Vec<(InputOrder, String, String)> = Vec::new();
        for (full_key, value) in annotations {
            let Some(field) = full_key.strip_prefix(PREFIX) else {
                continue;
            };
            if full_key == INJECTED {
                collected.injected = true;
            } else if field == INPUT_URI {
                inputs.push((InputOrder::Plain, full_key.to_string(), value.to_string()));
            } else if let Some(suffix) = field
                .strip_prefix(INPUT_URI)
                .and_then(|rest| rest.strip_prefix(LIST_SEPARATOR))
            {
                inputs.push((
                    InputOrder::Suffix(suffix.to_string()),
                    full_key.to_string(),
                    value.to_string(),
                ));
            } else if SINGLE_FIELDS.contains(&field) {
                collected
                    .fields
                    .insert(field.to_string(), value.to_string());
            } else if field == ENTRYPOINT || field == ORAS_ENTRYPOINT {
                collected.ignored.push(full_key.to_string());
            } else {
                collected.unknown.push(full_key.to_string());
            }
        }
        inputs.sort_by(|a, b| a.0.cmp(&b.0));
        collected.inputs = inputs.into_iter().map(|(_, k, v)| (k, v)).collect();
        collected.ignored.sort();
        collected.unknown.sort();
        collected
    }

    /// Whether any key asks for the agent (ignored and unknown keys do not).
    pub fn is_marked(&self) -> bool {
        !self.fields.is_empty() || !self.inputs.is_empty()
    }

    /// Warnings for keys that are accepted but have no effect.
    pub fn key_warnings(&self) -> Vec<String> {
        let mut warnings: Vec<String> = self
            .ignored
            .iter()
            .map(|k| {
                format!("annotation {k} is ignored: the oras-agent replaces the original's downloaded scripts")
            })
            .collect();
        warnings.extend(self.unknown.iter().map(|k| {
            format!("annotation {k} is not known to oras-cache and is ignored (see the README's annotation table)")
        }));
        warnings
    }

    fn value(&self, field: &str) -> Result<Option<&str>, AnnotationError> {
        match self.fields.get(field) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Err(AnnotationError::Empty { key: key(field) }),
            Some(v) => Ok(Some(v.as_str())),
        }
    }

    fn flag(&self, field: &str, default: bool) -> Result<bool, AnnotationError> {
        match self.value(field)? {
            None => Ok(default),
            Some(v) => parse_bool(v).ok_or_else(|| AnnotationError::InvalidBool {
                key: key(field),
                value: v.to_string(),
            }),
        }
    }

    fn path(&self, field: &str) -> Result<Option<String>, AnnotationError> {
        match self.value(field)? {
            None => Ok(None),
            Some(v) if v.chars().any(char::is_control) => Err(AnnotationError::InvalidPath {
                key: key(field),
                value: v.to_string(),
            }),
            Some(v) => match check_path(v) {
                Ok(()) => Ok(Some(v.to_string())),
                Err(reason) => Err(AnnotationError::UnsafePath {
                    key: key(field),
                    value: v.to_string(),
                    reason,
                }),
            },
        }
    }

    fn name(&self, field: &str, what: &'static str) -> Result<Option<String>, AnnotationError> {
        match self.value(field)? {
            None => Ok(None),
            Some(v) if !is_dns_subdomain(v) => Err(AnnotationError::InvalidName {
                key: key(field),
                value: v.to_string(),
                what,
            }),
            Some(v) => Ok(Some(v.to_string())),
        }
    }

    /// Checks every value and builds the request. The first problem found is returned.
    pub fn validate(&self) -> Result<InjectionRequest, AnnotationError> {
        let mut warnings = self.key_warnings();

        let cache = self.value(ORAS_CACHE)?;
        if let Some(name) = cache
            && !is_dns_label(name)
        {
            return Err(AnnotationError::InvalidName {
                key: key(ORAS_CACHE),
                value: name.to_string(),
                what: "OrasCache",
            });
        }
        let registry = self.value(REGISTRY)?;
        let plain_http = self.flag(PLAIN_HTTP, false)?;
        let source = match (registry, cache) {
            (Some(host), _) => {
                validate_registry(host).map_err(|reason| AnnotationError::InvalidRegistry {
                    key: key(REGISTRY),
                    value: host.to_string(),
                    reason,
                })?;
                if cache.is_some() {
                    warnings.push(format!(
                        "annotation {} is ignored because {} is set",
                        key(ORAS_CACHE),
                        key(REGISTRY)
                    ));
                }
                RegistrySource::Remote {
                    // Host names compare without case (RFC 4343); one spelling keeps the
                    // allow-list, the docker config lookup and the written references in step.
                    host: host.to_ascii_lowercase(),
                    plain_http,
                }
            }
            (None, Some(name)) => {
                if self.fields.contains_key(PLAIN_HTTP) {
                    warnings.push(format!(
                        "annotation {} only applies to {}; an OrasCache reports its own transport",
                        key(PLAIN_HTTP),
                        key(REGISTRY)
                    ));
                }
                RegistrySource::Cache(name.to_string())
            }
            (None, None) => return Err(AnnotationError::MissingTarget),
        };

        let mut inputs = Vec::with_capacity(self.inputs.len());
        for (full_key, value) in &self.inputs {
            if full_key.len() == PREFIX.len() + INPUT_URI.len() + 1 {
                return Err(AnnotationError::EmptyInputSuffix {
                    key: full_key.clone(),
                });
            }
            if value.trim().is_empty() {
                return Err(AnnotationError::Empty {
                    key: full_key.clone(),
                });
            }
            validate_reference(value).map_err(|reason| AnnotationError::InvalidReference {
                key: full_key.clone(),
                value: value.clone(),
                reason,
            })?;
            inputs.push(value.clone());
        }

        let output_uri = self.value(OUTPUT_URI)?.map(str::to_string);
        if let Some(uri) = &output_uri {
            validate_reference(uri).map_err(|reason| AnnotationError::InvalidReference {
                key: key(OUTPUT_URI),
                value: uri.clone(),
                reason,
            })?;
        }
        let input_path = self.path(INPUT_PATH)?;
        let output_path = self.path(OUTPUT_PATH)?;
        let output_pipe = self.path(OUTPUT_PIPE)?;
        if output_uri.is_some() && output_path.is_none() && output_pipe.is_none() {
            return Err(AnnotationError::OutputWithoutPath);
        }
        if output_uri.is_none() && output_path.is_some() {
            warnings.push(format!(
                "annotation {} has no effect without {}: nothing is pushed",
                key(OUTPUT_PATH),
                key(OUTPUT_URI)
            ));
        }

        let agent_image = match self.value(ORAS_CONTAINER)? {
            None => None,
            Some(image) if !is_plausible_image(image) => {
                return Err(AnnotationError::InvalidImage {
                    key: key(ORAS_CONTAINER),
                    value: image.to_string(),
                });
            }
            Some(image) => Some(image.to_string()),
        };
        let container = match self.value(CONTAINER)? {
            None => None,
            Some(name) if !is_dns_label(name) => {
                return Err(AnnotationError::InvalidName {
                    key: key(CONTAINER),
                    value: name.to_string(),
                    what: "container",
                });
            }
            Some(name) => Some(name.to_string()),
        };

        let request = InjectionRequest {
            source,
            inputs,
            output_uri,
            input_path,
            output_path,
            output_pipe,
            oras_env: self.name(ORAS_ENV, "Secret")?,
            agent_image,
            container,
            unpack: self.flag(UNPACK, true)?,
            debug: self.flag(DEBUG, false)?,
            push_on_failure: self.flag(PUSH_ON_FAILURE, false)?,
            max_unpacked_size: self
                .value(MAX_UNPACKED_SIZE)?
                .map(|v| {
                    crate::agent::parse_size(v).map_err(|reason| AnnotationError::InvalidSize {
                        key: key(MAX_UNPACKED_SIZE),
                        reason,
                    })
                })
                .transpose()?,
            warnings,
        };
        Ok(request)
    }
}

/// Order of the inputs: the plain key first, then the suffixes in natural order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum InputOrder {
    Plain,
    Suffix(String),
}

impl Ord for InputOrder {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Plain, Self::Plain) => Ordering::Equal,
            (Self::Plain, Self::Suffix(_)) => Ordering::Less,
            (Self::Suffix(_), Self::Plain) => Ordering::Greater,
            (Self::Suffix(a), Self::Suffix(b)) => natural_cmp(a, b),
        }
    }
}

impl PartialOrd for InputOrder {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares two strings so that runs of digits compare as numbers: `2` < `10`, `a2` < `a10`.
/// Ties (such as `01` and `1`) fall back to plain string order, so the order is total.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut ra, mut rb) = (a, b);
    loop {
        match (ra.is_empty(), rb.is_empty()) {
            (true, true) => return a.cmp(b),
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let (ca, rest_a) = split_chunk(ra);
        let (cb, rest_b) = split_chunk(rb);
        let a_digits = ca.starts_with(|c: char| c.is_ascii_digit());
        let b_digits = cb.starts_with(|c: char| c.is_ascii_digit());
        let ord = match (a_digits, b_digits) {
            (true, true) => {
                // Compared without parsing, so runs longer than any integer type still order.
                let ta = ca.trim_start_matches('0');
                let tb = cb.trim_start_matches('0');
                ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
            }
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => ca.cmp(cb),
        };
        if ord != Ordering::Equal {
            return ord;
        }
        ra = rest_a;
        rb = rest_b;
    }
}

/// The leading run of digits, or of non-digits, and the rest.
fn split_chunk(s: &str) -> (&str, &str) {
    let digits = s.starts_with(|c: char| c.is_ascii_digit());
    let end = s
        .find(|c: char| c.is_ascii_digit() != digits)
        .unwrap_or(s.len());
    s.split_at(end)
}

/// Why a path annotation value cannot be used, if it cannot: it would read as a flag of the agent
/// (`-...`), or it names the whole filesystem or the agent's own share (`/mnt/oras` and below),
/// which packing would publish or placing inputs would overwrite. Absolute paths are compared
/// after `.`, `..` and repeated `/` are resolved, so `/mnt//oras/.` is the share too.
pub fn check_path(value: &str) -> Result<(), String> {
    if value.starts_with('-') {
        return Err(
            "starts with '-' and would read as a flag: write a path, e.g. ./-name for a file called -name"
                .into(),
        );
    }
    if !value.starts_with('/') {
        return Ok(());
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in value.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    let resolved = format!("/{}", parts.join("/"));
    if resolved == "/" {
        return Err("is the whole filesystem: name a file or directory below it".into());
    }
    let share = crate::agent::SHARE_MOUNT;
    if resolved == share || resolved.starts_with(&format!("{share}/")) {
        return Err(format!(
            "is inside {share}, the agent's own volume: use a path outside it"
        ));
    }
    Ok(())
}

/// `true`/`false`, case-insensitive, surrounding blanks ignored.
pub fn parse_bool(value: &str) -> Option<bool> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A DNS-1123 label: what Kubernetes accepts as a Service or container name.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: what Kubernetes accepts as a Secret or custom object name.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_plausible_image(s: &str) -> bool {
    !s.is_empty() && s.len() <= 1024 && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> OrasAnnotations {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
            .collect();
        OrasAnnotations::collect(owned.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    #[test]
    fn inputs_come_plain_key_first_then_suffixes_in_natural_order() {
        let a = annotations(&[
            ("input-uri_10", "x/ten:1"),
            ("input-uri_2", "x/two:1"),
            ("input-uri", "x/plain:1"),
            ("input-uri_b", "x/b:1"),
            ("input-uri_1", "x/one:1"),
            ("oras-cache", "c"),
        ]);
        let request = a.validate().unwrap();
        assert_eq!(
            request.inputs,
            ["x/plain:1", "x/one:1", "x/two:1", "x/ten:1", "x/b:1"]
        );
    }

    #[test]
    fn natural_order_compares_digit_runs_as_numbers() {
        assert_eq!(natural_cmp("2", "10"), Ordering::Less);
        assert_eq!(natural_cmp("a10", "a9"), Ordering::Greater);
        assert_eq!(natural_cmp("01", "1"), Ordering::Less);
        assert_eq!(
            natural_cmp("99999999999999999999999999", "100000000000000000000000000"),
            Ordering::Less
        );
        assert_eq!(natural_cmp("a", "a"), Ordering::Equal);
    }

    #[test]
    fn keys_without_the_prefix_are_not_collected() {
        let a = OrasAnnotations::collect([("other.io/oras-cache", "c"), ("oras-cache", "c")]);
        assert!(!a.is_marked());
        assert_eq!(a, OrasAnnotations::default());
    }

    #[test]
    fn unknown_and_script_keys_are_warned_about_and_do_not_mark() {
        let a = annotations(&[("colour", "blue"), ("entrypoint", "https://x/e.sh")]);
        assert!(!a.is_marked());
        let w = a.key_warnings();
        assert_eq!(w.len(), 2);
        assert!(w[0].contains(&key(ENTRYPOINT)) && w[0].contains("ignored"));
        assert!(w[1].contains(&key("colour")) && w[1].contains("not known"));
    }

    #[test]
    fn the_marker_is_recognised() {
        let a = OrasAnnotations::collect([(INJECTED, "true")]);
        assert!(a.injected);
        assert!(!a.is_marked());
    }

    #[test]
    fn an_empty_value_names_the_key() {
        let err = annotations(&[("oras-cache", "c"), ("output-path", "")])
            .validate()
            .unwrap_err();
        assert_eq!(
            err,
            AnnotationError::Empty {
                key: key(OUTPUT_PATH)
            }
        );
        assert!(err.to_string().contains(&key(OUTPUT_PATH)));
        let err = annotations(&[("oras-cache", "c"), ("input-uri_3", " ")])
            .validate()
            .unwrap_err();
        assert_eq!(
            err,
            AnnotationError::Empty {
                key: format!("{PREFIX}input-uri_3")
            }
        );
    }

    #[test]
    fn without_cache_or_registry_the_request_is_refused() {
        let err = annotations(&[("input-uri", "a/b:1")])
            .validate()
            .unwrap_err();
        assert_eq!(err, AnnotationError::MissingTarget);
        let message = err.to_string();
        assert!(message.contains(&key(ORAS_CACHE)) && message.contains(&key(REGISTRY)));
    }

    #[test]
    fn registry_wins_over_cache_with_a_warning() {
        let r = annotations(&[
            ("oras-cache", "c"),
            ("registry", "ghcr.io"),
            ("output-uri", "a/b:1"),
            ("output-pipe", "x"),
        ])
        .validate()
        .unwrap();
        assert_eq!(
            r.source,
            RegistrySource::Remote {
                host: "ghcr.io".into(),
                plain_http: false
            }
        );
        assert_eq!(r.warnings.len(), 1);
    }

    #[test]
    fn plain_http_applies_to_the_registry_annotation() {
        let r = annotations(&[
            ("registry", "127.0.0.1:5000"),
            ("plain-http", "TRUE"),
            ("input-uri", "a/b:1"),
        ])
        .validate()
        .unwrap();
        assert_eq!(
            r.source,
            RegistrySource::Remote {
                host: "127.0.0.1:5000".into(),
                plain_http: true
            }
        );
    }

    #[test]
    fn booleans_are_checked() {
        let err = annotations(&[("oras-cache", "c"), ("unpack", "yes")])
            .validate()
            .unwrap_err();
        assert!(
            matches!(err, AnnotationError::InvalidBool { ref key, .. } if key.ends_with("/unpack"))
        );
        let r = annotations(&[
            ("oras-cache", "c"),
            ("unpack", "false"),
            ("debug", "true"),
            ("push-on-failure", "true"),
            ("input-uri", "a:1"),
        ])
        .validate()
        .unwrap();
        assert!(!r.unpack && r.debug && r.push_on_failure);
    }

    #[test]
    fn output_uri_needs_something_to_push() {
        let err = annotations(&[("oras-cache", "c"), ("output-uri", "a/b:1")])
            .validate()
            .unwrap_err();
        assert_eq!(err, AnnotationError::OutputWithoutPath);
        assert!(err.to_string().contains(&key(OUTPUT_PATH)));
        assert!(err.to_string().contains(&key(OUTPUT_PIPE)));
    }

    #[test]
    fn output_path_is_packed_before_output_pipe() {
        let r = annotations(&[
            ("oras-cache", "c"),
            ("output-uri", "a/b:1"),
            ("output-pipe", "log.txt"),
        ])
        .validate()
        .unwrap();
        assert_eq!(r.packed_path(), Some("log.txt"));
        let r = annotations(&[
            ("oras-cache", "c"),
            ("output-uri", "a/b:1"),
            ("output-pipe", "log.txt"),
            ("output-path", "out/"),
        ])
        .validate()
        .unwrap();
        assert_eq!(r.packed_path(), Some("out/"));
        let r = annotations(&[("oras-cache", "c"), ("output-path", "out/")])
            .validate()
            .unwrap();
        assert_eq!(r.packed_path(), None);
        assert!(!r.has_work());
        assert!(r.warnings[0].contains("nothing is pushed"));
    }

    #[test]
    fn path_values_that_read_as_flags_or_name_the_share_or_the_root_are_refused() {
        for (field, value, expected) in [
            (OUTPUT_PATH, "--push-on-failure", "would read as a flag"),
            (OUTPUT_PATH, "--", "would read as a flag"),
            (INPUT_PATH, "--no-unpack", "would read as a flag"),
            (OUTPUT_PIPE, "-", "would read as a flag"),
            (OUTPUT_PATH, "/", "whole filesystem"),
            (INPUT_PATH, "//", "whole filesystem"),
            (OUTPUT_PATH, "/tmp/..", "whole filesystem"),
            (OUTPUT_PATH, "/mnt/oras", "agent's own volume"),
            (INPUT_PATH, "/mnt/oras/inputs", "agent's own volume"),
            (
                OUTPUT_PIPE,
                "/mnt//oras/./state/status.json",
                "agent's own volume",
            ),
            (OUTPUT_PATH, "/data/../mnt/oras/bin", "agent's own volume"),
        ] {
            let error =
                annotations(&[("oras-cache", "c"), ("output-uri", "a/b:1"), (field, value)])
                    .validate()
                    .unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(error, AnnotationError::UnsafePath { .. }),
                "{field}={value}: {message}"
            );
            assert!(message.contains(&key(field)), "{message}");
            assert!(message.contains(expected), "{field}={value}: {message}");
        }
        for fine in [
            "out.txt",
            "./-dash",
            "results/",
            "/tmp/out",
            "/mnt/orasx",
            "/mnt/other",
            "a-b",
        ] {
            let request = annotations(&[
                ("oras-cache", "c"),
                ("output-uri", "a/b:1"),
                ("output-path", fine),
                ("input-path", fine),
            ])
            .validate()
            .unwrap_or_else(|e| panic!("{fine}: {e}"));
            assert_eq!(request.output_path.as_deref(), Some(fine));
        }
    }

    #[test]
    fn the_unpack_cap_is_a_size() {
        let request = annotations(&[
            ("oras-cache", "c"),
            ("input-uri", "a:1"),
            ("max-unpacked-size", "20Gi"),
        ])
        .validate()
        .unwrap();
        assert_eq!(request.max_unpacked_size, Some(20 << 30));
        let error = annotations(&[
            ("oras-cache", "c"),
            ("input-uri", "a:1"),
            ("max-unpacked-size", "lots"),
        ])
        .validate()
        .unwrap_err();
        assert!(matches!(error, AnnotationError::InvalidSize { .. }));
        assert!(
            error.to_string().contains(&key("max-unpacked-size")),
            "{error}"
        );
    }

    #[test]
    fn a_registry_host_is_written_in_lower_case() {
        let request = annotations(&[("registry", "GHCR.IO"), ("input-uri", "org/data:1")])
            .validate()
            .unwrap();
        assert_eq!(
            request.source,
            RegistrySource::Remote {
                host: "ghcr.io".into(),
                plain_http: false
            }
        );
        let request = annotations(&[
            ("registry", "Registry.Example.com:5000"),
            ("input-uri", "a:1"),
        ])
        .validate()
        .unwrap();
        assert!(
            matches!(request.source, RegistrySource::Remote { ref host, .. } if host == "registry.example.com:5000")
        );
    }

    #[test]
    fn references_follow_the_distribution_grammar() {
        for ok in [
            "dinosaur/hello-world:latest",
            "dinosaur/hello-world:pancakes",
            "a",
            "a.b/c_d/e__f/g--h:V1.0_x",
            "manbat/metrics-operator-results:test",
            "repo@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "repo:tag@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(validate_reference(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Upper/case:1",
            "a//b",
            "/a",
            "a/",
            "a:",
            "a:.x",
            "a b",
            "oci://a/b",
            "a@sha256:abc",
            "a:b:c",
            "-a",
        ] {
            assert!(validate_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_malformed_reference_names_the_key() {
        let err = annotations(&[("oras-cache", "c"), ("input-uri_2", "Bad Ref")])
            .validate()
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("{PREFIX}input-uri_2")),
            "{message}"
        );
        assert!(message.contains("dinosaur/hello-world:latest"));
    }

    #[test]
    fn registries_are_host_and_optional_port() {
        for ok in [
            "ghcr.io",
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "REG.example.com",
        ] {
            assert_eq!(validate_registry(ok), Ok(()), "{ok}");
        }
        for bad in [
            "https://ghcr.io",
            "ghcr.io/org",
            "host:0",
            "host:99999",
            "host:",
            ":5000",
            "-bad.io",
            "[::1",
            "a..b",
        ] {
            assert!(validate_registry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_checked_against_kubernetes_rules() {
        let err = annotations(&[("oras-cache", "My_Cache")])
            .validate()
            .unwrap_err();
        assert!(matches!(
            err,
            AnnotationError::InvalidName {
                what: "OrasCache",
                ..
            }
        ));
        let err = annotations(&[("oras-cache", "c"), ("oras-env", "Bad Secret")])
            .validate()
            .unwrap_err();
        assert!(matches!(
            err,
            AnnotationError::InvalidName { what: "Secret", .. }
        ));
        let err = annotations(&[("oras-cache", "c"), ("container", "a.b")])
            .validate()
            .unwrap_err();
        assert!(matches!(
            err,
            AnnotationError::InvalidName {
                what: "container",
                ..
            }
        ));
    }

    #[test]
    fn an_input_suffix_must_not_be_empty() {
        let err = annotations(&[("oras-cache", "c"), ("input-uri_", "a:1")])
            .validate()
            .unwrap_err();
        assert!(matches!(err, AnnotationError::EmptyInputSuffix { .. }));
    }
}
