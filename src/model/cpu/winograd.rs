//! Winograd's F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
//! 2015) for a folded 3x3, stride-1 convolution on an NHWC [Map].
//!
//! Each 2x2 block of output positions (a *tile*) is computed from the 4x4 input patch around it
//! as `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`: 16 multiplications per channel pair instead of im2col's 36,
//! 2.25x fewer. Summed over the input channels, the 16 element-wise products become 16
//! independent gemms, `M_ξ = V_ξ · U_ξ` (tiles x in by in x out), where `U = G g Gᵀ` is the
//! weight transformed once and `V = Bᵀ d B` the input transformed per tile. In NHWC the
//! transforms are additions of whole channel vectors, so they vectorise as they are.
//!
//! Tiles are processed in blocks of whole tile rows (a block's outputs are then whole output
//! rows) small enough for its V and M to stay in cache, one block per thread.
//!
//! F(2x2, 3x3)'s transforms have only 0, ±1 and ±½ in them, so it rounds like the direct
//! convolution; F(4x4, 3x3) would save more but rounds worse (its points ±2 and ½ amplify).

use std::sync::Arc;

use super::{Map, for_chunks, simd};

/// Floats of V and M per block (2 MB): a block then stays in a core's L2 cache.
const BLOCK_FLOATS: usize = 1 << 19;

/// The fewest input and output channels for which F(2x2, 3x3) pays: its transforms cost per
/// channel what its gemms save per channel pair. Natively, ResNet-20 (16, 32 and 64 channels,
/// batch 128) ran 109-115 ms with Winograd from 32 channels, 109-110 from 64 and 109-112
/// without; ResNet-18 (64 to 512) 20.3 ms from 32 or 64, 25.0 without (one thread).
pub(crate) const MIN_CHANNELS: usize = 64;

/// `[kh, kw, in, out]` 3x3 weights transformed into `U`: `[16, in, out]` ([lift]).
pub(crate) fn transform_weight(weight: &[f32], c: usize, k: usize) -> Arc<[f32]> {
    lift(c * k, |i, a, b| weight[(a * 3 + b) * c * k + i]).into()
}

/// `pairs` 3x3 kernels, tap `(a, b)` of kernel `i` being `tap(i, a, b)`, transformed into
/// `U`: `[16, pairs]`, tap ξ = 4r + s holding `(G g Gᵀ)[r][s]` with
/// `G = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]]`.
pub(crate) fn lift(pairs: usize, tap: impl Fn(usize, usize, usize) -> f32 + Sync) -> Vec<f32> {
    let mut u = vec![0.0f32; 16 * pairs];
    if pairs == 0 {
        return u;
    }
    // One range of kernels per thread, each writing its part of the 16 planes.
    #[cfg(parallel)]
    let threads = rayon::current_num_threads().max(1);
    #[cfg(not(parallel))]
    let threads = 1;
    let per = pairs.div_ceil(threads);
    let mut parts: Vec<Vec<&mut [f32]>> = (0..threads).map(|_| Vec::with_capacity(16)).collect();
    for plane in u.chunks_exact_mut(pairs) {
        for (part, run) in parts.iter_mut().zip(plane.chunks_mut(per)) {
            part.push(run);
        }
    }
    let part =
        |(index, mut planes): (usize, Vec<&mut [f32]>)| lift_range(index * per, &mut planes, &tap);
    #[cfg(parallel)]
    {
        use rayon::prelude::*;
        parts.into_par_iter().enumerate().for_each(part);
    }
    #[cfg(not(parallel))]
    parts.into_iter().enumerate().for_each(part);
    u
}

/// [lift] of the kernels `first..` into `planes`, the 16 planes' runs for them.
fn lift_range(first: usize, planes: &mut [&mut [f32]], tap: &impl Fn(usize, usize, usize) -> f32) {
    /// Kernels transformed at a time: their 16 taps are then written as 16 runs, not as 16
    /// scattered stores per kernel (a 512x512 layer's U is 16 MB).
    const RUN: usize = 64;
    // (G row) · (g's three taps along one axis).
    let lift = |t: [f32; 3]| {
        [
            t[0],
            (t[0] + t[1] + t[2]) * 0.5,
            (t[0] - t[1] + t[2]) * 0.5,
            t[2],
        ]
    };
    let len = planes.first().map_or(0, |p| p.len());
    let mut run = [[0.0f32; 16]; RUN];
    for start in (0..len).step_by(RUN) {
        let count = RUN.min(len - start);
        for (q, taps) in run[..count].iter_mut().enumerate() {
            let i = first + start + q;
            // Columns first (G g: over the kernel's rows), then rows (· Gᵀ).
            let columns: [[f32; 4]; 3] =
                std::array::from_fn(|b| lift([tap(i, 0, b), tap(i, 1, b), tap(i, 2, b)]));
            for r in 0..4 {
                let row = lift([columns[0][r], columns[1][r], columns[2][r]]);
                taps[r * 4..][..4].copy_from_slice(&row);
            }
        }
        for (xi, plane) in planes.iter_mut().enumerate() {
            for (dst, taps) in plane[start..start + count].iter_mut().zip(&run) {
                *dst = taps[xi];
            }
        }
    }
}

