//! `oras-agent`: parses the command line and runs one role (see the library's documentation).

use clap::Parser;
use oras_agent::cli::{Cli, Command};
use oras_agent::log::{Level, set_level};
use oras_agent::registry::NetworkOverrides;
use oras_agent::registry::{ClientOptions, RegistryClient};
use oras_agent::{Reference, init, launch, sidecar, transfer, volumes};
use oras_cache_api::agent::UnpackLimits;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    set_level(level(cli.command.debug()));
    let network = NetworkOverrides::from(&cli.network);
    match run(cli.command, &network) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(error) => {
            oras_agent::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// `--debug` or `ORAS_AGENT_DEBUG=1` is verbose; `ORAS_AGENT_QUIET=1` prints errors only.
fn level(debug: bool) -> Level {
    let env_set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0");
    if debug || env_set("ORAS_AGENT_DEBUG") {
        Level::Debug
    } else if env_set("ORAS_AGENT_QUIET") {
        Level::Quiet
    } else {
        Level::Info
    }
}

/// Runs one command; returns the process exit code.
fn run(command: Command, network: &NetworkOverrides) -> Result<i32, Box<dyn std::error::Error>> {
    match command {
        // The launcher reports its own failures in the status file and its exit code.
        Command::Launch(command) => {
            let limits = UnpackLimits::from(&command.unpack_limits);
            return Ok(launch::run(&command.into(), &limits));
        }
        Command::Init(command) => init::run(&command.into(), network)?,
        Command::Sidecar(command) => sidecar::run(&command.into(), network)?,
        Command::Volumes(command) => {
            // An interrupted run removes its staging directories.
            oras_agent::cleanup::remove_on_signal()?;
            let limits = UnpackLimits::from(&command.unpack_limits);
            volumes::run(&command.into(), network, &limits)?;
        }
        Command::Pull(command) => {
            let reference = Reference::parse(&command.reference)?;
            let client =
                RegistryClient::new(network.apply(ClientOptions::new(command.plain_http)))?;
            // An interrupted pull removes what it wrote (issue 16).
            oras_agent::cleanup::remove_on_signal()?;
            let limits = UnpackLimits::from(&command.unpack_limits);
            let written = transfer::pull_to_dir_with_limits(
                &client,
                &reference,
                &command.output,
                !command.no_unpack,
                (&limits).into(),
            )?;
            for path in written {
                println!("{}", path.display());
            }
        }
        Command::Push(command) => {
            let reference = Reference::parse(&command.reference)?;
            let client =
                RegistryClient::new(network.apply(ClientOptions::new(command.plain_http)))?;
            // An interrupted push removes the layers it packed.
            oras_agent::cleanup::remove_on_signal()?;
            let digest = transfer::push_paths(&client, &reference, &command.paths)?;
            println!("{reference}@{digest}");
        }
    }
    Ok(0)
}
