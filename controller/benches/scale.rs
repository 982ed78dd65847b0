//! The controller at scale against a real control plane (`make bench`'s controller stage,
//! benches/bench.py): the install applied, the release controller binary run as its own
//! ServiceAccount with the shipped RBAC, then 100 and 500 OrasCaches created at once in a
//! namespace each. For each batch: the time until every cache's `status.address` is set, the
//! controller's peak RSS (`VmHWM`), the API requests it sent per cache until then and the write
//! requests it sent in the 60 s after (the API server's audit log). Writes its figures as JSON to
//! `$BENCH_CONTROLLER_OUT` (default `target/bench/controller.json`) and prints them.
//!
//! `BENCH_CONTROLLER_CACHES` (default `100,500`) sets the batches; `BENCH_CONTROLLER_QUIET_S`
//! (default 60) the window counted after.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oras_test_support::cluster::{ControlPlane, spawn_kept};
use serde_json::{Value, json};

const USER: &str = "system:serviceaccount:oras-cache-system:oras-cache-controller";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn apply(plane: &ControlPlane, manifest: &str) {
    plane
        .kubectl_with_input(&["apply", "--server-side", "-f", "-"], manifest)
        .unwrap();
}

fn controller_requests(plane: &ControlPlane) -> Vec<Value> {
    plane
        .audit_events()
        .unwrap()
        .into_iter()
        .filter(|e| e["user"]["username"] == USER)
        .collect()
}

fn is_write(event: &Value) -> bool {
    matches!(
        event["verb"].as_str(),
        Some("create" | "update" | "patch" | "delete" | "deletecollection")
    )
}

/// `VmHWM` of `pid` in MiB: the most resident memory the process has had.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let batches: Vec<usize> = std::env::var("BENCH_CONTROLLER_CACHES")
        .unwrap_or_else(|_| "100,500".into())
        .split(',')
        .map(|n| n.trim().parse().expect("BENCH_CONTROLLER_CACHES: numbers"))
        .collect();
    let quiet = Duration::from_secs(
        std::env::var("BENCH_CONTROLLER_QUIET_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    );
    let out = std::env::var_os("BENCH_CONTROLLER_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/bench/controller.json"));

    let plane = ControlPlane::start().expect("a control plane (make peers builds its parts)");
    plane.install_kubewarden_crd().unwrap();
    plane
        .apply_file(&repo_root().join("deploy/oras-cache.yaml"))
        .unwrap();
    let kubeconfig = plane
        .service_account_kubeconfig("oras-cache-system", "oras-cache-controller")
        .unwrap();
    let log = std::fs::File::create(plane.dir().join("controller.log")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_oras-cache-controller"));
    command
        .arg("run")
        .env("KUBECONFIG", &kubeconfig)
        .env("LISTEN_ADDRESS", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let mut controller = spawn_kept(command).unwrap();
    let pid = controller.id();

    let mut figures = serde_json::Map::new();
    for &count in &batches {
        let namespace = format!("bench-{count}");
        plane
            .kubectl_ok(&["create", "namespace", &namespace])
            .unwrap();
        let caches: String = (0..count)
            .map(|i| {
                json!({"apiVersion": "cache.converged-computing.github.io/v1alpha1",
                    "kind": "OrasCache",
                    "metadata": {"name": format!("cache-{i}"), "namespace": namespace},
                    "spec": {}})
                .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n");
        let before = controller_requests(&plane).len();
        let started = Instant::now();
        apply(&plane, &caches);
        let created_s = started.elapsed().as_secs_f64();
        loop {
            let listed = plane
                .kubectl_ok(&["get", "orascaches", "-n", &namespace, "-o", "json"])
                .unwrap();
            let listed: Value = serde_json::from_str(&listed).unwrap();
            let with_address = listed["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["status"]["address"].is_string())
                .count();
            if with_address == count {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(900),
                "{with_address} of {count} caches have an address after 15 minutes"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let settle_s = started.elapsed().as_secs_f64();
        let requests = controller_requests(&plane);
        let sent = &requests[before..];
        let in_batch = sent
            .iter()
            .filter(|e| {
                e["objectRef"]["namespace"] == namespace.as_str() || e["objectRef"].is_null()
            })
            .count();
        let seen = requests.len();
        std::thread::sleep(quiet);
        let after = controller_requests(&plane);
        let writes_after = after[seen..].iter().filter(|e| is_write(e)).count();
        let batch = json!({
            "caches": count,
            "create_s": (created_s * 100.0).round() / 100.0,
            "all_addressed_s": (settle_s * 100.0).round() / 100.0,
            "peak_rss_mib": (peak_rss_mib(pid) * 10.0).round() / 10.0,
            "requests_per_cache": ((in_batch as f64 / count as f64) * 100.0).round() / 100.0,
            "writes_in_quiet_window": writes_after,
            "quiet_window_s": quiet.as_secs(),
        });
        println!("{batch}");
        figures.insert(count.to_string(), batch);
    }
    let _ = controller.kill();
    let _ = controller.wait();
    let result = json!({"batches": figures, "kubernetes": "v1.37.2 (scripts/peers/versions)"});
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&out, serde_json::to_string_pretty(&result).unwrap() + "\n").unwrap();
    println!("wrote {}", out.display());
}
