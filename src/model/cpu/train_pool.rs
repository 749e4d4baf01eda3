//! The ImageNet stem's max pooling on flex under autodiff (training, and inference with
//! separate BN), as one operation with its own backward pass.
//!
//! flex's pooling with indices compares output by output, with a NaN check per tap, and its
//! backward scatters one float at a time: perf put the two at 7.6 % of a ResNet-18 training
//! step's samples (batch 16, 2 threads). Here each output row takes its taps one at a time
//! over the whole row (a loop the compiler vectorises), in the order burn and PyTorch scan a
//! window, so ties go to the same tap: the first maximum, or the last NaN. The backward adds
//! each output's gradient onto the input position that won, plane by plane over the threads.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::{DType, Device, Shape, Tensor, TensorData};

use super::nchw::inside;
use super::train_conv::floats;
use super::wide::{self, LANES};
use super::zeroed::{written_parts, zeroed_parts};

/// Floats of output per task, at least a plane.
const PART: usize = 16_384;

/// `pool.forward(x)`: through [FusedMaxPool] on flex in `f32` for the geometries it covers
/// (explicit padding, no ceil mode), else burn's.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`
/// - output: `[batch, channels, oh, ow]`
pub(crate) fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let on_flex = x.device().without_autodiff() == Device::flex() && x.dtype() == DType::F32;
    match Pool::new(pool, x.dims()).filter(|_| on_flex) {
        Some(p) => {
            Tensor::from_dispatch(<Dispatch as FusedMaxPool>::max_pool(x.into_dispatch(), p))
        }
        None => pool.forward(x),
    }
}

/// A pooling's geometry on an input `[n, c, h, w]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pool {
    input: [usize; 4],
    output: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    /// Top and left.
    padding: [usize; 2],
}

impl Pool {
    fn new(pool: &MaxPool2d, input: [usize; 4]) -> Option<Self> {
        let PaddingConfig2d::Explicit(top, left, bottom, right) = pool.padding else {
            return None;
        };
        let ([kh, kw], [sh, sw], [dh, dw]) = (pool.kernel_size, pool.stride, pool.dilation);
        // What burn itself would refuse or round up (ceil mode) stays burn's.
        if pool.ceil_mode || sh == 0 || sw == 0 || kh == 0 || kw == 0 || dh == 0 || dw == 0 {
            return None;
        }
        if top > kh / 2 || left > kw / 2 || bottom > kh / 2 || right > kw / 2 {
            return None;
        }
        let size = |len: usize, lo: usize, hi: usize, k: usize, d: usize, s: usize| {
            (len + lo + hi)
                .checked_sub((k - 1) * d + 1)
                .map(|span| span / s + 1)
        };
        let oh = size(input[2], top, bottom, kh, dh, sh)?;
        let ow = size(input[3], left, right, kw, dw, sw)?;
        Some(Self {
            input,
            output: [oh, ow],
            kernel: [kh, kw],
            stride: [sh, sw],
            dilation: [dh, dw],
            padding: [top, left],
        })
    }

