//! The command line. The role subcommands parse exactly the argv that
//! `oras_cache_api::agent::{InitArgs, LaunchArgs, SidecarArgs, VolumesArgs}::to_args()` build (the policy's
//! side of the contract), and convert back into those structs.

use crate::registry::NetworkOverrides;
use clap::{Args, Parser, Subcommand};
use oras_cache_api::agent::{
    DEFAULT_HEARTBEAT_TIMEOUT_SECS, DEFAULT_START_TIMEOUT_SECS, InitArgs, LaunchArgs, SidecarArgs,
    UnpackLimits, VolumePull, VolumesArgs, parse_size, parse_volume_spec,
};
use std::path::PathBuf;

/// oras-agent: pulls a step's inputs, wraps the step, pushes its outputs.
#[derive(Debug, Parser)]
#[command(name = "oras-agent", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Network limits, accepted by every subcommand.
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Deadlines and retries of registry traffic. Unset flags fall back to the environment
/// variables named in their help, then to the defaults.
#[derive(Debug, Args, Default)]
pub struct NetworkArgs {
    /// Seconds without any data from the registry before an attempt counts as stalled
    /// (default 30; env ORAS_AGENT_READ_TIMEOUT).
    #[arg(long, global = true, value_name = "SECS")]
    pub read_timeout: Option<u64>,
    /// Minimum download rate in bytes per second, averaged over --read-timeout windows; slower
    /// counts as stalled; 0 disables (default 1024; env ORAS_AGENT_MIN_RATE).
    #[arg(long, global = true, value_name = "BYTES_PER_SEC")]
    pub min_rate: Option<u64>,
    /// Attempts per request, the first included; stalls count as failed attempts (default 8;
    /// env ORAS_AGENT_ATTEMPTS).
    #[arg(long, global = true, value_name = "N")]
    pub attempts: Option<u32>,
}

impl From<&NetworkArgs> for NetworkOverrides {
    fn from(n: &NetworkArgs) -> Self {
        NetworkOverrides {
            read_timeout_secs: n.read_timeout,
            min_rate: n.min_rate,
            attempts: n.attempts,
        }
    }
}

/// The limits of unpacking a directory layer (the `--max-unpacked-size` and
/// `--max-unpack-ratio` flags).
#[derive(Debug, Args, Clone, PartialEq, Eq)]
pub struct UnpackLimitArgs {
    /// Largest uncompressed size of one directory layer (bytes, or with a suffix: 512Mi, 20Gi,
    /// 1Ti; default 10Gi); a larger layer is refused before anything past the limit is written.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_unpacked_size: Option<u64>,
    /// Largest ratio of uncompressed to compressed size of a directory layer once it passes
    /// 256 MiB uncompressed (a gzip bomb); 0 disables (default 200).
    #[arg(long, value_name = "RATIO")]
    pub max_unpack_ratio: Option<u64>,
}

