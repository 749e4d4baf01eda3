//! A convolution and its two gradients on NCHW `f32` slices, image by image: im2col rows
//! `[in * kh * kw, out positions]` (none for a pointwise convolution), then
//!
//! - forward: `y = W · cols`;
//! - weight gradient: `dW += dy · colsᵀ`, summed over the images;
//! - input gradient: `dcols = Wᵀ · dy`, scattered back by col2im.
//!
//! One gemm per image and group, with the images split over the threads. The layout stays
//! the one burn's BatchNorm and ReLU work in, so nothing is transposed between layers.

pub(crate) use super::geometry::Geometry;
use super::rows;
use super::zeroed::{written_parts, zeroed};
use core::mem::MaybeUninit;

/// `conv(x, w)`: `x` is `[batch, in, height, width]`, `w` `[out, in / groups, kh, kw]`; the
/// result is `[batch, out, oh, ow]`.
pub(crate) fn forward(x: &[f32], w: &[f32], g: &Geometry) -> Vec<f32> {
    let [image_in, image_out] = g.image_lens();
    if rows::applies(g) {
        let weights = rows::weights(w, g);
        // SAFETY: `rows::product` writes each image's output whole.
        return unsafe {
            per_image_chunks(image_out, g, |first, chunk, parallelism| {
                let mut cols = vec![0.0f32; rows::cols_len(g)];
                for (i, y) in chunk.chunks_mut(image_out).enumerate() {
                    rows::im2col(&x[(first + i) * image_in..][..image_in], g, &mut cols);
                    rows::product(&cols, &weights, g, y, parallelism);
                }
            })
        };
    }
    // SAFETY: each image's groups' gemms, which do not read their destination, cover its
    // output.
    unsafe {
        per_image_chunks(image_out, g, |first, chunk, parallelism| {
            let mut cols = scratch(g);
            for (i, y) in chunk.chunks_mut(image_out).enumerate() {
                let cols = image_cols(&x[(first + i) * image_in..][..image_in], g, &mut cols);
                products(g, |group, m, k, n| {
                    // y_g [out_g, P] = W_g [out_g, K] · cols_g [K, P]
                    let (w, c) = (&w[group * m * k..], &cols[group * k * n..]);
                    gemm(
                        m,
                        n,
                        k,
                        &mut y[group * m * n..],
                        [1, n],
                        false,
                        w,
                        [1, k],
                        c,
                        [1, n],
                        parallelism,
                    );
                });
            }
        })
    }
}

