//! A residual block's join on flex, `relu(F(x) + shortcut(x))`, as one operation with its own
//! backward pass, for the identity shortcut and option A's (subsample, append zero channels).
//!
//! flex runs burn's add, ReLU and ReLU backward each as a pass over the activations on the
//! one thread that drives the autodiff graph, while the others wait: perf put them at 3.6 %
//! of a ResNet-20 training step's samples (batch 128, 2 threads). Option A's strided slice,
//! zero channels and concatenation (and their backward: a zero tensor and a strided write)
//! were another 2.2 %, on that thread too. Here the forward is one pass and the backward one
//! pass per input, all over every thread. The backward masks the upstream gradient with the
//! output (kept: it is the next layer's input anyway) and hands it to `F(x)` as is and to `x`
//! through the shortcut's adjoint.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::activation::relu;
use burn::tensor::{DType, Device, Shape, Tensor, TensorData};

use super::train_conv::floats;
use super::zeroed::{written_parts, zeroed_parts};
use crate::model::block::parameter_free_shortcut;

/// Floats per task: below ~16 K a task costs more than it saves.
const PART: usize = 16_384;

/// `relu(a + shortcut(x))`, the shortcut option A's (`x[:, :, ::stride, ::stride]` with zero
/// channels appended up to `a`'s; the identity when shapes agree): one fused operation on
/// flex in `f32`, else burn's.
///
/// # Shapes
/// - `a`, output: `[batch, channels, ⌈height / stride⌉, ⌈width / stride⌉]`
/// - `x`: `[batch, x_channels ≤ channels, height, width]`
pub(crate) fn add_relu(a: Tensor<4>, x: Tensor<4>, stride: usize) -> Tensor<4> {
    if !takes_fused_path(&a, &x, stride) {
        let channels = a.dims()[1];
        return relu(a + parameter_free_shortcut(x, stride, channels));
    }
    Tensor::from_dispatch(<Dispatch as FusedAddRelu>::add_relu(
        a.into_dispatch(),
        x.into_dispatch(),
        stride,
    ))
}

/// flex (with autodiff or without), `f32` on both sides, and shapes that option A joins.
fn takes_fused_path(a: &Tensor<4>, x: &Tensor<4>, stride: usize) -> bool {
    let device = a.device();
    x.device() == device
        && device.without_autodiff() == Device::flex()
        && a.dtype() == DType::F32
        && x.dtype() == DType::F32
        && Join::new(a.dims(), x.dims(), stride).is_some()
}

/// The shapes of a join: `a` `[n, c, oh, ow]`, `x` `[n, xc, h, w]`.
#[derive(Clone, Copy, Debug)]
struct Join {
    a: [usize; 4],
    x: [usize; 4],
    stride: usize,
}

impl Join {
    fn new(a: [usize; 4], x: [usize; 4], stride: usize) -> Option<Self> {
        let down = |len: usize| len.div_ceil(stride.max(1));
        let fits =
            stride >= 1 && a[0] == x[0] && x[1] <= a[1] && a[2] == down(x[2]) && a[3] == down(x[3]);
        fits.then_some(Self { a, x, stride })
    }

    fn is_identity(&self) -> bool {
        self.a == self.x
    }

    fn plane(&self) -> usize {
        self.a[2] * self.a[3]
    }

    fn x_plane(&self) -> usize {
        self.x[2] * self.x[3]
    }

    /// Whole `a` planes per task, at least one.
    fn planes_per_part(&self) -> usize {
        (PART / self.plane().max(1)).max(1)
    }

    /// `f(index of the plane in a, its part of out, index of x's plane under it or none)` for
    /// each of `out`'s planes, `first` the index in `a` of `out`'s first plane.
    fn planes<T>(&self, first: usize, out: &mut [T], f: impl Fn(usize, &mut [T], Option<usize>)) {
        for (k, out) in out.chunks_mut(self.plane().max(1)).enumerate() {
            let p = first + k;
            let (n, c) = (p / self.a[1], p % self.a[1]);
            f(p, out, (c < self.x[1]).then(|| n * self.x[1] + c));
        }
    }

