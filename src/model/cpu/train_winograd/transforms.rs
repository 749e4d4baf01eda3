//! The four transforms of [super]'s blocks, each over [wide::Lane]s of 16 neighbouring tiles
//! and compiled for the CPU's widest vectors ([wide::run]): the input's and the output's, and
//! their adjoints for the backward.

use super::super::nchw::Geometry;
use super::super::simd;
use super::super::wide::{self, LANES, add, load, neg, store, sub};
use super::{Tiles, padded, plane};

const ZERO: wide::Lane = [0.0; LANES];

/// `(image, tile row in it, offset of the row's first tile in the block)` of the block's tile
/// rows.
#[inline(always)]
fn block_rows(t: &Tiles, first: usize, rows: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    let (per_image, cols) = (t.rows, t.cols);
    (0..rows).map(move |r| ((first + r) / per_image, (first + r) % per_image, r * cols))
}

/// `line` placed `left` columns into a zeroed row of `pad.len()`, split into its even and odd
/// columns; an absent line is all zeros (padding).
#[inline(always)]
fn split(line: Option<&[f32]>, left: usize, pad: &mut [f32], even: &mut [f32], odd: &mut [f32]) {
    pad.fill(0.0);
    if let Some(line) = line {
        let start = left.min(pad.len());
        let len = line.len().min(pad.len() - start);
        pad[start..start + len].copy_from_slice(&line[..len]);
    }
    for ((pair, e), o) in pad.chunks_exact(2).zip(even).zip(odd) {
        (*e, *o) = (pair[0], pair[1]);
    }
}

/// The arguments of a transform: its source, the geometry, the tiles, the block's first tile
/// row and row count, and its destination.
pub(super) type Args<'a> = (
    &'a [f32],
    &'a Geometry,
    &'a Tiles,
    usize,
    usize,
    &'a mut [f32],
);

/// Transform `WHICH` of a block, compiled for the CPU's widest vectors ([wide::run]).
pub(super) fn transform<const WHICH: u8>(args: Args) {
    wide::run(Transform::<WHICH>(args));
}

/// One of the four transforms, as a [wide::Kernel].
struct Transform<'a, const WHICH: u8>(Args<'a>);

pub(super) const INPUT: u8 = 0;
pub(super) const OUTPUT: u8 = 1;
pub(super) const OUTPUT_GRAD: u8 = 2;
pub(super) const INPUT_GRAD: u8 = 3;

impl<const WHICH: u8> wide::Kernel for Transform<'_, WHICH> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        match WHICH {
            INPUT => input_kernel(self.0),
            OUTPUT => output_kernel(self.0),
            OUTPUT_GRAD => output_grad_kernel(self.0),
            _ => input_grad_kernel(self.0),
        }
    }
}

/// `V = Bᵀ d B` of the block's tiles into `v` (16 [plane]s of `[in, tiles]`), with
/// `Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`.
#[inline(always)]
fn input_kernel((x, g, t, first, rows, v): Args) {
    let (c, h, w) = (g.in_channels, g.height, g.width);
    let (tiles, cols, n) = (rows * t.cols, t.cols, padded(t.cols + 1));
    let plane = plane(c, tiles);
    let [top, left, ..] = g.padding;
    // The patch rows' even and odd columns: patch column 2tx + 1 is odd[tx].
    let (mut d, mut pad) = (vec![0.0f32; 8 * n], vec![0.0; 2 * n]);
    for ch in 0..c {
        for (image, ty, at) in block_rows(t, first, rows) {
            let src = &x[(image * c + ch) * h * w..][..h * w];
            for (i, d) in d.chunks_exact_mut(2 * n).enumerate() {
                let iy = (2 * ty + i).checked_sub(top).filter(|&y| y < h);
                let (even, odd) = d.split_at_mut(n);
                split(iy.map(|y| &src[y * w..][..w]), left, &mut pad, even, odd);
            }
            // No closures here: they would not be compiled wide ([wide::Kernel]).
            for tx in (0..cols).step_by(LANES) {
                // Patch columns 0..4 of row i: even[tx], odd[tx], even[tx + 1], odd[tx + 1].
                let mut p = [[ZERO; 4]; 4];
                for (i, p) in p.iter_mut().enumerate() {
                    let line = &d[i * 2 * n..][..2 * n];
                    *p = [
                        load(line, tx),
                        load(line, n + tx),
                        load(line, tx + 1),
                        load(line, n + tx + 1),
                    ];
                }
                // Bᵀ d over the patch's rows, then · B along each row.
                for i in 0..4 {
                    let mut r = [ZERO; 4];
                    for (j, r) in r.iter_mut().enumerate() {
                        *r = match i {
                            0 => sub(p[0][j], p[2][j]),
                            1 => add(p[1][j], p[2][j]),
                            2 => sub(p[2][j], p[1][j]),
                            _ => sub(p[1][j], p[3][j]),
                        };
                    }
                    let out = [
                        sub(r[0], r[2]),
                        add(r[1], r[2]),
                        sub(r[2], r[1]),
                        sub(r[1], r[3]),
                    ];
                    for (j, value) in out.into_iter().enumerate() {
                        store(v, (4 * i + j) * plane + ch * tiles + at + tx, value);
                    }
                }
            }
        }
    }
}

