//! The command line. The role subcommands parse exactly the argv that
//! `oras_cache_api::agent::{InitArgs, LaunchArgs, SidecarArgs}::to_args()` build (the policy's
//! side of the contract), and convert back into those structs.

use clap::{Args, Parser, Subcommand};
use oras_cache_api::agent::{
    DEFAULT_HEARTBEAT_TIMEOUT_SECS, DEFAULT_START_TIMEOUT_SECS, InitArgs, LaunchArgs, SidecarArgs,
};
use std::path::PathBuf;

/// oras-agent: pulls a step's inputs, wraps the step, pushes its outputs.
#[derive(Debug, Parser)]
#[command(name = "oras-agent", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Init container: copy this binary to the share, fetch and verify every input.
    Init(InitCommand),
    /// Application wrapper: place the inputs, run the command, pack the outputs, record status.
    Launch(LaunchCommand),
    /// Push sidecar: wait for the launcher's status, then push the packed outputs.
    Sidecar(SidecarCommand),
    /// Pull an artifact into a directory (like `oras pull`).
    Pull(PullCommand),
    /// Push files and directories as one artifact (like `oras push`).
    Push(PushCommand),
}

impl Command {
    /// Whether `--debug` was given.
    pub fn debug(&self) -> bool {
        match self {
            Command::Init(c) => c.debug,
            Command::Launch(c) => c.debug,
            Command::Sidecar(c) => c.debug,
            Command::Pull(c) => c.debug,
            Command::Push(c) => c.debug,
        }
    }
}

/// `oras-agent init`.
#[derive(Debug, Args)]
pub struct InitCommand {
    /// Mount path of the shared volume.
    #[arg(long)]
    pub share: String,
    /// Input references, in pull order.
    #[arg(
        long = "input",
        help = "An input reference (host[:port]/repo:tag or @digest); repeat for several, in pull order"
    )]
    pub inputs: Vec<String>,
    /// Speak plain HTTP to the registry instead of TLS.
    #[arg(long)]
    pub plain_http: bool,
    /// Log every step.
    #[arg(long)]
    pub debug: bool,
}

impl From<InitCommand> for InitArgs {
    fn from(c: InitCommand) -> Self {
        InitArgs {
            share: c.share,
            inputs: c.inputs,
            plain_http: c.plain_http,
            debug: c.debug,
        }
    }
}

/// `oras-agent launch ... -- <command>`.
#[derive(Debug, Args)]
pub struct LaunchCommand {
    /// Mount path of the shared volume.
    #[arg(long)]
    pub share: String,
    /// Where inputs are placed (default: the working directory).
    #[arg(long)]
    pub input_path: Option<String>,
    /// File or directory packed as the output after the run.
    #[arg(long)]
    pub output_path: Option<String>,
    /// File the application's stdout is copied to.
    #[arg(long)]
    pub output_pipe: Option<String>,
    /// Keep directory layers of the inputs as `<title>.tar.gz` files.
    #[arg(long)]
    pub no_unpack: bool,
    /// Pack (and so push) the outputs even when the application failed.
    #[arg(long)]
    pub push_on_failure: bool,
    /// Pack the outputs for the sidecar (set when there is an output reference).
    #[arg(long)]
    pub pack_outputs: bool,
    /// Log every step.
    #[arg(long)]
    pub debug: bool,
    /// The application's command and arguments, after `--`.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

impl From<LaunchCommand> for LaunchArgs {
    fn from(c: LaunchCommand) -> Self {
        LaunchArgs {
            share: c.share,
            input_path: c.input_path,
            output_path: c.output_path,
            output_pipe: c.output_pipe,
            unpack: !c.no_unpack,
            push_on_failure: c.push_on_failure,
            pack_outputs: c.pack_outputs,
            debug: c.debug,
            command: c.command,
        }
    }
}

/// `oras-agent sidecar`.
#[derive(Debug, Args)]
pub struct SidecarCommand {
    /// Mount path of the shared volume.
    #[arg(long)]
    pub share: String,
    /// Reference to push the outputs to.
    #[arg(long)]
    pub output: String,
    /// Speak plain HTTP to the registry instead of TLS.
    #[arg(long)]
    pub plain_http: bool,
    /// Seconds to wait for the application to start.
    #[arg(long, default_value_t = DEFAULT_START_TIMEOUT_SECS)]
    pub start_timeout: u64,
    /// Seconds without a heartbeat (and no status) after which the application is deemed dead.
    #[arg(long, default_value_t = DEFAULT_HEARTBEAT_TIMEOUT_SECS)]
    pub heartbeat_timeout: u64,
    /// Log every step.
    #[arg(long)]
    pub debug: bool,
}

impl From<SidecarCommand> for SidecarArgs {
    fn from(c: SidecarCommand) -> Self {
        SidecarArgs {
            share: c.share,
            output: c.output,
            plain_http: c.plain_http,
            start_timeout_secs: c.start_timeout,
            heartbeat_timeout_secs: c.heartbeat_timeout,
            debug: c.debug,
        }
    }
}

/// `oras-agent pull <ref> -o <dir>`.
#[derive(Debug, Args)]
pub struct PullCommand {
    /// The artifact to pull.
    #[arg(help = "The artifact: host[:port]/repository[:tag|@digest]")]
    pub reference: String,
    /// Directory to write the files to.
    #[arg(short, long, default_value = ".")]
    pub output: PathBuf,
    /// Speak plain HTTP to the registry instead of TLS.
    #[arg(long)]
    pub plain_http: bool,
    /// Keep directory layers as `<title>.tar.gz` files.
    #[arg(long)]
    pub no_unpack: bool,
    /// Log every step.
    #[arg(long)]
    pub debug: bool,
}

/// `oras-agent push <ref> <file|dir>...`.
#[derive(Debug, Args)]
pub struct PushCommand {
    /// Where to push.
    #[arg(help = "The target: host[:port]/repository[:tag]")]
    pub reference: String,
    /// Files and directories, one layer each.
    #[arg(required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Speak plain HTTP to the registry instead of TLS.
    #[arg(long)]
    pub plain_http: bool,
    /// Log every step.
    #[arg(long)]
    pub debug: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: Vec<String>) -> Command {
        let argv = std::iter::once("oras-agent".to_string()).chain(args);
        Cli::try_parse_from(argv)
            .expect("the policy's argv parses")
            .command
    }

