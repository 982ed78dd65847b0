//! A small streaming client for OCI distribution registries.
//!
//! It speaks just what artifacts need: blobs up (monolithic, streamed from a reader with a known
//! length) and down (streamed into a temporary file that is renamed only after its digest and size
//! are checked), manifests up and down. Memory stays flat whatever the blob size. Connection
//! errors, `5xx`, `429` and stalls are retried with exponential backoff; `401` triggers the
//! `Basic` or `Bearer` token flow of the registry's challenge (see [`crate::auth`]), whose token
//! realm must pass [`oras_cache_api::challenge::check_token_realm`] before anything is sent to it.
//!
//! Nothing waits for ever: every read waits at most [`ClientOptions::read_timeout`], the head of
//! an answer must arrive within it, and a body slower than [`ClientOptions::min_rate`] is a stall;
//! a stall is a failed attempt, and the last one ends with [`RegistryError::Stalled`], naming the
//! host, the blob and the time waited.
//!
//! ```no_run
//! use oras_agent::registry::{ClientOptions, RegistryClient};
//! use oras_agent::Reference;
//!
//! let client = RegistryClient::new(ClientOptions::new(true))?;
//! let target = Reference::parse("127.0.0.1:5000/policies/demo:v1")?;
//! let layer = client.push_blob_bytes(&target, b"hello")?;
//! let manifest = client.pull_manifest(&target)?;
//! # let _ = (layer, manifest);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::auth::{AuthError, BasicAuthHeader, Challenge, Credentials, Operation};
use crate::digest::{CopyError, Digest};
use crate::log::Progress;
use crate::origin::{Origin, without_query};
use crate::reference::Reference;
use crate::{debug, warn};
use oras_cache_api::challenge::{RealmError, check_token_realm};
use oras_cache_api::media_types as mt;
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use ureq::http::Response;

/// Largest manifest the client accepts (the distribution default limit is 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// Media types sent in `Accept` when pulling a manifest.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json";

/// How failed requests are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub initial_backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 8 attempts waiting 0.5, 1, 2, 4, 8, 8, 8 s: a registry that comes up within about 30 s
    /// is reached.
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// How a [`RegistryClient`] connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Speak plain HTTP instead of TLS (only for registries on trusted networks, or tests).
    pub plain_http: bool,
    /// Where credentials come from.
    pub credentials: Credentials,
    /// How failures are retried.
    pub retry: RetryPolicy,
    /// Timeout for establishing a connection.
    pub connect_timeout: Duration,
    /// PEM file of the certificate authorities to trust instead of the public web roots (for
    /// registries with a private CA); `None` trusts the bundled public roots.
    pub ca_file: Option<PathBuf>,
    /// The read deadline: the longest the client waits for the next bytes of an answer (and for
    /// the registry to take the next bytes of an upload). A stall counts as a failed attempt.
    pub read_timeout: Duration,
    /// The minimum transfer rate of a download, in bytes per second, averaged over windows of
    /// [`ClientOptions::read_timeout`]; a slower transfer counts as a stall. 0 disables it.
    pub min_rate: u64,
}

/// Environment variable naming [`ClientOptions::ca_file`].
pub const ENV_CA_FILE: &str = "ORAS_AGENT_CA_FILE";
/// Environment variable setting [`ClientOptions::read_timeout`] in seconds.
pub const ENV_READ_TIMEOUT: &str = "ORAS_AGENT_READ_TIMEOUT";
/// Environment variable setting [`ClientOptions::min_rate`] in bytes per second.
pub const ENV_MIN_RATE: &str = "ORAS_AGENT_MIN_RATE";
/// Environment variable setting [`RetryPolicy::attempts`].
pub const ENV_ATTEMPTS: &str = "ORAS_AGENT_ATTEMPTS";
/// Default of [`ClientOptions::read_timeout`]: a registry that sends nothing for this long is
/// stalled. Well above a loaded registry's pauses, well below a step's patience.
pub const DEFAULT_READ_TIMEOUT_SECS: u64 = 30;
/// Default of [`ClientOptions::min_rate`]: 1 KiB/s, far below any working network, so only a
/// trickle (a hostile or broken server) trips it.
pub const DEFAULT_MIN_RATE: u64 = 1024;
/// How much longer than the read deadline a registry may take to answer a finished blob upload:
/// committing a big blob (a copy on object storage) sends nothing for a while.
const UPLOAD_COMMIT_FACTOR: u32 = 20;

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

impl ClientOptions {
    /// Credentials from the environment and docker config, default retries and deadlines (or
    /// those of `ORAS_AGENT_ATTEMPTS`, `ORAS_AGENT_READ_TIMEOUT`, `ORAS_AGENT_MIN_RATE`), TLS
    /// unless `plain_http` (with the CAs of `ORAS_AGENT_CA_FILE` when set).
    pub fn new(plain_http: bool) -> ClientOptions {
        ClientOptions {
            plain_http,
            credentials: Credentials::FromEnvironment,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(15),
            ca_file: std::env::var_os(ENV_CA_FILE)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            read_timeout: Duration::from_secs(DEFAULT_READ_TIMEOUT_SECS),
            min_rate: DEFAULT_MIN_RATE,
        }
        .with_environment()
    }

    /// Applies `ORAS_AGENT_READ_TIMEOUT`, `ORAS_AGENT_MIN_RATE` and `ORAS_AGENT_ATTEMPTS` when
    /// set (so that every role honours them from the pod's environment).
    fn with_environment(mut self) -> ClientOptions {
        if let Some(secs) = env_number(ENV_READ_TIMEOUT).filter(|s| *s > 0) {
            self.read_timeout = Duration::from_secs(secs);
        }
        if let Some(rate) = env_number(ENV_MIN_RATE) {
            self.min_rate = rate;
        }
        if let Some(attempts) = env_number(ENV_ATTEMPTS).filter(|a| *a > 0) {
            self.retry.attempts = attempts.min(u64::from(u32::MAX)) as u32;
        }
        self
    }
}

