//! Winograd's F(2x2, 3x3) for a training step's 3x3 stride-1 convolutions on NCHW: the
//! forward and both gradients.
//!
//! The forward is [super::winograd]'s algorithm: per 2x2 output tile `Y = Aᵀ [U ⊙ V] A`, with
//! `U = G W Gᵀ` and `V = Bᵀ d B` (`d` the tile's 4x4 input patch), summed over the input
//! channels as 16 gemms `M_ξ = U_ξ · V_ξ` (out x in by in x tiles). The backward
//! differentiates that same identity instead of running two more convolutions:
//!
//! - `dM = A dY Aᵀ` per tile (the output transform's adjoint);
//! - `dV_ξ = U_ξᵀ · dM_ξ`, then `dx = Σ B dV Bᵀ` over the tiles' overlapping patches;
//! - `dU_ξ = Σ dM_ξ · V_ξᵀ` over the tiles (`V` recomputed from `x`), then `dW = Gᵀ dU G`.
//!
//! So each of a step's three products does 16 multiplications per tile and channel pair
//! instead of 36. In NCHW the transforms run along image rows: a tile row's input lines are
//! split into their even and odd columns, after which each transform is additions of
//! [super::wide::Lane]s of 16 neighbouring tiles, compiled for AVX-512 or AVX2 where the CPU
//! has them ([transforms]).
//!
//! Tiles go in blocks of whole tile rows (across the images of a thread's range): small enough
//! for V and M to stay in cache, wide enough for the gemms.

use super::nchw::{Geometry, gemm, per_image_chunks};
use super::transposed::{InputAndWeightGrads, over_image_ranges};
use super::wide::LANES;
use super::winograd;
use super::zeroed::zeroed;
use core::mem::MaybeUninit;

mod transforms;

use transforms::{INPUT, INPUT_GRAD, OUTPUT, OUTPUT_GRAD, transform};

/// Floats of a block's transformed input and output (2 MB), as in [winograd].
const BLOCK_FLOATS: usize = 1 << 19;

/// The fewest tiles per block (unless the block holds every tile of a thread's images).
const MIN_TILES: usize = 256;

/// Which of a step's passes: the forward, or both gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    Forward,
    Backward,
}

/// Whether `g` takes this path for `pass`: a dense 3x3 stride-1 convolution where F(2x2, 3x3)
/// was measured faster than [super::rows]' im2col (ResNet-18 at batch 16 and ResNet-20 at
/// batch 128, two threads, ms, Winograd against rows):
///
/// | channels, output | forward | backward |
/// |---|---:|---:|
/// | 64, 56x56 | 9.3 / 10.4 | 14.9 / 21.0 |
/// | 128, 28x28 | 7.4 / 9.2 | 14.2 / 18.2 |
/// | 256, 14x14 | 11.2 / 10.6 | 14.6 / 20.1 |
/// | 512, 7x7 | 13.4 / 12.3 | 29.8 / 34.4 |
/// | 64, 8x8 | 3.1 / 2.2 | 5.2 / 3.8 |
///
/// A narrow map leaves most of each [super::wide::Lane] of the transforms idle (4 tiles a row at
/// 8x8 in 16 lanes), which only the backward's two products per tile with 128 or more channels
/// pay for.
pub(super) fn applies(g: &Geometry, pass: Pass) -> bool {
    let channels = g.in_channels.min(g.out_channels);
    let wide = g.output_size().is_some_and(|[_, ow]| ow >= 28);
    let pays = match pass {
        Pass::Forward => channels >= 64 && wide,
        Pass::Backward => channels >= 64 && (wide || channels >= 128),
    };
    // In the browser the transforms' lanes run one float at a time (the package is built at
    // opt-level "z", which vectorises no loop); not measured there yet.
    dense_3x3(g) && pays && !cfg!(target_family = "wasm")
}

/// Whether `g` is a dense 3x3 convolution with stride and dilation 1 (what this computes).
fn dense_3x3(g: &Geometry) -> bool {
    g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.groups == 1
        && g.is_valid()
}

/// Tile rows and columns, and what a block holds.
#[derive(Clone, Copy)]
struct Tiles {
    /// Tile rows per image.
    rows: usize,
    /// Tiles per row.
    cols: usize,
    /// Tile rows per block.
    per_block: usize,
}