impl From<&UnpackLimitArgs> for UnpackLimits {
    fn from(a: &UnpackLimitArgs) -> Self {
        UnpackLimits {
            max_unpacked_size: a.max_unpacked_size,
            max_unpack_ratio: a.max_unpack_ratio,
        }
    }
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
    /// Artifact volumes' init container: fill each volume's directory with its artifact.
    Volumes(VolumesCommand),
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
            Command::Volumes(c) => c.debug,
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
    /// Limits of unpacking the inputs' directory layers.
    #[command(flatten)]
    pub unpack_limits: UnpackLimitArgs,
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

/// The pulls of `--spec`, parsed by clap so that a bad spec is a usage error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec(pub Vec<VolumePull>);

fn volume_spec(json: &str) -> Result<VolumeSpec, String> {
    parse_volume_spec(json).map(VolumeSpec)
}

/// `oras-agent volumes --spec=JSON`.
#[derive(Debug, Args)]
pub struct VolumesCommand {
    /// The volumes to fill: a JSON array of `{"volume", "path", "reference", "plainHttp",
    /// "mediaTypes", "concurrency", "credentialsEnvPrefix"}` (oras_cache_api::agent::VolumePull).
    #[arg(long, value_name = "JSON", value_parser = volume_spec)]
    pub spec: VolumeSpec,
    /// Limits of unpacking directory layers.
    #[command(flatten)]
    pub unpack_limits: UnpackLimitArgs,
    /// Log every step.
    #[arg(long)]
    pub debug: bool,
}

impl From<VolumesCommand> for VolumesArgs {
    fn from(c: VolumesCommand) -> Self {
        VolumesArgs {
            pulls: c.spec.0,
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
    /// Limits of unpacking directory layers.
    #[command(flatten)]
    pub unpack_limits: UnpackLimitArgs,
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

    /// The unpack limits every role's argv is checked with: the defaults (no flags) and values
    /// of both flags, a ratio of 0 (disabled) included.
    const LIMITS: [UnpackLimits; 3] = [
        UnpackLimits {
            max_unpacked_size: None,
            max_unpack_ratio: None,
        },
        UnpackLimits {
            max_unpacked_size: Some(3 << 30),
            max_unpack_ratio: Some(0),
        },
        UnpackLimits {
            max_unpacked_size: Some(1 << 20),
            max_unpack_ratio: Some(7),
        },
    ];

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
            // Values that look like flags stay values (issue 16).
            InitArgs {
                share: "--debug".into(),
                inputs: vec!["--plain-http".into(), "--".into()],
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
            // Path values that look like flags, or are the separator, stay values (issue 16):
            // the policy admitted these once, and the agent must never read one as a flag.
            LaunchArgs {
                share: "/mnt/oras".into(),
                input_path: Some("--no-unpack".into()),
                output_path: Some("--push-on-failure".into()),
                output_pipe: Some("--".into()),
                unpack: true,
                command: vec!["--".into(), "-x".into()],
                ..Default::default()
            },
            LaunchArgs {
                share: "-".into(),
                input_path: Some("-".into()),
                output_path: Some("--output-path=x".into()),
                output_pipe: Some("-h".into()),
                unpack: true,
                command: vec!["true".into()],
                ..Default::default()
            },
        ];
        for args in cases {
            for limit in LIMITS {
                let Command::Launch(parsed) = parse(args.to_args_with_limits(&limit)) else {
                    panic!("not launch")
                };
                assert_eq!(UnpackLimits::from(&parsed.unpack_limits), limit);
                assert_eq!(LaunchArgs::from(parsed), args);
            }
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
                share: "--plain-http".into(),
                output: "--debug".into(),
                start_timeout_secs: 1,
                heartbeat_timeout_secs: 2,
                ..Default::default()
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
    fn volumes_argv_of_the_policy_parses_back_to_the_same_values() {
        let cases = [
            VolumesArgs {
                pulls: vec![
                    VolumePull {
                        volume: "oras-inline".into(),
                        path: "/mnt/oras-volumes/oras-inline".into(),
                        reference: "r:5000/a:1".into(),
                        plain_http: true,
                        media_types: vec!["a/b".into(), "c/d".into()],
                        concurrency: Some(2),
                        credentials_env_prefix: Some("ORAS_VOLUME_0_".into()),
                    },
                    VolumePull {
                        volume: "--debug".into(),
                        path: "--spec=x".into(),
                        reference: "r.io/b@sha256:".to_string() + &"a".repeat(64),
                        ..Default::default()
                    },
                ],
                debug: true,
            },
            VolumesArgs::default(),
        ];
        for args in cases {
            for limit in LIMITS {
                let Command::Volumes(parsed) = parse(args.to_args_with_limits(&limit)) else {
                    panic!("not volumes")
                };
                assert_eq!(UnpackLimits::from(&parsed.unpack_limits), limit);
                assert_eq!(VolumesArgs::from(parsed), args);
            }
            let Command::Volumes(parsed) = parse(args.to_args()) else {
                panic!("not volumes")
            };
            assert_eq!(VolumesArgs::from(parsed), args);
        }
        let bad = Cli::try_parse_from(["oras-agent", "volumes", "--spec={}"]).unwrap_err();
        assert!(bad.to_string().contains("volumes spec"), "{bad}");
    }

    #[test]
    fn network_flags_are_accepted_by_every_subcommand_and_sizes_take_units() {
        let cli = Cli::try_parse_from([
            "oras-agent",
            "pull",
            "r/a:1",
            "--read-timeout=2",
            "--min-rate",
            "10",
            "--attempts=3",
            "--max-unpacked-size=4Mi",
        ])
        .unwrap();
        assert_eq!(
            NetworkOverrides::from(&cli.network),
            NetworkOverrides {
                read_timeout_secs: Some(2),
                min_rate: Some(10),
                attempts: Some(3)
            }
        );
        let Command::Pull(pull) = cli.command else {
            panic!("not pull")
        };
        assert_eq!(pull.unpack_limits.max_unpacked_size, Some(4 << 20));
        let cli =
            Cli::try_parse_from(["oras-agent", "--attempts=1", "init", "--share=/s"]).unwrap();
        assert_eq!(cli.network.attempts, Some(1));
        assert!(
            Cli::try_parse_from(["oras-agent", "pull", "r/a:1", "--max-unpacked-size=lots"])
                .is_err()
        );
    }

    #[test]
    fn launch_without_a_command_is_refused() {
        let argv = ["oras-agent", "launch", "--share", "/s"];
        let error = Cli::try_parse_from(argv).unwrap_err().to_string();
        assert!(error.contains("COMMAND"), "{error}");
    }
}
