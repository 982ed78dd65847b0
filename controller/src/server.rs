//! The HTTP server of the controller: `/metrics`, `/healthz` (the process answers) and `/readyz`
//! (the CRD was listed and the controller is watching).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// What the handlers read.
#[derive(Clone)]
pub struct ServerState {
    /// Reconciler metrics.
    pub metrics: Arc<Metrics>,
    /// Set once the controller watches.
    pub ready: Arc<AtomicBool>,
}

/// The routes.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<ServerState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn readyz(State(state): State<ServerState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not watching yet")
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    address: SocketAddr,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get_text(address: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let code = response.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, response)
    }

    #[tokio::test]
    async fn serves_health_readiness_and_metrics_then_shuts_down() {
        let state = ServerState {
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(false)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            axum::serve(listener, router(state.clone()))
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        assert_eq!(get_text(address, "/healthz").await.0, 200);
        assert_eq!(get_text(address, "/readyz").await.0, 503);
        state.ready.store(true, Ordering::Release);
        assert_eq!(get_text(address, "/readyz").await.0, 200);
        drop(state.metrics.start_reconcile());
        let (code, body) = get_text(address, "/metrics").await;
        assert_eq!(code, 200);
        assert!(
            body.contains("oras_cache_reconciliations_total 1"),
            "{body}"
        );
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
