//! Evaluating a policy module the way policy-server does.
//!
//! The module is compiled once into a `WasmtimeEngineProviderPre`; every call (`protocol_version`,
//! `validate_settings`, `validate`) gets a fresh instance with WASI preview 1 (inherited stdio, no
//! args, no env, no preopens) and the waPC imports, so no state leaks between evaluations. The
//! engine runs with epoch interruption and a ticker thread increments the epoch once per tick, so
//! a guest that loops is interrupted after the timeout like under policy-server's
//! `--policy-timeout`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use wapc::{WapcHost, WasiParams};
use wasmtime_provider::wasmtime::{
    Cache, CacheConfig, Config, Enabled, Engine, InstanceAllocationStrategy, Module,
    PoolingAllocationConfig,
};
use wasmtime_provider::{EpochDeadlines, WasmtimeEngineProviderBuilder, WasmtimeEngineProviderPre};

use crate::admission::{AdmissionRequest, AdmissionResponse, ValidationResponse};
use crate::host::HostCapabilities;
use crate::metadata::{Metadata, MetadataError};

/// One epoch tick, as policy-server's ticker.
const EPOCH_TICK: Duration = Duration::from_secs(1);

/// What wasmtime-provider stores as guest error when the epoch deadline is hit.
const INTERRUPTED: &str = "guest code interrupted, execution deadline exceeded";

/// The message policy-evaluator gives a policy that ran out of time.
pub const TIMEOUT_MESSAGE: &str =
    "Policy execution interrupted because it exceeded the allowed execution time";

/// Errors loading or calling a module.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The bytes are not a module wasmtime accepts, or it imports something the host lacks.
    #[error("cannot load the policy module: {0}")]
    Load(String),
    /// The metadata section is broken.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// Instantiation or `wapc_init` failed.
    #[error("cannot start the policy module: {0}")]
    Instantiate(String),
    /// The guest call failed (guest error, trap, deadline).
    #[error("{0}")]
    Call(String),
    /// The guest answered something that is not the expected JSON.
    #[error("the policy answered `{operation}` with unexpected data: {error}")]
    Answer {
        /// The waPC operation.
        operation: &'static str,
        /// Why it does not parse.
        error: String,
    },
    /// `protocol_version` is not `v1`.
    #[error("the policy speaks protocol {0}, kwrun only knows v1")]
    Protocol(String),
}

/// `validate_settings`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SettingsValidation {
    /// Whether the settings are accepted.
    pub valid: bool,
    /// Why not.
    #[serde(default)]
    pub message: Option<String>,
}

/// How a module is run.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Execution deadline per call; `None` disables timeout protection.
    pub timeout: Option<Duration>,
    /// Where compiled modules are cached between runs, like kwctl's wasmtime cache; `None`
    /// compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// How instances get their memory: see [`InstanceAllocator`].
    pub allocator: InstanceAllocator,
}

/// How every fresh instance gets its linear memory, tables and instance state.
///
/// Both give every call a fresh instance with the module's initial memory; they differ in what
/// the operating system is asked to do per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstanceAllocator {
    /// wasmtime's default: each instance maps its memory on creation and unmaps it when dropped,
    /// so every call pays `mmap`, `munmap` and a page fault per page it touches.
    OnDemand,
    /// wasmtime's pooling allocator: slots reserved once per policy and reused. When an instance
    /// is dropped its memory is reset to the module's initial image in place (`memset` of the
    /// pages it dirtied, up to [`POOL_KEEP_RESIDENT`]; found with `PAGEMAP_SCAN` where the
    /// kernel has it), so the next call finds them mapped.
    #[default]
    Pooling,
}

/// Instances a policy's pool holds at once: kwrun evaluates one request at a time per policy, the
/// rest are headroom for callers that share a [`Policy`] between threads.
pub const POOL_INSTANCES: u32 = 16;

/// Linear memory bytes a pooled slot keeps mapped between instances (the rest is given back to
/// the kernel). A Rust policy evaluating one request dirties 1-2 MiB.
pub const POOL_KEEP_RESIDENT: usize = 8 << 20;

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            timeout: Some(Duration::from_secs(2)),
            cache_dir: default_cache_dir(),
            allocator: InstanceAllocator::default(),
        }
    }
}

