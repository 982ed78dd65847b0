//! The `kwrun` command line: kwctl's `run`, `annotate`, `push`, `pull` and `bench`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::admission::{
    AdmissionError, AdmissionRequest, AdmissionResponse, CLI_POLICY_ID, PolicyMode,
};
use crate::bench::bench;
use crate::evaluator::{EvalError, EvalOptions, InstanceAllocator, Policy, default_cache_dir};
use crate::host::HostCapabilities;
use crate::kubeconfig::{self, InferError};
use crate::metadata::{
    METADATA_SECTION, Metadata, MetadataError, TOOL_ANNOTATION, USAGE_ANNOTATION,
};
use crate::oci::{self, OciError, PolicyUri};
use crate::session::{Replay, SessionError};

/// kwrun: run, annotate, push and pull Kubewarden policies like kwctl, without a cluster.
#[derive(Debug, Parser)]
#[command(name = "kwrun", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate a request with a policy and print the AdmissionResponse (like `kwctl run`).
    Run(RunArgs),
    /// Measure evaluations per second and latency percentiles (like `kwctl bench`).
    Bench(BenchArgs),
    /// Write the io.kubewarden.metadata section into a module (like `kwctl annotate`).
    Annotate(AnnotateArgs),
    /// Push an annotated module as a policy artifact (like `kwctl push`).
    Push(PushArgs),
    /// Pull a policy artifact's module into a file (like `kwctl pull`).
    Pull(PullArgs),
}

/// `kwrun run` (kwctl's flags).
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// AdmissionRequest or AdmissionReview JSON file.
    #[arg(short = 'r', long)]
    pub request_path: PathBuf,
    /// Settings file, YAML or JSON.
    #[arg(short = 's', long, conflicts_with = "settings_json")]
    pub settings_path: Option<PathBuf>,
    /// Settings as a JSON string.
    #[arg(long)]
    pub settings_json: Option<String>,
    /// Grant the Kubernetes resources listed in the module's contextAwareResources.
    #[arg(long)]
    pub allow_context_aware: bool,
    /// Answer host capability calls from this kwctl session file.
    #[arg(long)]
    pub replay_host_capabilities_interactions: Option<PathBuf>,
    /// Write the host capability exchanges to this session file.
    #[arg(long)]
    pub record_host_capabilities_interactions: Option<PathBuf>,
    /// Host capabilities the policy may use (repeatable; `*`, `oci/*`, `kubernetes/get_resource`).
    #[arg(long, default_value = "*")]
    pub allowed_host_capabilities: Vec<String>,
    /// Policy mode, as `spec.mode` of the policy resource.
    #[arg(long, value_enum, default_value_t = PolicyMode::Protect)]
    pub mode: PolicyMode,
    /// Deploy the policy with `mutating: false`: a patch is then a rejection.
    #[arg(long)]
    pub disallow_mutation: bool,
    /// Execution deadline of each call, in seconds (policy-server's --policy-timeout).
    #[arg(long, default_value_t = 2)]
    pub policy_timeout: u64,
    /// No execution deadline.
    #[arg(long)]
    pub disable_timeout_protection: bool,
    /// Compile the module every time instead of using the on-disk cache.
    #[arg(long)]
    pub disable_wasmtime_cache: bool,
    /// How fresh instances get their memory: `pooling` reuses reserved slots reset in place,
    /// `on-demand` maps and unmaps memory per instance (wasmtime's default). Both give every
    /// call a fresh instance.
    #[arg(long, value_enum, default_value_t = AllocatorArg::Pooling)]
    pub instance_allocator: AllocatorArg,
    /// Speak plain HTTP to a registry:// module source (automatic on loopback).
    #[arg(long)]
    pub plain_http: bool,
    /// Do not print the policy's log records on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// The policy: a path, file:///path.wasm or registry://host/repository:tag.
    pub uri: String,
}

/// `--instance-allocator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AllocatorArg {
    /// Slots reserved once and reset in place between instances.
    Pooling,
    /// Memory mapped per instance and unmapped after it.
    OnDemand,
}

impl From<AllocatorArg> for InstanceAllocator {
    fn from(arg: AllocatorArg) -> Self {
        match arg {
            AllocatorArg::Pooling => InstanceAllocator::Pooling,
            AllocatorArg::OnDemand => InstanceAllocator::OnDemand,
        }
    }
}

