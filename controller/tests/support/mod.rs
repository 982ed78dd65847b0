//! Helpers shared by the controller's integration tests; not part of the shipped library.
#![allow(dead_code)]

pub mod schema_check;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// `oras-cache-controller render FILE`, which must succeed: the objects it prints and what it
/// wrote to stderr.
pub fn render(file: &Path) -> (Vec<Value>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_oras-cache-controller"))
        .arg("render")
        .arg(file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{}: {stderr}", file.display());
    let stdout = String::from_utf8(output.stdout).unwrap();
    (schema_check::parse_documents(&stdout).unwrap(), stderr)
}