/// Network settings given on the command line; they win over the environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkOverrides {
    /// [`ClientOptions::read_timeout`] in seconds.
    pub read_timeout_secs: Option<u64>,
    /// [`ClientOptions::min_rate`] in bytes per second.
    pub min_rate: Option<u64>,
    /// [`RetryPolicy::attempts`].
    pub attempts: Option<u32>,
}

impl NetworkOverrides {
    /// Sets what was given on `options`.
    pub fn apply(&self, mut options: ClientOptions) -> ClientOptions {
        if let Some(secs) = self.read_timeout_secs.filter(|s| *s > 0) {
            options.read_timeout = Duration::from_secs(secs);
        }
        if let Some(rate) = self.min_rate {
            options.min_rate = rate;
        }
        if let Some(attempts) = self.attempts.filter(|a| *a > 0) {
            options.retry.attempts = attempts;
        }
        options
    }
}

/// A manifest as the registry served it.
#[derive(Debug, Clone)]
pub struct PulledManifest {
    /// The exact bytes (their digest is [`PulledManifest::digest`]).
    pub bytes: Vec<u8>,
    /// The `Content-Type` the registry reported (or the manifest's own `mediaType`).
    pub media_type: String,
    /// Digest of the bytes.
    pub digest: Digest,
}

