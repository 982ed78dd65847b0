//! Pulls through the namespace's mirrors: an `OrasCache` that is a Ready pull-through cache of an
//! upstream registry serves every pull the policy sets up from that upstream, so that pods need no
//! credentials for it and J×P pods fetch each blob from the upstream once. Pushes never go to a
//! mirror (distribution refuses them).

use oras_cache_api::cache::MirrorView;
use oras_cache_api::settings::Settings;

use crate::host::Host;

/// The Ready mirrors of a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirrors(Vec<MirrorView>);

impl Mirrors {
    /// The namespace's mirrors, read with `list_resources_by_namespace` when the policy is
    /// context-aware. A failed lookup leaves pulls where they were, with a warning: a mirror is a
    /// shortcut, never a requirement.
    pub fn of_namespace(
        namespace: &str,
        settings: &Settings,
        host: &dyn Host,
        warnings: &mut Vec<String>,
    ) -> Mirrors {
        if !settings.context_aware {
            return Mirrors::default();
        }
        match host.oras_caches(namespace) {
            Ok(caches) => Mirrors(caches.iter().filter_map(|c| c.mirror()).collect()),
            Err(reason) => {
                warnings.push(format!(
                    "the OrasCaches of namespace {namespace:?} could not be listed ({reason}): pulls are not sent through a mirror"
                ));
                Mirrors::default()
            }
        }
    }

    /// The mirror of `registry` (`host[:port]`, compared without case), if there is one.
    pub fn of(&self, registry: &str) -> Option<&MirrorView> {
        let registry = registry.to_ascii_lowercase();
        self.0.iter().find(|m| m.upstream == registry)
    }
}

/// The namespace's mirrors, listed on first use only, so that an object with nothing to pull from
/// a remote registry costs no host call.
pub struct MirrorLookup<'a> {
    namespace: &'a str,
    settings: &'a Settings,
    host: &'a dyn Host,
    listed: Option<Mirrors>,
}

impl<'a> MirrorLookup<'a> {
    /// A lookup of the mirrors of `namespace`.
    pub fn new(namespace: &'a str, settings: &'a Settings, host: &'a dyn Host) -> Self {
        MirrorLookup {
            namespace,
            settings,
            host,
            listed: None,
        }
    }

    /// The mirror of `registry`, listing the namespace's caches the first time.
    pub fn of(&mut self, registry: &str, warnings: &mut Vec<String>) -> Option<MirrorView> {
        let mirrors = self.listed.get_or_insert_with(|| {
            Mirrors::of_namespace(self.namespace, self.settings, self.host, warnings)
        });
        mirrors.of(registry).cloned()
    }
}

/// The warning that says a pull was redirected.
pub fn redirected(what: &str, mirror: &MirrorView) -> String {
    format!(
        "{what} from {} goes through the mirror OrasCache {:?} at {}",
        mirror.upstream, mirror.cache, mirror.address
    )
}
