//! Host lookups answered from a kwctl session file, for every evaluation.
//!
//! `kwrun` replays a session strictly in order, each recorded exchange once, as kwctl does. A
//! benchmark evaluates the same request many times, so [`repeat_session`] writes a session with
//! the recorded exchanges repeated, and [`SessionHost`] gives the native evaluation the same
//! answers without consuming them.

use std::path::Path;

use kwrun::session::{CallbackRequest, Exchange, RecordedResponse, SessionError};
use oras_cache_api::cache::OrasCacheView;
use oras_cache_policy::host::{Host, ImageCommand};

use crate::{BenchError, read};

/// A recorded `OrasCache` lookup.
#[derive(Debug, Clone)]
struct CacheAnswer {
    namespace: Option<String>,
    name: String,
    response: RecordedResponse,
}

/// The policy's [`Host`], answering `OrasCache` lookups from a session file.
#[derive(Debug, Clone, Default)]
pub struct SessionHost {
    caches: Vec<CacheAnswer>,
}

impl SessionHost {
    /// A host that knows nothing: every lookup fails, as on a cluster without the object.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Reads the `!KubernetesGetResource` exchanges of a kwctl session file.
    pub fn from_file(path: &Path) -> Result<Self, BenchError> {
        let caches: Vec<CacheAnswer> = read_exchanges(path)?
            .into_iter()
            .filter_map(|(item, request)| match request {
                CallbackRequest::KubernetesGetResource {
                    name, namespace, ..
                } => Some(CacheAnswer {
                    namespace,
                    name,
                    response: item.response,
                }),
                _ => None,
            })
            .collect();
        if caches.is_empty() {
            return Err(BenchError::NoCacheAnswer {
                path: path.to_path_buf(),
            });
        }
        Ok(SessionHost { caches })
    }
}

impl Host for SessionHost {
    fn oras_cache(&self, namespace: &str, name: &str) -> Result<OrasCacheView, String> {
        let answer = self
            .caches
            .iter()
            .find(|a| a.name == name && a.namespace.as_deref() == Some(namespace));
        match answer.map(|a| &a.response) {
            // The module receives the payload as JSON and deserializes it; so does the floor.
            Some(RecordedResponse::Success { payload }) => {
                serde_json::from_str(payload).map_err(|e| e.to_string())
            }
            Some(RecordedResponse::Error { message }) => Err(message.clone()),
            None => Err(format!(
                "orascaches.cache.converged-computing.github.io \"{name}\" not found"
            )),
        }
    }

    fn image_command(&self, image: &str) -> Result<ImageCommand, String> {
        Err(format!(
            "the benchmark session records no image configuration for {image}"
        ))
    }

    fn oras_caches(&self, namespace: &str) -> Result<Vec<OrasCacheView>, String> {
        Err(format!(
            "the benchmark session records no list of the OrasCaches of {namespace}"
        ))
    }
}

/// The exchanges of a kwctl session file, each with its request parsed (which also rejects a
/// file kwrun would refuse).
fn read_exchanges(path: &Path) -> Result<Vec<(Exchange, CallbackRequest)>, BenchError> {
    let origin = path.display().to_string();
    let text = String::from_utf8_lossy(&read(path)?).into_owned();
    let items: Vec<Exchange> =
        serde_yaml::from_str(&text).map_err(|source| SessionError::Format {
            path: origin.clone(),
            source,
        })?;
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let request =
                serde_yaml::from_str::<CallbackRequest>(&item.request).map_err(|source| {
                    SessionError::Request {
                        path: origin.clone(),
                        index: index + 1,
                        source,
                    }
                })?;
            Ok((item, request))
        })
        .collect()
}

/// The session at `path` with its exchanges repeated `times` times, as YAML: enough answers for
/// `times` evaluations replayed in order.
pub fn repeat_session(path: &Path, times: usize) -> Result<String, BenchError> {
    let items: Vec<Exchange> = read_exchanges(path)?
        .into_iter()
        .map(|(item, _)| item)
        .collect();
    let repeated: Vec<&Exchange> = std::iter::repeat_n(&items, times).flatten().collect();
    serde_yaml::to_string(&repeated).map_err(|source| {
        BenchError::Session(SessionError::Format {
            path: path.display().to_string(),
            source,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

    #[test]
    fn the_session_answers_its_cache_every_time() {
        let host = SessionHost::from_file(&Path::new(FIXTURES).join("cache-ready.yml")).unwrap();
        for _ in 0..3 {
            let view = host.oras_cache("default", "orascache-sample").unwrap();
            assert_eq!(
                view.status.and_then(|s| s.address).as_deref(),
                Some("10.96.0.50:5000")
            );
        }
        let missing = host.oras_cache("other", "orascache-sample").unwrap_err();
        assert!(missing.contains("not found"), "{missing}");
    }

    #[test]
    fn a_repeated_session_holds_every_exchange_times_over() {
        let path = Path::new(FIXTURES).join("cache-ready.yml");
        let yaml = repeat_session(&path, 4).unwrap();
        let items: Vec<Exchange> = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(items.len(), 4);
        let single: Vec<Exchange> =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(items.iter().all(|item| *item == single[0]));
    }

    #[test]
    fn a_session_without_cache_lookups_is_refused() {
        let dir = std::env::temp_dir().join(format!("oras-bench-session-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("empty.yml");
        std::fs::write(&path, "[]\n").unwrap();
        let error = SessionHost::from_file(&path).unwrap_err();
        assert!(
            error.to_string().contains("KubernetesGetResource"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