    fn planes(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn in_plane(&self) -> usize {
        self.input[2] * self.input[3]
    }

    fn out_plane(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// Whole planes per task.
    fn per_part(&self) -> usize {
        (PART / self.out_plane().max(1)).max(1)
    }
}

/// Max pooling with its own backward pass.
#[backend_extension(Flex, Autodiff)]
pub trait FusedMaxPool: Backend {
    fn max_pool(x: FloatTensor<Self>, pool: Pool) -> FloatTensor<Self>;
}

impl FusedMaxPool for Flex {
    fn max_pool(x: FlexTensor, p: Pool) -> FlexTensor {
        forward(&x, p).0
    }
}

/// The output, and for each task's planes the index in its input plane of each output's
/// winning tap.
fn forward(x: &FlexTensor, p: Pool) -> (FlexTensor, Vec<Vec<u32>>) {
    let x = floats(x);
    let (per, in_plane, out_plane) = (p.per_part(), p.in_plane(), p.out_plane());
    let [oh, ow] = p.output;
    // SAFETY: each output row is written whole, first tap or not (`best` starts at -inf).
    let (y, winners) = unsafe {
        written_parts(p.planes() * out_plane, per * out_plane, |i, out| {
            let mut winners = vec![0u32; out.len()];
            let mut best = vec![0.0f32; ow];
            for (k, (out, won)) in out
                .chunks_mut(out_plane)
                .zip(winners.chunks_mut(out_plane))
                .enumerate()
            {
                let plane = &x[(i * per + k) * in_plane..][..in_plane];
                for oy in 0..oh {
                    let won = &mut won[oy * ow..][..ow];
                    row(plane, &p, oy, &mut best, won);
                    for (o, &b) in out[oy * ow..][..ow].iter_mut().zip(&best) {
                        o.write(b);
                    }
                }
            }
            winners
        })
    };
    let [n, c, ..] = p.input;
    let y = FlexTensor::from_data(TensorData::new(y, Shape::new([n, c, oh, ow])));
    (y, winners)
}

/// Output row `oy` of one plane: the maxima in `best`, their input indices in `won`. Taps in
/// burn's and PyTorch's scan order (kernel row, then column), the output columns innermost,
/// compiled for the CPU's widest vectors ([wide::run]).
fn row(plane: &[f32], p: &Pool, oy: usize, best: &mut [f32], won: &mut [u32]) {
    wide::run(Row {
        plane,
        p,
        oy,
        best,
        won,
    })
}

struct Row<'a> {
    plane: &'a [f32],
    p: &'a Pool,
    oy: usize,
    best: &'a mut [f32],
    won: &'a mut [u32],
}

impl wide::Kernel for Row<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let (p, best, won) = (self.p, self.best, self.won);
        let ([h, w], [kh, kw]) = ([p.input[2], p.input[3]], p.kernel);
        let ([sh, sw], [dh, dw], [top, left]) = (p.stride, p.dilation, p.padding);
        best.fill(f32::NEG_INFINITY);
        // No tap inside the input (dilated kernels over the padding): no winner.
        won.fill(u32::MAX);
        for ky in 0..kh {
            let Some(iy) = (self.oy * sh + ky * dh)
                .checked_sub(top)
                .filter(|&iy| iy < h)
            else {
                continue;
            };
            let line = &self.plane[iy * w..][..w];
            for kx in 0..kw {
                let (x0, x1) = inside(best.len(), kx, sw, dw, left, w);
                let first = x0 * sw + kx * dw - left;
                let (best, won) = (&mut best[x0..x1], &mut won[x0..x1]);
                let at = (iy * w + first) as u32;
                match sw {
                    1 => tap::<1>(best, won, &line[first..], at),
                    2 => tap::<2>(best, won, &line[first..], at),
                    _ => {
                        for (q, (b, o)) in best.iter_mut().zip(won.iter_mut()).enumerate() {
                            take(b, o, line[first + q * sw], at + (q * sw) as u32);
                        }
                    }
                }
            }
        }
    }
}

/// One tap over an output row: `line[q * S]` against output `q`'s maximum so far, in
/// [LANES]-column chunks (the stem's 56-column rows left most of a plain loop to its scalar
/// remainder: 5.7 % of a ResNet-18 step), the mask as bits, then the rest one at a time.
#[inline(always)]
fn tap<const S: usize>(best: &mut [f32], won: &mut [u32], line: &[f32], at: u32) {
    let n = best.len().min(won.len());
    let whole = n.min(line.len() / S);
    let mut q = 0;
    while q + LANES <= whole {
        let src = &line[q * S..][..(LANES - 1) * S + 1];
        let mut v = [0.0f32; LANES];
        for l in 0..LANES {
            v[l] = src[l * S];
        }
        let (b, o) = (&mut best[q..q + LANES], &mut won[q..q + LANES]);
        let mut keep = [0u32; LANES];
        for l in 0..LANES {
            keep[l] = if v[l] > b[l] || v[l].is_nan() {
                u32::MAX
            } else {
                0
            };
        }
        for l in 0..LANES {
            b[l] = f32::from_bits((v[l].to_bits() & keep[l]) | (b[l].to_bits() & !keep[l]));
        }
        let base = at + (q * S) as u32;
        for l in 0..LANES {
            o[l] = ((base + (l * S) as u32) & keep[l]) | (o[l] & !keep[l]);
        }
        q += LANES;
    }
    for q in q..n {
        take(&mut best[q], &mut won[q], line[q * S], at + (q * S) as u32);
    }
}

/// `v` wins over `best` when greater, or NaN (burn's and PyTorch's rule); as selects, not
/// branches.
#[inline(always)]
fn take(best: &mut f32, won: &mut u32, v: f32, at: u32) {
    let wins = v > *best || v.is_nan();
    *best = if wins { v } else { *best };
    *won = if wins { at } else { *won };
}