    /// The offset in an `x` plane of the pixel that output pixel `(r, q)` subsamples.
    fn under(&self, r: usize, q: usize) -> usize {
        r * self.stride * self.x[3] + q * self.stride
    }
}

/// `relu(a + shortcut(x))` with a backward pass of its own.
#[backend_extension(Flex, Autodiff)]
pub trait FusedAddRelu: Backend {
    fn add_relu(a: FloatTensor<Self>, x: FloatTensor<Self>, stride: usize) -> FloatTensor<Self>;
}

impl FusedAddRelu for Flex {
    fn add_relu(a: FlexTensor, x: FlexTensor, stride: usize) -> FlexTensor {
        forward(&a, &x, join(&a, &x, stride))
    }
}

fn join(a: &FlexTensor, x: &FlexTensor, stride: usize) -> Join {
    let dims = |t: &FlexTensor| -> [usize; 4] { t.shape().dims() };
    Join::new(dims(a), dims(x), stride).expect("takes_fused_path checked the shapes")
}

fn forward(a: &FlexTensor, x: &FlexTensor, j: Join) -> FlexTensor {
    let (a_floats, x_floats) = (floats(a), floats(x));
    let (plane, per) = (j.plane(), j.planes_per_part());
    // SAFETY: every plane of each part is written whole, in each of the three cases.
    let (y, _) = unsafe {
        written_parts(a_floats.len(), per * plane, |i, out| {
            j.planes(i * per, out, |p, out, under| {
                let a = &a_floats[p * plane..][..out.len()];
                match under {
                    Some(xp) if j.stride == 1 => {
                        let x = &x_floats[xp * plane..][..plane];
                        for ((o, &a), &x) in out.iter_mut().zip(a).zip(x) {
                            o.write((a + x).max(0.0));
                        }
                    }
                    Some(xp) => {
                        let x = &x_floats[xp * j.x_plane()..][..j.x_plane()];
                        for (r, out) in out.chunks_mut(j.a[3]).enumerate() {
                            for (q, o) in out.iter_mut().enumerate() {
                                o.write((a[r * j.a[3] + q] + x[j.under(r, q)]).max(0.0));
                            }
                        }
                    }
                    None => {
                        for (o, &a) in out.iter_mut().zip(a) {
                            o.write(a.max(0.0));
                        }
                    }
                }
            });
        })
    };
    FlexTensor::from_data(TensorData::new(y, a.shape()))
}

/// `dy` where `y > 0`, zero elsewhere: the gradient of `a`, and of `x` through the shortcut.
fn masked(y: &[f32], dy: &[f32]) -> Vec<f32> {
    // SAFETY: `y` and `dy` are as long as the buffer, so the zip writes each part whole.
    let (g, _) = unsafe {
        written_parts(y.len(), PART, |i, out| {
            let (y, dy) = (&y[i * PART..], &dy[i * PART..]);
            for ((o, &y), &g) in out.iter_mut().zip(y).zip(dy) {
                o.write(if y > 0.0 { g } else { 0.0 });
            }
        })
    };
    g
}

/// The shortcut's adjoint: `g`'s first `x` channels put back where they were subsampled
/// from, zero elsewhere.
fn unsubsampled(g: &[f32], j: Join) -> Vec<f32> {
    let (x_plane, plane) = (j.x_plane(), j.plane());
    let per = (PART / x_plane.max(1)).max(1);
    let (dx, _) = zeroed_parts(j.x.iter().product(), per * x_plane, |i, out| {
        for (k, dx) in out.chunks_mut(x_plane.max(1)).enumerate() {
            let xp = i * per + k;
            let (n, c) = (xp / j.x[1], xp % j.x[1]);
            let g = &g[(n * j.a[1] + c) * plane..][..plane];
            for (r, g) in g.chunks(j.a[3]).enumerate() {
                for (q, &g) in g.iter().enumerate() {
                    dx[j.under(r, q)] = g;
                }
            }
        }
    });
    dx
}