/// `kwrun bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The evaluation to measure.
    #[command(flatten)]
    pub run: RunArgs,
    /// Measured evaluations.
    #[arg(long, default_value_t = 500)]
    pub samples: usize,
    /// Unmeasured evaluations first.
    #[arg(long, default_value_t = 20)]
    pub warm_up: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `kwrun annotate`.
#[derive(Debug, Args)]
pub struct AnnotateArgs {
    /// metadata.yml.
    #[arg(short = 'm', long)]
    pub metadata_path: PathBuf,
    /// README whose text becomes io.kubewarden.policy.usage.
    #[arg(short = 'u', long)]
    pub usage_path: Option<PathBuf>,
    /// Where to write the annotated module.
    #[arg(short = 'o', long)]
    pub output_path: PathBuf,
    /// The module to annotate.
    pub wasm_path: PathBuf,
}

/// `kwrun push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Push a module without metadata.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Speak plain HTTP (automatic on loopback).
    #[arg(long)]
    pub plain_http: bool,
    /// Print the result as JSON (`immutable_ref`).
    #[arg(short = 'o', long, value_parser = ["text", "json"], default_value = "text")]
    pub output: String,
    /// The annotated module.
    pub policy: PathBuf,
    /// registry://host/repository:tag.
    pub uri: String,
}