    #[test]
    fn init_argv_of_the_policy_parses_back_to_the_same_values() {
        let cases = [
            InitArgs {
                share: "/mnt/oras".into(),
                inputs: vec![
                    "r:5000/a:1".into(),
                    "r.io/b/c@sha256:".to_string() + &"a".repeat(64),
                ],
                plain_http: true,
                debug: true,
            },
            InitArgs {
                share: "/s".into(),
                ..Default::default()
            },
        ];
        for args in cases {
            let Command::Init(parsed) = parse(args.to_args()) else {
                panic!("not init")
            };
            assert_eq!(InitArgs::from(parsed), args);
        }
    }

    #[test]
    fn launch_argv_of_the_policy_parses_back_to_the_same_values() {
        let cases = [
            LaunchArgs {
                share: "/mnt/oras".into(),
                input_path: Some("/in".into()),
                output_path: Some("out dir".into()),
                output_pipe: Some("pipe.txt".into()),
                unpack: false,
                push_on_failure: true,
                pack_outputs: true,
                debug: true,
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo --debug -- x".into(),
                    "--".into(),
                ],
            },
            LaunchArgs {
                share: "/mnt/oras".into(),
                unpack: true,
                command: vec!["/bin/true".into()],
                ..Default::default()
            },
            LaunchArgs {
                share: "/mnt/oras".into(),
                unpack: true,
                command: vec!["--help".into(), "--share".into()],
                ..Default::default()
            },
        ];
        for args in cases {
            let Command::Launch(parsed) = parse(args.to_args()) else {
                panic!("not launch")
            };
            assert_eq!(LaunchArgs::from(parsed), args);
        }
    }

    #[test]
    fn sidecar_argv_of_the_policy_parses_back_to_the_same_values() {
        let cases = [
            SidecarArgs {
                share: "/mnt/oras".into(),
                output: "r:5000/out:v1".into(),
                plain_http: true,
                start_timeout_secs: 7,
                heartbeat_timeout_secs: 9,
                debug: true,
            },
            SidecarArgs {
                share: "/s".into(),
                output: "r.io/o".into(),
                start_timeout_secs: DEFAULT_START_TIMEOUT_SECS,
                heartbeat_timeout_secs: DEFAULT_HEARTBEAT_TIMEOUT_SECS,
                ..Default::default()
            },
        ];
        for args in cases {
            let Command::Sidecar(parsed) = parse(args.to_args()) else {
                panic!("not sidecar")
            };
            assert_eq!(SidecarArgs::from(parsed), args);
        }
    }

    #[test]
    fn launch_without_a_command_is_refused() {
        let argv = ["oras-agent", "launch", "--share", "/s"];
        let error = Cli::try_parse_from(argv).unwrap_err().to_string();
        assert!(error.contains("COMMAND"), "{error}");
    }
}
