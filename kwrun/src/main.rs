//! `kwrun`: see the library documentation.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = kwrun::cli::Cli::parse();
    match kwrun::cli::execute(&cli) {
        Ok(Some(output)) => {
            println!("{output}");
            std::process::ExitCode::SUCCESS
        }
        Ok(None) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            std::process::ExitCode::FAILURE
        }
    }
}
