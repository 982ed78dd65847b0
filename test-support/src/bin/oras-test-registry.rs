//! `oras-test-registry`: starts one of the test harness's registries from flags, so that shell
//! (demo/lib.sh) and Python (benches/bench.py) use the same configuration as the Rust tests.
//!
//! Prints one JSON line once `GET /v2/` answers:
//! `{"address":"127.0.0.1:PORT","url":"http://…","pid":…,"registryPid":…,"dir":"…","storage":"…","caFile":null,"tokenRealm":null,"registryBin":"docker-registry","registryVersion":"docker-registry github.com/docker/distribution 2.8.2+ds1"}`
//!
//! The registry is Debian's `docker-registry`, or with `--distribution v3` distribution v3's
//! `registry` built by `scripts/peers.sh`, or whatever binary `ORAS_TEST_REGISTRY_BIN` names (see
//! the library's documentation): `registryBin` and `registryVersion` (its `--version` line) say
//! which ran.
//! and runs until SIGTERM or SIGINT, or until its stdin is closed when stdin is a pipe (so a
//! parent that dies takes the registry with it). Then it stops the registry gracefully (every
//! request answered is in the log) and removes the directory it wrote (the storage too, unless
//! `--storage` named one; the log too, unless `--log` named a file).

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use oras_test_support::token::TokenServer;
use oras_test_support::{BasicAuth, Distribution, Registry, RegistryOptions, Upstream};

/// Starts a loopback docker-registry (or $ORAS_TEST_REGISTRY_BIN) for tests and prints where it
/// listens, as one JSON line.
#[derive(Parser, Debug)]
#[command(name = "oras-test-registry")]
struct Flags {
    /// Require HTTP basic auth (htpasswd) with this user.
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// The password of --user.
    #[arg(long, requires = "user")]
    password: Option<String>,
    /// Serve HTTPS with a certificate for 127.0.0.1 from a CA generated here (printed as caFile).
    #[arg(long)]
    tls: bool,
    /// Require bearer tokens from this realm URL (token auth).
    #[arg(long, requires = "token_service")]
    token_realm: Option<String>,
    /// The service named in the token challenge.
    #[arg(long)]
    token_service: Option<String>,
    /// Require bearer tokens from a token service run by this command, which issues them to
    /// this user (with --token-password); its realm is printed as tokenRealm.
    #[arg(long, requires = "token_password", conflicts_with = "token_realm")]
    token_user: Option<String>,
    /// The password of --token-user.
    #[arg(long, requires = "token_user")]
    token_password: Option<String>,
    /// Listen on this port instead of a free one.
    #[arg(long)]
    port: Option<u16>,
    /// Run as a pull-through cache (mirror) of this upstream URL, such as http://127.0.0.1:5000.
    #[arg(long)]
    mirror_of: Option<String>,
    /// The user the mirror logs in to the upstream with.
    #[arg(long, requires_all = ["mirror_of", "upstream_password"])]
    upstream_user: Option<String>,
    /// The upstream password (given to the registry process's environment only); from the
    /// environment, it stays out of the process list.
    #[arg(long, env = "ORAS_TEST_UPSTREAM_PASSWORD", requires = "upstream_user")]
    upstream_password: Option<String>,
    /// Keep the storage in this directory (shared by replicas; not removed on exit).
    #[arg(long)]
    storage: Option<PathBuf>,
    /// http.secret: replicas on one storage need the same.
    #[arg(long)]
    http_secret: Option<String>,
    /// Write distribution's access log to the registry's log (dir/registry.log, or --log).
    #[arg(long)]
    access_log: bool,
    /// Append the registry's output (errors, the access log) to this file, kept after exit.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Extra environment of the registry process, KEY=VALUE (repeatable).
    #[arg(long = "env", value_parser = key_value)]
    env: Vec<(String, String)>,
    /// The build of distribution to run: `debian` (docker-registry, 2.8) or `v3` (built by
    /// scripts/peers.sh); ORAS_TEST_REGISTRY_BIN overrides both.
    #[arg(long, value_parser = distribution, default_value = "debian")]
    distribution: Distribution,
}

