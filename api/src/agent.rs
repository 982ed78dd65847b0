//! The agent's command line as the policy writes it, and the file protocol its roles share.
//!
//! The policy injects three roles (four with artifact volumes: [`VolumesArgs`]) of the one `oras-agent` binary into a pod (see DESIGN.md, "Pod
//! shape"). Each role is described here by a struct whose [`InitArgs::to_args`] (and so on) gives
//! the exact argv the policy puts in the container spec; the agent parses the same flags with clap,
//! and a test in `agent/` checks that every argv built here parses back to the same values.
//!
//! # Files on the shared volume (`/mnt/oras`)
//!
//! | path | written by | meaning |
//! |---|---|---|
//! | `bin/oras-agent` | init | the agent binary, copied so the application container can run it |
//! | `inputs/<n>/` | init | input `n` (0-based, in annotation order) as an OCI image layout, every blob verified |
//! | `outputs/` | launch | the packed outputs as an OCI image layout, ready to push |
//! | `state/started` | launch | exists once the application was started |
//! | `state/heartbeat` | launch | its mtime is refreshed every [`HEARTBEAT_INTERVAL_SECS`] while the application runs |
//! | `state/status.json` | launch | a [`LaunchStatus`], written last (write to a temp file, then rename) |

use serde::{Deserialize, Serialize};

/// Name of the shared `emptyDir` volume.
pub const SHARE_VOLUME: &str = "oras-share";
/// Where the shared volume is mounted in every container the policy touches.
pub const SHARE_MOUNT: &str = "/mnt/oras";
/// File name of the agent binary.
pub const AGENT_BINARY: &str = "oras-agent";
/// Path of the agent binary inside the agent image.
pub const AGENT_IMAGE_PATH: &str = "/oras-agent";
/// Folder of the share that holds the copied binary.
pub const BIN_DIR: &str = "bin";
/// Folder of the share that holds one OCI layout per input.
pub const INPUTS_DIR: &str = "inputs";
/// Folder of the share that holds the OCI layout of the packed outputs.
pub const OUTPUTS_DIR: &str = "outputs";
/// Folder of the share that holds the launcher's markers.
pub const STATE_DIR: &str = "state";
/// Marker: the application was started.
pub const STARTED_FILE: &str = "state/started";
/// Marker whose modification time proves the launcher is alive.
pub const HEARTBEAT_FILE: &str = "state/heartbeat";
/// The launcher's final record, a JSON [`LaunchStatus`].
pub const STATUS_FILE: &str = "state/status.json";
/// How often the launcher refreshes the heartbeat.
pub const HEARTBEAT_INTERVAL_SECS: u64 = 2;

/// Environment variable: registry user name (the original project's name).
pub const ENV_USER: &str = "ORAS_USER";
/// Environment variable: password for both pull and push.
pub const ENV_PASS: &str = "ORAS_PASS";
/// Environment variable: password for push, preferred over [`ENV_PASS`] when pushing.
pub const ENV_PUSH_PASS: &str = "ORAS_PUSH_PASS";
/// Environment variable: password for pull, preferred over [`ENV_PASS`] when pulling.
pub const ENV_PULL_PASS: &str = "ORAS_PULL_PASS";
/// Environment variable: where the docker `config.json` to read credentials from is: a directory
/// holding `config.json` (docker's meaning of the variable) or the file itself.
pub const ENV_DOCKER_CONFIG: &str = "DOCKER_CONFIG";

/// The path of the copied agent binary in the application container.
pub fn shared_agent_path() -> String {
    format!("{SHARE_MOUNT}/{BIN_DIR}/{AGENT_BINARY}")
}

/// Role of the init container: install the agent on the share, fetch and verify every input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InitArgs {
    /// Mount path of the shared volume.
    pub share: String,
    /// Full references (`host[:port]/repo:tag` or `@digest`), in pull order.
    pub inputs: Vec<String>,
    /// Speak plain HTTP to the registry instead of TLS.
    pub plain_http: bool,
    /// Log every step (the `debug` annotation).
    pub debug: bool,
}

