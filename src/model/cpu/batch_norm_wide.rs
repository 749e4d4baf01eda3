//! [super::batch_norm]'s loops compiled for the CPU's widest vectors ([super::wide::run]) on
//! x86-64. A native build targets the baseline instruction set, where the scalar loops
//! vectorise 4 floats wide at best (the sums kept their 16 lanes on the stack and ran one float
//! at a time): 20 % of a ResNet-20 training step on 2 cores went to them.
//!
//! The same contract as [super::batch_norm_simd]'s: each does a leading part of its slices (the
//! sums whole 16-float chunks, whose lanes are the scalar loops' 16, added in their order; the
//! element-wise passes all of it), rounds as the scalar loop does (no fused multiply-add: Rust
//! does not contract), and returns how many floats it did.

use super::wide::{self, LANES, Lane, load};
use core::mem::MaybeUninit;

// No closures in the kernels: a closure is compiled on its own, for the baseline, where the
// compiler does not inline it ([wide::Kernel]). The sums are loops over [Lane]s (the lanes are
// the accumulators), the element-wise passes plain loops that the compiler vectorises whole.
// Written otherwise, LLVM's SLP vectoriser split or paired the lanes into shuffles and scalars.

/// Whole lanes of `len` floats.
#[inline(always)]
fn whole(len: usize) -> usize {
    len / LANES * LANES
}

struct Lanes<'a> {
    v: &'a [f32],
    shift: f32,
    square: bool,
    acc: &'a mut [f32; 16],
}

impl wide::Kernel for Lanes<'_> {
    type Output = usize;
    #[inline(always)]
    fn run(self) -> usize {
        let n = whole(self.v.len());
        let mut a: Lane = [0.0; LANES];
        let mut i = 0;
        while i < n {
            let x = load(self.v, i);
            for l in 0..LANES {
                let d = x[l] - self.shift;
                a[l] += if self.square { d * d } else { d };
            }
            i += LANES;
        }
        *self.acc = a;
        n
    }
}

/// Σ (v - shift), or Σ (v - shift)² when `square`, into `acc`'s 16 lanes (zero before).
pub fn lanes(v: &[f32], shift: f32, square: bool, acc: &mut [f32; 16]) -> usize {
    wide::run(Lanes {
        v,
        shift,
        square,
        acc,
    })
}

struct MaskedSums<'a> {
    x: &'a [f32],
    dy: &'a [f32],
    mkb: [f32; 3],
    relu: bool,
    acc: &'a mut [[f32; 16]; 2],
}

impl wide::Kernel for MaskedSums<'_> {
    type Output = usize;
    #[inline(always)]
    fn run(self) -> usize {
        let n = whole(self.x.len().min(self.dy.len()));
        let [m, k, b] = self.mkb;
        let (mut sums, mut products): (Lane, Lane) = ([0.0; LANES], [0.0; LANES]);
        let mut i = 0;
        while i < n {
            let (v, mut g) = (load(self.x, i), load(self.dy, i));
            let mut d = [0.0; LANES];
            for l in 0..LANES {
                d[l] = v[l] - m;
            }
            if self.relu {
                // The mask as bits (a select here was scalarised): +0.0 where the output was
                // not above 0, as the scalar loop's.
                let mut keep = [0u32; LANES];
                for l in 0..LANES {
                    keep[l] = if d[l] * k + b <= 0.0 { 0 } else { u32::MAX };
                }
                for l in 0..LANES {
                    g[l] = f32::from_bits(g[l].to_bits() & keep[l]);
                }
            }
            for l in 0..LANES {
                sums[l] += g[l];
            }
            for l in 0..LANES {
                products[l] += g[l] * d[l];
            }
            i += LANES;
        }
        *self.acc = [sums, products];
        n
    }
}

/// Σ dy' and Σ dy'·(x - mean) into `acc`'s lanes (zero before), dy' past the ReLU's mask.
pub fn masked_sums(
    x: &[f32],
    dy: &[f32],
    mkb: [f32; 3],
    relu: bool,
    acc: &mut [[f32; 16]; 2],
) -> usize {
    wide::run(MaskedSums {
        x,
        dy,
        mkb,
        relu,
        acc,
    })
}

struct Normalize<'a> {
    out: &'a mut [MaybeUninit<f32>],
    x: &'a [f32],
    mkb: [f32; 3],
    relu: bool,
}

impl wide::Kernel for Normalize<'_> {
    type Output = usize;
    #[inline(always)]
    fn run(self) -> usize {
        let n = self.out.len().min(self.x.len());
        let ([m, k, b], out, x) = (self.mkb, &mut self.out[..n], &self.x[..n]);
        if self.relu {
            for (o, &v) in out.iter_mut().zip(x) {
                o.write(((v - m) * k + b).max(0.0));
            }
        } else {
            for (o, &v) in out.iter_mut().zip(x) {
                o.write((v - m) * k + b);
            }
        }
        n
    }
}

/// The forward's output.
pub fn normalize(out: &mut [MaybeUninit<f32>], x: &[f32], mkb: [f32; 3], relu: bool) -> usize {
    wide::run(Normalize { out, x, mkb, relu })
}

struct InputGrad<'a> {
    out: &'a mut [MaybeUninit<f32>],
    x: &'a [f32],
    dy: &'a [f32],
    mkb: [f32; 3],
    relu: bool,
    centre: [f32; 2],
}

impl wide::Kernel for InputGrad<'_> {
    type Output = usize;
    #[inline(always)]
    fn run(self) -> usize {
        let n = self.out.len().min(self.x.len()).min(self.dy.len());
        let ([m, k, b], [mean_dy, slope]) = (self.mkb, self.centre);
        let (out, x, dy) = (&mut self.out[..n], &self.x[..n], &self.dy[..n]);
        if self.relu {
            for ((o, &v), &g) in out.iter_mut().zip(x).zip(dy) {
                let g = if (v - m) * k + b <= 0.0 { 0.0 } else { g };
                o.write(k * (g - mean_dy) + slope * (v - m));
            }
        } else {
            for ((o, &v), &g) in out.iter_mut().zip(x).zip(dy) {
                o.write(k * (g - mean_dy) + slope * (v - m));
            }
        }
        n
    }
}

/// The input gradient `k·(dy' - mean_dy) + slope·(x - mean)`.
pub fn input_grad(
    out: &mut [MaybeUninit<f32>],
    x: &[f32],
    dy: &[f32],
    mkb: [f32; 3],
    relu: bool,
    centre: [f32; 2],
) -> usize {
    wide::run(InputGrad {
        x,
        dy,
        out,
        mkb,
        relu,
        centre,
    })
}
