//! `oras-cache-controller`: `run` the controller, print the `crd`, the install `manifests`, or
//! what it would apply for a file (`render`).

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

fn render(file: &std::path::Path, cluster_domain: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let rendered = oras_cache_controller::render::render(&text, cluster_domain)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    for warning in &rendered.warnings {
        eprintln!("oras-cache-controller: warning: {warning}");
    }
    write(None, rendered.to_yaml()).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd { output } => write(output, crd::crd_yaml()).map_err(|e| e.to_string()),
        Command::Manifests { output, options } => {
            write(output, manifests::render(&options.into())).map_err(|e| e.to_string())
        }
        Command::Render {
            file,
            cluster_domain,
        } => render(&file, &cluster_domain),
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
