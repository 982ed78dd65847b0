//! The JSON patch (RFC 6902) between the object a policy received and the `mutated_object` it
//! answered: what policy-server puts, base64-encoded, in the AdmissionResponse.
//!
//! The patch is written as JSON text while both trees are walked once, without building patch
//! operations or JSON pointers as values first: it is on the path of every mutating evaluation.

use std::fmt::Write as _;

use serde_json::Value;

/// The patch that turns `from` into `to`, as JSON text; `None` when they are equal.
///
/// Objects are compared key by key and arrays index by index (a longer array gets `add`s at its
/// end, a shorter one `remove`s from its end, last index first so every index stays valid);
/// anything else that differs is replaced whole.
pub fn diff(from: &Value, to: &Value) -> Result<Option<String>, serde_json::Error> {
    let mut writer = PatchWriter {
        out: Vec::with_capacity(256),
        path: String::new(),
        operations: 0,
    };
    writer.diff(from, to)?;
    if writer.operations == 0 {
        return Ok(None);
    }
    writer.out.push(b']');
    // Only serde_json's output and ASCII punctuation were written, so this never copies.
    Ok(Some(String::from_utf8(writer.out).unwrap_or_else(
        |not_utf8| String::from_utf8_lossy(not_utf8.as_bytes()).into_owned(),
    )))
}

struct PatchWriter {
    out: Vec<u8>,
    /// The JSON pointer of the values being compared.
    path: String,
    operations: usize,
}

impl PatchWriter {
    fn diff(&mut self, from: &Value, to: &Value) -> Result<(), serde_json::Error> {
        match (from, to) {
            (Value::Object(old), Value::Object(new)) => {
                for (key, old_value) in old {
                    let parent = self.push_key(key);
                    match new.get(key) {
                        Some(new_value) => self.diff(old_value, new_value)?,
                        None => self.operation("remove", None)?,
                    }
                    self.path.truncate(parent);
                }
                for (key, new_value) in new {
                    if !old.contains_key(key) {
                        let parent = self.push_key(key);
                        self.operation("add", Some(new_value))?;
                        self.path.truncate(parent);
                    }
                }
            }
            (Value::Array(old), Value::Array(new)) => {
                let common = old.len().min(new.len());
                for (index, (old_value, new_value)) in old.iter().zip(new).enumerate() {
                    let parent = self.push_index(index);
                    self.diff(old_value, new_value)?;
                    self.path.truncate(parent);
                }
                for (index, new_value) in new.iter().enumerate().skip(common) {
                    let parent = self.push_index(index);
                    self.operation("add", Some(new_value))?;
                    self.path.truncate(parent);
                }
                for index in (common..old.len()).rev() {
                    let parent = self.push_index(index);
                    self.operation("remove", None)?;
                    self.path.truncate(parent);
                }
            }
            _ if from == to => {}
            _ => self.operation("replace", Some(to))?,
        }
        Ok(())
    }

    /// Appends `/key` (with `~` and `/` escaped as RFC 6901 says); returns the length to truncate
    /// back to.
    fn push_key(&mut self, key: &str) -> usize {
        let parent = self.path.len();
        self.path.push('/');
        if key.contains(['~', '/']) {
            self.path
                .push_str(&key.replace('~', "~0").replace('/', "~1"));
        } else {
            self.path.push_str(key);
        }
        parent
    }

    fn push_index(&mut self, index: usize) -> usize {
        let parent = self.path.len();
        // Writing into a String cannot fail.
        let _ = write!(self.path, "/{index}");
        parent
    }

