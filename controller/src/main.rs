//! `oras-cache-controller`: `run` the controller, print the `crd` or the install `manifests`.

use std::process::ExitCode;

use clap::Parser;
use oras_cache_controller::cli::{Cli, Command};
use oras_cache_controller::{app, crd, manifests};

fn write(output: Option<std::path::PathBuf>, text: String) -> std::io::Result<()> {
    match output {
        Some(path) => std::fs::write(path, text),
        None => {
            use std::io::Write;
            std::io::stdout().write_all(text.as_bytes())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd { output } => write(output, crd::crd_yaml()).map_err(|e| e.to_string()),
        Command::Manifests { output, options } => {
            write(output, manifests::render(&options.into())).map_err(|e| e.to_string())
        }
        Command::Run(args) => app::run(args).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oras-cache-controller: {error}");
            ExitCode::FAILURE
        }
    }
}
