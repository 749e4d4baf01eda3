//! `cfg(parallel)`: the CPU kernels (src/model/cpu) run on rayon's thread pool. Natively they
//! always do; in the browser only in the threaded build (built with the `atomics` target
//! feature: Cargo.toml), where the pool's threads are Web Workers sharing the module's memory.
//! The default browser build has one thread and links no pool.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(parallel)");
    println!("cargo::rerun-if-changed=build.rs");
    let family = std::env::var("CARGO_CFG_TARGET_FAMILY").unwrap_or_default();
    let wasm = family.split(',').any(|f| f == "wasm");
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let atomics = features.split(',').any(|f| f == "atomics");
    if !wasm || atomics {
        println!("cargo::rustc-cfg=parallel");
    }
}