impl Tiles {
    /// `floats_per_tile`: what a block keeps per tile (16 per channel of each buffer); blocks
    /// of about `block_floats`, but at least `min_tiles` tiles.
    fn new(g: &Geometry, floats_per_tile: usize, [block_floats, min_tiles]: [usize; 2]) -> Self {
        let [oh, ow] = g.output_size().unwrap_or([0, 0]);
        let cols = ow.div_ceil(2);
        // At least `min_tiles` tiles: a block's gemms are `tiles` wide, and the weight
        // gradient's sum over them deep (a 512-channel layer's dU is 16 MB, read and written
        // per block).
        let fit = block_floats / (floats_per_tile * cols).max(1);
        let per_block = fit.max(min_tiles.div_ceil(cols.max(1))).max(1);
        Tiles {
            rows: oh.div_ceil(2),
            cols,
            per_block,
        }
    }

    /// `f(first tile row, tile rows)` for the blocks of `images` images' tile rows.
    fn blocks(&self, images: usize, mut f: impl FnMut(usize, usize)) {
        let rows = images * self.rows;
        (0..rows)
            .step_by(self.per_block)
            .for_each(|r| f(r, self.per_block.min(rows - r)));
    }
}

/// Floats of one of a block's 16 transformed planes: `channels` lines of `tiles`, then room
/// for a [super::wide::Lane] written past the last line's end (the kernels store whole lanes; what
/// spills past a line is overwritten by the next line, or lands here).
fn plane(channels: usize, tiles: usize) -> usize {
    channels * tiles + LANES
}

/// Length of a line of `len` floats, padded so that a [super::wide::Lane] may be read from any of
/// its first `len` positions.
fn padded(len: usize) -> usize {
    len.next_multiple_of(LANES) + LANES
}

/// `W` `[out, in, 3, 3]` as `U` `[16, out, in]`.
fn transform_weight(w: &[f32], g: &Geometry) -> Vec<f32> {
    let pairs = g.out_channels * g.in_channels;
    winograd::lift(pairs, |p, a, b| w[p * 9 + a * 3 + b])
}

/// `conv(x, w)`, as [super::nchw::forward].
///
/// # Shapes
/// - `x`: `[batch, in, h, w]`; `w`: `[out, in, 3, 3]`
/// - output: `[batch, out, oh, ow]`
pub(crate) fn forward(x: &[f32], w: &[f32], g: &Geometry) -> Vec<f32> {
    forward_in_blocks(x, w, g, [BLOCK_FLOATS, MIN_TILES])
}

fn forward_in_blocks(x: &[f32], w: &[f32], g: &Geometry, blocking: [usize; 2]) -> Vec<f32> {
    let [image_in, image_out] = g.image_lens();
    let (c, k) = (g.in_channels, g.out_channels);
    let u = transform_weight(w, g);
    let t = Tiles::new(g, 16 * (c + k), blocking);
    // SAFETY: each part is zeroed whole first.
    unsafe {
        per_image_chunks(image_out, g, |first, y, parallelism| {
            let y = zeroed(y);
            let x = &x[first * image_in..][..y.len() / image_out * image_in];
            let mut v = vec![0.0f32; 16 * plane(c, t.per_block * t.cols)];
            let mut m = vec![0.0f32; 16 * plane(k, t.per_block * t.cols)];
            t.blocks(y.len() / image_out, |row, rows| {
                let n = rows * t.cols;
                transform::<INPUT>((x, g, &t, row, rows, &mut v));
                for xi in 0..16 {
                    // M_ξ [out, tiles] = U_ξ [out, in] · V_ξ [in, tiles]
                    let (m, v) = (&mut m[xi * plane(k, n)..], &v[xi * plane(c, n)..]);
                    let u = &u[xi * k * c..];
                    gemm(k, n, c, m, [1, n], false, u, [1, c], v, [1, n], parallelism);
                }
                transform::<OUTPUT>((&m, g, &t, row, rows, y));
            });
        })
    }
}

/// `(dx, dW)` given `dy`, each when asked for, as [super::nchw::input_grad] and
/// [super::nchw::weight_grad].
///
/// # Shapes
/// - `x`: `[batch, in, h, w]`; `w`: `[out, in, 3, 3]`; `dy`: `[batch, out, oh, ow]`
/// - `dx` like `x`, `dW` like `w`
pub(crate) fn backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    g: &Geometry,
    want: [bool; 2],
) -> InputAndWeightGrads {
    backward_in_blocks(x, w, dy, g, want, [BLOCK_FLOATS, MIN_TILES])
}

