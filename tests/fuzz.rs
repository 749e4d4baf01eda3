//! The fuzz smoke CI runs: every fuzz target (fuzz/targets.rs, the same bodies cargo-fuzz
//! runs in `scripts/fuzz.sh`) over its committed seeds, every crash cargo-fuzz ever found
//! (`tests/fuzz_regressions/TARGET/`), and a few seconds of random mutations of the seeds.
//! No input may panic, and none may ask for more than [ALLOC_LIMIT] in one allocation.
//!
//! This is not coverage-guided (that needs nightly and an instrumented build of all of burn,
//! too slow for CI): it replays what the real fuzzer found and keeps the targets compiling.
//! `RESNET_FUZZ_SMOKE_SECONDS` sets the mutation budget per target (default 3).
//!
//! The seeds are written by `cargo test --test fuzz -- --ignored write_seeds` (and the `.pth`
//! ones by `fuzz/make_pth_seeds.py`).
#![cfg(not(target_family = "wasm"))]

#[path = "../fuzz/targets.rs"]
mod targets;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The largest single allocation an input may cause: a real 64 MP photo needs 192 MB of RGB,
/// a model the crate builds at most a few hundred MB; more means a size read from the file
/// was trusted (the same limit scripts/fuzz.sh gives libFuzzer).
const ALLOC_LIMIT: usize = 1 << 30;

/// Records the largest allocation made, so that an input asking for gigabytes fails the
/// test (by name) instead of passing because this machine happened to have the memory.
struct Watch;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Watch = Watch;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, std::fs::read(e.path()).unwrap())
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Runs `input` through `target`; the problem, if any, in words.
fn run(target: targets::Target, input: &[u8]) -> Option<String> {
    LARGEST.store(0, Ordering::Relaxed);
    let outcome = std::panic::catch_unwind(|| target(input));
    let largest = LARGEST.load(Ordering::Relaxed);
    match outcome {
        Err(panic) => Some(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
        Ok(()) if largest > ALLOC_LIMIT => Some(format!(
            "allocated {largest} bytes at once (limit {ALLOC_LIMIT})"
        )),
        Ok(()) => None,
    }
}

/// xorshift64*: the mutations are the same on every run of a given seed.
struct Mutator(u64);

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// One to four of libFuzzer's basic mutations: flip, interesting values (also as a
    /// 32/64-bit length), truncate, insert, duplicate, or splice in another seed.
    fn mutate(&mut self, input: &[u8], other: &[u8]) -> Vec<u8> {
        let mut x = input.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(x.len());
            match self.below(7) {
                0 if !x.is_empty() => x[at] ^= 1 << self.below(8),
                1 if !x.is_empty() => x[at] = [0, 1, 0x7f, 0x80, 0xff][self.below(5)],
                2 if x.len() >= at + 8 => {
                    let v: u64 = [0, 1, u32::MAX as u64, u64::MAX, 1 << 31, 1 << 40][self.below(6)];
                    let n = if self.below(2) == 0 { 4 } else { 8 };
                    x[at..at + n].copy_from_slice(&v.to_le_bytes()[..n]);
                }
                3 => x.truncate(at),
                4 => {
                    let bytes: Vec<u8> =
                        (0..1 + self.below(16)).map(|_| self.next() as u8).collect();
                    x.splice(at..at, bytes);
                }
                5 if !x.is_empty() => {
                    let len = 1 + self.below((x.len() - at).min(64));
                    let chunk = x[at..at + len].to_vec();
                    x.splice(at..at, chunk);
                }
                _ if !other.is_empty() => {
                    let from = self.below(other.len());
                    let len = 1 + self.below((other.len() - from).min(256));
                    let end = (at + len).min(x.len());
                    x.splice(at..end, other[from..from + len].iter().copied());
                }
                _ => {}
            }
        }
        x
    }
}

#[test]
fn no_seed_regression_or_mutation_panics_or_asks_for_gigabytes() {
    let budget = Duration::from_secs_f64(
        std::env::var("RESNET_FUZZ_SMOKE_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
    );
    // The targets' own panics are caught and reported below; keep the log readable.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for &(name, target, seed_dir) in targets::TARGETS {
        let seeds = files(&root().join("fuzz/seeds").join(seed_dir));
        assert!(!seeds.is_empty(), "fuzz/seeds/{seed_dir} has no seeds");
        let regressions = files(&root().join("tests/fuzz_regressions").join(name));
        for (file, input) in seeds.iter().chain(&regressions) {
            if let Some(problem) = run(target, input) {
                failures.push(format!("{name}: {file} {problem}"));
            }
        }
        let mut m = Mutator(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
        let started = Instant::now();
        let mut runs = 0;
        while started.elapsed() < budget {
            let seed = &seeds[m.below(seeds.len())].1;
            let other = &seeds[m.below(seeds.len())].1;
            let input = m.mutate(seed, other);
            runs += 1;
            if let Some(problem) = run(target, &input) {
                let out = root()
                    .join("test-artifacts/fuzz")
                    .join(format!("{name}-{runs}"));
                std::fs::create_dir_all(out.parent().unwrap()).unwrap();
                std::fs::write(&out, &input).unwrap();
                failures.push(format!(
                    "{name}: mutation {runs} {problem}; input in {}",
                    out.display()
                ));
                break;
            }
        }
        report.push(format!(
            "{name}: {} seeds, {} regressions, {runs} mutations",
            seeds.len(),
            regressions.len()
        ));
    }
    let _ = std::panic::take_hook();
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Writes the seed corpora (small valid inputs of every target) under fuzz/seeds/.
#[test]
#[ignore = "writes fuzz/seeds; run by hand when a format changes"]
fn write_seeds() {
    seeds::write_all(&root().join("fuzz/seeds"));
}

#[path = "fuzz/seeds.rs"]
mod seeds;