/// Digest and size of a pushed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Digest of the content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
}

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached, even after retries.
    #[error(
        "cannot reach the registry for {what} ({url}) after {attempts} attempt(s): {source}; check the address, that the registry runs, --plain-http for a registry without TLS, ORAS_AGENT_CA_FILE for one with a private CA"
    )]
    Unreachable {
        /// The operation.
        what: String,
        /// The URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        source: Box<ureq::Error>,
    },
    /// The registry stopped sending (or sent too slowly) on every attempt.
    #[error(
        "{what} on registry {host} stalled: {reason}; gave up after {attempts} attempt(s) and {waited_secs:.1} s waited; on a slow network raise --read-timeout or lower --min-rate ({ENV_READ_TIMEOUT}, {ENV_MIN_RATE})"
    )]
    Stalled {
        /// The operation (it names the blob or manifest).
        what: String,
        /// The registry host.
        host: String,
        /// Attempts made.
        attempts: u32,
        /// Seconds from the first attempt to giving up.
        waited_secs: f64,
        /// The last stall.
        reason: String,
    },
    /// The registry answered with an unexpected status.
    #[error("registry answered HTTP {status} to {what} ({url}): {body}")]
    Status {
        /// The operation.
        what: String,
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the response body (the registry's error JSON).
        body: String,
    },
    /// A write refused as unsupported: the registry is a pull-through cache (a mirror), which
    /// distribution answers every write with `405` and the error code `UNSUPPORTED`.
    #[error(
        "registry refused {what} ({url}) with HTTP 405 UNSUPPORTED: it is a pull-only mirror (a pull-through cache of another registry); push to the upstream registry, or to a cache that is not a mirror"
    )]
    PullOnly {
        /// The operation.
        what: String,
        /// The URL.
        url: String,
    },
    /// The registry still refused after authenticating.
    #[error("registry refused {what} ({url}) with HTTP {status}: {hint}")]
    Unauthorized {
        /// The operation.
        what: String,
        /// The URL.
        url: String,
        /// 401 or 403.
        status: u16,
        /// What to do about it.
        hint: String,
    },
    /// A bearer token could not be obtained.
    #[error("cannot get a token from {realm:?}: {reason}")]
    Token {
        /// The token endpoint.
        realm: String,
        /// What went wrong.
        reason: String,
    },
    /// The registry names a token realm the client must not contact.
    #[error("registry {registry}: {source}")]
    TokenRealm {
        /// The registry host.
        registry: String,
        /// Why the realm is refused (it names the realm).
        source: RealmError,
    },
    /// The registry named a plain-HTTP address (an upload `Location`) while the client speaks
    /// HTTPS to it.
    #[error(
        "{what}: the registry {registry} named the plain-HTTP address {location}; refused, so that neither credentials nor content travel in clear. A registry behind a TLS-terminating proxy must build https:// addresses: set distribution's http.host to its https:// URL, or http.relativeurls: true"
    )]
    Downgrade {
        /// The operation.
        what: String,
        /// The registry's origin.
        registry: String,
        /// The address it named, without its query.
        location: String,
    },
    /// An address on another origin than the registry's asked for credentials.
    #[error(
        "{what}: the registry {registry} sent the upload to {location}, another origin, which answered HTTP {status}; the registry's credentials are only sent to the registry itself (its scheme, host and port)"
    )]
    CrossOrigin {
        /// The operation.
        what: String,
        /// The registry's origin.
        registry: String,
        /// The other address, without its query.
        location: String,
        /// 401 or 403.
        status: u16,
    },
    /// Downloaded content does not match its digest.
    #[error("{what}: content digest is {actual}, expected {expected}; the download was discarded")]
    DigestMismatch {
        /// What was downloaded.
        what: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest received.
        actual: Digest,
    },
    /// Downloaded content does not have the announced size.
    #[error("{what}: received {actual} bytes, expected {expected}; the download was discarded")]
    SizeMismatch {
        /// What was downloaded.
        what: String,
        /// The size announced.
        expected: u64,
        /// The size received.
        actual: u64,
    },
    /// Content larger than the caller allows in memory.
    #[error("{what} is larger than {limit} bytes; pull it to a file instead")]
    TooLarge {
        /// What was downloaded.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The registry sent something that breaks the protocol.
    #[error("registry protocol error during {what}: {reason}")]
    Protocol {
        /// The operation.
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// Credentials could not be read.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The CA file is unusable.
    #[error("CA file {path} ({ENV_CA_FILE}): {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl RegistryError {
    fn io(path: &Path, source: io::Error) -> RegistryError {
        RegistryError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Attempts already failed, and when the first began, for one operation.
#[derive(Debug, Clone, Copy)]
struct Budget {
    failed: u32,
    started: std::time::Instant,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            failed: 0,
            started: std::time::Instant::now(),
        }
    }
}

/// Outcome of one HTTP exchange: a response to judge, or a transport error.
type Attempt = Result<Response<ureq::Body>, ureq::Error>;

/// What one attempt of a request came to, for [`RegistryClient::retrying`].
enum Attempted<T> {
    /// Finished: a result, or an error no further attempt mends.
    Done(Result<T, RegistryError>),
    /// Try again at once without counting a failure (a `401` challenge was just answered).
    Again,
    /// Failed in a way another attempt may mend (a stall, a reset, a `5xx`): `reason` is logged,
    /// and `if_last` is the outcome when no attempt is left.
    Failed {
        /// Why, for the log.
        reason: String,
        /// The outcome after the last allowed failure.
        if_last: Result<T, RegistryError>,
    },
}

/// A registry client; cheap to share by reference between threads.
pub struct RegistryClient {
    agent: ureq::Agent,
    options: ClientOptions,
    /// `Authorization` header values by `host repository operation`, learnt from challenges.
    authorizations: Mutex<HashMap<String, String>>,
}

impl RegistryClient {
    /// Creates a client.
    pub fn new(options: ClientOptions) -> Result<RegistryClient, RegistryError> {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(options.connect_timeout))
            // Each read and write waits at most the deadline, and the whole head of an answer
            // must come within it, so a server that trickles headers is a stall too.
            .timeout_per_read(Some(options.read_timeout))
            .timeout_per_write(Some(options.read_timeout))
            .timeout_recv_response(Some(options.read_timeout))
            .user_agent(concat!("oras-agent/", env!("CARGO_PKG_VERSION")))
            // Credentials stay with their origin (crate::origin): an `Authorization` header is
            // dropped on every redirect (ureq-proto's `RedirectAuthHeaders::Never`; its
            // `SameHost` would keep it across ports), and a client of an HTTPS registry sends
            // nothing over plain HTTP, a redirect's target included (ureq's `https_only` is
            // checked on each request of a redirect chain, `run.rs` `call_run`).
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::Never)
            .https_only(!options.plain_http);
        if let Some(path) = &options.ca_file {
            let roots = read_ca_file(path)?;
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(roots)))
                    .build(),
            );
        }
        let agent = config.build().new_agent();
        Ok(RegistryClient {
            agent,
            options,
            authorizations: Mutex::new(HashMap::new()),
        })
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    fn repository_url(&self, reference: &Reference) -> String {
        let scheme = if self.options.plain_http {
            "http"
        } else {
            "https"
        };
        format!(
            "{scheme}://{}/v2/{}",
            reference.registry, reference.repository
        )
    }

    fn blob_url(&self, reference: &Reference, digest: &Digest) -> String {
        format!("{}/blobs/{digest}", self.repository_url(reference))
    }

    /// The origin the registry's credentials belong to.
    fn registry_origin(&self, reference: &Reference) -> Option<Origin> {
        Origin::of_url(&self.repository_url(reference))
    }

    fn absolute_url(&self, reference: &Reference, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            let scheme = if self.options.plain_http {
                "http"
            } else {
                "https"
            };
            format!("{scheme}://{}{location}", reference.registry)
        }
    }

    /// Whether the repository already has the blob.
    pub fn blob_exists(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        self.blob_exists_as(reference, digest, Operation::Pull)
    }

    /// `HEAD` on a blob with the credentials of `operation` (a push checks with push
    /// credentials, which may differ from the pull ones).
    fn blob_exists_as(
        &self,
        reference: &Reference,
        digest: &Digest,
        operation: Operation,
    ) -> Result<bool, RegistryError> {
        let url = self.blob_url(reference, digest);
        let what = format!("check blob {digest}");
        let response = self.execute(
            reference,
            operation,
            &what,
            &url,
            &mut Budget::new(),
            |agent, auth| with_auth(agent.head(&url), auth).call(),
        )?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(status_error(&what, &url, response)),
        }
    }

    /// Pushes a small blob held in memory.
    pub fn push_blob_bytes(
        &self,
        reference: &Reference,
        data: &[u8],
    ) -> Result<BlobInfo, RegistryError> {
        let info = BlobInfo {
            digest: Digest::of_bytes(data),
            size: data.len() as u64,
        };
        self.push_blob_from(reference, &info, "bytes", &mut || Ok(Box::new(data)))?;
        Ok(info)
    }

    /// Pushes a file, streamed: its digest is computed in a first pass, then it is uploaded.
    pub fn push_blob_file(
        &self,
        reference: &Reference,
        path: &Path,
    ) -> Result<BlobInfo, RegistryError> {
        let (digest, size) =
            crate::digest::digest_file(path).map_err(|e| RegistryError::io(path, e))?;
        let info = BlobInfo { digest, size };
        self.push_blob_file_with_digest(reference, path, &info)?;
        Ok(info)
    }

    /// Pushes a file whose digest and size are already known (e.g. a blob of an OCI layout).
    pub fn push_blob_file_with_digest(
        &self,
        reference: &Reference,
        path: &Path,
        info: &BlobInfo,
    ) -> Result<(), RegistryError> {
        let label = path.display().to_string();
        self.push_blob_from(reference, info, &label, &mut || {
            let file = std::fs::File::open(path).map_err(|e| RegistryError::io(path, e))?;
            Ok(Box::new(file))
        })
    }

    /// Uploads a blob, reopening its content for each attempt. Skips blobs the registry has.
    fn push_blob_from<'a>(
        &self,
        reference: &Reference,
        info: &BlobInfo,
        label: &str,
        open: &mut dyn FnMut() -> Result<Box<dyn Read + 'a>, RegistryError>,
    ) -> Result<(), RegistryError> {
        if self.blob_exists_as(reference, &info.digest, Operation::Push)? {
            debug!(
                "blob {} ({label}) already in {}",
                info.digest, reference.repository
            );
            return Ok(());
        }
        let what = format!("upload blob {} ({label})", info.digest);
        // The upload is started afresh on each attempt: a failed PUT may have consumed the
        // session.
        self.retrying(&what, &mut Budget::new(), |budget| {
            let start_url = format!("{}/blobs/uploads/", self.repository_url(reference));
            let started = match self.execute(
                reference,
                Operation::Push,
                &what,
                &start_url,
                &mut Budget::new(),
                |agent, auth| with_auth(agent.post(&start_url), auth).send_empty(),
            ) {
                Ok(started) if started.status().as_u16() == 202 => started,
                Ok(started) => {
                    return Attempted::Done(Err(status_error(&what, &start_url, started)));
                }
                Err(error) => return Attempted::Done(Err(error)),
            };
            let Some(location) = header(&started, "location") else {
                return Attempted::Done(Err(RegistryError::Protocol {
                    what: what.clone(),
                    reason: "upload start answered 202 without a Location header".into(),
                }));
            };
            let mut put_url = self.absolute_url(reference, &location);
            let registry = self.registry_origin(reference);
            let shown_registry = registry
                .as_ref()
                .map_or_else(|| reference.registry.clone(), Origin::to_string);
            let Some(target) = Origin::of_url(&put_url) else {
                return Attempted::Done(Err(RegistryError::Protocol {
                    what: what.clone(),
                    reason: format!(
                        "the upload Location {} is not an http(s) address",
                        printable(without_query(&location))
                    ),
                }));
            };
            if !self.options.plain_http && !target.is_https() {
                return Attempted::Done(Err(RegistryError::Downgrade {
                    what: what.clone(),
                    registry: shown_registry,
                    location: printable(without_query(&put_url)),
                }));
            }
            let same_origin = registry.as_ref() == Some(&target);
            put_url.push(if put_url.contains('?') { '&' } else { '?' });
            put_url.push_str(&format!("digest={}", percent_encode(info.digest.as_str())));
            let content = match open() {
                Ok(content) => content,
                Err(error) => return Attempted::Done(Err(error)),
            };
            // The guard sees how fast the registry takes the body: ureq reads from it only as
            // fast as it can write, so a registry that reads a byte at a time is a stall too.
            let mut progress = ProgressReader {
                inner: self.guarded(content),
                progress: Progress::new(format!("push {} ({label})", info.digest), Some(info.size)),
            };
            // Another origin gets the upload without the registry's credentials.
            let authorization = if same_origin {
                self.cached_authorization(reference, Operation::Push)
            } else {
                debug!(
                    "{what}: {target} is another origin than {shown_registry}: no credentials sent"
                );
                None
            };
            let sent = with_auth(self.agent.put(&put_url), authorization.as_deref())
                .header("Content-Type", "application/octet-stream")
                .header("Content-Length", info.size.to_string())
                .config()
                .timeout_per_read(Some(self.options.read_timeout * UPLOAD_COMMIT_FACTOR))
                .timeout_recv_response(Some(self.options.read_timeout * UPLOAD_COMMIT_FACTOR))
                .build()
                .send(ureq::SendBody::from_reader(&mut progress));
            match sent {
                Ok(response) if response.status().as_u16() == 201 => {
                    progress.progress.finish();
                    Attempted::Done(Ok(()))
                }
                Ok(response) if !same_origin && matches!(response.status().as_u16(), 401 | 403) => {
                    Attempted::Done(Err(RegistryError::CrossOrigin {
                        what: what.clone(),
                        registry: shown_registry.clone(),
                        location: printable(without_query(&put_url)),
                        status: response.status().as_u16(),
                    }))
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let error = status_error(&what, &put_url, response);
                    if is_retryable_status(status) {
                        Attempted::Failed {
                            reason: format!("HTTP {status}"),
                            if_last: Err(error),
                        }
                    } else {
                        Attempted::Done(Err(error))
                    }
                }
                Err(source) => Attempted::Failed {
                    reason: self
                        .stall_reason(&source)
                        .unwrap_or_else(|| source.to_string()),
                    if_last: Err(self.give_up(
                        &what,
                        &put_url,
                        budget.failed + 1,
                        budget.started,
                        source,
                    )),
                },
            }
        })
    }

    /// Pushes manifest bytes under `reference`'s tag (or digest); returns the manifest digest.
    pub fn push_manifest(
        &self,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let digest = Digest::of_bytes(bytes);
        let target = match &reference.tag {
            Some(tag) => tag.clone(),
            None => digest.to_string(),
        };
        let url = format!("{}/manifests/{target}", self.repository_url(reference));
        let what = format!("push manifest {reference}");
        let response = self.execute(
            reference,
            Operation::Push,
            &what,
            &url,
            &mut Budget::new(),
            |agent, auth| {
                with_auth(agent.put(&url), auth)
                    .header("Content-Type", media_type)
                    .send(bytes)
            },
        )?;
        if response.status().as_u16() != 201 {
            return Err(status_error(&what, &url, response));
        }
        Ok(digest)
    }

    /// Pulls the manifest `reference` names; verifies it against the digest when pinned.
    pub fn pull_manifest(&self, reference: &Reference) -> Result<PulledManifest, RegistryError> {
        let url = format!(
            "{}/manifests/{}",
            self.repository_url(reference),
            reference.manifest_reference()
        );
        let what = format!("pull manifest {reference}");
        let mut response = self.execute(
            reference,
            Operation::Pull,
            &what,
            &url,
            &mut Budget::new(),
            |agent, auth| {
                with_auth(agent.get(&url), auth)
                    .header("Accept", MANIFEST_ACCEPT)
                    .call()
            },
        )?;
        if response.status().as_u16() != 200 {
            return Err(status_error(&what, &url, response));
        }
        let content_type = header(&response, "content-type").unwrap_or_default();
        let bytes = read_limited(self, &mut response, MAX_MANIFEST_BYTES, &what, &url)?;
        let digest = Digest::of_bytes(&bytes);
        if let Some(expected) = &reference.digest
            && *expected != digest
        {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: expected.clone(),
                actual: digest,
            });
        }
        let media_type = if content_type.is_empty() || content_type == "application/json" {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("mediaType")?.as_str().map(String::from))
                .unwrap_or_else(|| mt::OCI_MANIFEST.to_string())
        } else {
            content_type
        };
        Ok(PulledManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Pulls a small blob into memory, refusing more than `max_size` bytes; verifies its digest.
    pub fn pull_blob_bytes(
        &self,
        reference: &Reference,
        digest: &Digest,
        max_size: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let what = format!("pull blob {digest}");
        let mut response = self.get_blob(reference, digest, &what, &mut Budget::new())?;
        let url = self.blob_url(reference, digest);
        let bytes = read_limited(self, &mut response, max_size, &what, &url)?;
        let actual = Digest::of_bytes(&bytes);
        if actual != *digest {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// `GET` of a blob, answered `200` (after authentication and retries).
    fn get_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        what: &str,
        budget: &mut Budget,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let url = self.blob_url(reference, digest);
        let response = self.execute(
            reference,
            Operation::Pull,
            what,
            &url,
            budget,
            |agent, auth| with_auth(agent.get(&url), auth).call(),
        )?;
        if response.status().as_u16() != 200 {
            return Err(status_error(what, &url, response));
        }
        Ok(response)
    }

    /// Streams a blob into `destination`: written to a temporary file beside it, checked against
    /// `digest` (and `expected_size` when given), then renamed into place. Nothing appears at
    /// `destination` unless the content is verified. Returns the size.
    ///
    /// The file is not fsynced (waiting for the disk took longer than the download itself):
    /// the temporary file and the rename after verification already keep partial or unverified
    /// content invisible to readers, and what the agent pulls is a pod's input on an `emptyDir`,
    /// which does not outlive the pod, so a node crash loses it anyway. A caller that keeps the
    /// file across a power loss must `sync_all` it itself.
    pub fn pull_blob_to_file(
        &self,
        reference: &Reference,
        digest: &Digest,
        expected_size: Option<u64>,
        destination: &Path,
    ) -> Result<u64, RegistryError> {
        let parent = destination
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let what = format!("pull blob {digest}");
        // One budget for the whole download: stalls in the headers (counted by execute) and in
        // the body (counted here) add up to at most `attempts`.
        let mut budget = Budget::new();
        let download = |budget: &mut Budget| -> Attempted<u64> {
            let mut temp = match tempfile::Builder::new()
                .prefix(".oras-agent-")
                .permissions(crate::digest::readable())
                .tempfile_in(parent)
            {
                Ok(temp) => temp,
                Err(e) => return Attempted::Done(Err(RegistryError::io(parent, e))),
            };
            let mut response = match self.get_blob(reference, digest, &what, budget) {
                Ok(response) => response,
                Err(error) => return Attempted::Done(Err(error)),
            };
            let mut progress = Progress::new(
                format!("pull {digest} → {}", destination.display()),
                expected_size,
            );
            let copied = crate::digest::copy_hashing(
                &mut self.guarded(response.body_mut().as_reader()),
                temp.as_file_mut(),
                expected_size,
                &mut |n| progress.advance(n),
            );
            let hasher = match copied {
                Ok(hasher) => hasher,
                Err(CopyError::Write(e)) => {
                    return Attempted::Done(Err(RegistryError::io(temp.path(), e)));
                }
                Err(CopyError::TooLong(expected)) => {
                    return Attempted::Done(Err(RegistryError::SizeMismatch {
                        what: what.clone(),
                        expected,
                        actual: expected + 1,
                    }));
                }
                Err(CopyError::Read(e)) => {
                    let url = self.blob_url(reference, digest);
                    return Attempted::Failed {
                        reason: format!("download interrupted ({e})"),
                        if_last: Err(self.give_up(
                            &what,
                            &url,
                            budget.failed + 1,
                            budget.started,
                            ureq::Error::Io(e),
                        )),
                    };
                }
            };
            let size = hasher.len();
            let actual = hasher.finish();
            if let Some(expected) = expected_size
                && expected != size
            {
                return Attempted::Done(Err(RegistryError::SizeMismatch {
                    what: what.clone(),
                    expected,
                    actual: size,
                }));
            }
            if actual != *digest {
                return Attempted::Done(Err(RegistryError::DigestMismatch {
                    what: what.clone(),
                    expected: digest.clone(),
                    actual,
                }));
            }
            if let Err(e) = temp.persist(destination) {
                return Attempted::Done(Err(RegistryError::io(destination, e.error)));
            }
            progress.finish();
            Attempted::Done(Ok(size))
        };
        self.retrying(&what, &mut budget, download)
    }

    /// `inner` (a response body) failing as a stall when it falls below the minimum rate.
    fn guarded<R: Read>(&self, inner: R) -> RateGuard<R> {
        RateGuard::new(inner, self.options.read_timeout, self.options.min_rate)
    }

    /// Why `error` is a stall (a deadline or the minimum rate passed), or `None` for any other
    /// failure.
    fn stall_reason(&self, error: &ureq::Error) -> Option<String> {
        let deadline = self.options.read_timeout.as_secs_f64();
        match error {
            ureq::Error::Timeout(ureq::Timeout::PerRead) => Some(format!(
                "nothing received for {deadline} s (the read deadline)"
            )),
            ureq::Error::Timeout(ureq::Timeout::PerWrite) => Some(format!(
                "the registry took nothing for {deadline} s (the read deadline)"
            )),
            ureq::Error::Timeout(ureq::Timeout::RecvResponse) => Some(format!(
                "no complete answer within {deadline} s (the read deadline)"
            )),
            ureq::Error::Timeout(other) => Some(format!("timeout ({other})")),
            ureq::Error::Io(e) => {
                if let Some(inner) = e.get_ref().and_then(|e| e.downcast_ref::<ureq::Error>()) {
                    return self.stall_reason(inner);
                }
                (e.kind() == io::ErrorKind::TimedOut).then(|| e.to_string())
            }
            _ => None,
        }
    }

    /// The final error after `attempts` failed attempts, the last with `error`: a stall names the
    /// time waited, anything else the address.
    fn give_up(
        &self,
        what: &str,
        url: &str,
        attempts: u32,
        started: std::time::Instant,
        error: ureq::Error,
    ) -> RegistryError {
        match self.stall_reason(&error) {
            Some(reason) => RegistryError::Stalled {
                what: what.into(),
                host: host_of(url),
                attempts,
                waited_secs: started.elapsed().as_secs_f64(),
                reason,
            },
            None => RegistryError::Unreachable {
                what: what.into(),
                url: url.into(),
                attempts,
                source: Box::new(error),
            },
        }
    }

    fn authorization_key(reference: &Reference, operation: Operation) -> String {
        format!(
            "{} {} {operation:?}",
            reference.registry, reference.repository
        )
    }

    fn cached_authorization(&self, reference: &Reference, operation: Operation) -> Option<String> {
        let cache = self
            .authorizations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cache
            .get(&Self::authorization_key(reference, operation))
            .cloned()
    }

    /// Runs one request with authentication and retries. `make` sends the request with the
    /// `Authorization` header value it is given. `budget` holds the attempts already spent: a
    /// download retried after a stall in its body passes its own, so that the attempts of both
    /// count together and a stalling registry costs at most `attempts` attempts in all, not
    /// their square; everyone else passes a fresh one.
    fn execute(
        &self,
        reference: &Reference,
        operation: Operation,
        what: &str,
        url: &str,
        budget: &mut Budget,
        mut make: impl FnMut(&ureq::Agent, Option<&str>) -> Attempt,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let mut authenticated = false;
        self.retrying(what, budget, |budget| {
            // Every URL `execute` is given is the registry's own; the check keeps it so.
            let authorization = self
                .cached_authorization(reference, operation)
                .filter(|_| Origin::of_url(url) == self.registry_origin(reference));
            debug!("{what}: {url}");
            match make(&self.agent, authorization.as_deref()) {
                Ok(response) => {
                    let status = response.status().as_u16();
                    if status == 401 && !authenticated {
                        authenticated = true;
                        let challenge = header(&response, "www-authenticate").unwrap_or_default();
                        return match self.authenticate(reference, operation, &challenge, what, url) {
                            Ok(()) => Attempted::Again,
                            Err(error) => Attempted::Done(Err(error)),
                        };
                    }
                    if status == 401 || status == 403 {
                        return Attempted::Done(Err(RegistryError::Unauthorized {
                            what: what.into(),
                            url: url.into(),
                            status,
                            hint: "set ORAS_USER with ORAS_PASS (or ORAS_PUSH_PASS/ORAS_PULL_PASS), or a docker config.json with credentials for this registry".into(),
                        }));
                    }
                    if is_retryable_status(status) {
                        // The last answer goes back as it is: the caller names its status.
                        Attempted::Failed {
                            reason: format!("HTTP {status}"),
                            if_last: Ok(response),
                        }
                    } else {
                        Attempted::Done(Ok(response))
                    }
                }
                Err(error) => {
                    let reason = self
                        .stall_reason(&error)
                        .unwrap_or_else(|| error.to_string());
                    let retryable = is_retryable_error(&error);
                    let given_up = self.give_up(what, url, budget.failed + 1, budget.started, error);
                    if retryable {
                        Attempted::Failed {
                            reason,
                            if_last: Err(given_up),
                        }
                    } else {
                        Attempted::Done(Err(given_up))
                    }
                }
            }
        })
    }

    /// The one retry loop of every registry request: runs `attempt` until it is done, counting
    /// its failures in `budget` and waiting the policy's backoff between them; after the last
    /// allowed failure, returns that attempt's `if_last`. The attempt gets the budget, so that a
    /// request retried inside it (a download's `GET`) spends the same attempts.
    fn retrying<T>(
        &self,
        what: &str,
        budget: &mut Budget,
        mut attempt: impl FnMut(&mut Budget) -> Attempted<T>,
    ) -> Result<T, RegistryError> {
        loop {
            match attempt(budget) {
                Attempted::Done(result) => return result,
                Attempted::Again => continue,
                Attempted::Failed { reason, if_last } => {
                    budget.failed += 1;
                    if budget.failed >= self.options.retry.attempts {
                        return if_last;
                    }
                    let wait = self.options.retry.backoff(budget.failed);
                    warn!(
                        "{what}: {reason}, retrying in {wait:?} (attempt {})",
                        budget.failed
                    );
                    std::thread::sleep(wait);
                }
            }
        }
    }

    /// Answers a `401` challenge by caching the `Authorization` value to send from now on.
    fn authenticate(
        &self,
        reference: &Reference,
        operation: Operation,
        challenge: &str,
        what: &str,
        url: &str,
    ) -> Result<(), RegistryError> {
        let credentials = self
            .options
            .credentials
            .resolve(&reference.registry, operation)?;
        let challenge = Challenge::parse(challenge);
        let value = match challenge {
            Some(c) if c.scheme == "bearer" => {
                let token = self.fetch_token(reference, operation, &c, credentials.as_ref())?;
                format!("Bearer {token}")
            }
            _ => match credentials {
                Some(credentials) => credentials.header_value(),
                None => {
                    return Err(RegistryError::Unauthorized {
                        what: what.into(),
                        url: url.into(),
                        status: 401,
                        hint: "the registry requires credentials and none were found: set ORAS_USER with ORAS_PASS (or ORAS_PUSH_PASS/ORAS_PULL_PASS), or DOCKER_CONFIG".into(),
                    });
                }
            },
        };
        let mut cache = self
            .authorizations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cache.insert(Self::authorization_key(reference, operation), value);
        Ok(())
    }

    fn fetch_token(
        &self,
        reference: &Reference,
        operation: Operation,
        challenge: &Challenge,
        credentials: Option<&crate::auth::BasicCredentials>,
    ) -> Result<String, RegistryError> {
        let realm = challenge
            .params
            .get("realm")
            .cloned()
            .ok_or_else(|| RegistryError::Token {
                realm: "<none>".into(),
                reason: "the Bearer challenge has no realm".into(),
            })?;
        // Checked before anything is sent: a plain-HTTP realm of an HTTPS registry gets neither
        // the credentials nor a request (the rule and the clients it was compared with:
        // oras_cache_api::challenge::check_token_realm; oras-go registry/remote/auth/client.go
        // sends credentials to any realm).
        check_token_realm(&realm, self.options.plain_http).map_err(|source| {
            RegistryError::TokenRealm {
                registry: reference.registry.clone(),
                source,
            }
        })?;
        let actions = match operation {
            Operation::Pull => "pull",
            Operation::Push => "pull,push",
        };
        let scope = format!("repository:{}:{actions}", reference.repository);
        let mut url = realm.clone();
        url.push(if url.contains('?') { '&' } else { '?' });
        if let Some(service) = challenge.params.get("service") {
            url.push_str(&format!("service={}&", percent_encode(service)));
        }
        url.push_str(&format!("scope={}", percent_encode(&scope)));
        let token_error = |reason: String| RegistryError::Token {
            realm: realm.clone(),
            reason,
        };
        // The token server is retried as the registry is: a realm that restarts with its
        // registry must not fail the pull.
        let what = format!("token for {scope}");
        let mut response = self.retrying(&what, &mut Budget::new(), |_| {
            let mut request = self.agent.get(&url);
            if let Some(credentials) = credentials {
                request = request.header("Authorization", credentials.header_value());
            }
            match request.call() {
                Ok(response) if is_retryable_status(response.status().as_u16()) => {
                    Attempted::Failed {
                        reason: format!("HTTP {}", response.status().as_u16()),
                        if_last: Ok(response),
                    }
                }
                Ok(response) => Attempted::Done(Ok(response)),
                Err(error) if is_retryable_error(&error) => Attempted::Failed {
                    reason: error.to_string(),
                    if_last: Err(token_error(error.to_string())),
                },
                Err(error) => Attempted::Done(Err(token_error(error.to_string()))),
            }
        })?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(token_error(format!(
                "HTTP {status}{}",
                if credentials.is_none() {
                    " (no credentials were sent: set ORAS_USER and ORAS_PASS)"
                } else {
                    " (check the credentials)"
                }
            )));
        }
        let body = read_limited(self, &mut response, 1024 * 1024, "token", &realm)?;
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| token_error(e.to_string()))?;
        json.get("token")
            .or_else(|| json.get("access_token"))
            .and_then(|t| t.as_str())
            .map(String::from)
            .ok_or_else(|| token_error("the answer has neither token nor access_token".into()))
    }
}