/// The geometry of one call.
pub(crate) struct Shape {
    /// Top and left zero padding.
    pub padding: [usize; 2],
    pub out_height: usize,
    pub out_width: usize,
    pub out_channels: usize,
}

/// `relu?(conv(x) + bias + residual)` with `u` from [transform_weight], NHWC.
///
/// # Shapes
/// - `x`: `[batch, height, width, in]`
/// - `residual`, output: `[batch, out_height, out_width, out]`
pub(crate) fn forward(
    u: &[f32],
    x: &Map,
    s: &Shape,
    bias: Option<&[f32]>,
    residual: Option<&Map>,
    relu: bool,
) -> Vec<f32> {
    let (oh, ow, k) = (s.out_height, s.out_width, s.out_channels);
    let mut out = vec![0.0f32; x.batch * oh * ow * k];
    if out.is_empty() {
        return out;
    }
    let (tiles_h, tiles_w) = (oh.div_ceil(2), ow.div_ceil(2));
    // One slice per tile row: its two output rows (one for an odd height's last).
    let mut rows: Vec<&mut [f32]> = Vec::with_capacity(x.batch * tiles_h);
    for image in out.chunks_mut(oh * ow * k) {
        let mut rest = image;
        for ty in 0..tiles_h {
            let (row, tail) = rest.split_at_mut((oh - 2 * ty).min(2) * ow * k);
            rows.push(row);
            rest = tail;
        }
    }
    let per_tile = 16 * (x.channels + k);
    let rows_per_block = (BLOCK_FLOATS / per_tile / tiles_w).max(1);
    #[cfg(parallel)]
    let threads = rayon::current_num_threads();
    #[cfg(not(parallel))]
    let threads = 1;
    // Too few tiles for a block per thread (a small map): one block, its 16 gemms spread over
    // the threads instead, so U is still read once.
    let (rows_per_block, taps_in_parallel) = match rows.len().div_ceil(rows_per_block) < threads {
        true => (rows.len(), true),
        false => (rows_per_block, false),
    };
    let c = x.channels;
    let block = |b: usize, block_rows: &mut [&mut [f32]]| {
        let first = b * rows_per_block;
        let tiles = block_rows.len() * tiles_w;
        let mut v = vec![0.0f32; 16 * tiles * c];
        let mut m = vec![0.0f32; 16 * tiles * k];
        transform_input(x, s, tiles_h, tiles_w, first, tiles, &mut v);
        let v = &v;
        let tap = |xi: usize, m: &mut [f32]| {
            // SAFETY: V_ξ holds `tiles` rows of `c` floats, U_ξ `c` rows of `k`, and `m` (M_ξ)
            // `tiles` rows of `k`.
            unsafe {
                gemm::gemm(
                    tiles,
                    k,
                    c,
                    m.as_mut_ptr(),
                    1,
                    k as isize,
                    false,
                    v.as_ptr().add(xi * tiles * c),
                    1,
                    c as isize,
                    u.as_ptr().add(xi * c * k),
                    1,
                    k as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        };
        match taps_in_parallel {
            #[cfg(parallel)]
            true => {
                use rayon::prelude::*;
                m.par_chunks_mut(tiles * k)
                    .enumerate()
                    .for_each(|(xi, m)| tap(xi, m));
            }
            _ => m
                .chunks_mut(tiles * k)
                .enumerate()
                .for_each(|(xi, m)| tap(xi, m)),
        }
        transform_output(
            &m, s, tiles_h, tiles_w, first, block_rows, bias, residual, relu,
        );
    };
    for_chunks(&mut rows, rows_per_block, block);
    out
}

/// `V = Bᵀ d B` of tiles `first_row * tiles_w ..` (`tiles` of them) into `v`: `[16, tiles,
/// in]`, with `Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`.
fn transform_input(
    x: &Map,
    s: &Shape,
    tiles_h: usize,
    tiles_w: usize,
    first_row: usize,
    tiles: usize,
    v: &mut [f32],
) {
    let c = x.channels;
    let zeros = vec![0.0f32; c];
    let mut t = vec![0.0f32; 16 * c];
    let [top, left] = s.padding;
    for tile in 0..tiles {
        let row = first_row + tile / tiles_w;
        let (n, ty, tx) = (row / tiles_h, row % tiles_h, tile % tiles_w);
        let d: [[&[f32]; 4]; 4] = std::array::from_fn(|i| {
            let iy = (2 * ty + i).checked_sub(top).filter(|&y| y < x.height);
            std::array::from_fn(|j| {
                let ix = (2 * tx + j).checked_sub(left).filter(|&x_| x_ < x.width);
                match (iy, ix) {
                    (Some(iy), Some(ix)) => {
                        let at = ((n * x.height + iy) * x.width + ix) * c;
                        &x.data[at..at + c]
                    }
                    _ => &zeros,
                }
            })
        });
        // Bᵀ d, row by row of the result.
        for j in 0..4 {
            let (d0, d1, d2, d3) = (d[0][j], d[1][j], d[2][j], d[3][j]);
            simd::add_scaled(&mut t[j * c..][..c], d0, d2, -1.0);
            simd::add_scaled(&mut t[(4 + j) * c..][..c], d1, d2, 1.0);
            simd::add_scaled(&mut t[(8 + j) * c..][..c], d2, d1, -1.0);
            simd::add_scaled(&mut t[(12 + j) * c..][..c], d1, d3, -1.0);
        }
        // (Bᵀ d) B, column by column.
        for i in 0..4 {
            let r = |j: usize| &t[(4 * i + j) * c..][..c];
            let at = |j: usize| ((4 * i + j) * tiles + tile) * c;
            simd::add_scaled(&mut v[at(0)..][..c], r(0), r(2), -1.0);
            simd::add_scaled(&mut v[at(1)..][..c], r(1), r(2), 1.0);
            simd::add_scaled(&mut v[at(2)..][..c], r(2), r(1), -1.0);
            simd::add_scaled(&mut v[at(3)..][..c], r(1), r(3), -1.0);
        }
    }
}

/// `Y = Aᵀ M A` of the block's tiles, with `Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`, then bias,
/// residual and ReLU, into the block's output rows.
#[allow(clippy::too_many_arguments)]
fn transform_output(
    m: &[f32],
    s: &Shape,
    tiles_h: usize,
    tiles_w: usize,
    first_row: usize,
    rows: &mut [&mut [f32]],
    bias: Option<&[f32]>,
    residual: Option<&Map>,
    relu: bool,
) {
    let (ow, k) = (s.out_width, s.out_channels);
    let tiles = rows.len() * tiles_w;
    let mut t = vec![0.0f32; 8 * k];
    for (r, out_rows) in rows.iter_mut().enumerate() {
        let row = first_row + r;
        let (n, ty) = (row / tiles_h, row % tiles_h);
        let height = out_rows.len() / (ow * k);
        for tx in 0..tiles_w {
            let tile = r * tiles_w + tx;
            let mrow = |i: usize, j: usize| &m[((4 * i + j) * tiles + tile) * k..][..k];
            // Aᵀ M: two rows of four.
            for j in 0..4 {
                let (t0, t1) = t.split_at_mut(4 * k);
                simd::add_scaled_sum(
                    &mut t0[j * k..][..k],
                    mrow(0, j),
                    mrow(1, j),
                    mrow(2, j),
                    1.0,
                );
                simd::add_scaled_sum(
                    &mut t1[j * k..][..k],
                    mrow(1, j),
                    mrow(2, j),
                    mrow(3, j),
                    -1.0,
                );
            }
            for a in 0..height {
                let oy = 2 * ty + a;
                for b in 0..2.min(ow - 2 * tx) {
                    let ox = 2 * tx + b;
                    let dst = &mut out_rows[(a * ow + ox) * k..][..k];
                    let q = |j: usize| &t[(4 * a + j) * k..][..k];
                    // (Aᵀ M) A.
                    match b {
                        0 => simd::add_scaled_sum(dst, q(0), q(1), q(2), 1.0),
                        _ => simd::add_scaled_sum(dst, q(1), q(2), q(3), -1.0),
                    }
                    if let Some(bias) = bias {
                        simd::add_assign(dst, bias);
                    }
                    if let Some(res) = residual {
                        let p = (n * s.out_height + oy) * ow + ox;
                        simd::add_assign(dst, &res.data[p * k..][..k]);
                    }
                    if relu {
                        simd::relu(dst);
                    }
                }
            }
        }
    }
}