fn backward_in_blocks(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    g: &Geometry,
    [want_dx, want_dw]: [bool; 2],
    blocking: [usize; 2],
) -> InputAndWeightGrads {
    let [image_in, image_out] = g.image_lens();
    let (c, k) = (g.in_channels, g.out_channels);
    let u = transform_weight(w, g);
    // A block holds dM, and V or dV (one buffer, used for one then the other).
    let t = Tiles::new(g, 16 * (c + k), blocking);
    let range = |first: usize, images: usize, dx: Option<&mut [MaybeUninit<f32>]>, parallelism| {
        // The input transform's adjoint adds the overlapping patches into dx.
        let mut dx = dx.map(zeroed);
        let x = &x[first * image_in..][..images * image_in];
        let dy = &dy[first * image_out..][..images * image_out];
        let mut du = vec![0.0f32; if want_dw { 16 * k * c } else { 0 }];
        let mut dm = vec![0.0f32; 16 * plane(k, t.per_block * t.cols)];
        let mut v = vec![0.0f32; 16 * plane(c, t.per_block * t.cols)];
        t.blocks(images, |row, rows| {
            let n = rows * t.cols;
            transform::<OUTPUT_GRAD>((dy, g, &t, row, rows, &mut dm));
            if want_dw {
                transform::<INPUT>((x, g, &t, row, rows, &mut v));
                for xi in 0..16 {
                    // dU_ξ [out, in] += dM_ξ [out, tiles] · V_ξᵀ [tiles, in]
                    let (dm, v) = (&dm[xi * plane(k, n)..], &v[xi * plane(c, n)..]);
                    let du = &mut du[xi * k * c..];
                    gemm(
                        k,
                        c,
                        n,
                        du,
                        [1, c],
                        true,
                        dm,
                        [1, n],
                        v,
                        [n, 1],
                        parallelism,
                    );
                }
            }
            if let Some(dx) = dx.as_deref_mut() {
                for xi in 0..16 {
                    // dV_ξ [in, tiles] = U_ξᵀ [in, out] · dM_ξ [out, tiles]
                    let (dv, dm) = (&mut v[xi * plane(c, n)..], &dm[xi * plane(k, n)..]);
                    let u = &u[xi * k * c..];
                    gemm(
                        c,
                        n,
                        k,
                        dv,
                        [1, n],
                        false,
                        u,
                        [c, 1],
                        dm,
                        [1, n],
                        parallelism,
                    );
                }
                transform::<INPUT_GRAD>((&v, g, &t, row, rows, dx));
            }
        });
        du
    };
    // SAFETY: each range zeroes its part of dx whole first.
    let (dx, du) = unsafe { over_image_ranges(g, want_dx, range) };
    let dw = want_dw.then(|| weight_grad(&du.unwrap_or_else(|| vec![0.0; 16 * k * c]), k * c));
    (dx, dw)
}

/// `dW = Gᵀ dU G` per kernel: `du` `[16, pairs]` to `[pairs, 3, 3]`, the adjoint of
/// [winograd::lift].
fn weight_grad(du: &[f32], pairs: usize) -> Vec<f32> {
    // Gᵀ r for a line r of four: the adjoint of lift's `G t`.
    let lower = |r: [f32; 4]| {
        [
            r[0] + (r[1] + r[2]) * 0.5,
            (r[1] - r[2]) * 0.5,
            (r[1] + r[2]) * 0.5 + r[3],
        ]
    };
    let mut dw = vec![0.0f32; pairs * 9];
    // Runs of kernels over the threads (a 512x512 layer's dU is 16 MB).
    const RUN: usize = 1024;
    super::for_chunks(&mut dw, 9 * RUN, |run, dw| {
        for (q, dw) in dw.chunks_exact_mut(9).enumerate() {
            let p = run * RUN + q;
            let rows: [[f32; 3]; 4] = std::array::from_fn(|r| {
                lower(std::array::from_fn(|s| du[(r * 4 + s) * pairs + p]))
            });
            for b in 0..3 {
                let column = lower([rows[0][b], rows[1][b], rows[2][b], rows[3][b]]);
                for a in 0..3 {
                    dw[a * 3 + b] = column[a];
                }
            }
        }
    });
    dw
}

