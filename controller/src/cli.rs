//! Command line of `oras-cache-controller`; every option of `run` also reads an environment
//! variable, so the Deployment configures it with `env`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::manifests::InstallOptions;
use crate::reconcile::ReconcilerConfig;

/// Reconciles OrasCache objects into a running registry and reports its address and health.
#[derive(Debug, Parser)]
#[command(name = "oras-cache-controller", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller.
    Run(RunArgs),
    /// Print the OrasCache CRD as YAML.
    Crd {
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Print, as YAML, every object the controller would create or update for each OrasCache in
    /// FILE, and the status fields it can know without a cluster.
    Render {
        /// A YAML file with OrasCache documents (and the Secrets they name, whose keys decide
        /// which keys the registry reads; their values are never printed).
        file: PathBuf,
        /// DNS domain of the cluster, used in `status.address`.
        #[arg(long, default_value = oras_cache_api::settings::DEFAULT_CLUSTER_DOMAIN)]
        cluster_domain: String,
    },
    /// Print the install manifests (CRD, RBAC, Deployment, ClusterAdmissionPolicy) as YAML.
    Manifests {
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        /// What to render.
        #[command(flatten)]
        options: InstallArgs,
    },
}

/// Options of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Watch only this namespace (all namespaces when unset).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// DNS domain of the cluster, used in `status.address`.
    #[arg(long, env = "CLUSTER_DOMAIN", default_value = oras_cache_api::settings::DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// Address of the `/metrics`, `/healthz` and `/readyz` server.
    #[arg(long, env = "LISTEN_ADDRESS", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Seconds between reconciliations of an unchanged deployed cache.
    #[arg(long, env = "RESYNC_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub resync_seconds: u64,
    /// Seconds between `/v2/` checks of a remote registry.
    #[arg(long, env = "REMOTE_CHECK_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub remote_check_seconds: u64,
    /// Timeout in seconds of each request of a remote registry check.
    #[arg(long, env = "REMOTE_CHECK_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub remote_check_timeout_seconds: u64,
    /// Seconds to wait after a failed reconciliation.
    #[arg(long, env = "ERROR_REQUEUE_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub error_requeue_seconds: u64,
    /// Name of this instance in events (the pod name, from the downward API).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
}

impl RunArgs {
    /// The reconciler settings these options describe.
    pub fn reconciler_config(&self) -> ReconcilerConfig {
        ReconcilerConfig {
            cluster_domain: self.cluster_domain.clone(),
            resync_interval: Duration::from_secs(self.resync_seconds),
            remote_check_interval: Duration::from_secs(self.remote_check_seconds),
            error_requeue: Duration::from_secs(self.error_requeue_seconds),
        }
    }
}

/// Options of `manifests`.
#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// Namespace the controller is installed into.
    #[arg(long, default_value = crate::manifests::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Controller image.
    #[arg(long, default_value = crate::manifests::DEFAULT_CONTROLLER_IMAGE)]
    pub image: String,
    /// Policy module the ClusterAdmissionPolicy installs.
    #[arg(long, default_value = crate::manifests::DEFAULT_POLICY_MODULE)]
    pub policy_module: String,
    /// Agent image the policy injects.
    #[arg(long, default_value = crate::manifests::DEFAULT_AGENT_IMAGE)]
    pub agent_image: String,
    /// DNS domain of the cluster.
    #[arg(long, default_value = oras_cache_api::settings::DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// Namespace of Kubewarden's policy server.
    #[arg(long, default_value = crate::manifests::DEFAULT_POLICY_SERVER_NAMESPACE)]
    pub policy_server_namespace: String,
    /// Service account of Kubewarden's policy server.
    #[arg(long, default_value = crate::manifests::DEFAULT_POLICY_SERVER_ACCOUNT)]
    pub policy_server_account: String,
}

impl From<InstallArgs> for InstallOptions {
    fn from(args: InstallArgs) -> InstallOptions {
        InstallOptions {
            namespace: args.namespace,
            image: args.image,
            policy_module: args.policy_module,
            agent_image: args.agent_image,
            cluster_domain: args.cluster_domain,
            policy_server_namespace: args.policy_server_namespace,
            policy_server_account: args.policy_server_account,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_options_have_defaults_and_reject_zero_intervals() {
        let cli = Cli::try_parse_from([
            "oras-cache-controller",
            "run",
            "--cluster-domain",
            "k8s.example",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!()
        };
        let config = args.reconciler_config();
        assert_eq!(config.cluster_domain, "k8s.example");
        assert_eq!(config.resync_interval, Duration::from_secs(300));
        assert!(
            Cli::try_parse_from(["oras-cache-controller", "run", "--resync-seconds", "0"]).is_err()
        );
    }
}
