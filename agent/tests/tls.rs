//! TLS is the default: a registry serving HTTPS with a private CA is reached with
//! `ORAS_AGENT_CA_FILE`, refused without it, and `--plain-http` is never silently upgraded.

mod common;

use common::{agent, run, run_ok};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct TlsRegistry {
    host: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/bootstrap.sh installs it)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and a registry serving HTTPS with it.
fn start_tls_registry() -> TlsRegistry {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
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
    );
    openssl(
        d,
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
    );
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
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
    );
    let port = oras_test_support::free_port().unwrap();
    std::fs::create_dir_all(d.join("storage")).unwrap();
    std::fs::write(
        d.join("config.yml"),
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: oras-tls-tests\n  tls:\n    certificate: {}\n    key: {}\n",
            d.join("storage").display(),
            d.join("server.pem").display(),
            d.join("server.key").display()
        ),
    )
    .unwrap();
    let child =
        Command::new(std::env::var("ORAS_TEST_REGISTRY_BIN").unwrap_or("docker-registry".into()))
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut listening = false;
    for _ in 0..300 {
        if std::net::TcpStream::connect(addr).is_ok() {
            listening = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let registry = TlsRegistry {
        host: format!("127.0.0.1:{port}"),
        child,
        dir,
    };
    assert!(listening, "the TLS registry did not start");
    registry
}

#[test]
fn https_with_a_private_ca_works_and_is_refused_without_it() {
    let registry = start_tls_registry();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f.txt"), "over tls").unwrap();
    let reference = format!("{}/tls/file:v1", registry.host);
    let ca = registry.dir.path().join("ca.pem");

    let untrusted = run(agent()
        .current_dir(work.path())
        .args(["push", &reference, "f.txt"]));
    assert!(!untrusted.status.success());
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        stderr.contains("cannot reach the registry") && stderr.contains("certificate"),
        "{stderr}"
    );

    run_ok(
        agent()
            .current_dir(work.path())
            .env("ORAS_AGENT_CA_FILE", &ca)
            .args(["push", &reference, "f.txt"]),
    );
    let out = work.path().join("out");
    run_ok(agent().env("ORAS_AGENT_CA_FILE", &ca).args([
        "pull",
        &reference,
        "-o",
        out.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read_to_string(out.join("f.txt")).unwrap(),
        "over tls"
    );

    let plain = run(agent().env("ORAS_AGENT_CA_FILE", &ca).args([
        "pull",
        &reference,
        "-o",
        out.to_str().unwrap(),
        "--plain-http",
    ]));
    assert!(
        !plain.status.success(),
        "plain HTTP to an HTTPS registry must fail"
    );
}
