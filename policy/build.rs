//! Link settings of the wasm module.

/// Linear memory the module declares at start (bytes, a multiple of the 64 KiB wasm page): the
/// 1 MiB stack, the data, and the heap an admission request needs. Declaring it up front spares
/// the allocator a `memory.grow` (a call into the host and an `mprotect`) every few allocations
/// of every evaluation; pages an evaluation does not touch cost nothing, since the host maps
/// memory lazily. A bigger request still grows the memory as usual.
const INITIAL_MEMORY: u32 = 4 << 20;

fn main() {
    if std::env::var("CARGO_CFG_TARGET_FAMILY").is_ok_and(|family| family == "wasm") {
        println!("cargo:rustc-link-arg-cdylib=--initial-memory={INITIAL_MEMORY}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
