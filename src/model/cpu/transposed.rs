//! The backward pass of a stride-1 convolution from one set of im2col planes per image,
//! those of `dy` under the transposed convolution.
//!
//! With stride 1 the input gradient is itself a convolution: of `dy`, padded by what the
//! forward's kernel overhung, with each group's weight transposed and rotated by 180°
//! ([flipped]). Its im2col (row planes, [super::rows]) serves the weight gradient as well:
//!
//! - `dx = Σ_a W'_a · cols_a`, instead of `Wᵀ · dy` (a product as large as the full im2col
//!   matrix, written out) and col2im's scatter-add over it;
//! - `dW[o, i, a, b] = Σ_q x[i, q] · cols_{a'}[(o, b'), q]` (`a'`, `b'` the rotated kernel
//!   row and column), instead of a second im2col, of `x`.
//!
//! Both products of an image run while its planes are in cache.

use super::nchw::{Geometry, chunk_images, gemm, inner_parallelism};
use super::zeroed::written_parts;
use super::{rows, simd};
use core::mem::MaybeUninit;

/// The geometry of the input gradient's convolution, when the forward has stride 1.
pub(super) fn transposed(g: &Geometry) -> Option<Geometry> {
    if g.stride != [1, 1] || g.is_pointwise() {
        return None;
    }
    let [oh, ow] = g.output_size()?;
    let span = |k: usize, d: usize| (k - 1) * d;
    let (sh, sw) = (
        span(g.kernel[0], g.dilation[0]),
        span(g.kernel[1], g.dilation[1]),
    );
    let [top, left, bottom, right] = g.padding;
    let padding = [
        sh.checked_sub(top)?,
        sw.checked_sub(left)?,
        sh.checked_sub(bottom)?,
        sw.checked_sub(right)?,
    ];
    let t = Geometry {
        in_channels: g.out_channels,
        height: oh,
        width: ow,
        out_channels: g.in_channels,
        padding,
        ..*g
    };
    (t.output_size() == Some([g.height, g.width])).then_some(t)
}

/// Each group's weight `[out_g, in_g, kh, kw]` as `[in_g, out_g, kh, kw]`, the kernel
/// rotated by 180°: the weight of [transposed]'s convolution.
fn flipped(w: &[f32], g: &Geometry) -> Vec<f32> {
    let (og, ig) = (g.out_channels / g.groups, g.in_channels / g.groups);
    let taps = g.kernel[0] * g.kernel[1];
    let mut out = vec![0.0; w.len()];
    for (src, dst) in w.chunks(og * ig * taps).zip(out.chunks_mut(og * ig * taps)) {
        for o in 0..og {
            for i in 0..ig {
                for t in 0..taps {
                    dst[(i * og + o) * taps + taps - 1 - t] = src[(o * ig + i) * taps + t];
                }
            }
        }
    }
    out
}

/// `(dx, dW)`, each when asked for.
pub(crate) type InputAndWeightGrads = (Option<Vec<f32>>, Option<Vec<f32>>);