/// `Y = Aᵀ M A` of the block's tiles (`m`: 16 [plane]s of `[out, tiles]`) into the output `y`
/// `[images, out, oh, ow]`, with `Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`.
#[inline(always)]
fn output_kernel((m, g, t, first, rows, y): Args) {
    let k = g.out_channels;
    let [oh, ow] = g.output_size().unwrap_or([0, 0]);
    let (tiles, cols, n) = (rows * t.cols, t.cols, padded(t.cols));
    let plane = plane(k, tiles);
    // The tile row's two output rows, even and odd columns.
    let mut out = vec![0.0f32; 4 * n];
    for ch in 0..k {
        for (image, ty, at) in block_rows(t, first, rows) {
            for tx in (0..cols).step_by(LANES) {
                let mut q = [ZERO; 16];
                for (xi, q) in q.iter_mut().enumerate() {
                    *q = load(m, xi * plane + ch * tiles + at + tx);
                }
                // Aᵀ M: two rows of four.
                let mut am = [[ZERO; 4]; 2];
                for j in 0..4 {
                    am[0][j] = add(q[j], add(q[4 + j], q[8 + j]));
                    am[1][j] = sub(q[4 + j], add(q[8 + j], q[12 + j]));
                }
                for (a, r) in am.iter().enumerate() {
                    store(&mut out, 2 * a * n + tx, add(r[0], add(r[1], r[2])));
                    store(&mut out, (2 * a + 1) * n + tx, sub(r[1], add(r[2], r[3])));
                }
            }
            for a in 0..2.min(oh - 2 * ty) {
                let plane = &mut y[(image * k + ch) * oh * ow..][..oh * ow];
                let row = &mut plane[(2 * ty + a) * ow..][..ow];
                let (even, odd) = out[2 * a * n..][..2 * n].split_at(n);
                for ((pair, e), o) in row.chunks_exact_mut(2).zip(even).zip(odd) {
                    (pair[0], pair[1]) = (*e, *o);
                }
                if ow % 2 == 1 {
                    row[ow - 1] = even[cols - 1];
                }
            }
        }
    }
}

/// `dM = A dY Aᵀ` of the block's tiles into `dm` (16 [plane]s of `[out, tiles]`): the
/// adjoint of [output_kernel], `dy` being `[images, out, oh, ow]`.
#[inline(always)]
fn output_grad_kernel((dy, g, t, first, rows, dm): Args) {
    let k = g.out_channels;
    let [oh, ow] = g.output_size().unwrap_or([0, 0]);
    let (tiles, cols, n) = (rows * t.cols, t.cols, padded(t.cols));
    let plane = plane(k, tiles);
    // The tile row's two dY rows, even and odd columns.
    let (mut d, mut pad) = (vec![0.0f32; 4 * n], vec![0.0f32; 2 * n]);
    for ch in 0..k {
        for (image, ty, at) in block_rows(t, first, rows) {
            let src = &dy[(image * k + ch) * oh * ow..][..oh * ow];
            for (a, d) in d.chunks_exact_mut(2 * n).enumerate() {
                let line = (2 * ty + a < oh).then(|| &src[(2 * ty + a) * ow..][..ow]);
                let (even, odd) = d.split_at_mut(n);
                split(line, 0, &mut pad, even, odd);
            }
            for tx in (0..cols).step_by(LANES) {
                let (e0, o0) = (load(&d, tx), load(&d, n + tx));
                let (e1, o1) = (load(&d, 2 * n + tx), load(&d, 3 * n + tx));
                // A = [[1, 0], [1, 1], [1, -1], [0, -1]] down the rows, then Aᵀ along them.
                let ad = [
                    (e0, o0),
                    (add(e0, e1), add(o0, o1)),
                    (sub(e0, e1), sub(o0, o1)),
                    (neg(e1), neg(o1)),
                ];
                for (i, (e, o)) in ad.into_iter().enumerate() {
                    for (j, value) in [e, add(e, o), sub(e, o), neg(o)].into_iter().enumerate() {
                        store(dm, (4 * i + j) * plane + ch * tiles + at + tx, value);
                    }
                }
            }
        }
    }
}

