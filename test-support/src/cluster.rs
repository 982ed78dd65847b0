//! A real Kubernetes control plane for tests, in the manner of controller-runtime's envtest
//! (`pkg/internal/testing/controlplane`): etcd and kube-apiserver (and, where a test needs
//! garbage collection, kube-controller-manager) run as plain processes on free loopback ports,
//! built from their Go modules by `scripts/peers.sh` ([`crate::peers`]).
//!
//! The API server authenticates clients by certificate (a CA generated per control plane; the
//! admin is in `system:masters`) and by service-account token (TokenRequest, signed with a key
//! generated per control plane), and authorizes with RBAC alone, so a client made with
//! [`ControlPlane::client_as`] is judged by the real authorizer exactly as the ServiceAccount would
//! be in a cluster. Every request is written to an audit log ([`ControlPlane::audit_events`]), so a
//! test can count what a controller sent. No kubelet or scheduler runs: objects are stored,
//! validated and admitted (Pod Security included), but no Pod ever starts.
//!
//! Processes are killed when the [`ControlPlane`] is dropped, and also when the test process
//! exits without dropping it (a shared plane in a `static`): they are started from one thread
//! that lives as long as the process, with `PR_SET_PDEATHSIG`. Each test binary starts its own
//! plane on its own ports, so parallel binaries do not collide.

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::peers;

/// What to start besides etcd and kube-apiserver.
#[derive(Debug, Clone, Default)]
pub struct ControlPlaneOptions {
    /// Run kube-controller-manager with its garbage collector, namespace, resource-quota and
    /// claim-protection controllers, so that an owner's deletion removes its dependents (claims
    /// included), a deleted namespace empties and a ResourceQuota counts what it limits.
    pub controller_manager: bool,
}

/// A running etcd + kube-apiserver (+ kube-controller-manager).
pub struct ControlPlane {
    dir: tempfile::TempDir,
    server: String,
    processes: Vec<(String, Child)>,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver and waits until the API server is ready.
    pub fn start() -> io::Result<ControlPlane> {
        Self::start_with(ControlPlaneOptions::default())
    }

    /// Starts a control plane with `options` and waits until it is ready.
    pub fn start_with(options: ControlPlaneOptions) -> io::Result<ControlPlane> {
        let dir = tempfile::Builder::new()
            .prefix("oras-test-cluster-")
            .tempdir()?;
        let pki = Pki::generate(dir.path())?;
        let mut plane = ControlPlane {
            server: String::new(),
            processes: Vec::new(),
            dir,
        };
        let etcd_url = plane.start_etcd()?;
        let port = free_port()?;
        plane.server = format!("https://127.0.0.1:{port}");
        plane.start_apiserver(&etcd_url, port)?;
        std::fs::write(
            plane.admin_kubeconfig(),
            kubeconfig(
                &plane.server,
                &pki.ca_pem,
                Identity::Certificate {
                    cert: &pki.admin_cert,
                    key: &pki.admin_key,
                },
            ),
        )?;
        plane.wait_ready("kube-apiserver", "/readyz")?;
        if options.controller_manager {
            plane.start_controller_manager()?;
        }
        Ok(plane)
    }

    /// `https://127.0.0.1:<port>` of the API server.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The directory of this plane's certificates, data, logs and kubeconfigs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A kubeconfig file for the cluster admin (a client certificate in `system:masters`).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// The CA that signed the API server's certificate, PEM.
    pub fn ca_pem(&self) -> io::Result<String> {
        std::fs::read_to_string(self.dir.path().join("pki/ca.crt"))
    }

