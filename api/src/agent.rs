//! The agent's command line as the policy writes it, and the file protocol its roles share.
//!
//! The policy injects three roles of the one `oras-agent` binary into a pod (see DESIGN.md, "Pod
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
    /// The argv after the binary name.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["init".to_string(), "--share".into(), self.share.clone()];
        push_flag(&mut args, "--plain-http", self.plain_http);
        push_flag(&mut args, "--debug", self.debug);
        for input in &self.inputs {
            args.push("--input".into());
            args.push(input.clone());
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
    /// The argv after the binary name.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["launch".to_string(), "--share".into(), self.share.clone()];
        push_opt(&mut args, "--input-path", &self.input_path);
        push_opt(&mut args, "--output-path", &self.output_path);
        push_opt(&mut args, "--output-pipe", &self.output_pipe);
        push_flag(&mut args, "--no-unpack", !self.unpack);
        push_flag(&mut args, "--push-on-failure", self.push_on_failure);
        push_flag(&mut args, "--pack-outputs", self.pack_outputs);
        push_flag(&mut args, "--debug", self.debug);
        args.push("--".into());
        args.extend(self.command.iter().cloned());
        args
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
    /// The argv after the binary name.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "sidecar".to_string(),
            "--share".into(),
            self.share.clone(),
            "--output".into(),
            self.output.clone(),
            "--start-timeout".into(),
            self.start_timeout_secs.to_string(),
            "--heartbeat-timeout".into(),
            self.heartbeat_timeout_secs.to_string(),
        ];
        push_flag(&mut args, "--plain-http", self.plain_http);
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

fn push_opt(args: &mut Vec<String>, flag: &str, value: &Option<String>) {
    if let Some(value) = value {
        args.push(flag.to_string());
        args.push(value.clone());
    }
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
                "--share",
                "/mnt/oras",
                "--plain-http",
                "--input",
                "r:5000/a:1",
                "--input",
                "r:5000/b:2"
            ]
        );
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