impl<C: CheckpointStrategy> FusedAddRelu for Autodiff<Flex, C> {
    fn add_relu(a: FloatTensor<Self>, x: FloatTensor<Self>, stride: usize) -> FloatTensor<Self> {
        let j = join(a.primitive(), x.primitive(), stride);
        let y = forward(a.primitive(), x.primitive(), j);
        match AddReluBackward
            .prepare::<C>([a.node(), x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((y.clone(), j), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// The backward pass of [FusedAddRelu::add_relu]; its state is the output and the shapes.
#[derive(Debug)]
struct AddReluBackward;

impl Backward<Flex, 2> for AddReluBackward {
    type State = (FlexTensor, Join);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (y, j) = ops.state;
        let g = masked(&floats(&y), &floats(&dy));
        let [node_a, node_x] = ops.parents;
        let through_shortcut = (node_x.is_some() && !j.is_identity()).then(|| unsubsampled(&g, j));
        let g = FlexTensor::from_data(TensorData::new(g, y.shape()));
        if let Some(node) = node_x {
            let dx = match through_shortcut {
                Some(dx) => FlexTensor::from_data(TensorData::new(dx, Shape::new(j.x))),
                None => g.clone(),
            };
            grads.register::<Flex>(node.id, dx);
        }
        if let Some(node) = node_a {
            grads.register::<Flex>(node.id, g);
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    /// Output and both inputs' gradients against burn's `relu(a + shortcut(x))` on flex, for
    /// the identity and option A (odd sizes, channels appended with and without
    /// subsampling), with sums that are exactly zero in places (ReLU's gradient there is zero
    /// for both).
    #[test]
    fn matches_burn_forward_and_gradients() {
        let device = Device::flex().autodiff();
        let random =
            |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        for (a_shape, x_shape, stride) in [
            ([2, 3, 5, 7], [2, 3, 5, 7], 1),
            ([4, 16, 32, 32], [4, 16, 32, 32], 1),
            ([1, 1, 1, 1], [1, 1, 1, 1], 1),
            ([2, 4, 3, 4], [2, 3, 5, 7], 2),
            ([4, 32, 16, 16], [4, 16, 32, 32], 2),
            ([2, 5, 4, 4], [2, 3, 4, 4], 1),
        ] {
            let x = random(x_shape).require_grad();
            let shortcut = |x| parameter_free_shortcut(x, stride, a_shape[1]);
            // a = -shortcut(x) on a third of the elements: their sums are exactly zero.
            let ties = random(a_shape).greater_elem(0.5);
            let a = random(a_shape).mask_where(ties, shortcut(x.clone()).neg());
            let a = Tensor::<4>::from_data(a.into_data(), &device).require_grad();
            assert!(takes_fused_path(&a, &x, stride));
            let expected = relu(a.clone() + shortcut(x.clone()));
            let actual = add_relu(a.clone(), x.clone(), stride);
            let close = Tolerance::absolute(1e-6);
            actual
                .to_data()
                .assert_approx_eq::<f32>(&expected.to_data(), close);
            let upstream = random(a_shape);
            let g_expected = (expected * upstream.clone()).sum().backward();
            let g_actual = (actual * upstream).sum().backward();
            for t in [&a, &x] {
                let grad = |g| t.grad(g).unwrap().into_data();
                grad(&g_actual).assert_approx_eq::<f32>(&grad(&g_expected), close);
            }
        }
    }

    /// Shapes option A does not join, other dtypes and devices keep burn's.
    #[test]
    fn leaves_the_rest_to_burn() {
        let flex = Device::flex();
        let x = Tensor::<4>::zeros([2, 3, 4, 4], &flex);
        assert!(takes_fused_path(&x, &x, 1));
        assert!(!takes_fused_path(
            &x,
            &Tensor::zeros([2, 3, 4, 5], &flex),
            1
        ));
        assert!(!takes_fused_path(
            &x,
            &Tensor::zeros([2, 4, 4, 4], &flex),
            1
        ));
        assert!(!takes_fused_path(
            &Tensor::zeros([2, 3, 2, 2], &flex),
            &x,
            1
        ));
        assert!(takes_fused_path(&Tensor::zeros([2, 3, 2, 2], &flex), &x, 2));
        assert!(!takes_fused_path(&x, &x, 0));
        let half = x.clone().cast(DType::F16);
        assert!(!takes_fused_path(&half, &half, 1));
    }
}
