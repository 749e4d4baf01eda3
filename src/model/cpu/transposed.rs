//! The backward pass of a stride-1 convolution from one im2col matrix per image, that of
//! `dy` under the transposed convolution.
//!
//! With stride 1 the input gradient is itself a convolution: of `dy`, padded by what the
//! forward's kernel overhung, with each group's weight transposed and rotated by 180°
//! ([flipped]). Its im2col rows `cols[(o, t'), q] = dy[o, q - offset(t)]` (t' the rotated tap
//! t) serve the weight gradient as well:
//!
//! - `dx = W' · cols`, one gemm per image, instead of `Wᵀ · dy` (a product as large as the
//!   im2col matrix, written out) and col2im's scatter-add over it;
//! - `dW[o, i, t] = Σ_q x[i, q] · cols[(o, t'), q]`, instead of a second im2col, of `x`.
//!
//! Both products of an image run while its im2col matrix is in cache.

use super::nchw::{Geometry, chunk_images, gemm, image_cols, inner_parallelism, products, scratch};

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
) -> Option<(Option<Vec<f32>>, Option<Vec<f32>>)> {
    let t = transposed(g)?;
    let weight = flipped(w, g);
    let [image_in, image_out] = g.image_lens();
    let chunks = chunk_images(g.batch);
    let parallelism = inner_parallelism(chunks.len());
    let per = chunks.first().map_or(1, |c| c.1);
    let mut dx = vec![0.0f32; if want_dx { g.batch * image_in } else { 0 }];
    let mut slices: Vec<Option<&mut [f32]>> = match want_dx {
        true => dx.chunks_mut((per * image_in).max(1)).map(Some).collect(),
        false => Vec::new(),
    };
    slices.resize_with(chunks.len(), || None);
    // Each range of images sums `M_g [in_g, out_g · taps]` (column-major) over its images.
    let len = w.len();
    let chunk = |(&(first, images), mut dx): (&(usize, usize), Option<&mut [f32]>)| {
        let mut m = vec![0.0f32; if want_dw { len } else { 0 }];
        let mut cols = scratch(&t);
        for i in 0..images {
            let x = &x[(first + i) * image_in..][..image_in];
            let cols = image_cols(&dy[(first + i) * image_out..][..image_out], &t, &mut cols);
            products(&t, |group, rows, depth, n| {
                let c = &cols[group * depth * n..];
                if let Some(dx) = dx.as_deref_mut() {
                    // dx_g [in_g, P] = W'_g [in_g, depth] · cols_g [depth, P]
                    gemm(
                        rows,
                        n,
                        depth,
                        &mut dx[i * image_in + group * rows * n..],
                        [1, n],
                        false,
                        &weight[group * rows * depth..],
                        [1, depth],
                        c,
                        [1, n],
                        parallelism,
                    );
                }
                if want_dw {
                    // M_g [in_g, depth] += x_g [in_g, P] · cols_gᵀ [P, depth], stored
                    // column-major: the gemm gathers its strided operand from x, not from
                    // the 9x larger im2col matrix.
                    gemm(
                        rows,
                        depth,
                        n,
                        &mut m[group * depth * rows..],
                        [rows, 1],
                        true,
                        &x[group * rows * n..],
                        [1, n],
                        c,
                        [n, 1],
                        parallelism,
                    );
                }
            });
        }
        m
    };
    #[cfg(not(target_family = "wasm"))]
    let partials: Vec<Vec<f32>> = {
        use rayon::prelude::*;
        chunks.par_iter().zip(slices).map(chunk).collect()
    };
    #[cfg(target_family = "wasm")]
    let partials: Vec<Vec<f32>> = chunks.iter().zip(slices).map(chunk).collect();
    let dw = want_dw.then(|| {
        let mut partials = partials.into_iter();
        let mut m = partials.next().unwrap_or_else(|| vec![0.0; len]);
        for p in partials {
            m.iter_mut().zip(p).for_each(|(a, b)| *a += b);
        }
        // dW[o, i, t] = M_g[i, (o, taps - 1 - t)], group by group.
        let (og, ig) = (g.out_channels / g.groups, g.in_channels / g.groups);
        let taps = g.kernel[0] * g.kernel[1];
        let mut dw = vec![0.0f32; len];
        for (dw, m) in dw.chunks_mut(og * ig * taps).zip(m.chunks(og * ig * taps)) {
            for o in 0..og {
                for i in 0..ig {
                    for t in 0..taps {
                        dw[(o * ig + i) * taps + t] = m[(o * taps + taps - 1 - t) * ig + i];
                    }
                }
            }
        }
        dw
    });
    Some((want_dx.then_some(dx), dw))
}
