//! kwrun, a kwctl-compatible local policy runner, and the cluster-free end-to-end tests
