//! Element-wise loops over `f32` slices, with WebAssembly SIMD written out.
//!
//! The browser build is optimised for size (`opt-level = "z"`), at which rustc asks LLVM to
//! vectorise no loop (it does so only at opt-level 2 and 3), so there every loop of the CPU
//! path that is not the gemm's own kernel ran one float at a time. Natively (opt-level 3) the
//! plain loops below are vectorised by the compiler and used as they are. Both round alike:
//! the same operations in the same order.

/// `out[i] = a[i] + s * b[i]`.
pub(crate) fn add_scaled(out: &mut [f32], a: &[f32], b: &[f32], s: f32) {
    let n = out.len().min(a.len()).min(b.len());
    let done = imp::add_scaled(&mut out[..n], &a[..n], &b[..n], s);
    for ((o, a), b) in out[done..n].iter_mut().zip(&a[done..n]).zip(&b[done..n]) {
        *o = a + s * b;
    }
}

/// `out[i] = a[i] + s * (b[i] + c[i])`.
pub(crate) fn add_scaled_sum(out: &mut [f32], a: &[f32], b: &[f32], c: &[f32], s: f32) {
    let n = out.len().min(a.len()).min(b.len()).min(c.len());
    let done = imp::add_scaled_sum(&mut out[..n], &a[..n], &b[..n], &c[..n], s);
    let rest = out[done..n].iter_mut().zip(&a[done..n]);
    for ((o, a), (b, c)) in rest.zip(b[done..n].iter().zip(&c[done..n])) {
        *o = a + s * (b + c);
    }
}

/// `out[i] += a[i]`.
pub(crate) fn add_assign(out: &mut [f32], a: &[f32]) {
    let n = out.len().min(a.len());
    let done = imp::add_assign(&mut out[..n], &a[..n]);
    for (o, a) in out[done..n].iter_mut().zip(&a[done..n]) {
        *o += a;
    }
}

/// `out[i] = a[i]` where `a[i] > out[i]` or `a[i]` is NaN: a max that propagates NaN, as
/// burn's and PyTorch's max-pool do.
pub(crate) fn max_assign(out: &mut [f32], a: &[f32]) {
    let n = out.len().min(a.len());
    let done = imp::max_assign(&mut out[..n], &a[..n]);
    for (o, &v) in out[done..n].iter_mut().zip(&a[done..n]) {
        if v > *o || v.is_nan() {
            *o = v;
        }
    }
}

/// `out[i] = max(out[i], 0)`, 0 for NaN as `f32::max` gives.
pub(crate) fn relu(out: &mut [f32]) {
    let done = imp::relu(out);
    out[done..].iter_mut().for_each(|v| *v = v.max(0.0));
}

