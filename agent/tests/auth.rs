//! Credentials through the binary: environment variables, docker config, and the Bearer token
//! flow of a real registry configured for token auth.

mod common;

use base64::Engine as _;
use common::{pull, push, run, run_failing, run_ok};
use oras_test_support::Registry;

#[test]
fn env_credentials_pick_the_push_and_pull_passwords() {
    let registry = Registry::start_with_basic_auth("alice", "s3cret");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f.txt"), "private").unwrap();
    let reference = format!("{}/auth/env:v1", registry.host());

    let message = run_failing(push(&reference, &["f.txt"]).current_dir(work.path()));
    assert!(message.contains("ORAS_USER"), "{message}");

    run_ok(
        push(&reference, &["f.txt"])
            .current_dir(work.path())
            .env("ORAS_USER", "alice")
            .env("ORAS_PASS", "wrong")
            .env("ORAS_PUSH_PASS", "s3cret"),
    );
    let out = work.path().join("out");
    let wrong = run(pull(&reference, &out)
        .env("ORAS_USER", "alice")
        .env("ORAS_PASS", "wrong"));
    assert!(
        !wrong.status.success(),
        "the pull password is ORAS_PASS here, and wrong"
    );
    run_ok(
        pull(&reference, &out)
            .env("ORAS_USER", "alice")
            .env("ORAS_PASS", "wrong")
            .env("ORAS_PULL_PASS", "s3cret"),
    );
    assert_eq!(
        std::fs::read_to_string(out.join("f.txt")).unwrap(),
        "private"
    );
}

