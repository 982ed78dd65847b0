//! kwrun, a kwctl-compatible local Kubewarden policy runner.
//!
//! kwctl is not installable here, so this crate evaluates Kubewarden policies the way
//! policy-server and `kwctl run` do, on the same waPC host crates (`wapc` + `wasmtime-provider`):
//! [`evaluator`] runs the module, [`host`] answers host-capability calls (from kwctl [`session`]
//! files), [`admission`] turns the policy's answer into the AdmissionResponse (with the JSON [`patch`]), [`metadata`] and
//! [`wasm_sections`] implement `annotate`, [`oci`] pushes and pulls policies as OCI artifacts,
//! [`bench`] measures, [`kubeconfig`] finds the cluster kwctl would talk to, and [`cli`] is the
//! `kwrun` command line.

pub mod admission;
pub mod bench;
pub mod cli;
pub mod evaluator;
pub mod host;
pub mod kubeconfig;
pub mod metadata;
pub mod oci;
pub mod patch;
pub mod session;
pub mod wasm_sections;