/// `kwrun pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Where to write the module.
    #[arg(short = 'o', long)]
    pub output_path: PathBuf,
    /// Speak plain HTTP (automatic on loopback).
    #[arg(long)]
    pub plain_http: bool,
    /// registry://host/repository:tag.
    pub uri: String,
}

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `validate_settings` refused the settings (kwctl's wording).
    #[error("Provided settings are not valid: {0}")]
    InvalidSettings(String),
    /// A file.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file that cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Settings that are neither YAML nor JSON.
    #[error("{origin}: settings must be a YAML or JSON object: {error}")]
    SettingsFormat {
        /// Flag or file.
        origin: String,
        /// Why.
        error: String,
    },
    /// `--allow-context-aware` granted Kubernetes resources, no session was given and there is no
    /// cluster: where kwctl stops, with kube-rs's words.
    #[error(
        "{0}\nkwctl run --allow-context-aware builds a Kubernetes client unless --replay-host-capabilities-interactions gives a recorded session, and stops here without a kubeconfig; so does kwrun"
    )]
    NoCluster(#[source] InferError),
    /// `registry://` only.
    #[error("{0:?} is not a registry:// URI")]
    NotARegistry(String),
    /// The request.
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    /// The module.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// Metadata.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// Sources and registries.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// Session files.
    #[error(transparent)]
    Session(#[from] SessionError),
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes).map_err(|source| CliError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// Settings from `--settings-path` (YAML or JSON) or `--settings-json`; `{}` when none or null.
pub fn load_settings(path: Option<&Path>, json: Option<&str>) -> Result<Value, CliError> {
    let (origin, text) = match (path, json) {
        (Some(path), _) => (
            path.display().to_string(),
            String::from_utf8_lossy(&read(path)?).into_owned(),
        ),
        (None, Some(json)) => ("--settings-json".to_owned(), json.to_owned()),
        (None, None) => return Ok(Value::Object(Default::default())),
    };
    let value: Value = serde_yaml::from_str(&text).map_err(|e| CliError::SettingsFormat {
        origin: origin.clone(),
        error: e.to_string(),
    })?;
    match value {
        Value::Null => Ok(Value::Object(Default::default())),
        Value::Object(_) => Ok(value),
        other => Err(CliError::SettingsFormat {
            origin,
            error: format!("got {other}"),
        }),
    }
}

/// A loaded policy with the host and settings of a `run`.
pub struct Prepared {
    /// The compiled module.
    pub policy: Policy,
    /// Its host capabilities.
    pub host: Arc<HostCapabilities>,
    /// The request.
    pub request: AdmissionRequest,
    /// The validated settings.
    pub settings: Value,
}

impl RunArgs {
    fn options(&self) -> EvalOptions {
        EvalOptions {
            timeout: (!self.disable_timeout_protection)
                .then(|| Duration::from_secs(self.policy_timeout.max(1))),
            cache_dir: if self.disable_wasmtime_cache {
                None
            } else {
                default_cache_dir()
            },
            allocator: self.instance_allocator.into(),
        }
    }

    /// Loads the module, the request and the settings, checks the protocol and validates the
    /// settings: everything `kwctl run` does before `validate`.
    pub fn prepare(&self) -> Result<Prepared, CliError> {
        let module = PolicyUri::parse(&self.uri)?.fetch(self.plain_http)?;
        let policy = Policy::load(&module, self.options())?;
        let request_text = read(&self.request_path)?;
        let request = AdmissionRequest::from_json(&String::from_utf8_lossy(&request_text))?;
        let settings = load_settings(self.settings_path.as_deref(), self.settings_json.as_deref())?;

        let declared = policy
            .metadata()
            .map(|m| m.context_aware_resources.clone())
            .unwrap_or_default();
        let granted = if self.allow_context_aware {
            if policy.metadata().is_none() {
                eprintln!(
                    "kwrun: the module has no {METADATA_SECTION} section: no Kubernetes resource can be granted"
                );
            }
            declared
        } else {
            if !declared.is_empty() {
                eprintln!(
                    "kwrun: the policy declares contextAwareResources but --allow-context-aware was not given: its Kubernetes reads will fail"
                );
            }
            Vec::new()
        };
        if !granted.is_empty() && self.replay_host_capabilities_interactions.is_none() {
            // kwctl builds a Kubernetes client here and stops when there is no cluster to build
            // it for (see `crate::kubeconfig`); kwrun has no live client either way.
            let source = kubeconfig::infer().map_err(CliError::NoCluster)?;
            eprintln!(
                "kwrun: kwctl would read Kubernetes through {source}; kwrun has no live client, so the policy's Kubernetes reads fail: pass a session recorded with kwctl"
            );
        }
        let mut host = HostCapabilities::default()
            .with_allowed_capabilities(self.allowed_host_capabilities.clone())
            .with_context_aware_resources(granted)
            .with_logs(!self.quiet);
        if let Some(path) = &self.replay_host_capabilities_interactions {
            host = host.with_replay(Replay::from_file(path)?);
        }
        if self.record_host_capabilities_interactions.is_some() {
            host = host.with_recording();
        }
        let host = Arc::new(host);
        policy.protocol_version(&host)?;
        let verdict = policy.validate_settings(&host, &settings);
        if !verdict.valid {
            return Err(CliError::InvalidSettings(
                verdict.message.unwrap_or_default(),
            ));
        }
        Ok(Prepared {
            policy,
            host,
            request,
            settings,
        })
    }

    /// One evaluation with the mode and mutation rules applied.
    pub fn evaluate(&self, prepared: &Prepared) -> AdmissionResponse {
        prepared
            .policy
            .validate(&prepared.host, &prepared.request, &prepared.settings)
            .apply_policy_mode(self.mode, !self.disallow_mutation, CLI_POLICY_ID)
    }
}

/// `kwrun run`: the response JSON, as kwctl prints it.
pub fn run(args: &RunArgs) -> Result<String, CliError> {
    let prepared = args.prepare()?;
    let response = args.evaluate(&prepared);
    if let Some(path) = &args.record_host_capabilities_interactions
        && let Some(recorder) = prepared.host.recorded_session()
    {
        recorder.write(path)?;
    }
    let leftovers = prepared.host.replay_leftovers();
    if leftovers > 0 {
        eprintln!("kwrun: {leftovers} recorded exchange(s) of the session were not replayed");
    }
    Ok(serde_json::to_string(&response).unwrap_or_default())
}

/// `kwrun bench`: the report, as text or JSON.
pub fn run_bench(args: &BenchArgs) -> Result<String, CliError> {
    let mut run = args.run.clone();
    run.quiet = true;
    let prepared = run.prepare()?;
    let first = run.evaluate(&prepared);
    let mut differing = 0usize;
    let report = bench(args.warm_up, args.samples, || {
        prepared.host.rewind_replay();
        if run.evaluate(&prepared) != first {
            differing += 1;
        }
    });
    // A benchmark of answers that change (an exhausted session, a timeout) measures the wrong thing.
    if differing > 0 {
        eprintln!("kwrun: {differing} evaluation(s) answered differently from the first one");
    }
    Ok(if args.json {
        serde_json::to_string(&report).unwrap_or_default()
    } else {
        format!("verdict: allowed={}\n{report}", first.allowed)
    })
}

/// `kwrun annotate`.
pub fn annotate(args: &AnnotateArgs) -> Result<(), CliError> {
    let module = read(&args.wasm_path)?;
    let metadata_text = read(&args.metadata_path)?;
    let mut metadata = Metadata::from_yaml(&String::from_utf8_lossy(&metadata_text))?;
    let policy = Policy::load(&module, EvalOptions::default())?;
    let host = Arc::new(HostCapabilities::default().with_logs(false));
    metadata.protocol_version = Some(policy.protocol_version(&host)?);
    if let Some(readme) = &args.usage_path {
        let usage = read(readme)?;
        metadata.set_annotation(
            USAGE_ANNOTATION,
            String::from_utf8_lossy(&usage).into_owned(),
        );
    }
    metadata.set_annotation(
        TOOL_ANNOTATION,
        format!("kwrun {}", env!("CARGO_PKG_VERSION")),
    );
    write(&args.output_path, &metadata.embed(&module)?)
}

fn registry_reference(uri: &str) -> Result<oras_agent::Reference, CliError> {
    match PolicyUri::parse(uri)? {
        PolicyUri::Registry(reference) => Ok(reference),
        PolicyUri::File(_) => Err(CliError::NotARegistry(uri.to_owned())),
    }
}

/// `kwrun push`: what was pushed, as text or JSON.
pub fn push(args: &PushArgs) -> Result<String, CliError> {
    let reference = registry_reference(&args.uri)?;
    let module = read(&args.policy)?;
    let client = oci::client_for(&reference, args.plain_http)?;
    let pushed = oci::push(&client, &reference, &module, args.force)?;
    Ok(if args.output == "json" {
        serde_json::json!({ "immutable_ref": pushed.immutable_ref }).to_string()
    } else {
        format!("Policy successfully pushed: {}", pushed.immutable_ref)
    })
}

/// `kwrun pull`.
pub fn pull(args: &PullArgs) -> Result<(), CliError> {
    let reference = registry_reference(&args.uri)?;
    let client = oci::client_for(&reference, args.plain_http)?;
    let module = oci::pull(&client, &reference)?;
    write(&args.output_path, &module)
}

/// Runs a parsed command line; returns what goes to stdout.
pub fn execute(cli: &Cli) -> Result<Option<String>, CliError> {
    match &cli.command {
        Command::Run(args) => run(args).map(Some),
        Command::Bench(args) => run_bench(args).map(Some),
        Command::Annotate(args) => annotate(args).map(|()| None),
        Command::Push(args) => push(args).map(Some),
        Command::Pull(args) => pull(args).map(|()| None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_yaml_or_json_and_default_to_an_empty_object() {
        assert_eq!(load_settings(None, None).unwrap(), serde_json::json!({}));
        assert_eq!(
            load_settings(None, Some(r#"{"a": 1}"#)).unwrap(),
            serde_json::json!({"a": 1})
        );
        assert_eq!(
            load_settings(None, Some("null")).unwrap(),
            serde_json::json!({})
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yml");
        std::fs::write(
            &path,
            "clusterDomain: example.org\nallowedRegistries: [a, b]\n",
        )
        .unwrap();
        assert_eq!(
            load_settings(Some(&path), None).unwrap(),
            serde_json::json!({"clusterDomain": "example.org", "allowedRegistries": ["a", "b"]})
        );
        let err = load_settings(None, Some("[1]")).unwrap_err().to_string();
        assert!(
            err.contains("--settings-json: settings must be a YAML or JSON object"),
            "{err}"
        );
    }

    #[test]
    fn kwctl_run_flags_parse() {
        let cli = Cli::try_parse_from([
            "kwrun",
            "run",
            "--request-path",
            "r.json",
            "--settings-json",
            "{}",
            "--allow-context-aware",
            "--replay-host-capabilities-interactions",
            "s.yml",
            "annotated-policy.wasm",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert!(args.allow_context_aware);
        assert_eq!(args.uri, "annotated-policy.wasm");
        assert_eq!(args.allowed_host_capabilities, vec!["*".to_owned()]);
        assert!(
            Cli::try_parse_from([
                "kwrun",
                "run",
                "-r",
                "r",
                "-s",
                "s",
                "--settings-json",
                "{}",
                "p"
            ])
            .is_err()
        );
    }
}
