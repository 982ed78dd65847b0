//! Starts the real OCI registry the tests run against.
//!
//! Debian's `docker-registry` (CNCF distribution 2.8) is started with a configuration written into
//! a temporary directory: `http.addr` on `127.0.0.1:<free port>`, filesystem storage in that
//! directory, optionally htpasswd basic auth. [`Registry::start`] returns once `GET /v2/` answers;
//! dropping the [`Registry`] stops the process and removes its storage.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod hostile;

/// The binary the harness runs; override with `ORAS_TEST_REGISTRY_BIN`.
pub const DEFAULT_REGISTRY_BIN: &str = "docker-registry";

/// How long a registry may take to answer `GET /v2/` after it was spawned.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// Credentials the registry is started with.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// Token authentication (`auth.token` of distribution's configuration): the registry answers
/// `401` with `Bearer realm="<realm>",service="<service>"` and accepts tokens signed by a
/// throwaway certificate the harness generates (no test here needs a valid token: those that do
/// run their own token server).
#[derive(Debug, Clone)]
pub struct TokenAuth {
    /// The realm URL the registry names in its challenge.
    pub realm: String,
    /// The `service` parameter.
    pub service: String,
}

/// How [`Registry::spawn_with`] configures the registry.
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
}

/// A running registry on loopback, stopped when dropped.
pub struct Registry {
    child: Option<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    auth: Option<BasicAuth>,
    options: RegistryOptions,
}

impl Registry {
    /// Starts an anonymous registry on a free loopback port.
    pub fn start() -> Registry {
        Self::spawn(None, None).expect(
            "start the local registry (is docker-registry installed? run scripts/bootstrap.sh)",
        )
    }

    /// Starts a registry that requires HTTP basic auth with these credentials.
    pub fn start_with_basic_auth(user: &str, password: &str) -> Registry {
        let auth = BasicAuth {
            user: user.into(),
            password: password.into(),
        };
        Self::spawn(Some(auth), None).expect("start the local registry with htpasswd auth")
    }

    /// Writes the configuration and spawns the registry; `port` picks a fixed port (used to
    /// restart a registry on the address it had).
    pub fn spawn(auth: Option<BasicAuth>, port: Option<u16>) -> std::io::Result<Registry> {
        Self::spawn_with(RegistryOptions {
            auth,
            port,
            ..Default::default()
        })
    }

    /// Writes the configuration `options` describe and spawns the registry.
    pub fn spawn_with(options: RegistryOptions) -> std::io::Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("oras-test-registry-")
            .tempdir()?;
        let port = match options.port {
            Some(port) => port,
            None => free_port()?,
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut registry = Registry {
            child: None,
            addr,
            dir,
            auth: options.auth.clone(),
            options,
        };
        registry.write_config()?;
        registry.launch()?;
        Ok(registry)
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

    /// Starts the registry again on the same address with the same storage.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.launch()
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
        self.auth.as_ref()
    }

    /// The storage root of the registry, to inspect what was written.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    fn write_config(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.storage_dir())?;
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: {addr}\n  secret: oras-cache-tests\n",
            storage = self.storage_dir().display(),
            addr = self.addr,
        );
        // Still inside the `http:` section.
        if self.options.tls {
            generate_tls(self.dir.path())?;
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                self.dir.path().join("server.pem").display(),
                self.dir.path().join("server.key").display()
            ));
        }
        if let Some(auth) = &self.auth {
            let hash = bcrypt::hash(&auth.password, 4).map_err(std::io::Error::other)?;
            let htpasswd = self.dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{}:{}\n", auth.user, hash))?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: oras-cache-tests\n    path: {}\n",
                htpasswd.display()
            ));
        }
        if let Some(token) = &self.options.token {
            // The registry only reads this certificate to verify tokens.
            openssl(
                self.dir.path(),
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=oras-test-token",
                    "-keyout",
                    "token.key",
                    "-out",
                    "token.pem",
                ],
            )?;
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: oras-test-issuer\n    rootcertbundle: {}\n",
                token.realm,
                token.service,
                self.dir.path().join("token.pem").display()
            ));
        }
        std::fs::write(self.config_path(), config)
    }

    fn launch(&mut self) -> std::io::Result<()> {
        let bin =
            std::env::var("ORAS_TEST_REGISTRY_BIN").unwrap_or_else(|_| DEFAULT_REGISTRY_BIN.into());
        let log = std::fs::File::create(self.dir.path().join("registry.log"))?;
        let child = Command::new(bin)
            .arg("serve")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
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

    /// What the registry printed so far (errors only: the access log is off).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The directory that holds the registry's config, storage and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
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

/// Writes `ca.pem`/`ca.key` and `server.pem`/`server.key` (for `IP:127.0.0.1`, signed by the CA)
/// into `dir`.
pub fn generate_tls(dir: &Path) -> std::io::Result<()> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=oras-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    )?;
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
}