impl InitArgs {
    /// The argv after the binary name. Values are joined to their flag (`--input=VALUE`), so
    /// that none can ever be read as a flag, whatever it starts with.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["init".to_string(), flag_value("--share", &self.share)];
        push_flag(&mut args, "--plain-http", self.plain_http);
        push_flag(&mut args, "--debug", self.debug);
        for input in &self.inputs {
            args.push(flag_value("--input", input));
        }
        args
    }
}

/// Role of the wrapper in the application container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LaunchArgs {
    /// Mount path of the shared volume.
    pub share: String,
    /// Where inputs are placed; `None` means the working directory.
    pub input_path: Option<String>,
    /// File or directory packed as the output after the run.
    pub output_path: Option<String>,
    /// File the application's stdout is copied to (stdout still reaches the container log).
    pub output_pipe: Option<String>,
    /// Unpack directory layers of the inputs (`unpack` annotation, default true).
    pub unpack: bool,
    /// Pack (and so push) the outputs even when the application failed.
    pub push_on_failure: bool,
    /// Whether a sidecar will push the outputs; without one, nothing is packed.
    pub pack_outputs: bool,
    /// Log every step.
    pub debug: bool,
    /// The application's argv: its command and arguments, as Kubernetes would run them.
    pub command: Vec<String>,
}

impl LaunchArgs {
    /// The argv after the binary name, with the default unpack limits. Values are joined to
    /// their flag (`--output-path=VALUE`), and the application's argv follows `--`, so no value
    /// is ever read as a flag.
    pub fn to_args(&self) -> Vec<String> {
        self.to_args_with_limits(&UnpackLimits::default())
    }

    /// [`LaunchArgs::to_args`] with the unpack limits of the inputs (`--max-unpacked-size=N`,
    /// `--max-unpack-ratio=N` when set).
    pub fn to_args_with_limits(&self, limits: &UnpackLimits) -> Vec<String> {
        let mut args = vec!["launch".to_string(), flag_value("--share", &self.share)];
        push_opt(&mut args, "--input-path", &self.input_path);
        push_opt(&mut args, "--output-path", &self.output_path);
        push_opt(&mut args, "--output-pipe", &self.output_pipe);
        limits.push_to(&mut args);
        push_flag(&mut args, "--no-unpack", !self.unpack);
        push_flag(&mut args, "--push-on-failure", self.push_on_failure);
        push_flag(&mut args, "--pack-outputs", self.pack_outputs);
        push_flag(&mut args, "--debug", self.debug);
        args.push("--".into());
        args.extend(self.command.iter().cloned());
        args
    }
}

/// Limits of unpacking the inputs' directory layers in the launcher (and in `oras-agent pull`).
/// A separate struct so that [`LaunchArgs`] literals stay valid; `None` means the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnpackLimits {
    /// Largest uncompressed size in bytes of one directory layer; `None` is
    /// [`DEFAULT_MAX_UNPACKED_SIZE`]. Passed as `--max-unpacked-size=<bytes>`.
    pub max_unpacked_size: Option<u64>,
    /// Largest uncompressed/compressed ratio of a directory layer past 256 MiB; `None` is
    /// [`DEFAULT_MAX_UNPACK_RATIO`], 0 disables. Passed as `--max-unpack-ratio=<n>`.
    pub max_unpack_ratio: Option<u64>,
}

impl UnpackLimits {
    /// Appends `--max-unpacked-size=N` and `--max-unpack-ratio=N` for the limits that are set.
    fn push_to(&self, args: &mut Vec<String>) {
        push_opt(
            args,
            "--max-unpacked-size",
            &self.max_unpacked_size.map(|n| n.to_string()),
        );
        push_opt(
            args,
            "--max-unpack-ratio",
            &self.max_unpack_ratio.map(|n| n.to_string()),
        );
    }
}

/// Role of the push sidecar: wait for the launcher's status, then push the packed outputs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SidecarArgs {
    /// Mount path of the shared volume.
    pub share: String,
    /// Full reference to push to.
    pub output: String,
    /// Speak plain HTTP to the registry instead of TLS.
    pub plain_http: bool,
    /// Seconds to wait for the application to start before giving up.
    pub start_timeout_secs: u64,
    /// Seconds without a heartbeat (and without a status) after which the application is deemed
    /// dead.
    pub heartbeat_timeout_secs: u64,
    /// Log every step.
    pub debug: bool,
}