/// The gradient of the loss with respect to `w`, given `dy` (`[batch, out, oh, ow]`).
pub(crate) fn weight_grad(x: &[f32], dy: &[f32], g: &Geometry) -> Vec<f32> {
    let [image_in, image_out] = g.image_lens();
    let len = g.out_channels * g.depth();
    // Each range of images sums into its own `dWᵀ` per group, `[depth, out_g]` (column-major
    // `dW_g`). Written that way the gemm gathers its strided operand from `dy` (out_g x P)
    // rather than from the im2col matrix (depth x P, 9x larger for a 3x3).
    let partial = |first: usize, images: usize, parallelism| {
        let mut dwt = vec![0.0f32; len];
        let mut cols = scratch(g);
        for i in first..first + images {
            let cols = image_cols(&x[i * image_in..][..image_in], g, &mut cols);
            let dy = &dy[i * image_out..][..image_out];
            products(g, |group, m, k, n| {
                // dW_g [out_g, K] += dy_g [out_g, P] · cols_gᵀ [P, K], stored column-major
                let (d, c) = (&dy[group * m * n..], &cols[group * k * n..]);
                gemm(
                    m,
                    k,
                    n,
                    &mut dwt[group * m * k..],
                    [m, 1],
                    true,
                    d,
                    [1, n],
                    c,
                    [n, 1],
                    parallelism,
                );
            });
        }
        dwt
    };
    let chunks = chunk_images(g.batch);
    let parallelism = inner_parallelism(chunks.len());
    #[cfg(parallel)]
    let partials: Vec<Vec<f32>> = {
        use rayon::prelude::*;
        chunks
            .par_iter()
            .map(|&(first, n)| partial(first, n, parallelism))
            .collect()
    };
    #[cfg(not(parallel))]
    let partials: Vec<Vec<f32>> = chunks
        .iter()
        .map(|&(first, n)| partial(first, n, parallelism))
        .collect();
    let mut partials = partials.into_iter();
    let mut dwt = partials.next().unwrap_or_else(|| vec![0.0; len]);
    for p in partials {
        dwt.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    // Back to `[out, depth]` row-major, group by group.
    let (m, k) = (g.out_channels / g.groups, g.depth());
    let mut dw = vec![0.0f32; len];
    for (dw, dwt) in dw.chunks_mut(m * k).zip(dwt.chunks(m * k)) {
        for (o, row) in dw.chunks_mut(k).enumerate() {
            row.iter_mut()
                .zip(dwt[o..].iter().step_by(m))
                .for_each(|(d, t)| *d = *t);
        }
    }
    dw
}

/// The gradient of the loss with respect to `x`, given `dy` (`[batch, out, oh, ow]`).
pub(crate) fn input_grad(w: &[f32], dy: &[f32], g: &Geometry) -> Vec<f32> {
    let [image_in, image_out] = g.image_lens();
    // SAFETY: each part is zeroed whole first (col2im adds to it).
    unsafe {
        per_image_chunks(image_in, g, |first, chunk, parallelism| {
            let chunk = zeroed(chunk);
            let mut cols = scratch(g);
            for (i, dx) in chunk.chunks_mut(image_in).enumerate() {
                let dy = &dy[(first + i) * image_out..][..image_out];
                // dcols_g [K, P] = W_gᵀ [K, out_g] · dy_g [out_g, P]
                let dcols = |dst: &mut [f32]| {
                    products(g, |group, m, k, n| {
                        let (w, d) = (&w[group * m * k..], &dy[group * m * n..]);
                        gemm(
                            k,
                            n,
                            m,
                            &mut dst[group * k * n..],
                            [1, n],
                            false,
                            w,
                            [k, 1],
                            d,
                            [1, n],
                            parallelism,
                        );
                    })
                };
                match g.is_pointwise() {
                    true => dcols(dx),
                    false => {
                        dcols(&mut cols);
                        col2im(&cols, g, dx);
                    }
                }
            }
        })
    }
}

/// `f(group, out_g, depth, positions)` for each group.
pub(super) fn products(g: &Geometry, mut f: impl FnMut(usize, usize, usize, usize)) {
    let (m, k, n) = (g.out_channels / g.groups, g.depth(), g.positions());
    (0..g.groups).for_each(|group| f(group, m, k, n));
}

/// One image's im2col matrix: the image itself for a pointwise convolution, else built in
/// `scratch`.
pub(super) fn image_cols<'a>(x: &'a [f32], g: &Geometry, scratch: &'a mut [f32]) -> &'a [f32] {
    match g.is_pointwise() {
        true => x,
        false => {
            im2col(x, g, scratch);
            scratch
        }
    }
}

pub(super) fn scratch(g: &Geometry) -> Vec<f32> {
    match g.is_pointwise() {
        true => Vec::new(),
        false => vec![0.0; g.cols_len()],
    }
}

/// A gemm's destination: floats, or memory not yet written, which it may only overwrite.
pub(super) trait Destination {
    /// Whether the gemm may read it.
    const READABLE: bool;
}

impl Destination for f32 {
    const READABLE: bool = true;
}

impl Destination for MaybeUninit<f32> {
    const READABLE: bool = false;
}

/// `dst [m, n] = (read ? dst : 0) + lhs [m, k] · rhs [k, n]`; strides as `[column, row]`.
/// With `read` false the gemm only writes `dst` (gemm 0.19 zeroes `alpha` and skips every read
/// of the destination), which may then be memory not yet written.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm<D: Destination>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [D],
    [dst_cs, dst_rs]: [usize; 2],
    read: bool,
    lhs: &[f32],
    [lhs_cs, lhs_rs]: [usize; 2],
    rhs: &[f32],
    [rhs_cs, rhs_rs]: [usize; 2],
    parallelism: gemm::Parallelism,
) {
    let last = |cs: usize, rs: usize, rows: usize, cols: usize| match rows * cols {
        0 => 0,
        _ => (rows - 1) * rs + (cols - 1) * cs + 1,
    };
    assert!(
        D::READABLE || !read,
        "gemm: reading a destination not yet written"
    );
    // The slices must hold every element the strides reach: the gemm reads raw pointers.
    assert!(
        dst.len() >= last(dst_cs, dst_rs, m, n),
        "gemm: destination too short"
    );
    assert!(
        lhs.len() >= last(lhs_cs, lhs_rs, m, k),
        "gemm: left operand too short"
    );
    assert!(
        rhs.len() >= last(rhs_cs, rhs_rs, k, n),
        "gemm: right operand too short"
    );
    // SAFETY: the assertions above keep every access inside the three slices and read no
    // destination not yet written, and `dst` is borrowed mutably, so it aliases neither
    // operand. (`D` is `f32` or `MaybeUninit<f32>`, which has its layout.)
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr() as *mut f32,
            dst_cs as isize,
            dst_rs as isize,
            read,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Image ranges `(first, count)`, one per thread (one range without `cfg(parallel)`: build.rs).
pub(super) fn chunk_images(batch: usize) -> Vec<(usize, usize)> {
    #[cfg(parallel)]
    let threads = rayon::current_num_threads().max(1);
    #[cfg(not(parallel))]
    let threads = 1;
    let per = batch.div_ceil(threads).max(1);
    (0..batch)
        .step_by(per)
        .map(|first| (first, per.min(batch - first)))
        .collect()
}

/// One thread per range of images when there are enough images for every thread; otherwise
/// the gemm itself splits over the threads (batch 1 inference).
pub(super) fn inner_parallelism(chunks: usize) -> gemm::Parallelism {
    #[cfg(parallel)]
    {
        let threads = rayon::current_num_threads();
        if chunks < threads {
            return gemm::Parallelism::Rayon(threads);
        }
    }
    let _ = chunks;
    gemm::Parallelism::None
}

/// A `[batch, image_len]` output made by `f(first image, its images' part, gemm parallelism)`
/// over [chunk_images], each part not yet written ([written_parts]; [zeroed] zeroes one).
///
/// # Safety
/// `f` must write every float of its part.
pub(super) unsafe fn per_image_chunks(
    image_len: usize,
    g: &Geometry,
    f: impl Fn(usize, &mut [MaybeUninit<f32>], gemm::Parallelism) + Sync + Send,
) -> Vec<f32> {
    let chunks = chunk_images(g.batch);
    let parallelism = inner_parallelism(chunks.len());
    let per = chunks.first().map_or(1, |c| c.1);
    // SAFETY: per the caller.
    let (out, _) = unsafe {
        written_parts(g.batch * image_len, per * image_len, |i, part| {
            f(i * per, part, parallelism)
        })
    };
    out
}

/// The output positions `lo..hi` whose kernel tap `t` falls inside an input of `size`.
#[inline]
pub(super) fn inside(
    out: usize,
    t: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
    size: usize,
) -> (usize, usize) {
    let offset = t * dilation;
    // o * stride + offset - pad must lie in 0..size.
    let lo = pad.saturating_sub(offset).div_ceil(stride);
    let hi = (size + pad)
        .checked_sub(offset)
        .map_or(0, |end| end.div_ceil(stride));
    (lo.min(out), hi.min(out).max(lo.min(out)))
}

/// One image `[in, h, w]` to its im2col matrix `[in * kh * kw, oh * ow]`.
fn im2col(x: &[f32], g: &Geometry, cols: &mut [f32]) {
    let [oh, ow] = g.output_size().unwrap_or([0, 0]);
    let [kh, kw] = g.kernel;
    let ([sh, sw], [dh, dw]) = (g.stride, g.dilation);
    let (h, w) = (g.height, g.width);
    for (row, cols) in cols.chunks_mut(oh * ow).enumerate() {
        let (c, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
        let plane = &x[c * h * w..][..h * w];
        let (y0, y1) = inside(oh, i, sh, dh, g.padding[0], h);
        let (x0, x1) = inside(ow, j, sw, dw, g.padding[1], w);
        cols[..y0 * ow].fill(0.0);
        cols[y1 * ow..].fill(0.0);
        if sw == 1 && ow == w && y1 > y0 && x1 > x0 {
            // Stride 1 along a row and an output as wide as the input (CIFAR's 3x3s): the
            // row is the plane shifted by a constant offset, so its valid span is one copy,
            // then the columns that wrapped around from the neighbouring line are zeroed.
            let shift = ((i * dh) as isize - g.padding[0] as isize) * w as isize
                + (j * dw) as isize
                - g.padding[1] as isize;
            let (start, end) = (y0 * ow + x0, (y1 - 1) * ow + x1);
            let from = (start as isize + shift) as usize;
            cols[start..end].copy_from_slice(&plane[from..from + end - start]);
            for out in cols[y0 * ow..y1 * ow].chunks_mut(ow) {
                out[..x0].fill(0.0);
                out[x1..].fill(0.0);
            }
            continue;
        }
        for oy in y0..y1 {
            let line = &plane[(oy * sh + i * dh - g.padding[0]) * w..][..w];
            let out = &mut cols[oy * ow..][..ow];
            match x1 > x0 {
                true => gather_line(out, line, (x0, x1), x0 * sw + j * dw - g.padding[1], sw),
                false => out.fill(0.0),
            }
        }
    }
}

/// One im2col line: `out[x0..x1]` from `line` starting at `first` with stride `sw`, zeros
/// around it.
fn gather_line(out: &mut [f32], line: &[f32], (x0, x1): (usize, usize), first: usize, sw: usize) {
    out[..x0].fill(0.0);
    out[x1..].fill(0.0);
    strided_copy(&mut out[x0..x1], &line[first..], sw);
}

/// `out[i] = line[i * sw]` for each `i` of `out`.
pub(super) fn strided_copy(out: &mut [f32], line: &[f32], sw: usize) {
    match sw {
        1 => out.copy_from_slice(&line[..out.len()]),
        // Indexed with a constant stride the compiler vectorises the gather (the stride-2
        // convolutions' im2col); through `step_by` it copied one float at a time.
        2 => {
            // Pairs while `line` holds them whole (a bound the compiler can see), then the
            // last float alone.
            let pairs = out.len().min(line.len() / 2);
            for i in 0..pairs {
                out[i] = line[2 * i];
            }
            for i in pairs..out.len() {
                out[i] = line[2 * i];
            }
        }
        _ => {
            for (o, v) in out.iter_mut().zip(line.iter().step_by(sw)) {
                *o = *v;
            }
        }
    }
}

/// The adjoint of [im2col]: adds each column entry back onto the input position it came from.
fn col2im(cols: &[f32], g: &Geometry, dx: &mut [f32]) {
    let [oh, ow] = g.output_size().unwrap_or([0, 0]);
    let [kh, kw] = g.kernel;
    let ([sh, sw], [dh, dw]) = (g.stride, g.dilation);
    let (h, w) = (g.height, g.width);
    for (row, cols) in cols.chunks(oh * ow).enumerate() {
        let (c, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
        let plane = &mut dx[c * h * w..][..h * w];
        let (y0, y1) = inside(oh, i, sh, dh, g.padding[0], h);
        let (x0, x1) = inside(ow, j, sw, dw, g.padding[1], w);
        if x1 <= x0 {
            continue;
        }
        let first = x0 * sw + j * dw - g.padding[1];
        for oy in y0..y1 {
            let line = &mut plane[(oy * sh + i * dh - g.padding[0]) * w..][..w];
            let col = &cols[oy * ow + x0..oy * ow + x1];
            match sw {
                // Contiguous: the add vectorizes.
                1 => line[first..first + col.len()]
                    .iter_mut()
                    .zip(col)
                    .for_each(|(d, v)| *d += v),
                _ => line[first..]
                    .iter_mut()
                    .step_by(sw)
                    .zip(col)
                    .for_each(|(d, v)| *d += v),
            }
        }
    }
}