    /// `kubectl --kubeconfig <admin>`, not yet run.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(peers::binary("kubectl"));
        command.arg("--kubeconfig").arg(self.admin_kubeconfig());
        command
    }

    /// Runs `kubectl` as the admin with `args`; its stdout, or an error with its stderr.
    pub fn kubectl_ok(&self, args: &[&str]) -> io::Result<String> {
        let output = self.kubectl().args(args).output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs `kubectl` as the admin with `args`, `input` on its standard input (a manifest for
    /// `-f -`); its stdout, or an error with its stderr.
    pub fn kubectl_with_input(&self, args: &[&str], input: &str) -> io::Result<String> {
        use std::io::Write;
        let mut child = self
            .kubectl()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("kubectl has no stdin"))?
            .write_all(input.as_bytes())?;
        let output = child.wait_with_output()?;
        if !output.status.success() {
            return Err(io::Error::other(
                String::from_utf8_lossy(&output.stderr).trim().to_string(),
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `kubectl apply --server-side -f <path>` as the admin, then waits until every CRD is
    /// established, so that objects of a kind the file defines can follow at once.
    pub fn apply_file(&self, path: &Path) -> io::Result<()> {
        let shown = path.display().to_string();
        self.kubectl_ok(&["apply", "--server-side", "-f", &shown])?;
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=60s",
        ])
        .map(|_| ())
    }

    /// Kubewarden's ClusterAdmissionPolicy CRD (from its controller's Go module, built into the
    /// peers cache by scripts/peers.sh), as a cluster with Kubewarden has it.
    pub fn install_kubewarden_crd(&self) -> io::Result<()> {
        self.apply_file(&peers::binary("kubewarden-crd"))
    }

    /// A kubeconfig file that authenticates with `token` (a ServiceAccount's, say).
    pub fn token_kubeconfig(&self, name: &str, token: &str) -> io::Result<PathBuf> {
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(
            &path,
            kubeconfig(&self.server, &self.ca_pem()?, Identity::Token(token)),
        )?;
        Ok(path)
    }

    /// A token of ServiceAccount `namespace/name` (TokenRequest through `kubectl create token`,
    /// valid one hour). The ServiceAccount must exist.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> io::Result<String> {
        let token = self.kubectl_ok(&[
            "create",
            "token",
            name,
            "--namespace",
            namespace,
            "--duration",
            "1h",
        ])?;
        Ok(token.trim().to_string())
    }

    /// A kubeconfig file for ServiceAccount `namespace/name`.
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> io::Result<PathBuf> {
        let token = self.service_account_token(namespace, name)?;
        self.token_kubeconfig(&format!("sa-{namespace}-{name}"), &token)
    }

    /// A `kube::Client` as the cluster admin.
    pub async fn client(&self) -> Result<kube::Client, kube::Error> {
        client_from(&self.admin_kubeconfig()).await
    }

    /// A `kube::Client` authenticated as ServiceAccount `namespace/name`: RBAC judges it as the
    /// real authorizer judges that account.
    pub async fn client_as(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<kube::Client, kube::Error> {
        let path = self
            .service_account_kubeconfig(namespace, name)
            .map_err(|e| kube::Error::Service(Box::new(e)))?;
        client_from(&path).await
    }

    /// Every event of the API server's audit log so far (one JSON object per request, at the
    /// `Metadata` level: verb, user, object reference, response code).
    pub fn audit_events(&self) -> io::Result<Vec<serde_json::Value>> {
        let text = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }

    /// The output of process `name` (`etcd`, `kube-apiserver`, `kube-controller-manager`).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    fn start_etcd(&mut self) -> io::Result<String> {
        let client = format!("http://127.0.0.1:{}", free_port()?);
        let peer = format!("http://127.0.0.1:{}", free_port()?);
        let data = self.dir.path().join("etcd");
        // envtest's flags (`controlplane/etcd.go`); the advertised peer URL is the one listened
        // on, so that the single member's initial cluster names it.
        let mut command = Command::new(peers::binary("etcd"));
        command
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=default={peer}"))
            .arg("--unsafe-no-fsync=true");
        self.spawn("etcd", command)?;
        Ok(client)
    }

    fn start_apiserver(&mut self, etcd_url: &str, port: u16) -> io::Result<()> {
        let dir = self.dir.path();
        std::fs::write(
            dir.join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n",
        )?;
        let pki_dir = dir.join("pki");
        let file = |name: &str| pki_dir.join(name).display().to_string();
        let mut command = Command::new(peers::binary("kube-apiserver"));
        // envtest's defaults (`controlplane/apiserver.go`, `defaultArgs`): RBAC only, the
        // ServiceAccount admission plugin off (no controller makes the default accounts), a
        // service-account issuer and key pair for TokenRequest. Plus client certificates,
        // the audit log and a generated serving certificate.
        command
            .arg(format!("--etcd-servers={etcd_url}"))
            .arg(format!("--cert-dir={}", pki_dir.display()))
            .arg(format!("--tls-cert-file={}", file("apiserver.crt")))
            .arg(format!("--tls-private-key-file={}", file("apiserver.key")))
            .arg(format!("--client-ca-file={}", file("ca.crt")))
            .arg(format!("--secure-port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            // The `kubernetes` Service's endpoints would be this loopback address, which the
            // endpoint reconciler refuses; nothing here reaches the API server through it.
            .arg("--endpoint-reconciler-type=none")
            // Room for a Service per cache of the controller bench (500 caches: a /24 is full).
            .arg("--service-cluster-ip-range=10.0.0.0/16")
            .arg("--allow-privileged=true")
            .arg("--authorization-mode=RBAC")
            .arg("--disable-admission-plugins=ServiceAccount")
            .arg(format!("--service-account-issuer=https://127.0.0.1:{port}"))
            .arg(format!("--service-account-key-file={}", file("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                file("sa.key")
            ))
            .arg(format!(
                "--audit-policy-file={}",
                dir.join("audit-policy.yaml").display()
            ))
            .arg(format!(
                "--audit-log-path={}",
                dir.join("audit.log").display()
            ))
            .arg("--audit-log-format=json")
            .arg("--audit-log-maxbackup=0");
        self.spawn("kube-apiserver", command)
    }

    fn start_controller_manager(&mut self) -> io::Result<()> {
        let file = |name: &str| self.dir.path().join("pki").join(name).display().to_string();
        let mut command = Command::new(peers::binary("kube-controller-manager"));
        command
            .arg(format!(
                "--kubeconfig={}",
                self.admin_kubeconfig().display()
            ))
            // Names as `kube-controller-manager --help` lists them (v1.37). The claim protection
            // controller removes the `kubernetes.io/pvc-protection` finalizer the API server's
            // admission puts on every claim, without which no claim is ever deleted.
            .arg("--controllers=garbage-collector-controller,namespace-controller,resourcequota-controller,persistentvolumeclaim-protection-controller")
            .arg("--leader-elect=false")
            // No serving endpoint of its own: nothing here probes it, and two planes must not
            // race for its fixed default port.
            .arg("--secure-port=0")
            .arg(format!("--root-ca-file={}", file("ca.crt")))
            .arg(format!(
                "--service-account-private-key-file={}",
                file("sa.key")
            ));
        self.spawn("kube-controller-manager", command)
    }

    fn spawn(&mut self, name: &str, mut command: Command) -> io::Result<()> {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log")))?;
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = spawn_kept(command)
            .map_err(|e| io::Error::new(e.kind(), format!("start {name}: {e}")))?;
        self.processes.push((name.to_string(), child));
        Ok(())
    }

    /// Polls `path` with kubectl until it answers `ok`, or fails with the process's log.
    fn wait_ready(&mut self, name: &str, path: &str) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let answer = self
                .kubectl()
                .args(["get", "--raw", path])
                .stderr(Stdio::null())
                .output()?;
            if answer.status.success() && String::from_utf8_lossy(&answer.stdout).trim() == "ok" {
                return Ok(());
            }
            let mut exited = None;
            for (process, child) in &mut self.processes {
                if let Some(status) = child.try_wait()? {
                    exited = Some((process.clone(), status));
                    break;
                }
            }
            if let Some((process, status)) = exited {
                return Err(io::Error::other(format!(
                    "{process} exited ({status}) before {name} was ready:\n{}",
                    tail(&self.log(&process), 40)
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "{name} not ready after 120 s:\n{}",
                    tail(&self.log(name), 40)
                )));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // The API server and the controller manager first, etcd last.
        for (_, child) in self.processes.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The admin client of a control plane started once per test binary with `options` (later
/// calls share it, whatever options they pass). Its processes end with the test process.
pub fn shared(options: ControlPlaneOptions) -> &'static ControlPlane {
    static PLANE: OnceLock<ControlPlane> = OnceLock::new();
    static STARTING: Mutex<()> = Mutex::new(());
    let _guard = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    PLANE.get_or_init(|| {
        ControlPlane::start_with(options).unwrap_or_else(|e| {
            panic!("start the test control plane (make peers builds its parts): {e}")
        })
    })
}

/// A `kube::Client` from a kubeconfig file.
pub async fn client_from(path: &Path) -> Result<kube::Client, kube::Error> {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(path).map_err(|e| kube::Error::Service(Box::new(e)))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| kube::Error::Service(Box::new(e)))?;
    kube::Client::try_from(config)
}

/// Spawns `command` from a thread that lives as long as the process, with the child asked to be
/// killed when that thread ends (`PR_SET_PDEATHSIG` fires when the *thread* that forked exits,
/// so a test thread cannot be the parent: it ends with its test).
pub fn spawn_kept(command: Command) -> io::Result<Child> {
    type Job = (Command, mpsc::Sender<io::Result<Child>>);
    static KEEPER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let sender = KEEPER.get_or_init(|| {
        let (send, receive) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("control-plane-keeper".into())
            .spawn(move || {
                for (mut command, answer) in receive {
                    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
                    unsafe {
                        command.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = answer.send(command.spawn());
                }
            })
            .expect("start the control-plane keeper thread");
        Mutex::new(send)
    });
    let (answer, result) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, answer))
        .map_err(|_| io::Error::other("the control-plane keeper thread is gone"))?;
    result
        .recv()
        .map_err(|_| io::Error::other("the control-plane keeper thread is gone"))?
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// How a kubeconfig authenticates.
enum Identity<'a> {
    Certificate { cert: &'a str, key: &'a str },
    Token(&'a str),
}

fn kubeconfig(server: &str, ca_pem: &str, identity: Identity<'_>) -> String {
    let user = match identity {
        Identity::Certificate { cert, key } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            STANDARD.encode(cert),
            STANDARD.encode(key)
        ),
        Identity::Token(token) => format!("    token: {token}\n"),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: test\n  user:\n{user}contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\ncurrent-context: test\n",
        STANDARD.encode(ca_pem)
    )
}

/// The keys and certificates of one control plane, written under `<dir>/pki`.
struct Pki {
    ca_pem: String,
    admin_cert: String,
    admin_key: String,
}

impl Pki {
    fn generate(dir: &Path) -> io::Result<Pki> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let failed = |e: rcgen::Error| io::Error::other(format!("generate certificates: {e}"));
        let pki = dir.join("pki");
        std::fs::create_dir_all(&pki)?;

        let ca_key = KeyPair::generate().map_err(failed)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "oras-test-kubernetes-ca");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_pem = ca.self_signed(&ca_key).map_err(failed)?.pem();
        let issuer = Issuer::new(ca, ca_key);

        // The names a client may use for the API server: loopback, and the in-cluster Service
        // address of `kubernetes.default` (the first of --service-cluster-ip-range).
        let server_key = KeyPair::generate().map_err(failed)?;
        let mut server = CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            "10.0.0.1".to_string(),
            "kubernetes.default.svc".to_string(),
        ])
        .map_err(failed)?;
        server
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server.signed_by(&server_key, &issuer).map_err(failed)?;

        // The admin: `system:masters` is bound to cluster-admin by RBAC's bootstrap policy.
        let admin_key = KeyPair::generate().map_err(failed)?;
        let mut admin = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        admin.distinguished_name.push(DnType::CommonName, "admin");
        admin
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_cert = admin.signed_by(&admin_key, &issuer).map_err(failed)?;

        // The service-account signing key (ECDSA P-256, ES256 tokens) and its public half, which
        // --service-account-key-file takes as a PUBLIC KEY block (it refuses a PKCS#8 private key).
        let sa_key = KeyPair::generate().map_err(failed)?;

        std::fs::write(pki.join("ca.crt"), &ca_pem)?;
        std::fs::write(pki.join("apiserver.crt"), server_cert.pem())?;
        std::fs::write(pki.join("apiserver.key"), server_key.serialize_pem())?;
        std::fs::write(pki.join("sa.key"), sa_key.serialize_pem())?;
        std::fs::write(pki.join("sa.pub"), sa_key.public_key_pem())?;
        Ok(Pki {
            ca_pem,
            admin_cert: admin_cert.pem(),
            admin_key: admin_key.serialize_pem(),
        })
    }
}