/// Default of [`SidecarArgs::start_timeout_secs`]: image pulls of big application images are slow.
pub const DEFAULT_START_TIMEOUT_SECS: u64 = 1800;
/// Default of [`SidecarArgs::heartbeat_timeout_secs`].
pub const DEFAULT_HEARTBEAT_TIMEOUT_SECS: u64 = 30;

impl SidecarArgs {
    /// The argv after the binary name, values joined to their flags.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "sidecar".to_string(),
            flag_value("--share", &self.share),
            flag_value("--output", &self.output),
            flag_value("--start-timeout", &self.start_timeout_secs.to_string()),
            flag_value(
                "--heartbeat-timeout",
                &self.heartbeat_timeout_secs.to_string(),
            ),
        ];
        push_flag(&mut args, "--plain-http", self.plain_http);
        push_flag(&mut args, "--debug", self.debug);
        args
    }
}

/// Name of the init container that fills artifact volumes (issue 13).
pub const VOLUMES_CONTAINER: &str = "oras-volumes";
/// Where `oras-volumes` mounts each artifact volume: `<VOLUMES_MOUNT>/<volume name>`.
pub const VOLUMES_MOUNT: &str = "/mnt/oras-volumes";
/// Default of [`VolumePull::concurrency`]: a few parallel downloads fill a fast link without
/// piling up connections on the registry.
pub const DEFAULT_VOLUME_CONCURRENCY: u32 = 4;
/// Largest [`VolumePull::concurrency`] honoured; more is lowered to this.
pub const MAX_VOLUME_CONCURRENCY: u32 = 16;

/// The mount path of volume `name` in the `oras-volumes` container.
pub fn volume_mount_path(name: &str) -> String {
    format!("{VOLUMES_MOUNT}/{name}")
}

/// Role of the `oras-volumes` init container: fill each artifact volume with one artifact before
/// the application starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumesArgs {
    /// One pull per artifact volume, in the pod's volume order.
    pub pulls: Vec<VolumePull>,
    /// Log every step.
    pub debug: bool,
}

/// One artifact volume to fill: what to pull, where, and how. Travels as JSON in `--spec`
/// (camelCase keys; absent keys take their defaults; unknown keys are refused, so a policy newer
/// than the agent fails loudly instead of being half obeyed).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumePull {
    /// The pod's volume name; it names the volume in messages.
    pub volume: String,
    /// The directory to fill (the emptyDir's mount path in `oras-volumes`). Its previous content
    /// is replaced.
    pub path: String,
    /// The full reference: `host[:port]/repository:tag` or `@digest`.
    pub reference: String,
    /// Speak plain HTTP to the registry instead of TLS.
    #[serde(default, skip_serializing_if = "is_false")]
    pub plain_http: bool,
    /// Only layers of these media types are written; empty means every layer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media_types: Vec<String>,
    /// Parallel layer downloads; `None` is [`DEFAULT_VOLUME_CONCURRENCY`], 0 counts as 1 and
    /// more than [`MAX_VOLUME_CONCURRENCY`] as that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// The prefix the volume's Secret gets in the container's environment (`envFrom` with
    /// `prefix`, e.g. `ORAS_VOLUME_0_`): the agent reads `<prefix>ORAS_USER`,
    /// `<prefix>ORAS_PULL_PASS`, ... by [`crate::credentials::select`]. `None` reads the plain
    /// environment, as the other roles do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_env_prefix: Option<String>,
}

