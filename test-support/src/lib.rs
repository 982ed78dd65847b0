//! Starts the real OCI registries the tests, the demo and the benches run against.
//!
//! Debian's `docker-registry` (CNCF distribution 2.8) is started with a configuration written into
//! a temporary directory: `http.addr` on `127.0.0.1:<free port>`, filesystem storage, optionally
//! htpasswd basic auth, token auth, TLS, a pull-through cache of an upstream (a mirror), or storage
//! shared with other processes (replicas).
//!
//! A registry runs Debian's 2.8 unless its builder asks for [`Distribution::V3`]: distribution v3's
//! `registry` (`cmd/registry` of github.com/distribution/distribution/v3, built from its Go module
//! by `scripts/peers.sh`, which `make test` runs first), the registry of record of the mirror and
//! replica tests. `ORAS_TEST_REGISTRY_BIN=/path/to/registry` runs that one binary for every
//! registry instead. Both take the same command line, `serve CONFIG`
//! (v3: registry/registry.go `ServeCmd`, "serve <config>"), and every configuration key written
//! here exists in both (v3: configuration/configuration.go, docs/content/about/configuration.md).
//! Where the two behave differently as mirrors, [`Upstream::environment`] and
//! [`Distribution::proxy_binds_token_realms`] say how. [`Distribution::version`] names the build
//! that runs. [`RegistryOptions`] is the one builder for all of them
//! ([`Registry::builder`]); [`RegistryOptions::start`] returns once `GET /v2/` answers, and
//! dropping the [`Registry`] stops the process and removes what it wrote. Shell and Python get
//! the same registries from the `oras-test-registry` command (`src/bin/oras-test-registry.rs`).
//!
//! ```no_run
//! use oras_test_support::{Registry, Upstream};
//! use oras_test_support::token::TokenServer;
//!
//! // An htpasswd upstream with an access log, and its mirror: clients of the mirror need no
//! // credentials, the mirror process holds the upstream's.
//! let mut upstream = Registry::builder().basic_auth("alice", "s3cret").access_log().start()?;
//! let mirror = Registry::builder().mirror_of(Upstream::of(&upstream)).start()?;
//! // ... pull through `mirror.host()`, then every request the upstream answered:
//! let requests = upstream.settled_requests()?;
//!
//! // A token-auth upstream (the ghcr.io way) with the token service it trusts.
//! let tokens = TokenServer::start("alice", "s3cret")?;
//! let token_upstream = Registry::builder().token_server(&tokens, "upstream").start()?;
//!
//! // Two replicas on one storage directory with one `http.secret`.
//! let replicas = Registry::builder().start_replicas(2)?;
//! let (first, second) = (&replicas[0], &replicas[1]);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[cfg(feature = "cluster")]
pub mod cluster;
pub mod hostile;
pub mod http;
pub mod oras_cli;
pub mod peers;
pub mod token;

/// The binary the harness runs for [`Distribution::Debian`]; override with
/// `ORAS_TEST_REGISTRY_BIN`.
pub const DEFAULT_REGISTRY_BIN: &str = "docker-registry";

/// The environment variable naming one registry binary that every registry the harness starts
/// runs instead, whichever [`Distribution`] a test asks for.
pub const REGISTRY_BIN_ENV: &str = "ORAS_TEST_REGISTRY_BIN";

/// Which build of CNCF distribution a registry runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Distribution {
    /// Debian's `docker-registry` (distribution 2.8, found on `PATH`): every registry a test
    /// starts without saying otherwise.
    #[default]
    Debian,
    /// distribution v3's `registry`, built from its Go module by `scripts/peers.sh`
    /// ([`peers::binary`]`("registry")`): what a mirror OrasCache runs in a cluster, so the
    /// registry of record of the mirror and replica tests and of `make bench`'s mirror stage.
    V3,
}

impl Distribution {
    /// Both builds, for tests that cover each.
    pub const ALL: [Distribution; 2] = [Distribution::V3, Distribution::Debian];

