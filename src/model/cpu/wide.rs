//! Kernels compiled for the widest vectors the CPU has.
//!
//! A native x86-64 build targets the baseline instruction set, so the compiler vectorises this
//! crate's own loops 4 floats wide (SSE2) even on a CPU with AVX2 or AVX-512; only the gemm
//! crate picks its kernels at run time. [run] does the same for a kernel: it calls it from a
//! function compiled with AVX-512 or AVX2 enabled when the CPU has them, into which the
//! kernel (`#[inline(always)]`) is inlined and vectorised accordingly. Elsewhere (the browser,
//! other architectures) the kernel runs as compiled.

/// A kernel for [run]: its `run` must be `#[inline(always)]`, and so must what it calls, so
/// that all of it is compiled into [run]'s wide callers. (A function item passed as `impl Fn`
/// is not: its call goes through a shim compiled for the baseline.)
pub(crate) trait Kernel {
    type Output;
    fn run(self) -> Self::Output;
}

/// `kernel.run()`, compiled for AVX-512 or AVX2 where the CPU has it.
#[inline(always)]
pub(crate) fn run<K: Kernel>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            return unsafe { avx512(kernel) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above).
            return unsafe { avx2(kernel) };
        }
    }
    kernel.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn avx512<K: Kernel>(kernel: K) -> K::Output {
    kernel.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2<K: Kernel>(kernel: K) -> K::Output {
    kernel.run()
}

/// Floats per [Lane]: one AVX-512 register, two AVX2 ones.
pub(crate) const LANES: usize = 16;

/// A vector of floats that the compiler keeps in registers and operates on whole.
pub(crate) type Lane = [f32; LANES];

/// `s[at..at + LANES]`.
#[inline(always)]
pub(crate) fn load(s: &[f32], at: usize) -> Lane {
    let mut v = [0.0; LANES];
    v.copy_from_slice(&s[at..at + LANES]);
    v
}

/// `d[at..at + LANES] = v`.
#[inline(always)]
pub(crate) fn store(d: &mut [f32], at: usize, v: Lane) {
    d[at..at + LANES].copy_from_slice(&v);
}

// Plain loops rather than `array::from_fn`: a closure is compiled on its own, for the
// baseline, where it is not inlined.

#[inline(always)]
pub(crate) fn add(mut a: Lane, b: Lane) -> Lane {
    for i in 0..LANES {
        a[i] += b[i];
    }
    a
}

#[inline(always)]
pub(crate) fn sub(mut a: Lane, b: Lane) -> Lane {
    for i in 0..LANES {
        a[i] -= b[i];
    }
    a
}

#[inline(always)]
pub(crate) fn neg(mut a: Lane) -> Lane {
    for v in &mut a {
        *v = -*v;
    }
    a
}