/// `$KWRUN_CACHE_DIR`, else `$XDG_CACHE_HOME/kwrun`, else `$HOME/.cache/kwrun`, else a
/// directory under the system's temporary directory (compiling a module without optimised host
/// code takes seconds, so a cache is always worth having).
pub fn default_cache_dir() -> Option<PathBuf> {
    let env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("KWRUN_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|dir| dir.join("kwrun")))
        .or_else(|| env("HOME").map(|home| home.join(".cache").join("kwrun")))
        .or_else(|| Some(std::env::temp_dir().join("kwrun-cache")))
}

/// A compiled policy, ready for any number of evaluations.
pub struct Policy {
    pre: WasmtimeEngineProviderPre,
    deadlines: Option<EpochDeadlines>,
    metadata: Option<Metadata>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("deadlines", &self.deadlines)
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Compiles the module once.
    pub fn load(module: &[u8], options: EvalOptions) -> Result<Self, EvalError> {
        let metadata = Metadata::from_module(module)?;
        let mut config = Config::new();
        config.epoch_interruption(options.timeout.is_some());
        // Profiling aid: `KWRUN_PERFMAP=1 perf record ...` names the guest's functions (from the
        // module's name section) in perf's report through /tmp/perf-<pid>.map.
        if std::env::var_os("KWRUN_PERFMAP").is_some() {
            config.profiler(wasmtime_provider::wasmtime::ProfilingStrategy::PerfMap);
        }
        if options.allocator == InstanceAllocator::Pooling {
            let mut pool = PoolingAllocationConfig::new();
            pool.total_core_instances(POOL_INSTANCES)
                .total_memories(POOL_INSTANCES)
                .total_tables(POOL_INSTANCES)
                .total_component_instances(0)
                .total_gc_heaps(0)
                .linear_memory_keep_resident(POOL_KEEP_RESIDENT)
                .table_keep_resident(POOL_KEEP_RESIDENT)
                // Linux 6.7's PAGEMAP_SCAN tells which pages an instance dirtied, so only those
                // are reset; without it wasmtime resets the whole kept region every time.
                .pagemap_scan(Enabled::Auto);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        if let Some(dir) = &options.cache_dir {
            // A cache that cannot be set up only costs compile time, so it is not an error.
            let mut cache_config = CacheConfig::new();
            cache_config.with_directory(dir);
            match Cache::new(cache_config) {
                Ok(cache) => {
                    config.cache(Some(cache));
                }
                Err(e) => eprintln!("kwrun: compiling without cache ({}): {e}", dir.display()),
            }
        }
        let engine = match Engine::new(&config) {
            Ok(engine) => engine,
            // The pool reserves its address space up front, which a tight `ulimit -v` can
            // refuse: the evaluation is the same on demand, only slower.
            Err(e) if options.allocator == InstanceAllocator::Pooling => {
                eprintln!("kwrun: no instance pool ({e}), allocating instances on demand");
                config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                Engine::new(&config).map_err(|e| EvalError::Load(e.to_string()))?
            }
            Err(e) => return Err(EvalError::Load(e.to_string())),
        };
        let compiled =
            Module::new(&engine, module).map_err(|e| EvalError::Load(format!("{e:#}")))?;
        let pre = WasmtimeEngineProviderBuilder::new()
            .engine(engine.clone())
            .module(compiled)
            .wasi_params(WasiParams::default())
            .build_pre()
            .map_err(|e| EvalError::Load(e.to_string()))?;
        let deadlines = options.timeout.map(|timeout| {
            spawn_epoch_ticker(&engine);
            let ticks = timeout.as_secs().max(1);
            EpochDeadlines {
                wapc_init: ticks,
                wapc_func: ticks,
            }
        });
        Ok(Policy {
            pre,
            deadlines,
            metadata,
        })
    }

    /// The module's `io.kubewarden.metadata`, if annotated.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// Calls `operation` on a fresh instance.
    pub fn call(
        &self,
        host: &Arc<HostCapabilities>,
        operation: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, EvalError> {
        let provider = self
            .pre
            .rehydrate(self.deadlines)
            .map_err(|e| EvalError::Instantiate(e.to_string()))?;
        let host = Arc::clone(host);
        let callback =
            move |_id: u64, binding: &str, namespace: &str, operation: &str, payload: &[u8]| {
                host.call(binding, namespace, operation, payload).map_err(
                    |message| -> Box<dyn std::error::Error + Send + Sync> { message.into() },
                )
            };
        let wapc = WapcHost::new(Box::new(provider), Some(Box::new(callback)))
            .map_err(|e| EvalError::Instantiate(interrupted_as_timeout(e.to_string())))?;
        wapc.call(operation, payload)
            .map_err(|e| EvalError::Call(interrupted_as_timeout(e.to_string())))
    }

    /// `protocol_version`, which must be `v1`.
    pub fn protocol_version(&self, host: &Arc<HostCapabilities>) -> Result<String, EvalError> {
        let answer = self.call(host, "protocol_version", &[])?;
        let version: String = serde_json::from_slice(&answer).map_err(|e| EvalError::Answer {
            operation: "protocol_version",
            error: e.to_string(),
        })?;
        if version != "v1" {
            return Err(EvalError::Protocol(version));
        }
        Ok(version)
    }

    /// `validate_settings`; a guest failure is an invalid-settings answer, as in policy-evaluator.
    pub fn validate_settings(
        &self,
        host: &Arc<HostCapabilities>,
        settings: &Value,
    ) -> SettingsValidation {
        let answer = self
            .call(host, "validate_settings", settings.to_string().as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                serde_json::from_slice::<SettingsValidation>(&bytes).map_err(|e| e.to_string())
            });
        answer.unwrap_or_else(|error| SettingsValidation {
            valid: false,
            message: Some(format!(
                "Error invoking settings validation callback: {error}"
            )),
        })
    }

    /// `validate`, turned into the AdmissionResponse; guest errors and traps are 500 rejections.
    pub fn validate(
        &self,
        host: &Arc<HostCapabilities>,
        request: &AdmissionRequest,
        settings: &Value,
    ) -> AdmissionResponse {
        self.validate_with_answer(host, request, settings).0
    }

    /// As [`Policy::validate`], also returning what the guest answered (when it answered a
    /// ValidationResponse), so tests can check the patch against the policy's `mutated_object`.
    pub fn validate_with_answer(
        &self,
        host: &Arc<HostCapabilities>,
        request: &AdmissionRequest,
        settings: &Value,
    ) -> (AdmissionResponse, Option<ValidationResponse>) {
        let uid = request.uid();
        let payload = request.validate_payload(settings);
        let bytes = match self.call(host, "validate", payload.as_bytes()) {
            Ok(bytes) => bytes,
            Err(EvalError::Call(message)) | Err(EvalError::Instantiate(message))
                if message == TIMEOUT_MESSAGE =>
            {
                return (
                    AdmissionResponse::reject(uid, TIMEOUT_MESSAGE.to_owned(), 500),
                    None,
                );
            }
            Err(error) => return (AdmissionResponse::internal_server_error(uid, error), None),
        };
        let answer: ValidationResponse = match serde_json::from_slice(&bytes) {
            Ok(answer) => answer,
            Err(error) => {
                let message =
                    format!("cannot deserialize the policy's ValidationResponse: {error}");
                return (AdmissionResponse::internal_server_error(uid, message), None);
            }
        };
        let response = AdmissionResponse::from_validation(uid.clone(), request.object(), &answer)
            .unwrap_or_else(|error| AdmissionResponse::internal_server_error(uid, error));
        (response, Some(answer))
    }
}

fn interrupted_as_timeout(message: String) -> String {
    if message.contains(INTERRUPTED) {
        TIMEOUT_MESSAGE.to_owned()
    } else {
        message
    }
}

/// Increments the engine's epoch every tick until the engine is gone.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("kwrun-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
        .unwrap_or_else(|e| eprintln!("kwrun: no epoch ticker, timeouts disabled: {e}"));
}