impl<C: CheckpointStrategy> FusedMaxPool for Autodiff<Flex, C> {
    fn max_pool(x: FloatTensor<Self>, p: Pool) -> FloatTensor<Self> {
        let (y, winners) = forward(x.primitive(), p);
        match MaxPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((winners, p), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// The backward pass of [FusedMaxPool::max_pool]; its state is the winners and the geometry.
#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    type State = (Vec<Vec<u32>>, Pool);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let [Some(node)] = ops.parents else {
            return;
        };
        let (winners, p) = ops.state;
        let dy = floats(&dy);
        let (per, in_plane, out_plane) = (p.per_part(), p.in_plane(), p.out_plane());
        let (dx, _) = zeroed_parts(p.planes() * in_plane, per * in_plane, |i, dx| {
            let dy = &dy[i * per * out_plane..];
            for (k, dx) in dx.chunks_mut(in_plane.max(1)).enumerate() {
                let (won, dy) = (
                    &winners[i][k * out_plane..][..out_plane],
                    &dy[k * out_plane..],
                );
                for (&at, &g) in won.iter().zip(dy) {
                    if let Some(d) = dx.get_mut(at as usize) {
                        *d += g;
                    }
                }
            }
        });
        grads.register::<Flex>(
            node.id,
            FlexTensor::from_data(TensorData::new(dx, Shape::new(p.input))),
        );
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    /// Output and input gradient against burn's pooling and its autodiff on flex: the
    /// ImageNet stem's 3x3/2 pad 1 on even and odd maps, a 2x2/2 unpadded one, a dilated one
    /// and asymmetric padding, on an input that is zero in places (after a ReLU: ties in
    /// most windows, which must go to the same tap), a 1x1 map, and rows of 35 and 37 output
    /// columns (whole chunks of lanes, then the rest) at strides 2 and 1.
    #[test]
    fn matches_burn_forward_and_gradient() {
        let device = Device::flex().autodiff();
        let cases = [
            ([3, 3], [2, 2], [1, 1, 1, 1], [1, 1], [2, 3, 12, 12]),
            ([3, 3], [2, 2], [1, 1, 1, 1], [1, 1], [1, 2, 11, 9]),
            ([2, 2], [2, 2], [0, 0, 0, 0], [1, 1], [2, 2, 8, 7]),
            ([3, 3], [1, 1], [1, 1, 1, 1], [2, 2], [1, 2, 9, 9]),
            ([3, 2], [2, 1], [1, 0, 0, 1], [1, 1], [2, 1, 7, 6]),
            ([3, 3], [2, 2], [1, 1, 1, 1], [1, 1], [1, 1, 1, 1]),
            ([3, 3], [2, 2], [1, 1, 1, 1], [1, 1], [2, 2, 9, 70]),
            ([3, 3], [1, 1], [1, 1, 1, 1], [1, 1], [1, 2, 5, 37]),
        ];
        for (kernel, stride, [t, l, b, r], dilation, shape) in cases {
            let pool = MaxPool2dConfig::new(kernel)
                .with_strides(stride)
                .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
                .with_dilation(dilation)
                .init();
            let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let x = Tensor::<4>::from_data(x.clamp_min(0.0).into_data(), &device).require_grad();
            assert!(
                Pool::new(&pool, shape).is_some(),
                "{shape:?} takes this path"
            );
            let expected = pool.forward(x.clone());
            let actual = max_pool2d(&pool, x.clone());
            let exact = Tolerance::absolute(0.0);
            actual
                .to_data()
                .assert_approx_eq::<f32>(&expected.to_data(), exact);
            let upstream = Tensor::random(expected.dims(), Distribution::Normal(0.0, 1.0), &device);
            let g_expected = (expected * upstream.clone()).sum().backward();
            let g_actual = (actual * upstream).sum().backward();
            let grad = |g| x.grad(g).unwrap().into_data();
            grad(&g_actual).assert_approx_eq::<f32>(&grad(&g_expected), Tolerance::absolute(1e-6));
        }
    }

    /// Ceil mode and `Same` padding keep burn's.
    #[test]
    fn leaves_the_rest_to_burn() {
        let shape = [1, 1, 8, 8];
        let ceil = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_ceil_mode(true)
            .init();
        assert!(Pool::new(&ceil, shape).is_none());
        let same = MaxPool2dConfig::new([3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init();
        assert!(Pool::new(&same, shape).is_none());
    }
}
