//! Whether kwctl would find a cluster: `kwctl run --allow-context-aware` without a replayed session
//! builds a Kubernetes client, and fails when there is none to build.
//!
//! kwctl (kubewarden-controller monorepo, `crates/kwctl/src/command/run/evaluator.rs`,
//! `build_callback_handler` and `build_kube_client`) needs a client when the policy is granted at
//! least one Kubernetes resource and the host capabilities are not replayed; it then calls kube-rs's
//! `Config::infer`, whose error ends the run. kube-rs (`kube-client/src/config/mod.rs`,
//! `Config::infer`; `file_config.rs`, `Kubeconfig::read`) looks, in order, at every file of
//! `KUBECONFIG` (when it names any), else `$HOME/.kube/config`, then at the in-cluster service
//! account (kwctl's rustls build reads `/var/run/secrets/kubernetes.io/serviceaccount/namespace`
//! first). kwrun finds the same sources the same way and words the failure as kube-rs does; it
//! only checks that the files can be read, since it never talks to the cluster.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where kube-rs's in-cluster configuration reads the service account's namespace first.
pub const SERVICE_ACCOUNT_NAMESPACE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// A cluster kwctl would build its client for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSource {
    /// The kubeconfig files, as `KUBECONFIG` or `$HOME/.kube/config` named them.
    Kubeconfig(Vec<PathBuf>),
    /// The in-cluster service account.
    InCluster,
}

impl std::fmt::Display for ClusterSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterSource::Kubeconfig(paths) => {
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(f, "the kubeconfig {}", names.join(", "))
            }
            ClusterSource::InCluster => f.write_str("the in-cluster service account"),
        }
    }
}

/// No kubeconfig and no in-cluster service account: kube-rs's `InferConfigError`, in its words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to infer config: in-cluster: ({in_cluster}), kubeconfig: ({kubeconfig})")]
pub struct InferError {
    /// Why the in-cluster configuration is not there.
    pub in_cluster: String,
    /// Why no kubeconfig could be read.
    pub kubeconfig: String,
}

/// Finds the cluster kwctl would use, from the process environment.
pub fn infer() -> Result<ClusterSource, InferError> {
    infer_from(
        |name| std::env::var_os(name),
        Path::new(SERVICE_ACCOUNT_NAMESPACE),
    )
}

/// Finds the cluster kwctl would use, with `env` for the environment and the service account's
/// namespace file at `service_account_namespace`.
pub fn infer_from(
    env: impl Fn(&str) -> Option<OsString>,
    service_account_namespace: &Path,
) -> Result<ClusterSource, InferError> {
    let kubeconfig = match kubeconfig_paths(&env) {
        Ok(paths) => match paths.iter().find_map(|path| unreadable(path)) {
            None => return Ok(ClusterSource::Kubeconfig(paths)),
            Some(error) => error,
        },
        Err(error) => error,
    };
    match std::fs::read_to_string(service_account_namespace) {
        Ok(_) => Ok(ClusterSource::InCluster),
        Err(error) => Err(InferError {
            in_cluster: format!("failed to read the default namespace: {error}"),
            kubeconfig,
        }),
    }
}

/// The files of `KUBECONFIG` (empty entries skipped), else `$HOME/.kube/config`.
fn kubeconfig_paths(env: &impl Fn(&str) -> Option<OsString>) -> Result<Vec<PathBuf>, String> {
    if let Some(value) = env("KUBECONFIG") {
        let paths: Vec<PathBuf> = std::env::split_paths(&value)
            .filter(|path| !path.as_os_str().is_empty())
            .collect();
        if !paths.is_empty() {
            return Ok(paths);
        }
    }
    env("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| vec![PathBuf::from(home).join(".kube").join("config")])
        .ok_or_else(|| "failed to find the path of kubeconfig".to_owned())
}

fn unreadable(path: &Path) -> Option<String> {
    std::fs::File::open(path)
        .err()
        .map(|error| format!("failed to read kubeconfig from '{path:?}': {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a Path)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.as_os_str().to_owned())
        }
    }

    #[test]
    fn without_kubeconfig_and_service_account_the_error_reads_as_kube_rs_words_it() {
        let home = tempfile::tempdir().unwrap();
        let no_account = home.path().join("namespace");
        let error = infer_from(env(&[("HOME", home.path())]), &no_account).unwrap_err();
        let config = home.path().join(".kube").join("config");
        assert_eq!(
            error.to_string(),
            format!(
                "failed to infer config: in-cluster: (failed to read the default namespace: No such file or directory (os error 2)), kubeconfig: (failed to read kubeconfig from '{config:?}': No such file or directory (os error 2))"
            )
        );
        let error = infer_from(env(&[]), &no_account).unwrap_err();
        assert_eq!(error.kubeconfig, "failed to find the path of kubeconfig");
    }

    #[test]
    fn kubeconfig_first_then_the_home_file_then_the_service_account() {
        let dir = tempfile::tempdir().unwrap();
        let no_account = dir.path().join("namespace");
        let home_config = dir.path().join(".kube").join("config");
        std::fs::create_dir_all(home_config.parent().unwrap()).unwrap();
        std::fs::write(&home_config, "apiVersion: v1\n").unwrap();
        assert_eq!(
            infer_from(env(&[("HOME", dir.path())]), &no_account),
            Ok(ClusterSource::Kubeconfig(vec![home_config.clone()]))
        );
        // A KUBECONFIG that names a missing file fails even though the home file exists.
        let missing = dir.path().join("missing");
        let error = infer_from(
            env(&[("KUBECONFIG", &missing), ("HOME", dir.path())]),
            &no_account,
        )
        .unwrap_err();
        assert!(error.kubeconfig.contains("missing"), "{error}");
        // An empty KUBECONFIG names nothing: the home file is used.
        assert_eq!(
            infer_from(
                env(&[("KUBECONFIG", Path::new("")), ("HOME", dir.path())]),
                &no_account
            ),
            Ok(ClusterSource::Kubeconfig(vec![home_config]))
        );
        std::fs::write(&no_account, "default").unwrap();
        assert_eq!(
            infer_from(env(&[("KUBECONFIG", &missing)]), &no_account),
            Ok(ClusterSource::InCluster)
        );
    }
}
