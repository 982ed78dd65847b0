//! Reconciles OrasCache objects into a running registry and reports its address and health
