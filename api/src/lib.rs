//! The contract shared by the policy, the agent and the controller.
//!
//! This crate is serde-only and builds for `wasm32-wasip1`, so the policy can link it. Everything
//! that crosses a boundary between two parts lives here: the annotation keys a user writes, the
//! policy settings an operator writes, the command line the policy gives the agent, the files the
//! agent's roles exchange on the shared volume, the media types of pushed artifacts, and the part
//! of `OrasCache.status` the policy reads.

pub mod agent;
pub mod annotations;
pub mod cache;
pub mod challenge;
pub mod credentials;
pub mod media_types;
pub mod reference;
pub mod settings;
pub mod volumes;