fn distribution(text: &str) -> Result<Distribution, String> {
    match text {
        "debian" | "2.8" => Ok(Distribution::Debian),
        "v3" | "3" => Ok(Distribution::V3),
        other => Err(format!("expected debian or v3, got {other:?}")),
    }
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))
}

/// The service a token challenge names unless --token-service says otherwise.
const DEFAULT_TOKEN_SERVICE: &str = "oras-test-registry";

impl Flags {
    /// The registry's options, and the token service they trust when this command runs one.
    fn options(self) -> std::io::Result<(RegistryOptions, Option<TokenServer>)> {
        let mut options = Registry::builder().distribution(self.distribution);
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            options = options.basic_auth(user, password);
        }
        let service = self
            .token_service
            .as_deref()
            .unwrap_or(DEFAULT_TOKEN_SERVICE);
        if let Some(realm) = &self.token_realm {
            options = options.token(realm, service);
        }
        let tokens = match (&self.token_user, &self.token_password) {
            (Some(user), Some(password)) => Some(TokenServer::start(user, password)?),
            _ => None,
        };
        if let Some(tokens) = &tokens {
            options = options.token_server(tokens, service);
        }
        if let Some(url) = self.mirror_of {
            let auth = self
                .upstream_user
                .zip(self.upstream_password)
                .map(|(user, password)| BasicAuth { user, password });
            options = options.mirror_of(Upstream { url, auth });
        }
        options.tls = self.tls;
        options.port = self.port;
        options.storage = self.storage;
        options.http_secret = self.http_secret;
        options.access_log = self.access_log;
        options.env = self.env;
        options.log_file = self.log;
        Ok((options, tokens))
    }
}

/// Why the command stops.
enum Stop {
    Signal(i32),
    StdinClosed,
}

fn main() {
    let flags = Flags::parse();
    let distribution = flags.distribution;
    // Read before anything starts: a process::exit below would leave the registry running.
    let version = match distribution.version() {
        Ok(version) => version,
        Err(e) => {
            eprintln!("oras-test-registry: {e}");
            std::process::exit(1);
        }
    };
    let started = flags
        .options()
        .and_then(|(options, tokens)| Ok((options.start()?, tokens)));
    let (mut registry, tokens) = match started {
        Ok(started) => started,
        Err(e) => {
            eprintln!("oras-test-registry: {e}");
            std::process::exit(1);
        }
    };
    let (stop, stopped) = mpsc::channel();
    watch_signals(stop.clone());
    watch_stdin(stop);
    let info = serde_json::json!({
        "address": registry.host(),
        "url": registry.url(),
        "pid": std::process::id(),
        "registryPid": registry.pid(),
        "dir": registry.dir(),
        "storage": registry.storage_dir(),
        "caFile": registry.ca_file(),
        "tokenRealm": tokens.as_ref().map(TokenServer::realm),
        "registryBin": distribution.bin(),
        "registryVersion": version,
    });
    println!("{info}");
    let code = loop {
        match stopped.recv_timeout(Duration::from_millis(200)) {
            Ok(Stop::Signal(signal)) => {
                eprintln!("oras-test-registry: stopping on signal {signal}");
                break 0;
            }
            Ok(Stop::StdinClosed) => {
                eprintln!("oras-test-registry: stopping, stdin closed");
                break 0;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break 0,
        }
        if let Some(status) = registry.exited() {
            eprintln!(
                "oras-test-registry: {} exited with {status}: {}",
                distribution.bin(),
                registry.log()
            );
            break 1;
        }
    };
    // Requests in flight finish and are logged before the registry exits.
    registry.stop_gracefully();
    drop(registry);
    drop(tokens);
    std::process::exit(code);
}

fn watch_signals(stop: mpsc::Sender<Stop>) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .expect("install the SIGTERM/SIGINT handlers");
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let _ = stop.send(Stop::Signal(signal));
        }
    });
}

/// Only a pipe or a socket on stdin is watched: a shell starts background jobs with stdin on
/// /dev/null, whose end is no sign that the parent is gone.
fn watch_stdin(stop: mpsc::Sender<Stop>) {
    let watched = std::fs::metadata("/dev/stdin")
        .map(|m| m.file_type().is_fifo() || m.file_type().is_socket())
        .unwrap_or(false);
    if !watched {
        return;
    }
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = stop.send(Stop::StdinClosed);
    });
}
