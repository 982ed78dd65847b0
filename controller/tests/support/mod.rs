//! Helpers shared by the controller's integration tests; not part of the shipped library.
#![allow(dead_code)]

pub mod schema_check;
