//! A residual block's join on flex, `relu(F(x) + shortcut)`, as one operation with its own
//! backward pass.
//!
//! flex runs burn's add, ReLU and ReLU backward each as a pass over the activations on the
//! one thread that drives the autodiff graph, while the others wait: perf put them at 3.6 %
//! of a ResNet-20 training step's samples (batch 128, 2 threads). Here the forward is one
//! pass and the backward one pass, both over every thread. The backward masks the upstream
//! gradient with the output (kept: it is the next layer's input anyway) and hands the result
//! to both inputs, as an add does.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::activation::relu;
use burn::tensor::{DType, Device, Tensor, TensorData};

use super::train_conv::floats;
use super::zeroed::zeroed_parts;

/// Floats per task: below ~16 K a task costs more than it saves.
const PART: usize = 16_384;

/// `relu(a + b)`: one fused operation on flex in `f32`, else burn's.
///
/// # Shapes
/// - `a`, `b`, output: `[batch, channels, height, width]`
pub(crate) fn add_relu(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    if !takes_fused_path(&a, &b) {
        return relu(a + b);
    }
    Tensor::from_dispatch(<Dispatch as FusedAddRelu>::add_relu(
        a.into_dispatch(),
        b.into_dispatch(),
    ))
}

/// flex (with autodiff or without), `f32` on both sides and the same shape.
fn takes_fused_path(a: &Tensor<4>, b: &Tensor<4>) -> bool {
    let device = a.device();
    b.device() == device
        && device.without_autodiff() == Device::flex()
        && a.dtype() == DType::F32
        && b.dtype() == DType::F32
        && a.dims() == b.dims()
}

/// `relu(a + b)` with a backward pass of its own.
#[backend_extension(Flex, Autodiff)]
pub trait FusedAddRelu: Backend {
    fn add_relu(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl FusedAddRelu for Flex {
    fn add_relu(a: FlexTensor, b: FlexTensor) -> FlexTensor {
        forward(&a, &b)
    }
}

fn forward(a: &FlexTensor, b: &FlexTensor) -> FlexTensor {
    let (a_floats, b_floats) = (floats(a), floats(b));
    let (y, _) = zeroed_parts(a_floats.len(), PART, |i, out| {
        let (a, b) = (&a_floats[i * PART..], &b_floats[i * PART..]);
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            *o = (a + b).max(0.0);
        }
    });
    FlexTensor::from_data(TensorData::new(y, a.shape()))
}

/// `dy` where `y > 0`, zero elsewhere: the gradient of both inputs.
fn masked(y: &[f32], dy: &[f32]) -> Vec<f32> {
    let (g, _) = zeroed_parts(y.len(), PART, |i, out| {
        let (y, dy) = (&y[i * PART..], &dy[i * PART..]);
        for ((o, &y), &g) in out.iter_mut().zip(y).zip(dy) {
            *o = if y > 0.0 { g } else { 0.0 };
        }
    });
    g
}

impl<C: CheckpointStrategy> FusedAddRelu for Autodiff<Flex, C> {
    fn add_relu(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        let y = forward(a.primitive(), b.primitive());
        match AddReluBackward
            .prepare::<C>([a.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(y.clone(), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// The backward pass of [FusedAddRelu::add_relu]; its state is the output.
#[derive(Debug)]
struct AddReluBackward;

impl Backward<Flex, 2> for AddReluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let y = ops.state;
        let g = masked(&floats(&y), &floats(&dy));
        let g = FlexTensor::from_data(TensorData::new(g, y.shape()));
        let [node_a, node_b] = ops.parents;
        if let Some(node) = node_a {
            grads.register::<Flex>(node.id, g.clone());
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, g);
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    /// Output and both inputs' gradients against burn's `relu(a + b)` on flex, with sums
    /// that are exactly zero in places (ReLU's gradient there is zero in both).
    #[test]
    fn matches_burn_forward_and_gradients() {
        let device = Device::flex().autodiff();
        for shape in [[2, 3, 5, 7], [4, 16, 32, 32], [1, 1, 1, 1]] {
            let random = || Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let a = random().require_grad();
            // b = -a on a third of the elements: their sums are exactly zero.
            let ties = random().greater_elem(0.5);
            let b = random()
                .mask_where(ties, a.clone().neg().detach())
                .require_grad();
            assert!(takes_fused_path(&a, &b));
            let expected = relu(a.clone() + b.clone());
            let actual = add_relu(a.clone(), b.clone());
            let close = Tolerance::absolute(1e-6);
            actual
                .to_data()
                .assert_approx_eq::<f32>(&expected.to_data(), close);
            let upstream = random();
            let g_expected = (expected * upstream.clone()).sum().backward();
            let g_actual = (actual * upstream).sum().backward();
            for x in [&a, &b] {
                let grad = |g| x.grad(g).unwrap().into_data();
                grad(&g_actual).assert_approx_eq::<f32>(&grad(&g_expected), close);
            }
        }
    }

    /// Other shapes and devices keep burn's.
    #[test]
    fn leaves_the_rest_to_burn() {
        let flex = Device::flex();
        let x = Tensor::<4>::zeros([2, 3, 4, 4], &flex);
        assert!(takes_fused_path(&x, &x));
        assert!(!takes_fused_path(&x, &Tensor::zeros([2, 3, 4, 5], &flex)));
        let half = x.clone().cast(DType::F16);
        assert!(!takes_fused_path(&half, &half));
    }
}
