//! oras-agent: pulls a step's inputs, wraps the step, pushes its outputs.
//!
//! The binary (`main.rs`) only parses the command line ([`cli`]) and runs one of the roles of
//! DESIGN.md's pod shape: [`init`], [`launch`] and [`sidecar`] (and [`volumes`] for artifact volumes), plus the oras-like `pull` and
//! `push` commands of [`transfer`]. Everything that talks to a registry goes through
//! [`registry::RegistryClient`], a small streaming client meant to be reused by other crates
//! (the `kwrun` policy runner pushes and pulls policies with it).

pub mod auth;
pub mod cleanup;
pub mod cli;
pub mod digest;
pub mod init;
pub mod launch;
pub mod layout;
pub mod log;
pub mod manifest;
pub mod origin;
pub mod pack;
pub mod reference;
pub mod registry;
pub mod sidecar;
pub mod transfer;
pub mod unpack;
pub mod volumes;

pub use digest::Digest;
pub use reference::Reference;
pub use registry::{ClientOptions, RegistryClient, RegistryError};
