//! Row im2col, for convolutions with vertical stride 1 (ResNets' 3x3s, a transposed
//! convolution's input gradient).
//!
//! Full im2col copies the input once per kernel tap (9x for a 3x3). Here each input channel
//! is copied once per kernel *column* `j`: a plane of the output's width holding the input's
//! rows shifted by `j` (strided along the row if the convolution is), with the vertical
//! padding as rows of zeros. Kernel row `i`'s im2col matrix is then that plane seen from `i`
//! rows down, with the same row stride, so the product is `kh` accumulating gemms on views
//! of one buffer a third the size (for a 3x3). Measured on a ResNet-20 layer (64 images of
//! 16x32x32, one thread): im2col 0.87 → 0.33 ms, the whole forward 2.33 → 1.75 ms; the gemms
//! with a third of the depth each run as fast as the one.

use super::nchw::{Destination, Geometry, gemm, inside, strided_copy};
use super::zeroed::written;
use core::mem::MaybeUninit;

/// Whether `g` takes this path: vertical stride 1, and not pointwise (whose im2col matrix is
/// the input itself).
pub(super) fn applies(g: &Geometry) -> bool {
    g.stride[0] == 1 && !g.is_pointwise() && g.output_size().is_some()
}

/// `(rows, ow)` of one channel's plane: the output's rows plus the kernel's vertical reach.
fn plane(g: &Geometry) -> (usize, usize) {
    let [oh, ow] = g.output_size().unwrap_or([0, 0]);
    (oh + (g.kernel[0] - 1) * g.dilation[0], ow)
}

/// Floats of one channel's plane, `rows · ow`.
pub(super) fn plane_len(g: &Geometry) -> usize {
    let (rows, ow) = plane(g);
    rows * ow
}

/// Floats of one image's planes, `[in · kw, rows, ow]`.
pub(super) fn cols_len(g: &Geometry) -> usize {
    let (rows, ow) = plane(g);
    g.in_channels * g.kernel[1] * rows * ow
}

/// One image `[in, h, w]` to its planes `[in · kw, rows, ow]`: plane `(c, j)`, row `r`,
/// column `x` holds input `(c, r - top, x · sw + j · dw - left)`, zero outside the input.
///
/// The zeros are not written: `cols` must hold them already, as a buffer zeroed once and
/// written only by this function for this geometry does (every caller keeps one per range of
/// images). Rewriting them each image was a memset per plane edge.
pub(super) fn im2col(x: &[f32], g: &Geometry, cols: &mut [f32]) {
    let (rows, ow) = plane(g);
    let kw = g.kernel[1];
    let (h, w, sw) = (g.height, g.width, g.stride[1]);
    let (top, left) = (g.padding[0], g.padding[1]);
    // Plane row r holds input row r - top (the rows vertical stride 1 reaches).
    let (r0, r1) = (top.min(rows), (top + h).min(rows));
    for (p, out) in cols.chunks_exact_mut(rows * ow).enumerate() {
        debug_assert!(
            out[..r0 * ow]
                .iter()
                .chain(&out[r1 * ow..])
                .all(|&v| v == 0.0),
            "im2col: the padding rows of a reused buffer must be zero"
        );
        let (c, j) = (p / kw, p % kw);
        let input = &x[c * h * w..][..h * w];
        let (x0, x1) = inside(ow, j, sw, g.dilation[1], left, w);
        if x1 <= x0 || r1 <= r0 {
            continue;
        }
        // Input column of output column x0.
        let first = x0 * sw + j * g.dilation[1] - left;
        if sw == 1 && ow == w {
            // As wide as the input: the rows are the input shifted by a constant offset, so
            // the span is one copy, then the columns that wrapped around from the
            // neighbouring line are zeroed.
            let (start, end) = (r0 * ow + x0, (r1 - 1) * ow + x1);
            out[start..end].copy_from_slice(&input[first..first + end - start]);
            if x0 > 0 || x1 < ow {
                for line in out[r0 * ow..r1 * ow].chunks_exact_mut(ow) {
                    line[..x0].iter_mut().for_each(|v| *v = 0.0);
                    line[x1..].iter_mut().for_each(|v| *v = 0.0);
                }
            }
            continue;
        }
        for r in r0..r1 {
            let (line, out) = (&input[(r - top) * w..][..w], &mut out[r * ow..][x0..x1]);
            strided_copy(out, &line[first..], sw);
        }
    }
}

/// The weight `[out, in_g, kh, kw]` as one `[out_g, in_g · kw]` matrix per kernel row and
/// group, `[kh, groups, out_g, in_g, kw]`: the left operand of each row's gemm.
pub(super) fn weights(w: &[f32], g: &Geometry) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let (og, ig) = (g.out_channels / g.groups, g.in_channels / g.groups);
    let mut out = vec![0.0f32; w.len()];
    for i in 0..kh {
        for group in 0..g.groups {
            for o in 0..og {
                for c in 0..ig {
                    let src = &w[((group * og + o) * ig + c) * kh * kw + i * kw..][..kw];
                    out[(((i * g.groups + group) * og + o) * ig + c) * kw..][..kw]
                        .copy_from_slice(src);
                }
            }
        }
    }
    out
}

/// One image's output `y [out, oh · ow] = Σ_i W_i · cols_i`, `cols_i` being the planes seen
/// from kernel row `i` down; `weights` from [weights]. Kernel row 0's products write `y`
/// whole (its groups cover it), so it need not have been written before.
pub(super) fn product(
    cols: &[f32],
    weights: &[f32],
    g: &Geometry,
    y: &mut [MaybeUninit<f32>],
    parallelism: gemm::Parallelism,
) {
    for group in 0..g.groups {
        row_product(cols, weights, g, 0, group, y, parallelism);
    }
    // SAFETY: kernel row 0's gemms wrote every group's `[out_g, oh · ow]` block of `y`.
    let y = unsafe { written(y) };
    for i in 1..g.kernel[0] {
        for group in 0..g.groups {
            row_product(cols, weights, g, i, group, y, parallelism);
        }
    }
}

/// Kernel row `i`'s product for `group`, written to `y` for row 0, added to it after.
fn row_product<D: Destination>(
    cols: &[f32],
    weights: &[f32],
    g: &Geometry,
    i: usize,
    group: usize,
    y: &mut [D],
    parallelism: gemm::Parallelism,
) {
    let (og, depth) = (
        g.out_channels / g.groups,
        g.in_channels / g.groups * g.kernel[1],
    );
    let n = y.len() / g.out_channels;
    let (at, stride) = view(g, group, i);
    gemm(
        og,
        n,
        depth,
        &mut y[group * og * n..],
        [1, n],
        i > 0,
        &weights[(i * g.groups + group) * og * depth..],
        [1, depth],
        &cols[at..],
        [1, stride],
        parallelism,
    );
}

/// Kernel row `i`'s view of group `group`'s planes: `(offset, row stride)` of the
/// `[in_g · kw, oh · ow]` matrix in [im2col]'s buffer.
pub(super) fn view(g: &Geometry, group: usize, i: usize) -> (usize, usize) {
    let (rows, ow) = plane(g);
    let depth = g.in_channels / g.groups * g.kernel[1];
    (
        group * depth * rows * ow + i * g.dilation[0] * ow,
        rows * ow,
    )
}