    /// The binary started for this build: `ORAS_TEST_REGISTRY_BIN` when it is set and not
    /// empty, else Debian's `docker-registry` or the v3 `registry` of `scripts/peers.sh` (which
    /// panics with the fix when it is not built).
    pub fn bin(self) -> String {
        if let Some(bin) = std::env::var(REGISTRY_BIN_ENV)
            .ok()
            .filter(|bin| !bin.is_empty())
        {
            return bin;
        }
        match self {
            Distribution::Debian => DEFAULT_REGISTRY_BIN.into(),
            Distribution::V3 => peers::binary("registry").display().to_string(),
        }
    }

    /// What the binary prints for `--version`, one line: `docker-registry
    /// github.com/docker/distribution 2.8.2+ds1` for Debian's, `<argv0>
    /// github.com/distribution/distribution/v3 v3.1.2` for v3 (registry/root.go, the `--version`
    /// flag; version/get.go `FprintVersion` prints `os.Args[0]`, the package and
    /// `version.version`, which scripts/peers.sh stamps with `-ldflags -X`; unstamped it is
    /// `v3.1.2+unknown` in v3.1.2's version/version.go, which [`parse_release`] reads alike).
    pub fn version(self) -> std::io::Result<String> {
        let bin = self.bin();
        let output = Command::new(&bin)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                std::io::Error::other(format!(
                    "{bin} --version ({REGISTRY_BIN_ENV}, scripts/bootstrap.sh's docker-registry or scripts/peers.sh's registry): {e}"
                ))
            })?;
        if !output.status.success() {
            return Err(std::io::Error::other(format!(
                "{bin} --version exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// The release the binary reports ([`parse_release`] of [`Distribution::version`]).
    pub fn release(self) -> Option<(u32, u32, u32)> {
        self.version().ok().and_then(|v| parse_release(&v))
    }

    /// Whether this build, as a mirror, answers only the `Bearer` challenges whose realm has
    /// the upstream's own host and port, or shares its registrable domain (neither being an IP
    /// address or `localhost`): distribution v3.1.0 and later (commit f215e513d "proxy: bind
    /// bearer realms to upstream trust boundary", registry/proxy/proxyauth.go `realmAllowed`,
    /// applied to every challenge by proxyregistry.go `challengeManager`). ghcr.io (realm on
    /// ghcr.io) and Docker Hub (registry-1.docker.io, realm on auth.docker.io) pass; a loopback
    /// upstream whose token service listens on another port does not, so such a mirror pulls
    /// anonymously and is refused. Debian's 2.8 and v3.0 trust any realm. `false` when the
    /// version cannot be read.
    pub fn proxy_binds_token_realms(self) -> bool {
        self.release().is_some_and(|release| release >= (3, 1, 0))
    }

    /// Whether this build, as a mirror, reads a blob it lacks from the upstream once and
    /// writes that read to the client and to its storage together: distribution v3 (commit
    /// 17952924f "avoid redundant blob fetching", first in v3.0.0-alpha.1; `io.MultiWriter` in
    /// registry/proxy/proxyblobstore.go `ServeBlob`). Debian's 2.8 reads it twice, once in the
    /// `storeLocal` goroutine and once for the client (`copyContent`). `false` when the version
    /// cannot be read.
    pub fn proxy_fetches_blobs_once(self) -> bool {
        self.release().is_some_and(|release| release >= (3, 0, 0))
    }
}

/// The binary of the default registry ([`Distribution::Debian`]`.bin()`).
pub fn registry_bin() -> String {
    Distribution::Debian.bin()
}

/// The `--version` line of the default registry ([`Distribution::version`]).
pub fn registry_version() -> std::io::Result<String> {
    Distribution::Debian.version()
}

/// `(major, minor, patch)` of a `--version` line: its last word without a leading `v`, up to the
/// first character that is not a digit or a dot (`2.8.2+ds1` is 2.8.2, `v3.1.1` is 3.1.1).
pub fn parse_release(version: &str) -> Option<(u32, u32, u32)> {
    let word = version.split_whitespace().last()?;
    let word = word.strip_prefix('v').unwrap_or(word);
    let end = word
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(word.len());
    let mut parts = word[..end].split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// [`Distribution::proxy_binds_token_realms`] of the default registry.
pub fn proxy_binds_token_realms() -> bool {
    Distribution::Debian.proxy_binds_token_realms()
}

/// [`Distribution::proxy_fetches_blobs_once`] of the default registry.
pub fn proxy_fetches_blobs_once() -> bool {
    Distribution::Debian.proxy_fetches_blobs_once()
}

/// [`Distribution::release`] of the default registry.
pub fn registry_release() -> Option<(u32, u32, u32)> {
    Distribution::Debian.release()
}

/// The `http.secret` of a registry started without [`RegistryOptions::http_secret`].
pub const DEFAULT_HTTP_SECRET: &str = "oras-cache-tests";

/// How long a registry may take to answer `GET /v2/` after it was spawned.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// How long a mirror may take to store a blob it streamed ([`Registry::wait_for_blob`]).
const BLOB_DEADLINE: Duration = Duration::from_secs(60);

/// How long a registry stopped with [`Registry::stop_gracefully`] may finish the requests it
/// serves (distribution's `http.draintimeout`).
const DRAIN_TIMEOUT: &str = "10s";

/// Credentials the registry is started with.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// Token authentication (`auth.token` of distribution's configuration): the registry answers
/// `401` with `Bearer realm="<realm>",service="<service>"`. It accepts tokens signed by the
/// certificate of [`RegistryOptions::token_trust`], or else by a throwaway certificate the harness
/// generates (for tests that need the challenge but no valid token).
#[derive(Debug, Clone)]
pub struct TokenAuth {
    /// The realm URL the registry names in its challenge.
    pub realm: String,
    /// The `service` parameter.
    pub service: String,
}

/// Who signs the tokens a token-auth registry accepts: a test that runs its own token server.
#[derive(Debug, Clone)]
pub struct TokenTrust {
    /// The `iss` claim the registry expects.
    pub issuer: String,
    /// PEM of the certificate whose key signs the tokens (`rootcertbundle`).
    pub root_cert_pem: String,
}

/// The registry a mirror pulls through to (distribution's `proxy` section).
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http://host:port` or `https://host:port` of the upstream registry.
    pub url: String,
    /// Credentials for the upstream; they reach the mirror process only, through its environment.
    pub auth: Option<BasicAuth>,
}

impl Upstream {
    /// A harness registry as the upstream, with the basic credentials it requires (if any).
    pub fn of(registry: &Registry) -> Upstream {
        Upstream {
            url: registry.url(),
            auth: registry.auth().cloned(),
        }
    }

    /// The environment that gives the mirror process its upstream credentials, as a Kubernetes
    /// Secret reaches a registry container; empty without credentials.
    ///
    /// distribution 2.8 hands `proxy.username`/`proxy.password` only to the token realms the
    /// upstream names in a `Bearer` challenge (registry/proxy/proxyauth.go, `getAuthURLs`): an
    /// upstream with basic auth (htpasswd) never gets them. Go's HTTP client sends the user
    /// information of a URL as basic auth instead, so `REGISTRY_PROXY_REMOTEURL` carries them
    /// too; a token upstream ignores that header on its challenge. distribution v3 also answers a
    /// `Basic` challenge with `proxy.username`/`password` (commit 1e8ea0317, first in
    /// v3.0.0-beta.1: registry/proxy/proxyregistry.go `auth.NewBasicHandler(pr.basicAuth)`), so
    /// there the user information is redundant and harmless: the same environment serves both.
    /// The variable names are the same in both (`REGISTRY_` and the configuration path,
    /// docs/content/about/configuration.md, "Override specific configuration options").
    pub fn environment(&self) -> Vec<(String, String)> {
        let Some(auth) = &self.auth else {
            return Vec::new();
        };
        let remote = match self.url.split_once("://") {
            Some((scheme, rest)) => format!(
                "{scheme}://{}:{}@{rest}",
                percent_encode(&auth.user),
                percent_encode(&auth.password)
            ),
            None => self.url.clone(),
        };
        vec![
            ("REGISTRY_PROXY_REMOTEURL".into(), remote),
            ("REGISTRY_PROXY_USERNAME".into(), auth.user.clone()),
            ("REGISTRY_PROXY_PASSWORD".into(), auth.password.clone()),
        ]
    }
}

/// `text` with every byte but RFC 3986's unreserved characters percent-encoded, as the user
/// information of a URL needs.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The builder of every registry the tests need: set what differs from an anonymous plain-HTTP
/// registry, then [`RegistryOptions::start`] it.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// htpasswd basic auth with these credentials.
    pub auth: Option<BasicAuth>,
    /// Token auth pointing at a realm (exclusive with `auth`).
    pub token: Option<TokenAuth>,
    /// Serve HTTPS with a certificate for `127.0.0.1` signed by a CA generated for this registry
    /// (its PEM is [`Registry::ca_file`]); needs `openssl`.
    pub tls: bool,
    /// A fixed port (used to restart a registry on the address it had); `None` picks a free one.
    pub port: Option<u16>,
    /// Run as a pull-through cache of this upstream: pull only, pushes are refused.
    pub mirror: Option<Upstream>,
    /// A storage root shared with other registry processes (replicas); the registry does not
    /// remove it. `None`: storage in the registry's own directory, removed on drop.
    pub storage: Option<PathBuf>,
    /// `http.secret`, which signs upload sessions: replicas must share it.
    pub http_secret: Option<String>,
    /// Write distribution's access log (one line per request) to [`Registry::log`].
    pub access_log: bool,
    /// Append the registry's output (errors, the access log) to this file, which outlives the
    /// registry, instead of a file in its directory.
    pub log_file: Option<PathBuf>,
    /// The signer of the tokens a `token` registry accepts.
    pub token_trust: Option<TokenTrust>,
    /// Extra environment of the registry process: `REGISTRY_*` variables override the
    /// configuration, except the listen address and the filesystem storage root.
    pub env: Vec<(String, String)>,
    /// The build of distribution that runs (Debian's 2.8 unless set).
    pub distribution: Distribution,
}

impl RegistryOptions {
    /// Requires HTTP basic auth with these credentials (htpasswd).
    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some(BasicAuth {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// Requires a bearer token from `realm` for `service`.
    pub fn token(mut self, realm: &str, service: &str) -> Self {
        self.token = Some(TokenAuth {
            realm: realm.into(),
            service: service.into(),
        });
        self
    }

    /// Accepts tokens issued by `issuer` and signed with the key of the certificate `root_cert_pem`.
    pub fn token_trust(mut self, issuer: &str, root_cert_pem: &str) -> Self {
        self.token_trust = Some(TokenTrust {
            issuer: issuer.into(),
            root_cert_pem: root_cert_pem.into(),
        });
        self
    }

    /// Serves HTTPS (see [`RegistryOptions::tls`]).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Listens on this port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Runs as a pull-through cache of `upstream` (see [`Upstream`]).
    pub fn mirror_of(mut self, upstream: Upstream) -> Self {
        self.mirror = Some(upstream);
        self
    }

    /// Keeps blobs and manifests in `dir`, which other processes may share.
    pub fn storage(mut self, dir: impl Into<PathBuf>) -> Self {
        self.storage = Some(dir.into());
        self
    }

    /// Signs upload sessions with `secret`.
    pub fn http_secret(mut self, secret: &str) -> Self {
        self.http_secret = Some(secret.into());
        self
    }

    /// Writes the access log (see [`Registry::requests`]).
    pub fn access_log(mut self) -> Self {
        self.access_log = true;
        self
    }

    /// Appends the registry's output to `file` (see [`RegistryOptions::log_file`]).
    pub fn log_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.log_file = Some(file.into());
        self
    }

    /// Runs this build of distribution (see [`Distribution`]).
    pub fn distribution(mut self, distribution: Distribution) -> Self {
        self.distribution = distribution;
        self
    }

    /// Adds `key=value` to the registry process's environment.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Writes the configuration, spawns the registry and waits until it answers.
    pub fn start(self) -> std::io::Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("oras-test-registry-")
            .tempdir()?;
        let port = match self.port {
            Some(port) => port,
            None => free_port()?,
        };
        let mut registry = Registry {
            child: None,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            dir,
            options: self,
        };
        registry.write_config()?;
        registry.launch()?;
        Ok(registry)
    }

    /// Starts `count` registries on one new storage directory with one `http.secret` (a random
    /// one unless set), as replicas of a cache behind a load balancer are.
    pub fn start_replicas(mut self, count: usize) -> std::io::Result<Replicas> {
        let storage = tempfile::Builder::new()
            .prefix("oras-test-replicas-")
            .tempdir()?;
        self.storage = Some(storage.path().to_path_buf());
        if self.http_secret.is_none() {
            self.http_secret = Some(format!("replicas-{}", storage.path().display()));
        }
        let registries = (0..count)
            .map(|_| self.clone().start())
            .collect::<std::io::Result<_>>()?;
        Ok(Replicas {
            registries,
            storage,
        })
    }
}

/// Registry processes sharing one storage directory and one `http.secret`; stopped when dropped,
/// then the storage is removed.
pub struct Replicas {
    // Declared first: dropped (stopped) before the storage they use is removed.
    registries: Vec<Registry>,
    storage: tempfile::TempDir,
}

impl Replicas {
    /// The replicas, in the order they started.
    pub fn registries(&self) -> &[Registry] {
        &self.registries
    }

    /// The storage root they share.
    pub fn storage_dir(&self) -> &Path {
        self.storage.path()
    }
}

impl std::ops::Index<usize> for Replicas {
    type Output = Registry;

    fn index(&self, index: usize) -> &Registry {
        &self.registries[index]
    }
}

/// A running registry on loopback, stopped when dropped.
pub struct Registry {
    child: Option<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    options: RegistryOptions,
}

impl Registry {
    /// The builder: `Registry::builder().basic_auth("alice", "s3cret").start()`.
    pub fn builder() -> RegistryOptions {
        RegistryOptions::default()
    }

    /// Starts an anonymous registry on a free loopback port (`Registry::builder().start()`).
    pub fn start() -> Registry {
        Self::builder().start().unwrap_or_else(|e| {
            panic!(
                "start the local registry {} (docker-registry: scripts/bootstrap.sh installs it; or {REGISTRY_BIN_ENV}): {e}",
                registry_bin()
            )
        })
    }

    /// Starts a registry that requires HTTP basic auth with these credentials.
    pub fn start_with_basic_auth(user: &str, password: &str) -> Registry {
        Self::builder()
            .basic_auth(user, password)
            .start()
            .expect("start the local registry with htpasswd auth")
    }

    /// Starts the registry `options` describe (the same as `options.start()`).
    pub fn spawn_with(options: RegistryOptions) -> std::io::Result<Registry> {
        options.start()
    }

    /// The PEM of the CA that signed the registry's certificate (`tls` registries only).
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.options.tls.then(|| self.dir.path().join("ca.pem"))
    }

    /// Stops the registry process, keeping its storage, so that tests can see a registry go down.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the registry with SIGTERM and waits until it exits: distribution then finishes the
    /// requests in flight first, so the access log is complete when this returns.
    pub fn stop_gracefully(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the pid of a child this value owns and has not reaped yet.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// Starts the registry again on the same address with the same storage.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.launch()
    }

    /// The exit status of the registry process if it has ended (`None` while it runs).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The pid of the registry process while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `127.0.0.1:<port>`, the host part of references pushed to this registry.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` (`https://` for a TLS registry).
    pub fn url(&self) -> String {
        let scheme = if self.options.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The credentials the registry requires, if any.
    pub fn auth(&self) -> Option<&BasicAuth> {
        self.options.auth.as_ref()
    }

    /// The options it was started with.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// The storage root of the registry, to inspect what was written.
    pub fn storage_dir(&self) -> PathBuf {
        match &self.options.storage {
            Some(shared) => shared.clone(),
            None => self.dir.path().join("storage"),
        }
    }

    /// What the registry printed so far: errors, and the access log when it was asked for.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The request lines of the access log (`GET /v2/r/blobs/sha256:… HTTP/1.1`), oldest first.
    /// A request is logged once it is answered: call [`Registry::stop_gracefully`] first to be
    /// sure every request made so far is there.
    pub fn requests(&self) -> Vec<String> {
        self.log().lines().filter_map(access_log_request).collect()
    }

    /// Whether `repository` links blob `digest` (`sha256:…`) in this registry's storage (the
    /// filesystem layout of distribution 2.8, the same in v3). A mirror serves a blob from its
    /// own storage once it is linked (registry/proxy/proxyblobstore.go, `ServeBlob`): 2.8 stores
    /// it in a goroutine, with a second upstream read, while it streams it to the first client;
    /// v3 writes its one upstream read to the client and its storage at once and links the blob
    /// after the client's copy ends.
    pub fn links_blob(&self, repository: &str, digest: &str) -> bool {
        let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
        self.storage_dir()
            .join("docker/registry/v2/repositories")
            .join(repository)
            .join("_layers")
            .join(algorithm)
            .join(hex)
            .join("link")
            .exists()
    }

    /// Waits until `repository` links blob `digest` (see [`Registry::links_blob`]): a mirror
    /// stores a blob in the background, and a test that counts upstream fetches waits for it.
    /// Fails after a minute (a liveness bound, not a timing check).
    pub fn wait_for_blob(&self, repository: &str, digest: &str) -> std::io::Result<()> {
        let deadline = Instant::now() + BLOB_DEADLINE;
        while !self.links_blob(repository, digest) {
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "{} never stored {digest} of {repository}: {}",
                    self.host(),
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// How many times the registry answered `GET` for blob `digest`, every request so far
    /// counted (see [`Registry::settled_requests`]; needs [`RegistryOptions::access_log`]).
    pub fn blob_fetches(&mut self, digest: &str) -> std::io::Result<usize> {
        let blob = format!("/blobs/{digest} ");
        Ok(self
            .settled_requests()?
            .iter()
            .filter(|r| r.starts_with("GET ") && r.contains(&blob))
            .count())
    }

    /// Every request the registry has answered so far, complete: the registry is stopped
    /// gracefully (so that requests in flight finish and are logged), read, and started again
    /// on the same address and storage. Needs [`RegistryOptions::access_log`].
    pub fn settled_requests(&mut self) -> std::io::Result<Vec<String>> {
        self.stop_gracefully();
        let requests = self.requests();
        self.launch()?;
        Ok(requests)
    }

    /// The directory that holds the registry's config, storage and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the registry's output goes: [`RegistryOptions::log_file`], else its directory.
    pub fn log_path(&self) -> PathBuf {
        match &self.options.log_file {
            Some(file) => file.clone(),
            None => self.dir.path().join("registry.log"),
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    fn write_config(&self) -> std::io::Result<()> {
        let dir = self.dir.path();
        let options = &self.options;
        std::fs::create_dir_all(self.storage_dir())?;
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: error\n  accesslog:\n    disabled: {no_access_log}\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: {addr}\n  secret: {secret}\n  draintimeout: {DRAIN_TIMEOUT}\n",
            no_access_log = !options.access_log,
            storage = self.storage_dir().display(),
            addr = self.addr,
            secret = options
                .http_secret
                .as_deref()
                .unwrap_or(DEFAULT_HTTP_SECRET),
        );
        // Still inside the `http:` section.
        if options.tls {
            generate_tls(dir)?;
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.join("server.pem").display(),
                dir.join("server.key").display()
            ));
        }
        if let Some(auth) = &options.auth {
            let hash = bcrypt::hash(&auth.password, 4).map_err(std::io::Error::other)?;
            let htpasswd = dir.join("htpasswd");
            std::fs::write(&htpasswd, format!("{}:{}\n", auth.user, hash))?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: oras-cache-tests\n    path: {}\n",
                htpasswd.display()
            ));
        }
        if let Some(token) = &options.token {
            let issuer = match &options.token_trust {
                Some(trust) => {
                    std::fs::write(dir.join("token.pem"), &trust.root_cert_pem)?;
                    trust.issuer.as_str()
                }
                None => {
                    // The registry only reads this certificate to verify tokens.
                    self_signed(dir, "oras-test-token", "token")?;
                    "oras-test-issuer"
                }
            };
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                token.realm,
                token.service,
                dir.join("token.pem").display()
            ));
        }
        if let Some(upstream) = &options.mirror {
            // distribution's pull-through cache: the `proxy` section of its configuration
            // (docs/configuration.md, "proxy"; registry/proxy/proxyregistry.go in
            // github.com/distribution/distribution). The credentials are not written here:
            // they go to the process's environment only (`launch`).
            config.push_str(&format!("proxy:\n  remoteurl: {}\n", upstream.url));
        }
        std::fs::write(self.config_path(), config)
    }

    fn launch(&mut self) -> std::io::Result<()> {
        let bin = self.options.distribution.bin();
        // Appended to, so that a restarted registry's log keeps what came before.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut command = Command::new(&bin);
        command
            .arg("serve")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(upstream) = &self.options.mirror {
            command.envs(upstream.environment());
        }
        command.envs(self.options.env.iter().map(|(k, v)| (k, v)));
        // Environment overrides the configuration file in distribution; the address and the
        // storage root stay the harness's whatever a test passes (such as a container's
        // environment, which names its own port and volume).
        command
            .env("REGISTRY_HTTP_ADDR", self.addr.to_string())
            .env(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                self.storage_dir(),
            );
        self.child = Some(
            command
                .spawn()
                .map_err(|e| std::io::Error::new(e.kind(), format!("{bin}: {e}")))?,
        );
        self.wait_until_listening()
    }

    fn wait_until_listening(&mut self) -> std::io::Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.exited() {
                return Err(std::io::Error::other(format!(
                    "registry exited with {status}: {}",
                    self.log()
                )));
            }
            // A TLS registry does not answer plain HTTP: a connection means it listens.
            let ready = if self.options.tls {
                TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)).is_ok()
            } else {
                probe_v2(self.addr).is_some()
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "registry did not answer GET /v2/ on {} within {:?}: {}",
                    self.addr,
                    START_DEADLINE,
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The request line of an access-log line in the Apache combined format distribution writes
/// (`127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 …`); `None` for any other line.
fn access_log_request(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("] \"")?;
    let (request, _) = rest.split_once('"')?;
    request.contains(" HTTP/").then(|| request.to_string())
}

/// Runs `openssl` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> std::io::Result<()> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| {
            std::io::Error::other(format!("openssl (scripts/bootstrap.sh installs it): {e}"))
        })?;
    if !output.status.success() {
        return Err(std::io::Error::other(format!(
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(())
}

/// Writes `<name>.key` and a self-signed `<name>.pem` for common name `cn` into `dir`.
fn self_signed(dir: &Path, cn: &str, name: &str) -> std::io::Result<()> {
    let (subject, key, cert) = (
        format!("/CN={cn}"),
        format!("{name}.key"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", &subject,
            "-keyout", &key, "-out", &cert,
        ],
    )
}

/// Writes `ca.pem`/`ca.key` and `server.pem`/`server.key` (for `IP:127.0.0.1`, signed by the CA)
/// into `dir`.
pub fn generate_tls(dir: &Path) -> std::io::Result<()> {
    self_signed(dir, "oras-test-ca", "ca")?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    )?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    )
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// The HTTP status of `GET /v2/`, or `None` when nothing answers.
pub fn probe_v2(addr: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_registry_answers_v2_and_stops_on_drop() {
        let registry = Registry::start();
        let addr = registry.addr();
        assert_eq!(probe_v2(addr), Some(200));
        drop(registry);
        assert_eq!(probe_v2(addr), None);
    }

    #[test]
    fn basic_auth_registry_challenges_anonymous_clients() {
        let registry = Registry::start_with_basic_auth("alice", "s3cret");
        assert_eq!(probe_v2(registry.addr()), Some(401));
    }

    #[test]
    fn a_stopped_registry_restarts_on_the_same_address() {
        let mut registry = Registry::start();
        registry.stop();
        assert_eq!(probe_v2(registry.addr()), None);
        registry.restart().unwrap();
        assert_eq!(probe_v2(registry.addr()), Some(200));
    }

    #[test]
    fn a_container_environment_applies_but_the_address_and_storage_stay_the_harness() {
        let registry = Registry::builder()
            .env("REGISTRY_HTTP_ADDR", ":5000")
            .env(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                "/var/lib/registry",
            )
            .env("REGISTRY_HTTP_SECRET", "from-the-environment")
            .start()
            .unwrap();
        assert_eq!(probe_v2(registry.addr()), Some(200));
    }

    #[test]
    fn upstream_credentials_reach_the_mirror_by_its_environment() {
        let upstream = Upstream {
            url: "http://127.0.0.1:5000".into(),
            auth: Some(BasicAuth {
                user: "alice".into(),
                password: "p@ss:w/rd".into(),
            }),
        };
        assert_eq!(
            upstream.environment(),
            [
                (
                    "REGISTRY_PROXY_REMOTEURL".to_string(),
                    "http://alice:p%40ss%3Aw%2Frd@127.0.0.1:5000".to_string()
                ),
                ("REGISTRY_PROXY_USERNAME".into(), "alice".into()),
                ("REGISTRY_PROXY_PASSWORD".into(), "p@ss:w/rd".into()),
            ]
        );
        let anonymous = Upstream {
            auth: None,
            ..upstream
        };
        assert!(anonymous.environment().is_empty());
    }

    #[test]
    fn a_version_line_gives_its_release() {
        assert_eq!(
            parse_release("docker-registry github.com/docker/distribution 2.8.2+ds1"),
            Some((2, 8, 2))
        );
        assert_eq!(
            parse_release("registry github.com/distribution/distribution/v3 v3.1.1"),
            Some((3, 1, 1))
        );
        assert_eq!(parse_release("registry x v3.0.0-rc.1"), Some((3, 0, 0)));
        // scripts/peers.sh's build, run by its full path, and an unstamped one.
        assert_eq!(
            parse_release(
                "/root/.cache/oras-cache/peers/registry-v3.1.2/registry github.com/distribution/distribution/v3 v3.1.2"
            ),
            Some((3, 1, 2))
        );
        assert_eq!(
            parse_release("registry github.com/distribution/distribution/v3 v3.1.2+unknown"),
            Some((3, 1, 2))
        );
        assert_eq!(parse_release("registry x v3.1"), Some((3, 1, 0)));
        assert_eq!(parse_release("registry x unknown"), None);
        assert_eq!(parse_release(""), None);
    }

    #[test]
    fn the_registry_binary_prints_its_version() {
        let version = registry_version().unwrap();
        assert!(parse_release(&version).is_some(), "{version}");
    }

    #[test]
    fn the_v3_build_reports_the_release_scripts_peers_pins() {
        if std::env::var_os(REGISTRY_BIN_ENV).is_some_and(|bin| !bin.is_empty()) {
            // Another build was asked for; its release is its own.
            return;
        }
        let pinned = peers::version("registry").unwrap();
        let version = Distribution::V3.version().unwrap();
        assert_eq!(
            parse_release(&version),
            parse_release(pinned),
            "{version} against scripts/peers/versions' {pinned}"
        );
        assert!(Distribution::V3.proxy_fetches_blobs_once());
        assert!(Distribution::V3.proxy_binds_token_realms());
        assert!(!Distribution::Debian.proxy_fetches_blobs_once());
        let registry = Registry::builder()
            .distribution(Distribution::V3)
            .start()
            .unwrap();
        assert_eq!(probe_v2(registry.addr()), Some(200));
    }

    #[test]
    fn access_log_lines_give_their_request_line() {
        let line = r#"127.0.0.1 - - [30/Nov/2026:05:40:00 +0000] "GET /v2/r/blobs/sha256:aa HTTP/1.1" 200 2 "" "Go-http-client/1.1""#;
        assert_eq!(
            access_log_request(line).as_deref(),
            Some("GET /v2/r/blobs/sha256:aa HTTP/1.1")
        );
        assert_eq!(
            access_log_request(r#"time="2026-11-30T05:40:00Z" level=error msg="x""#),
            None
        );
    }
}