/// Each function does the first multiple of four elements of equal-length slices and returns
/// how many it did.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::*;

    /// Loads 4 floats at `p`.
    ///
    /// # Safety
    /// `p..p + 4` must be readable.
    #[inline(always)]
    unsafe fn load(p: *const f32) -> v128 {
        // SAFETY: per the caller; wasm loads need no alignment.
        unsafe { v128_load(p as *const v128) }
    }

    pub fn add_scaled(out: &mut [f32], a: &[f32], b: &[f32], s: f32) -> usize {
        let (n, s) = (out.len() / 4 * 4, f32x4_splat(s));
        for i in (0..n).step_by(4) {
            // SAFETY: i + 4 <= n <= every slice's length (the caller passes equal lengths).
            unsafe {
                let v = f32x4_add(
                    load(a.as_ptr().add(i)),
                    f32x4_mul(s, load(b.as_ptr().add(i))),
                );
                v128_store(out.as_mut_ptr().add(i) as *mut v128, v);
            }
        }
        n
    }

    pub fn add_scaled_sum(out: &mut [f32], a: &[f32], b: &[f32], c: &[f32], s: f32) -> usize {
        let (n, s) = (out.len() / 4 * 4, f32x4_splat(s));
        for i in (0..n).step_by(4) {
            // SAFETY: as in add_scaled.
            unsafe {
                let bc = f32x4_add(load(b.as_ptr().add(i)), load(c.as_ptr().add(i)));
                let v = f32x4_add(load(a.as_ptr().add(i)), f32x4_mul(s, bc));
                v128_store(out.as_mut_ptr().add(i) as *mut v128, v);
            }
        }
        n
    }

    pub fn add_assign(out: &mut [f32], a: &[f32]) -> usize {
        let n = out.len() / 4 * 4;
        for i in (0..n).step_by(4) {
            // SAFETY: as in add_scaled.
            unsafe {
                let p = out.as_mut_ptr().add(i);
                let v = f32x4_add(load(p), load(a.as_ptr().add(i)));
                v128_store(p as *mut v128, v);
            }
        }
        n
    }

    pub fn max_assign(out: &mut [f32], a: &[f32]) -> usize {
        let n = out.len() / 4 * 4;
        for i in (0..n).step_by(4) {
            // SAFETY: as in add_scaled.
            unsafe {
                let p = out.as_mut_ptr().add(i);
                let (o, v) = (load(p), load(a.as_ptr().add(i)));
                let take = v128_or(f32x4_gt(v, o), f32x4_ne(v, v));
                v128_store(p as *mut v128, v128_bitselect(v, o, take));
            }
        }
        n
    }

    pub fn relu(out: &mut [f32]) -> usize {
        let n = out.len() / 4 * 4;
        let zero = f32x4_splat(0.0);
        for i in (0..n).step_by(4) {
            // SAFETY: i + 4 <= n <= out.len().
            unsafe {
                let p = out.as_mut_ptr().add(i);
                // pmax(0, v) = 0 < v ? v : 0, so NaN gives 0 as f32::max does.
                v128_store(p as *mut v128, f32x4_pmax(zero, load(p)));
            }
        }
        n
    }
}

/// Elsewhere the compiler vectorises the plain loops: nothing done here.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod imp {
    pub fn add_scaled(_: &mut [f32], _: &[f32], _: &[f32], _: f32) -> usize {
        0
    }
    pub fn add_scaled_sum(_: &mut [f32], _: &[f32], _: &[f32], _: &[f32], _: f32) -> usize {
        0
    }
    pub fn add_assign(_: &mut [f32], _: &[f32]) -> usize {
        0
    }
    pub fn max_assign(_: &mut [f32], _: &[f32]) -> usize {
        0
    }
    pub fn relu(_: &mut [f32]) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed, on lengths that leave a remainder after the 4-float steps; in the
    /// browser's build too, where the SIMD path runs.
    #[cfg_attr(not(target_family = "wasm"), test)]
    #[cfg_attr(target_family = "wasm", wasm_bindgen_test::wasm_bindgen_test)]
    fn matches_hand_computed_values() {
        let a: Vec<f32> = (0..7).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..7).map(|i| 10.0 * i as f32).collect();
        let mut out = vec![0.0; 7];
        add_scaled(&mut out, &a, &b, -1.0);
        assert_eq!(out, [0.0, -9.0, -18.0, -27.0, -36.0, -45.0, -54.0]);
        add_scaled_sum(&mut out, &a, &b, &a, 1.0);
        assert_eq!(out, [0.0, 12.0, 24.0, 36.0, 48.0, 60.0, 72.0]);
        add_assign(&mut out, &b);
        assert_eq!(out, [0.0, 22.0, 44.0, 66.0, 88.0, 110.0, 132.0]);
        let mut m = vec![1.0, 5.0, f32::NAN, 0.0, 2.0, 1.0, 4.0];
        max_assign(&mut m, &[2.0, 3.0, 1.0, f32::NAN, 2.0, f32::NAN, -1.0]);
        assert_eq!(format!("{m:?}"), "[2.0, 5.0, NaN, NaN, 2.0, NaN, 4.0]");
        let mut v = vec![-1.0, 2.0, f32::NAN, -0.5, 3.0, f32::NAN, -2.0];
        relu(&mut v);
        assert_eq!(v, [0.0, 2.0, 0.0, 0.0, 3.0, 0.0, 0.0]);
    }
}