    fn operation(&mut self, op: &str, value: Option<&Value>) -> Result<(), serde_json::Error> {
        self.out
            .extend_from_slice(if self.operations == 0 { b"[" } else { b"," });
        self.operations += 1;
        self.out.extend_from_slice(b"{\"op\":\"");
        self.out.extend_from_slice(op.as_bytes());
        self.out.extend_from_slice(b"\",\"path\":");
        serde_json::to_writer(&mut self.out, &self.path)?;
        if let Some(value) = value {
            self.out.extend_from_slice(b",\"value\":");
            serde_json::to_writer(&mut self.out, value)?;
        }
        self.out.push(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Applies the patch with the json-patch crate and checks it rebuilds `to`.
    fn assert_rebuilds(from: &Value, to: &Value) -> Option<json_patch::Patch> {
        let text = diff(from, to).unwrap();
        let Some(text) = text else {
            assert_eq!(from, to, "no patch for different values");
            return None;
        };
        let patch: json_patch::Patch = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("not a JSON patch ({e}): {text}"));
        let mut patched = from.clone();
        json_patch::patch(&mut patched, &patch)
            .unwrap_or_else(|e| panic!("patch {text} does not apply to {from}: {e}"));
        assert_eq!(&patched, to, "patch {text}");
        Some(patch)
    }

    #[test]
    fn equal_values_have_no_patch() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        assert_eq!(diff(&pod, &pod.clone()).unwrap(), None);
        assert_eq!(diff(&json!(null), &json!(null)).unwrap(), None);
    }

    #[test]
    fn an_injection_becomes_adds_and_replaces_at_the_changed_places() {
        let from = json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app", "command": ["/app"]}]}});
        let to = json!({"metadata": {"name": "p", "annotations": {"a/b~c": "true"}},
            "spec": {"containers": [{"name": "app", "command": ["/mnt/oras/bin/oras-agent"]}],
                     "initContainers": [{"name": "oras-init"}]}});
        let patch = assert_rebuilds(&from, &to).unwrap();
        let text = serde_json::to_value(&patch).unwrap();
        assert_eq!(
            text,
            json!([
                {"op": "add", "path": "/metadata/annotations", "value": {"a/b~c": "true"}},
                {"op": "replace", "path": "/spec/containers/0/command/0",
                 "value": "/mnt/oras/bin/oras-agent"},
                {"op": "add", "path": "/spec/initContainers", "value": [{"name": "oras-init"}]},
            ])
        );
    }

    #[test]
    fn keys_with_slash_and_tilde_are_escaped() {
        let from = json!({"a/b": 1, "m~n": {"x": 1}});
        let to = json!({"a/b": 2, "m~n": {}});
        let text = diff(&from, &to).unwrap().unwrap();
        assert!(text.contains("\"/a~1b\""), "{text}");
        assert!(text.contains("\"/m~0n/x\""), "{text}");
        assert_rebuilds(&from, &to);
    }

    #[test]
    fn arrays_grow_and_shrink_at_their_end() {
        assert_rebuilds(&json!([1, 2]), &json!([1, 3, 4, 5]));
        assert_rebuilds(&json!([1, 2, 3, 4]), &json!([0]));
        assert_rebuilds(&json!({"a": [1, 2, 3]}), &json!({"a": []}));
        assert_rebuilds(&json!({"a": []}), &json!({"a": [[1], {"b": 2}]}));
    }

    #[test]
    fn a_changed_type_or_root_is_replaced_whole() {
        assert_rebuilds(&json!({"a": [1]}), &json!({"a": {"0": 1}}));
        assert_rebuilds(&json!({"a": 1}), &json!([1]));
        assert_rebuilds(&json!("x"), &json!(null));
        let text = diff(&json!(1), &json!(2)).unwrap().unwrap();
        assert_eq!(text, r#"[{"op":"replace","path":"","value":2}]"#);
    }

    #[test]
    fn removed_keys_are_removed() {
        assert_rebuilds(
            &json!({"a": 1, "b": {"c": 2, "d": 3}}),
            &json!({"b": {"d": 3}}),
        );
    }

    /// Small JSON trees over few keys, so that random pairs share structure.
    fn arbitrary_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0i64..4).prop_map(Value::from),
            prop::sample::select(vec!["", "x", "a/b", "~1"]).prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop::sample::select(vec!["a", "b", "a/b", "m~n", ""]).prop_map(String::from),
                    inner,
                    0..4
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn every_patch_rebuilds_the_target(from in arbitrary_value(), to in arbitrary_value()) {
            assert_rebuilds(&from, &to);
        }
    }
}