/// Every certificate of a PEM file.
fn read_ca_file(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, RegistryError> {
    let ca_error = |reason: String| RegistryError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item.map_err(|e| ca_error(e.to_string()))? {
            ureq::tls::PemItem::Certificate(certificate) => certificates.push(certificate),
            _ => continue,
        }
    }
    if certificates.is_empty() {
        return Err(ca_error("no PEM certificate in it".into()));
    }
    Ok(certificates)
}

fn with_auth<B>(
    request: ureq::RequestBuilder<B>,
    authorization: Option<&str>,
) -> ureq::RequestBuilder<B> {
    match authorization {
        Some(value) => request.header("Authorization", value),
        None => request,
    }
}

fn header(response: &Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

fn is_retryable_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

fn is_retryable_error(error: &ureq::Error) -> bool {
    // TLS failures (unknown CA, wrong name) surface as InvalidData: retrying cannot fix them.
    if let ureq::Error::Io(e) = error
        && matches!(
            e.kind(),
            io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
        )
    {
        return false;
    }
    matches!(
        error,
        ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::Timeout(_)
            | ureq::Error::HostNotFound
            | ureq::Error::Protocol(_)
    )
}

fn status_error(what: &str, url: &str, mut response: Response<ureq::Body>) -> RegistryError {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    let _ = response
        .body_mut()
        .as_reader()
        .take(2048)
        .read_to_end(&mut body);
    let body = printable(String::from_utf8_lossy(&body).trim());
    // distribution's proxy mode refuses writes this way: its proxy blob store answers them with
    // `distribution.ErrUnsupported` (`registry/proxy/proxyblobstore.go`), which the upload handler
    // turns into `errcode.ErrorCodeUnsupported`, HTTP 405 (`registry/handlers/blobupload.go`,
    // `registry/api/errcode/register.go`; distribution commit 0d6b721d).
    if status == 405 && body.contains("UNSUPPORTED") {
        return RegistryError::PullOnly {
            what: what.into(),
            url: url.into(),
        };
    }
    RegistryError::Status {
        what: what.into(),
        url: url.into(),
        status,
        body,
    }
}

/// Reads a small body into memory through the client's [`RateGuard`]; `url` names the host in a
/// stall.
fn read_limited(
    client: &RegistryClient,
    response: &mut Response<ureq::Body>,
    limit: u64,
    what: &str,
    url: &str,
) -> Result<Vec<u8>, RegistryError> {
    let started = std::time::Instant::now();
    let mut bytes = Vec::new();
    client
        .guarded(response.body_mut().as_reader())
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            let error = ureq::Error::Io(e);
            match client.stall_reason(&error) {
                Some(_) => client.give_up(what, url, 1, started, error),
                None => RegistryError::Protocol {
                    what: what.into(),
                    reason: error.to_string(),
                },
            }
        })?;
    if bytes.len() as u64 > limit {
        return Err(RegistryError::TooLarge {
            what: what.into(),
            limit,
        });
    }
    Ok(bytes)
}