/// `(dx, dW)` of a stride-1 convolution given `dy`, each when asked for; `None` when the
/// geometry has no [transposed] convolution (strided, pointwise, padding past the kernel).
///
/// # Shapes
/// - `x`: `[batch, in, h, w]`; `w`: `[out, in / groups, kh, kw]`; `dy`: `[batch, out, h, w]`
/// - `dx` like `x`, `dW` like `w`
pub(crate) fn backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    g: &Geometry,
    [want_dx, want_dw]: [bool; 2],
) -> Option<InputAndWeightGrads> {
    let t = transposed(g)?;
    let weights = rows::weights(&flipped(w, g), &t);
    let [image_in, image_out] = g.image_lens();
    // Each range of images sums M, per group, `[kh · in_g, out_g · kw]` column-major: row
    // (a, c) for kernel row a of the transposed convolution, over its images.
    let len = w.len();
    let (ig, og) = (g.in_channels / g.groups, g.out_channels / g.groups);
    let [kh, kw] = g.kernel;
    // Kernel row a's view of the planes starts shifts[a] floats into them (a rows down).
    let shifts: Vec<usize> = (0..kh).map(|a| rows::view(&t, 0, a).0).collect();
    let depth = rows::plane_len(&t);
    let range =
        |first: usize, images: usize, mut dx: Option<&mut [MaybeUninit<f32>]>, parallelism| {
            let mut m = vec![0.0f32; if want_dw { len } else { 0 }];
            let mut cols = vec![0.0f32; rows::cols_len(&t)];
            let mut stacked = vec![
                0.0f32;
                if want_dw {
                    depth * kh * g.in_channels
                } else {
                    0
                }
            ];
            for i in 0..images {
                rows::im2col(&dy[(first + i) * image_out..][..image_out], &t, &mut cols);
                if let Some(dx) = dx.as_deref_mut() {
                    let dx = &mut dx[i * image_in..][..image_in];
                    rows::product(&cols, &weights, &t, dx, parallelism);
                }
                if !want_dw {
                    continue;
                }
                stack(
                    &x[(first + i) * image_in..][..image_in],
                    g,
                    &shifts,
                    &mut stacked,
                );
                for group in 0..g.groups {
                    // M_g [kh · in_g, out_g · kw] += X_g [kh · in_g, D] · planes_gᵀ [D, out_g · kw]:
                    // the kh kernel rows' products in one gemm of kh times the rows (M = 16 gave
                    // the gemm its narrowest, slowest kernel), X_g holding x shifted by each row.
                    let (at, stride) = rows::view(&t, group, 0);
                    gemm(
                        kh * ig,
                        og * kw,
                        depth,
                        &mut m[group * kh * ig * og * kw..],
                        [kh * ig, 1],
                        true,
                        &stacked[group * kh * ig * depth..],
                        [1, depth],
                        &cols[at..],
                        [stride, 1],
                        parallelism,
                    );
                }
            }
            m
        };
    // SAFETY: `rows::product` writes each image's dx whole.
    let (dx, m) = unsafe { over_image_ranges(g, want_dx, range) };
    let dw = want_dw.then(|| {
        let m = m.unwrap_or_else(|| vec![0.0; len]);
        // dW[o, c, a, b] = M_g[(kh-1-a, c), (o, kw-1-b)]: the transposed convolution's
        // kernel row and column a and b are the forward's rotated by 180°.
        let mut dw = vec![0.0f32; len];
        for group in 0..g.groups {
            let m = &m[group * kh * ig * og * kw..];
            for o in 0..og {
                for c in 0..ig {
                    for a in 0..kh {
                        for b in 0..kw {
                            let (row, column) = ((kh - 1 - a) * ig + c, o * kw + kw - 1 - b);
                            dw[(((group * og + o) * ig + c) * kh + a) * kw + b] =
                                m[column * kh * ig + row];
                        }
                    }
                }
            }
        }
        dw
    });
    Some((dx, dw))
}

/// A backward pass split over the threads: `range(first image, images, their part of dx,
/// gemm parallelism)` for each range of [chunk_images], in parallel, each returning its
/// images' part of a gradient summed over the batch (a weight gradient, or none).
///
/// Returns dx (`None` unless `want_dx`; each range's part not yet written when the range gets
/// it, [written_parts]) and the ranges' parts summed (`None` for an empty batch).
///
/// # Safety
/// With `want_dx`, `range` must write every float of its part of dx.
pub(super) unsafe fn over_image_ranges(
    g: &Geometry,
    want_dx: bool,
    range: impl Fn(usize, usize, Option<&mut [MaybeUninit<f32>]>, gemm::Parallelism) -> Vec<f32>
    + Sync
    + Send,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let [image_in, _] = g.image_lens();
    let chunks = chunk_images(g.batch);
    let parallelism = inner_parallelism(chunks.len());
    let per = chunks.first().map_or(1, |c| c.1);
    let run = |i: usize, dx: Option<&mut [MaybeUninit<f32>]>| {
        let (first, images) = chunks[i];
        range(first, images, dx, parallelism)
    };
    let (dx, partials) = match want_dx {
        // SAFETY: per the caller.
        true => unsafe {
            written_parts(g.batch * image_in, per * image_in, |i, dx| run(i, Some(dx)))
        },
        false => (
            Vec::new(),
            super::map_indices(chunks.len(), |i| run(i, None)),
        ),
    };
    let mut partials = partials.into_iter();
    let sum = partials.next().map(|mut sum| {
        for p in partials {
            simd::add_assign(&mut sum, &p);
        }
        sum
    });
    (want_dx.then_some(dx), sum)
}

/// One image `x [in, P]` as `[groups, kh, in_g, D]`: row `(group, a, c)` holds channel
/// `c`'s pixels shifted `shifts[a]` along, zero where no pixel lands, so that one gemm over the
/// planes' `D` rows gives every kernel row's product (see [backward]). The zeros are not
/// written: `stacked` was zeroed once, and only this function writes it, always where the
/// pixels land.
fn stack(x: &[f32], g: &Geometry, shifts: &[usize], stacked: &mut [f32]) {
    let (ig, kh) = (g.in_channels / g.groups, shifts.len());
    let pixels = x.len() / g.in_channels.max(1);
    let depth = stacked.len() / (kh * g.in_channels).max(1);
    for (r, row) in stacked.chunks_exact_mut(depth).enumerate() {
        let (group, a, c) = (r / (kh * ig), r / ig % kh, r % ig);
        let shift = shifts[a];
        row[shift..shift + pixels].copy_from_slice(&x[(group * ig + c) * pixels..][..pixels]);
    }
}