#[cfg(test)]
mod tests {
    use super::super::nchw;
    use super::*;

    /// Pseudo-random values in [-1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn geometry(
        [batch, in_channels, out_channels, height, width]: [usize; 5],
        padding: [usize; 4],
    ) -> Geometry {
        Geometry {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel: [3, 3],
            stride: [1, 1],
            dilation: [1, 1],
            padding,
            groups: 1,
        }
    }

    fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
        assert_eq!(actual.len(), expected.len(), "{what}: length");
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a - e).abs() <= 1e-4 * (1.0 + e.abs()),
                "{what}[{i}]: {a} against {e}"
            );
        }
    }

    /// Forward, input and weight gradients against the im2col path ([nchw], itself checked
    /// against burn's convolution) on the geometries F(2x2, 3x3) has edges in: odd output
    /// sizes (a half-empty last tile), no padding, padding 2 (patches wholly outside), one
    /// row, asymmetric padding, and blocks of one tile row or of every image at once.
    #[test]
    fn matches_the_im2col_convolution_and_its_gradients() {
        let cases = [
            ([2, 3, 5, 7, 9], [1, 1, 1, 1]),
            ([1, 4, 6, 6, 6], [0, 0, 0, 0]),
            ([3, 2, 3, 5, 8], [2, 2, 2, 2]),
            ([2, 5, 4, 1, 5], [1, 1, 1, 1]),
            ([2, 3, 4, 6, 7], [0, 1, 2, 0]),
            ([5, 8, 8, 4, 4], [1, 1, 1, 1]),
        ];
        for (case, (dims, padding)) in cases.into_iter().enumerate() {
            let g = geometry(dims, padding);
            assert!(dense_3x3(&g), "case {case}");
            let [image_in, image_out] = g.image_lens();
            let x = values(g.batch * image_in, 1 + case as u64);
            let w = values(g.out_channels * g.in_channels * 9, 100 + case as u64);
            let dy = values(g.batch * image_out, 200 + case as u64);
            let expected = [
                nchw::forward(&x, &w, &g),
                nchw::input_grad(&w, &dy, &g),
                nchw::weight_grad(&x, &dy, &g),
            ];
            for blocking in [[1, 1], [BLOCK_FLOATS, MIN_TILES]] {
                let what = |s: &str| format!("case {case}, blocking {blocking:?}: {s}");
                let y = forward_in_blocks(&x, &w, &g, blocking);
                assert_close(&y, &expected[0], &what("forward"));
                let (dx, dw) = backward_in_blocks(&x, &w, &dy, &g, [true, true], blocking);
                assert_close(&dx.unwrap(), &expected[1], &what("input gradient"));
                assert_close(&dw.unwrap(), &expected[2], &what("weight gradient"));
            }
            let (dx, dw) = backward(&x, &w, &dy, &g, [false, true]);
            assert!(dx.is_none());
            assert_close(&dw.unwrap(), &expected[2], "weight gradient alone");
            let (dx, dw) = backward(&x, &w, &dy, &g, [true, false]);
            assert!(dw.is_none());
            assert_close(&dx.unwrap(), &expected[1], "input gradient alone");
        }
    }

    /// Only dense 3x3 stride-1 convolutions with enough channels and, for the forward, a wide
    /// enough map take this path.
    #[test]
    fn applies_where_it_was_measured_faster() {
        let g = geometry([2, 64, 64, 56, 56], [1; 4]);
        assert!(applies(&g, Pass::Forward) && applies(&g, Pass::Backward));
        for narrower in [
            geometry([2, 32, 64, 56, 56], [1; 4]),
            Geometry {
                stride: [2, 2],
                ..g
            },
            Geometry {
                dilation: [2, 2],
                ..g
            },
            Geometry { groups: 2, ..g },
            Geometry {
                kernel: [1, 1],
                ..g
            },
            geometry([128, 64, 64, 8, 8], [1; 4]),
        ] {
            assert!(!applies(&narrower, Pass::Forward), "{narrower:?}");
            assert!(!applies(&narrower, Pass::Backward), "{narrower:?}");
        }
        let small_map = geometry([16, 512, 512, 7, 7], [1; 4]);
        assert!(!applies(&small_map, Pass::Forward) && applies(&small_map, Pass::Backward));
    }
}