impl VolumePull {
    /// The number of parallel layer downloads to use, within `1..=`[`MAX_VOLUME_CONCURRENCY`].
    pub fn effective_concurrency(&self) -> u32 {
        self.concurrency
            .unwrap_or(DEFAULT_VOLUME_CONCURRENCY)
            .clamp(1, MAX_VOLUME_CONCURRENCY)
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Parses the JSON of `--spec`: an array of [`VolumePull`].
pub fn parse_volume_spec(json: &str) -> Result<Vec<VolumePull>, String> {
    serde_json::from_str(json).map_err(|e| format!("the volumes spec is not valid: {e}"))
}

impl VolumesArgs {
    /// The argv after the binary name: `volumes --spec=<JSON array of pulls> [--debug]`, with the
    /// default unpack limits. The JSON is joined to its flag, so it is never read as a flag.
    pub fn to_args(&self) -> Vec<String> {
        self.to_args_with_limits(&UnpackLimits::default())
    }

    /// [`VolumesArgs::to_args`] with the unpack limits of directory layers
    /// (`--max-unpacked-size=N`, `--max-unpack-ratio=N` when set).
    pub fn to_args_with_limits(&self, limits: &UnpackLimits) -> Vec<String> {
        let spec = serde_json::to_string(&self.pulls).unwrap_or_else(|_| "[]".into());
        let mut args = vec!["volumes".to_string(), flag_value("--spec", &spec)];
        limits.push_to(&mut args);
        push_flag(&mut args, "--debug", self.debug);
        args
    }
}

/// What the launcher records in [`STATUS_FILE`] when the application has ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchStatus {
    /// The exit code the application container ends with (128 + signal when killed by a signal).
    pub exit_code: i32,
    /// The signal that killed the application, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Whether `outputs/` holds a packed artifact the sidecar must push.
    pub push: bool,
    /// Why the launcher itself failed (could not start the command, could not pack, ...).
    #[serde(default)]
    pub error: Option<String>,
}

fn push_flag(args: &mut Vec<String>, flag: &str, set: bool) {
    if set {
        args.push(flag.to_string());
    }
}

/// `--flag=value`: a value starting with `-` (or equal to `--`) stays a value.
fn flag_value(flag: &str, value: &str) -> String {
    format!("{flag}={value}")
}

fn push_opt(args: &mut Vec<String>, flag: &str, value: &Option<String>) {
    if let Some(value) = value {
        args.push(flag_value(flag, value));
    }
}

/// Default of `--max-unpacked-size`: 10 GiB, far above the directory outputs workflow steps hand
/// each other, far below what fills a node's disk by surprise.
pub const DEFAULT_MAX_UNPACKED_SIZE: u64 = 10 * 1024 * 1024 * 1024;
/// Default of `--max-unpack-ratio`: text compresses about 5-20 times; only long runs of one
/// byte (a gzip bomb, or a zero-filled image) pass 200.
pub const DEFAULT_MAX_UNPACK_RATIO: u64 = 200;

/// Parses a size: plain bytes (`1048576`) or a number with a binary suffix `Ki`, `Mi`, `Gi`,
/// `Ti` (also `K`, `M`, `G`, `T` and a trailing `B`, all powers of 1024), as the
/// `--max-unpacked-size` flag and its annotation take it.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(digits);
    let number: u64 = number.parse().map_err(|_| {
        format!("{text:?} is not a size: write bytes or a number with Ki, Mi, Gi or Ti")
    })?;
    let suffix = suffix.trim();
    let suffix = suffix
        .strip_suffix(['B', 'b'])
        .unwrap_or(suffix)
        .trim_end_matches('i');
    let shift = match suffix {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit: write bytes or a number with Ki, Mi, Gi or Ti"
            ));
        }
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_args_keep_the_application_argv_verbatim_after_the_separator() {
        let args = LaunchArgs {
            share: SHARE_MOUNT.into(),
            output_path: Some("pancakes.txt".into()),
            output_pipe: Some("pancakes.txt".into()),
            unpack: true,
            pack_outputs: true,
            command: vec![
                "sh".into(),
                "-c".into(),
                "echo a | tr a b > x; echo --".into(),
            ],
            ..Default::default()
        };
        let argv = args.to_args();
        let sep = argv.iter().position(|a| a == "--").unwrap();
        assert_eq!(&argv[sep + 1..], args.command.as_slice());
        assert!(!argv.contains(&"--no-unpack".to_string()));
        assert!(argv.contains(&"--pack-outputs".to_string()));
    }

    #[test]
    fn init_args_list_inputs_in_order() {
        let argv = InitArgs {
            share: SHARE_MOUNT.into(),
            inputs: vec!["r:5000/a:1".into(), "r:5000/b:2".into()],
            plain_http: true,
            debug: false,
        }
        .to_args();
        assert_eq!(
            argv,
            [
                "init",
                "--share=/mnt/oras",
                "--plain-http",
                "--input=r:5000/a:1",
                "--input=r:5000/b:2"
            ]
        );
    }

    #[test]
    fn path_values_that_look_like_flags_stay_joined_to_their_flag() {
        let argv = LaunchArgs {
            share: SHARE_MOUNT.into(),
            input_path: Some("--no-unpack".into()),
            output_path: Some("--push-on-failure".into()),
            output_pipe: Some("--".into()),
            command: vec!["true".into()],
            ..Default::default()
        }
        .to_args();
        assert!(argv.contains(&"--input-path=--no-unpack".to_string()));
        assert!(argv.contains(&"--output-path=--push-on-failure".to_string()));
        assert!(argv.contains(&"--output-pipe=--".to_string()));
        assert!(!argv.contains(&"--push-on-failure".to_string()));
        assert_eq!(argv.iter().filter(|a| *a == "--").count(), 1);
    }

    #[test]
    fn sizes_take_bytes_or_binary_suffixes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512Mi"), Ok(512 << 20));
        assert_eq!(parse_size("20Gi"), Ok(20 << 30));
        assert_eq!(parse_size("20G"), Ok(20 << 30));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size(" 3 Ki "), Ok(3 << 10));
        assert!(parse_size("").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1.5Gi").is_err());
        assert!(parse_size("10Pi").is_err());
        assert!(parse_size("99999999999Ti").is_err());
    }

    #[test]
    fn volume_pulls_travel_as_camel_case_json_with_defaults_left_out() {
        let args = VolumesArgs {
            pulls: vec![
                VolumePull {
                    volume: "oras-inline".into(),
                    path: volume_mount_path("oras-inline"),
                    reference: "r:5000/a:1".into(),
                    plain_http: true,
                    media_types: vec!["application/x-sif".into()],
                    concurrency: Some(8),
                    credentials_env_prefix: Some("ORAS_VOLUME_0_".into()),
                },
                VolumePull {
                    volume: "plain".into(),
                    path: "/mnt/oras-volumes/plain".into(),
                    reference: "r.io/b@sha256:".to_string() + &"a".repeat(64),
                    ..Default::default()
                },
            ],
            debug: true,
        };
        let argv = args.to_args();
        assert_eq!(argv[0], "volumes");
        assert_eq!(argv.last().unwrap(), "--debug");
        let spec = argv[1].strip_prefix("--spec=").unwrap();
        assert!(spec.contains("\"plainHttp\":true"), "{spec}");
        assert!(
            spec.contains("\"mediaTypes\":[\"application/x-sif\"]"),
            "{spec}"
        );
        assert!(
            spec.contains("\"credentialsEnvPrefix\":\"ORAS_VOLUME_0_\""),
            "{spec}"
        );
        assert!(
            spec.ends_with(&format!("{{\"volume\":\"plain\",\"path\":\"/mnt/oras-volumes/plain\",\"reference\":\"{}\"}}]", args.pulls[1].reference)),
            "{spec}"
        );
        assert_eq!(parse_volume_spec(spec).unwrap(), args.pulls);
        assert!(
            parse_volume_spec(
                r#"[{"volume":"v","path":"/p","reference":"r/a:1","sizeLimit":"1Gi"}]"#
            )
            .is_err()
        );
        assert_eq!(args.pulls[0].effective_concurrency(), 8);
        assert_eq!(
            args.pulls[1].effective_concurrency(),
            DEFAULT_VOLUME_CONCURRENCY
        );
        let greedy = VolumePull {
            concurrency: Some(1000),
            ..Default::default()
        };
        assert_eq!(greedy.effective_concurrency(), MAX_VOLUME_CONCURRENCY);
        let none = VolumePull {
            concurrency: Some(0),
            ..Default::default()
        };
        assert_eq!(none.effective_concurrency(), 1);
    }

    #[test]
    fn status_round_trips_as_camel_case_json() {
        let status = LaunchStatus {
            exit_code: 137,
            signal: Some(9),
            push: false,
            error: None,
        };
        let json = serde_json::to_string(&status).unwrap();
        assert!(json.contains("\"exitCode\":137"));
        assert_eq!(serde_json::from_str::<LaunchStatus>(&json).unwrap(), status);
    }
}
