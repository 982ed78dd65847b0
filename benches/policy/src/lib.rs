//! Benchmark tools for the policy, used by `make bench` (`benches/bench.py`).
//!
//! [`native`] evaluates an admission request with the policy's logic compiled natively, doing
//! around it exactly what `kwrun` does around the wasm call, so the wasm/native ratio isolates
//! the cost of running the policy as a module. [`session`] answers the policy's host lookups from
//! a kwctl session file for every evaluation (a replay answers each recorded exchange once), and
//! [`compile`] times a cold compile of the module the way the runner loads it, and
//! [`phases`] splits one wasm evaluation into its steps, and [`real_path`] runs a request through
//! every step Kubewarden's policy-server takes (the patch from `json_patch::diff`, on-demand
//! instances), each timed.

pub mod compile;
pub mod native;
pub mod phases;
pub mod real_path;
pub mod session;

use std::path::{Path, PathBuf};

/// Errors of the benchmark tools.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file cannot be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A request or settings file is not the JSON expected.
    #[error("{path} is not valid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The request file is not an AdmissionRequest or AdmissionReview.
    #[error("{path}: {source}")]
    Request {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: kwrun::admission::AdmissionError,
    },
    /// A session file cannot be used.
    #[error("{0}")]
    Session(#[from] kwrun::session::SessionError),
    /// A session file holds no answer the native host can give.
    #[error(
        "{path}: no `!KubernetesGetResource` exchange with a Success answer; record one with kwrun run --record-host-capabilities-interactions"
    )]
    NoCacheAnswer {
        /// The file.
        path: PathBuf,
    },
    /// The native evaluation failed where the wasm one would answer a 500.
    #[error("native evaluation failed: {0}")]
    Evaluation(String),
    /// The module cannot be compiled.
    #[error("{0}")]
    Load(#[from] kwrun::evaluator::EvalError),
}

/// Compiles `module` as the runner loads it, with `allocator`'s instances, and the host that
/// answers it: the resources the module's metadata declares granted (as policy-server grants
/// them), lookups answered from `session` when given.
pub fn load_policy(
    module: &Path,
    allocator: kwrun::evaluator::InstanceAllocator,
    session: Option<&Path>,
) -> Result<
    (
        kwrun::evaluator::Policy,
        std::sync::Arc<kwrun::host::HostCapabilities>,
    ),
    BenchError,
> {
    let policy = kwrun::evaluator::Policy::load(
        &read(module)?,
        kwrun::evaluator::EvalOptions {
            allocator,
            ..kwrun::evaluator::EvalOptions::default()
        },
    )?;
    let granted = policy
        .metadata()
        .map(|m| m.context_aware_resources.clone())
        .unwrap_or_default();
    let mut host = kwrun::host::HostCapabilities::default()
        .with_logs(false)
        .with_context_aware_resources(granted);
    if let Some(path) = session {
        host = host.with_replay(kwrun::session::Replay::from_file(path)?);
    }
    Ok((policy, std::sync::Arc::new(host)))
}

/// A file of `benches/fixtures/`, for the tests.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, BenchError> {
    std::fs::read(path).map_err(|source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a JSON file, naming it in the error.
pub fn read_json(path: &Path) -> Result<serde_json::Value, BenchError> {
    serde_json::from_slice(&read(path)?).map_err(|source| BenchError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads an AdmissionRequest or AdmissionReview JSON file.
pub fn read_request(path: &Path) -> Result<kwrun::admission::AdmissionRequest, BenchError> {
    let text = read(path)?;
    kwrun::admission::AdmissionRequest::from_json(&String::from_utf8_lossy(&text)).map_err(
        |source| BenchError::Request {
            path: path.to_path_buf(),
            source,
        },
    )
}

/// Reads the settings JSON file; `{}` (what Kubewarden sends for no settings) without one.
pub fn read_settings(path: Option<&Path>) -> Result<serde_json::Value, BenchError> {
    match path {
        Some(path) => read_json(path),
        None => Ok(serde_json::Value::Object(Default::default())),
    }
}