#[test]
fn docker_config_credentials_are_used_for_their_registry() {
    let registry = Registry::start_with_basic_auth("bob", "pw");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f.txt"), "via docker config").unwrap();
    let config_dir = work.path().join("docker");
    std::fs::create_dir_all(&config_dir).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("bob:pw");
    std::fs::write(
        config_dir.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let reference = format!("{}/auth/docker:v1", registry.host());
    run_ok(
        push(&reference, &["f.txt"])
            .current_dir(work.path())
            .env("DOCKER_CONFIG", &config_dir),
    );
    let out = work.path().join("out");
    run_ok(pull(&reference, &out).env("DOCKER_CONFIG", config_dir.join("config.json")));
    assert_eq!(
        std::fs::read_to_string(out.join("f.txt")).unwrap(),
        "via docker config"
    );
}

/// A registry configured for token auth (`auth.token`), with a token server on loopback that
/// signs RS256 JWTs with a throwaway key (openssl), as a real CNCF distribution deployment does.
mod token_registry {
    use base64::Engine as _;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::{Arc, Mutex};

    pub const SERVICE: &str = "oras-test-service";
    const ISSUER: &str = "oras-test-issuer";

    pub struct TokenRegistry {
        pub host: String,
        registry: Child,
        /// `(scope, whether Basic credentials were sent)` of every token request.
        pub requests: Arc<Mutex<Vec<(String, bool)>>>,
        _dir: tempfile::TempDir,
    }

    impl Drop for TokenRegistry {
        fn drop(&mut self) {
            let _ = self.registry.kill();
            let _ = self.registry.wait();
        }
    }

    fn b64url(data: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
    }

    fn percent_decode(value: &str) -> String {
        let bytes = value.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && let Ok(b) = u8::from_str_radix(&value[i + 1..i + 3], 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn sign(dir: &Path, input: &str) -> Vec<u8> {
        let data = dir.join("signing-input");
        std::fs::write(&data, input).unwrap();
        let output = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(dir.join("key.pem"))
            .arg(&data)
            .output()
            .expect("openssl");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    fn token(dir: &Path, cert_der_b64: &str, scope: &str) -> String {
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [cert_der_b64]});
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // scope = repository:<name>:<actions>
        let mut parts = scope.splitn(3, ':');
        let (kind, name, actions) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": "alice", "aud": SERVICE,
            "exp": now + 600, "nbf": now - 60, "iat": now, "jti": format!("t{now}"),
            "access": [{"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}],
        });
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let signature = sign(dir, &input);
        format!("{input}.{}", b64url(&signature))
    }

    /// Starts the token server and the registry; the token server only serves `user:password`.
    pub fn start(user: &str, password: &str) -> TokenRegistry {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| -> PathBuf { dir.path().join(name) };
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=oras-test-token",
            ])
            .arg("-keyout")
            .arg(path("key.pem"))
            .arg("-out")
            .arg(path("cert.pem"))
            .stderr(Stdio::null())
            .status()
            .expect("openssl (scripts/bootstrap.sh installs it)");
        assert!(status.success());
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(path("cert.pem"))
            .output()
            .unwrap()
            .stdout;
        let cert_b64 = base64::engine::general_purpose::STANDARD.encode(der);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let token_port = listener.local_addr().unwrap().port();
        let requests: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
        let seen = requests.clone();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let key_dir = dir.path().to_path_buf();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let mut authorization = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("authorization")
                    {
                        authorization = Some(value.trim().to_string());
                    }
                }
                let target = request_line.split_whitespace().nth(1).unwrap_or("");
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
                let scope = query
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("scope="))
                    .map(percent_decode)
                    .unwrap_or_default();
                let authorized = authorization.as_deref() == Some(expected.as_str());
                seen.lock()
                    .unwrap()
                    .push((scope.clone(), authorization.is_some()));
                let (status, body) = if authorized {
                    let token = token(&key_dir, &cert_b64, &scope);
                    ("200 OK", serde_json::json!({"token": token}).to_string())
                } else {
                    (
                        "401 Unauthorized",
                        r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_string(),
                    )
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });

        let port = oras_test_support::free_port().unwrap();
        std::fs::create_dir_all(path("storage")).unwrap();
        std::fs::write(
            path("config.yml"),
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {storage}\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: oras-token-tests\n\
                 auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {cert}\n",
                storage = path("storage").display(),
                cert = path("cert.pem").display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(path("registry.log")).unwrap();
        let registry = Command::new(
            std::env::var("ORAS_TEST_REGISTRY_BIN").unwrap_or("docker-registry".into()),
        )
        .arg("serve")
        .arg(path("config.yml"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut ready = false;
        for _ in 0..300 {
            if oras_test_support::probe_v2(addr) == Some(401) {
                ready = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let host = format!("127.0.0.1:{port}");
        let registry = TokenRegistry {
            host,
            registry,
            requests,
            _dir: dir,
        };
        assert!(ready, "token-auth registry did not start");
        registry
    }
}

#[test]
fn bearer_tokens_are_fetched_from_the_realm_with_the_credentials() {
    let registry = token_registry::start("alice", "s3cret");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f.txt"), "behind a token").unwrap();
    let reference = format!("{}/auth/bearer:v1", registry.host);

    let stderr = run_failing(push(&reference, &["f.txt"]).current_dir(work.path()));
    assert!(
        stderr.contains("token") && stderr.contains("ORAS_USER"),
        "{stderr}"
    );

    run_ok(
        push(&reference, &["f.txt"])
            .current_dir(work.path())
            .env("ORAS_USER", "alice")
            .env("ORAS_PASS", "s3cret"),
    );
    let out = work.path().join("out");
    run_ok(
        pull(&reference, &out)
            .env("ORAS_USER", "alice")
            .env("ORAS_PASS", "s3cret"),
    );
    assert_eq!(
        std::fs::read_to_string(out.join("f.txt")).unwrap(),
        "behind a token"
    );
    let requests = registry.requests.lock().unwrap().clone();
    assert!(
        requests.contains(&("repository:auth/bearer:pull,push".to_string(), true)),
        "{requests:?}"
    );
    assert!(
        requests.contains(&("repository:auth/bearer:pull".to_string(), true)),
        "{requests:?}"
    );
}