/// `text` with control characters escaped: what a registry sends (an error body) is printed to
/// the log, and a newline or an escape sequence there would forge or hide log lines.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// `https://host:port/v2/...` → `host:port`.
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// A reader that fails with `TimedOut` when fewer than `min_rate` bytes per second passed
/// through it over a window of `window`: a server that sends (or takes) a byte just often enough
/// to beat the read deadline is still a stall. The first window starts at the first read (not
/// while connecting); the last, partial window is not judged.
struct RateGuard<R> {
    inner: R,
    window: Duration,
    min_rate: u64,
    window_start: Option<std::time::Instant>,
    window_bytes: u64,
}

impl<R> RateGuard<R> {
    fn new(inner: R, window: Duration, min_rate: u64) -> RateGuard<R> {
        RateGuard {
            inner,
            window: window.max(Duration::from_millis(1)),
            min_rate,
            window_start: None,
            window_bytes: 0,
        }
    }
}

impl<R: Read> Read for RateGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let window_start = *self
            .window_start
            .get_or_insert_with(std::time::Instant::now);
        let n = self.inner.read(buf)?;
        if n == 0 || self.min_rate == 0 {
            return Ok(n);
        }
        self.window_bytes += n as u64;
        let elapsed = window_start.elapsed();
        if elapsed >= self.window {
            let rate = self.window_bytes as f64 / elapsed.as_secs_f64();
            if rate < self.min_rate as f64 {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} bytes in {:.1} s ({rate:.0} B/s), below the minimum rate of {} B/s",
                        self.window_bytes,
                        elapsed.as_secs_f64(),
                        self.min_rate
                    ),
                ));
            }
            self.window_start = Some(std::time::Instant::now());
            self.window_bytes = 0;
        }
        Ok(n)
    }
}

