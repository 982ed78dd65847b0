//! `oras-cache-controller run`: the controller and its HTTP server, stopped together on SIGTERM
//! or Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;
use tracing::info;

use crate::cli::RunArgs;
use crate::metrics::Metrics;
use crate::reconcile::{Context, PreflightError, run as run_controller};
use crate::registry_check::{CheckerError, RegistryChecker};
use crate::server::{ServerState, serve};

/// The controller could not start or stopped on an error.
#[derive(Debug, Error)]
pub enum AppError {
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// No usable kubeconfig or in-cluster configuration.
    #[error("cannot configure the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The HTTP server failed.
    #[error("the metrics/health server on {address} failed: {source}")]
    Server {
        /// Listen address.
        address: std::net::SocketAddr,
        /// I/O error.
        source: std::io::Error,
    },
    /// The registry checker could not be built.
    #[error(transparent)]
    Checker(#[from] CheckerError),
    /// The CRD is not there.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
}

/// Resolves when `receiver` sees `true`.
async fn stopped(mut receiver: watch::Receiver<bool>) {
    let _ = receiver.wait_for(|stop| *stop).await;
}

async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Runs the controller until SIGTERM or Ctrl-C, then drains reconciliations and the server.
pub fn run(args: RunArgs) -> Result<(), AppError> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    crate::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(AppError::Runtime)?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> Result<(), AppError> {
    let client = kube::Client::try_default()
        .await
        .map_err(AppError::Client)?;
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let checker = RegistryChecker::new(Duration::from_secs(args.remote_check_timeout_seconds))?;
    let ctx = Arc::new(Context::new(
        client,
        args.instance.clone(),
        metrics.clone(),
        checker,
        args.reconciler_config(),
    ));

    let (stop, stop_receiver) = watch::channel(false);
    let stop = Arc::new(stop);
    let on_signal = stop.clone();
    tokio::spawn(async move {
        termination_signal().await;
        info!("termination signal received, shutting down");
        let _ = on_signal.send(true);
    });

    let server = serve(
        args.listen,
        ServerState {
            metrics,
            ready: ready.clone(),
        },
        stopped(stop_receiver.clone()),
    );
    let ready_flag = ready.clone();
    let controller = async {
        let result = run_controller(
            ctx,
            args.namespace.clone(),
            stopped(stop_receiver),
            move || ready_flag.store(true, Ordering::Release),
        )
        .await;
        // A controller that could not start must not leave the server running alone.
        let _ = stop.send(true);
        result
    };
    info!(listen = %args.listen, namespace = ?args.namespace, "starting");
    let (server, controller) = tokio::join!(server, controller);
    server.map_err(|source| AppError::Server {
        address: args.listen,
        source,
    })?;
    controller?;
    info!("stopped");
    Ok(())
}