/// `dx += Σ B dV Bᵀ` over the block's tiles (`dv`: 16 [plane]s of `[in, tiles]`), each added
/// onto its patch of `dx` `[images, in, h, w]`, padding dropped: the adjoint of
/// [input_kernel].
#[inline(always)]
fn input_grad_kernel((dv, g, t, first, rows, dx): Args) {
    let (c, h, w) = (g.in_channels, g.height, g.width);
    let (tiles, cols, n) = (rows * t.cols, t.cols, padded(t.cols + 1));
    let plane = plane(c, tiles);
    let [top, left, ..] = g.padding;
    // Per patch row: its columns 0 and 1 at tile tx (even[tx], odd[tx]), and 2 and 3 at
    // tx + 1 (the next tile's even and odd columns); then the row interleaved.
    let mut lines = vec![0.0f32; 16 * n];
    let mut pad = vec![0.0f32; 2 * n];
    for ch in 0..c {
        for (image, ty, at) in block_rows(t, first, rows) {
            for tx in (0..cols).step_by(LANES) {
                let mut q = [ZERO; 16];
                for (xi, q) in q.iter_mut().enumerate() {
                    *q = load(dv, xi * plane + ch * tiles + at + tx);
                }
                // B = (Bᵀ)ᵀ down the patch's rows: dV0, dV1 - dV2 + dV3, dV1 + dV2 - dV0,
                // -dV3; then · Bᵀ along each row, the same combination of its columns.
                let mut bdv = [[ZERO; 4]; 4];
                for j in 0..4 {
                    bdv[0][j] = q[j];
                    bdv[1][j] = add(sub(q[4 + j], q[8 + j]), q[12 + j]);
                    bdv[2][j] = sub(add(q[4 + j], q[8 + j]), q[j]);
                    bdv[3][j] = neg(q[12 + j]);
                }
                for (i, r) in bdv.iter().enumerate() {
                    let out = [
                        r[0],
                        add(sub(r[1], r[2]), r[3]),
                        sub(add(r[1], r[2]), r[0]),
                        neg(r[3]),
                    ];
                    let lines = &mut lines[4 * i * n..][..4 * n];
                    for (j, value) in out.into_iter().enumerate() {
                        // Columns 2 and 3 go one tile on.
                        store(lines, j * n + tx + j / 2, value);
                    }
                }
            }
            let plane = &mut dx[(image * c + ch) * h * w..][..h * w];
            for i in 0..4 {
                let Some(iy) = (2 * ty + i).checked_sub(top).filter(|&y| y < h) else {
                    continue;
                };
                let lines = &mut lines[4 * i * n..][..4 * n];
                // What the lanes wrote past the row's tiles is not part of it.
                let (c01, c23) = lines.split_at_mut(2 * n);
                c01[cols] = 0.0;
                c01[n + cols] = 0.0;
                c23[0] = 0.0;
                c23[n] = 0.0;
                let (even, odd) = c01.split_at(n);
                let (even2, odd2) = c23.split_at(n);
                let parts = even.iter().zip(odd).zip(even2.iter().zip(odd2));
                for (pair, ((e, o), (e2, o2))) in pad.chunks_exact_mut(2).zip(parts).take(cols + 1)
                {
                    (pair[0], pair[1]) = (e + e2, o + o2);
                }
                let start = left.min(pad.len());
                let len = w.min(pad.len() - start);
                simd::add_assign(&mut plane[iy * w..][..len], &pad[start..start + len]);
            }
        }
    }
}