struct ProgressReader<R> {
    inner: R,
    progress: Progress,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1), Duration::from_millis(500));
        assert_eq!(policy.backoff(2), Duration::from_secs(1));
        assert_eq!(policy.backoff(5), Duration::from_secs(8));
        assert_eq!(policy.backoff(30), Duration::from_secs(8));
    }

    #[test]
    fn the_retry_helper_stops_at_the_attempts_and_answers_challenges_for_free() {
        let mut options = ClientOptions::new(true);
        options.retry = RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
        };
        let client = RegistryClient::new(options).unwrap();
        let mut calls = 0;
        let outcome: Result<u32, RegistryError> =
            client.retrying("test", &mut Budget::new(), |budget| {
                calls += 1;
                match calls {
                    1 => Attempted::Again,
                    _ => Attempted::Failed {
                        reason: "reset".into(),
                        if_last: Ok(budget.failed + 100),
                    },
                }
            });
        // One free repeat, then three counted failures; the last one's outcome is returned.
        assert_eq!((calls, outcome.unwrap()), (4, 102));

        let mut budget = Budget::new();
        budget.failed = 1;
        let mut calls = 0;
        let outcome: Result<(), RegistryError> = client.retrying("test", &mut budget, |_| {
            calls += 1;
            if calls == 2 {
                Attempted::Done(Ok(()))
            } else {
                Attempted::Failed {
                    reason: "stall".into(),
                    if_last: Ok(()),
                }
            }
        });
        assert!(outcome.is_ok());
        assert_eq!(
            (calls, budget.failed),
            (2, 2),
            "a shared budget keeps counting"
        );
    }

    /// A reader that yields one byte per call, sleeping `pause` first.
    struct Slow {
        left: usize,
        pause: Duration,
    }

    impl Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.left == 0 || buf.is_empty() {
                return Ok(0);
            }
            std::thread::sleep(self.pause);
            self.left -= 1;
            buf[0] = b'x';
            Ok(1)
        }
    }

    #[test]
    fn the_rate_guard_fails_a_trickle_as_timed_out_and_passes_fast_or_disabled_reads() {
        let trickle = Slow {
            left: 1000,
            pause: Duration::from_millis(5),
        };
        let mut guard = RateGuard::new(trickle, Duration::from_millis(50), 1_000_000);
        let error = io::copy(&mut guard, &mut io::sink()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("minimum rate"), "{error}");

        let mut fast = RateGuard::new(&[7u8; 100_000][..], Duration::from_millis(1), 1);
        assert_eq!(io::copy(&mut fast, &mut io::sink()).unwrap(), 100_000);
        let disabled = Slow {
            left: 5,
            pause: Duration::from_millis(2),
        };
        let mut off = RateGuard::new(disabled, Duration::from_millis(1), 0);
        assert_eq!(io::copy(&mut off, &mut io::sink()).unwrap(), 5);
    }

    #[test]
    fn registry_text_is_printed_with_control_characters_escaped() {
        assert_eq!(
            printable("{\"errors\":[]}\n\u{1b}[2Kfake"),
            "{\"errors\":[]}\\n\\u{1b}[2Kfake"
        );
    }

    #[test]
    fn hosts_are_read_from_urls() {
        assert_eq!(
            host_of("https://r.example:5000/v2/a/blobs/x"),
            "r.example:5000"
        );
        assert_eq!(host_of("http://127.0.0.1:1/token?x=y"), "127.0.0.1:1");
    }

    #[test]
    fn percent_encoding_keeps_unreserved_characters() {
        assert_eq!(
            percent_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
