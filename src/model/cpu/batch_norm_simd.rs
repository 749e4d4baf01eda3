//! [super::batch_norm]'s loops with WebAssembly SIMD written out, for the size-optimised
//! browser build that vectorises no loop itself ([super::simd]). Each does a leading part of
//! its slices (whole 16-float chunks for the sums, so their lanes add in the scalar loops'
//! order; multiples of 4 otherwise), rounds as the scalar loop does, and returns how many
//! floats it did.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::*;
    use core::mem::MaybeUninit;

    /// # Safety
    /// `p..p + 4` must be readable.
    #[inline(always)]
    unsafe fn load(p: *const f32) -> v128 {
        // SAFETY: per the caller; wasm loads need no alignment.
        unsafe { v128_load(p as *const v128) }
    }

    /// `(v - mean) * scale + beta`, as the scalar loops compute it.
    #[inline(always)]
    fn normalized(v: v128, [m, k, b]: [v128; 3]) -> v128 {
        f32x4_add(f32x4_mul(f32x4_sub(v, m), k), b)
    }

    fn splat([m, k, b]: [f32; 3]) -> [v128; 3] {
        [f32x4_splat(m), f32x4_splat(k), f32x4_splat(b)]
    }

    fn spill(lanes: [v128; 4], acc: &mut [f32; 16]) {
        for (q, v) in lanes.into_iter().enumerate() {
            for (l, a) in acc[4 * q..4 * q + 4].iter_mut().enumerate() {
                *a = match l {
                    0 => f32x4_extract_lane::<0>(v),
                    1 => f32x4_extract_lane::<1>(v),
                    2 => f32x4_extract_lane::<2>(v),
                    _ => f32x4_extract_lane::<3>(v),
                };
            }
        }
    }

    /// Σ (v - shift), or Σ (v - shift)² when `square`, into `acc`'s 16 lanes (zero before).
    pub fn lanes(v: &[f32], shift: f32, square: bool, acc: &mut [f32; 16]) -> usize {
        let (n, s) = (v.len() / 16 * 16, f32x4_splat(shift));
        let mut a = [f32x4_splat(0.0); 4];
        for i in (0..n).step_by(16) {
            for (q, a) in a.iter_mut().enumerate() {
                // SAFETY: i + 16 <= n <= v.len().
                let d = f32x4_sub(unsafe { load(v.as_ptr().add(i + 4 * q)) }, s);
                *a = f32x4_add(*a, if square { f32x4_mul(d, d) } else { d });
            }
        }
        spill(a, acc);
        n
    }

    /// Σ dy' and Σ dy'·(x - mean) into `acc`'s lanes (zero before), dy' past the ReLU's mask.
    pub fn masked_sums(
        x: &[f32],
        dy: &[f32],
        mkb: [f32; 3],
        relu: bool,
        acc: &mut [[f32; 16]; 2],
    ) -> usize {
        let (n, p) = (x.len().min(dy.len()) / 16 * 16, splat(mkb));
        let (mut sums, mut products) = ([f32x4_splat(0.0); 4], [f32x4_splat(0.0); 4]);
        for i in (0..n).step_by(16) {
            for q in 0..4 {
                // SAFETY: i + 16 <= n <= both lengths.
                let (v, g) = unsafe {
                    (
                        load(x.as_ptr().add(i + 4 * q)),
                        load(dy.as_ptr().add(i + 4 * q)),
                    )
                };
                let g = match relu {
                    true => v128_andnot(g, f32x4_le(normalized(v, p), f32x4_splat(0.0))),
                    false => g,
                };
                sums[q] = f32x4_add(sums[q], g);
                products[q] = f32x4_add(products[q], f32x4_mul(g, f32x4_sub(v, p[0])));
            }
        }
        spill(sums, &mut acc[0]);
        spill(products, &mut acc[1]);
        n
    }

    /// The forward's output.
    pub fn normalize(out: &mut [MaybeUninit<f32>], x: &[f32], mkb: [f32; 3], relu: bool) -> usize {
        let (n, p) = (out.len().min(x.len()) / 4 * 4, splat(mkb));
        for i in (0..n).step_by(4) {
            // SAFETY: i + 4 <= n <= both lengths.
            unsafe {
                let y = normalized(load(x.as_ptr().add(i)), p);
                let y = if relu {
                    f32x4_pmax(f32x4_splat(0.0), y)
                } else {
                    y
                };
                v128_store(out.as_mut_ptr().add(i) as *mut v128, y);
            }
        }
        n
    }

    /// The input gradient `k·(dy' - mean_dy) + slope·(x - mean)`.
    pub fn input_grad(
        out: &mut [MaybeUninit<f32>],
        x: &[f32],
        dy: &[f32],
        mkb: [f32; 3],
        relu: bool,
        [mean_dy, slope]: [f32; 2],
    ) -> usize {
        let n = out.len().min(x.len()).min(dy.len()) / 4 * 4;
        let (p, mean_dy, slope) = (splat(mkb), f32x4_splat(mean_dy), f32x4_splat(slope));
        for i in (0..n).step_by(4) {
            // SAFETY: i + 4 <= n <= every length.
            unsafe {
                let (v, g) = (load(x.as_ptr().add(i)), load(dy.as_ptr().add(i)));
                let g = match relu {
                    true => v128_andnot(g, f32x4_le(normalized(v, p), f32x4_splat(0.0))),
                    false => g,
                };
                let o = f32x4_add(
                    f32x4_mul(p[1], f32x4_sub(g, mean_dy)),
                    f32x4_mul(slope, f32x4_sub(v, p[0])),
                );
                v128_store(out.as_mut_ptr().add(i) as *mut v128, o);
            }
        }
        n
    }
}

/// Natively the compiler vectorises the scalar loops: nothing done here.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod imp {
    use core::mem::MaybeUninit;

    pub fn lanes(_: &[f32], _: f32, _: bool, _: &mut [f32; 16]) -> usize {
        0
    }
    pub fn masked_sums(
        _: &[f32],
        _: &[f32],
        _: [f32; 3],
        _: bool,
        _: &mut [[f32; 16]; 2],
    ) -> usize {
        0
    }
    pub fn normalize(_: &mut [MaybeUninit<f32>], _: &[f32], _: [f32; 3], _: bool) -> usize {
        0
    }
    pub fn input_grad(
        _: &mut [MaybeUninit<f32>],
        _: &[f32],
        _: &[f32],
        _: [f32; 3],
        _: bool,
        _: [f32; 2],
    ) -> usize {
        0
    }
}

pub(crate) use imp::*;
