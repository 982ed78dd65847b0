//! `policy-bench`: the native floor of the policy's latency, where a wasm evaluation's time goes,
//! the path Kubewarden's policy-server really runs,
//! its module's cold compile time, and
//! replay sessions long enough for `kwrun bench`. `benches/bench.py` drives it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kwrun::bench::bench;
use kwrun::evaluator::InstanceAllocator;
use oras_cache_bench::native::NativeEvaluation;
use oras_cache_bench::session::repeat_session;
use oras_cache_bench::{BenchError, compile, phases, read, real_path};

/// Benchmark tools for the oras-cache policy.
#[derive(Debug, Parser)]
#[command(name = "policy-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The request, its settings and the host's recorded answers.
#[derive(Debug, clap::Args)]
struct RequestArgs {
    /// AdmissionRequest or AdmissionReview JSON file.
    #[arg(short = 'r', long)]
    request_path: PathBuf,
    /// Settings JSON file.
    #[arg(short = 's', long)]
    settings_path: Option<PathBuf>,
    /// kwctl session file answering the policy's OrasCache lookups (every evaluation gets the
    /// same answers).
    #[arg(long)]
    replay_host_capabilities_interactions: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Latency of the policy called natively, with kwrun's work around it (JSON, as `kwrun bench --json`).
    Native {
        /// What is evaluated.
        #[command(flatten)]
        input: RequestArgs,
        /// Measured evaluations.
        #[arg(long, default_value_t = 500)]
        samples: usize,
        /// Unmeasured evaluations first.
        #[arg(long, default_value_t = 20)]
        warm_up: usize,
        /// Time the policy's `validate` alone, without the runner's payload and patch work.
        #[arg(long)]
        policy_only: bool,
    },
    /// Each step of a wasm evaluation timed apart, medians in µs (JSON).
    Phases {
        /// The module.
        module: PathBuf,
        /// What is evaluated.
        #[command(flatten)]
        input: RequestArgs,
        /// Instances from fresh mappings instead of kwrun's pool.
        #[arg(long)]
        on_demand: bool,
        /// Measured evaluations.
        #[arg(long, default_value_t = 500)]
        samples: usize,
    },
    /// A request through every step of Kubewarden's policy-server, each timed (JSON: the whole
    /// as `kwrun bench --json`, plus `steps_p50_us` and the patch's size).
    RealPath {
        /// The module.
        module: PathBuf,
        /// What is evaluated.
        #[command(flatten)]
        input: RequestArgs,
        /// Measured evaluations.
        #[arg(long, default_value_t = 500)]
        samples: usize,
        /// Unmeasured evaluations first.
        #[arg(long, default_value_t = 20)]
        warm_up: usize,
    },
    /// Cold compile time of a module (JSON).
    Compile {
        /// The module.
        module: PathBuf,
        /// Compiles to measure.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Write a session whose exchanges are repeated, for that many replayed evaluations.
    RepeatSession {
        /// The recorded session.
        session: PathBuf,
        /// How many times.
        #[arg(long)]
        times: usize,
        /// Where to write it.
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
}

fn run(cli: Cli) -> Result<String, BenchError> {
    match cli.command {
        Command::Native {
            input,
            samples,
            warm_up,
            policy_only,
        } => {
            let evaluation = NativeEvaluation::load(
                &input.request_path,
                input.settings_path.as_deref(),
                input.replay_host_capabilities_interactions.as_deref(),
            )?;
            // The verdict is checked once up front, so a broken fixture is an error, not a figure.
            let allowed = evaluation.evaluate()?.allowed;
            let payload = evaluation.payload();
            let report = if policy_only {
                bench(warm_up, samples, || {
                    let _ = evaluation.policy_only(&payload);
                })
            } else {
                bench(warm_up, samples, || {
                    let _ = evaluation.evaluate();
                })
            };
            let mut json = serde_json::to_value(&report).unwrap_or_default();
            json["allowed"] = allowed.into();
            Ok(json.to_string())
        }
        Command::Phases {
            module,
            input,
            on_demand,
            samples,
        } => {
            let allocator = if on_demand {
                InstanceAllocator::OnDemand
            } else {
                InstanceAllocator::Pooling
            };
            let report = phases::measure(
                &module,
                &input.request_path,
                input.settings_path.as_deref(),
                input.replay_host_capabilities_interactions.as_deref(),
                allocator,
                samples,
            )?;
            Ok(serde_json::to_value(&report)
                .unwrap_or_default()
                .to_string())
        }
        Command::RealPath {
            module,
            input,
            samples,
            warm_up,
        } => {
            let report = real_path::measure(
                &module,
                &input.request_path,
                input.settings_path.as_deref(),
                input.replay_host_capabilities_interactions.as_deref(),
                warm_up,
                samples,
            )?;
            Ok(serde_json::to_value(&report)
                .unwrap_or_default()
                .to_string())
        }
        Command::Compile { module, runs } => {
            let report = compile::measure(&read(&module)?, runs)?;
            let mut json = serde_json::to_value(&report).unwrap_or_default();
            json["module_bytes"] = std::fs::metadata(&module)
                .map(|m| m.len())
                .unwrap_or_default()
                .into();
            Ok(json.to_string())
        }
        Command::RepeatSession {
            session,
            times,
            output,
        } => {
            let yaml = repeat_session(&session, times)?;
            std::fs::write(&output, yaml).map_err(|source| BenchError::Io {
                path: output.clone(),
                source,
            })?;
            Ok(format!("{}: {times} repetitions", output.display()))
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("policy-bench: {error}");
            ExitCode::FAILURE
        }
    }
}
