//! The argv a container runs, resolved the way the kubelet does, so the launcher can run exactly
//! what the container would have run without it.

use crate::error::PolicyError;
use crate::host::Host;

/// The fields of a container that decide what it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerCommand {
    /// Container name (for messages).
    pub name: String,
    /// `image`, if set.
    pub image: Option<String>,
    /// `command` (empty if unset).
    pub command: Vec<String>,
    /// `args` (empty if unset).
    pub args: Vec<String>,
}

/// The argv of the container: `command` + `args` when `command` is set; otherwise the image's
/// ENTRYPOINT followed by `args`, or by the image's CMD when `args` is empty. Kubernetes treats an
/// empty list like an unset one, and so does this.
pub fn resolve_argv(
    container: &ContainerCommand,
    host: &dyn Host,
) -> Result<Vec<String>, PolicyError> {
    if !container.command.is_empty() {
        let mut argv = container.command.clone();
        argv.extend(container.args.iter().cloned());
        return Ok(argv);
    }
    let Some(image) = container.image.as_deref().filter(|i| !i.trim().is_empty()) else {
        return Err(PolicyError::ImageCommandUnavailable {
            container: container.name.clone(),
            image: String::new(),
            reason: "the container has no image".into(),
        });
    };
    let from_image =
        host.image_command(image)
            .map_err(|reason| PolicyError::ImageCommandUnavailable {
                container: container.name.clone(),
                image: image.to_string(),
                reason,
            })?;
    let mut argv = from_image.entrypoint;
    if container.args.is_empty() {
        argv.extend(from_image.cmd);
    } else {
        argv.extend(container.args.iter().cloned());
    }
    if argv.is_empty() {
        return Err(PolicyError::EmptyCommand {
            container: container.name.clone(),
        });
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::ImageCommand;
    use oras_cache_api::cache::OrasCacheView;

    struct Image(Result<ImageCommand, String>);

    impl Host for Image {
        fn oras_cache(&self, _: &str, _: &str) -> Result<OrasCacheView, String> {
            Err("not used".into())
        }
        fn image_command(&self, _: &str) -> Result<ImageCommand, String> {
            self.0.clone()
        }
        fn oras_caches(&self, _: &str) -> Result<Vec<OrasCacheView>, String> {
            Err("not used".into())
        }
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn container(command: &[&str], args: &[&str]) -> ContainerCommand {
        ContainerCommand {
            name: "app".into(),
            image: Some("busybox".into()),
            command: strings(command),
            args: strings(args),
        }
    }

    fn image(entrypoint: &[&str], cmd: &[&str]) -> Image {
        Image(Ok(ImageCommand {
            entrypoint: strings(entrypoint),
            cmd: strings(cmd),
        }))
    }

    #[test]
    fn command_and_args_are_joined_without_asking_the_image() {
        let host = Image(Err("must not be asked".into()));
        let argv = resolve_argv(&container(&["echo"], &["a b", "c"]), &host).unwrap();
        assert_eq!(argv, ["echo", "a b", "c"]);
    }

    #[test]
    fn without_command_the_image_entrypoint_takes_the_args() {
        let argv = resolve_argv(
            &container(&[], &["-x"]),
            &image(&["/bin/app"], &["--default"]),
        )
        .unwrap();
        assert_eq!(argv, ["/bin/app", "-x"]);
    }

    #[test]
    fn without_command_and_args_the_image_entrypoint_takes_its_cmd() {
        let argv =
            resolve_argv(&container(&[], &[]), &image(&["/bin/app"], &["--default"])).unwrap();
        assert_eq!(argv, ["/bin/app", "--default"]);
        let argv = resolve_argv(&container(&[], &[]), &image(&[], &["sh"])).unwrap();
        assert_eq!(argv, ["sh"]);
    }

    #[test]
    fn an_unreadable_image_asks_for_a_command() {
        let err =
            resolve_argv(&container(&[], &[]), &Image(Err("manifest unknown".into()))).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("manifest unknown") && message.contains("set command"),
            "{message}"
        );
    }

    #[test]
    fn an_image_with_nothing_to_run_is_refused() {
        let err = resolve_argv(&container(&[], &[]), &image(&[], &[])).unwrap_err();
        assert!(matches!(err, PolicyError::EmptyCommand { .. }));
    }
}
