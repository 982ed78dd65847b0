//! The real `oras-cache-controller run` process against a Kubernetes API played by the test
//! (empty lists, watches that stay open): it lists the CRD, watches OrasCaches and its labelled
//! children, turns ready, serves metrics, and exits 0 on SIGTERM after draining.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use oras_test_support::free_port;

type Seen = Arc<Mutex<Vec<String>>>;

async fn api(State(seen): State<Seen>, request: Request) -> Response {
    let uri = request.uri().to_string();
    seen.lock().unwrap().push(uri.clone());
    let body = if uri.contains("watch=true") {
        // A watch with no events that stays open until the client leaves.
        Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>())
    } else {
        Body::from(
            r#"{"kind":"List","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}"#,
        )
    };
    Response::builder()
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

async fn http_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, response))
}

#[tokio::test]
async fn the_controller_process_watches_serves_and_stops_on_sigterm() {
    let seen = Seen::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_address = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(api).with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
             clusters: [{{name: test, cluster: {{server: 'http://{api_address}'}}}}]\n\
             users: [{{name: test, user: {{token: test}}}}]\n\
             contexts: [{{name: test, context: {{cluster: test, user: test}}}}]\n"
        ),
    )
    .unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_oras-cache-controller"))
        .args(["run", "--listen", &listen.to_string()])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("WATCH_NAMESPACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Liveness bound for the start, not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((200, _)) = http_get(listen, "/readyz").await {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the controller exited early"
        );
        assert!(
            Instant::now() < deadline,
            "the controller never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http_get(listen, "/healthz").await.unwrap().0, 200);
    let (code, metrics) = http_get(listen, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("oras_cache_reconciliations_total 0"),
        "{metrics}"
    );

    // All three watches are open before the process is stopped.
    let selector = "labelSelector=app.kubernetes.io%2Fmanaged-by%3Doras-cache-controller";
    loop {
        let requests = seen.lock().unwrap().clone();
        let watching = |path: &str| {
            requests
                .iter()
                .any(|r| r.starts_with(path) && r.contains("watch=true"))
        };
        if watching("/apis/cache.converged-computing.github.io/v1alpha1/orascaches")
            && watching("/apis/apps/v1/statefulsets")
            && watching("/api/v1/services")
        {
            assert!(
                requests
                    .iter()
                    .filter(|r| r.starts_with("/apis/apps/v1/statefulsets")
                        || r.starts_with("/api/v1/services"))
                    .all(|r| r.contains(selector)),
                "owned watches are limited to the controller's children: {requests:#?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "watches not opened: {requests:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the controller ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut log = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(exit.success(), "exit {exit}: {log}");
    assert!(log.contains("stopped"), "{log}");
}
