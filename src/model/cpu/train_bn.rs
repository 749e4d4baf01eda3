//! Batch normalization in training on flex, optionally fused with the ReLU after it:
//! [super::batch_norm]'s kernels as a burn backend extension with its own backward pass.
//! burn's `BatchNorm` keeps its parameters and running statistics; only the arithmetic moves.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::BatchNorm;
use burn::tensor::activation::relu;
use burn::tensor::{DType, Device, Shape, Tensor, TensorData};

use super::batch_norm::{self, Dims, Statistics};
use super::train_conv::floats;

/// `bn.forward(x)`: one fused operation on flex in training, else burn's.
///
/// # Shapes
/// - `x`, output: `[batch, channels, height, width]`
pub(crate) fn normalize(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    fused_or_burn(bn, x, false)
}

/// `relu(bn.forward(x))`: one fused operation on flex in training, else burn's.
///
/// # Shapes
/// - `x`, output: `[batch, channels, height, width]`
pub(crate) fn normalize_relu(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    fused_or_burn(bn, x, true)
}

fn fused_or_burn(bn: &BatchNorm, x: Tensor<4>, then_relu: bool) -> Tensor<4> {
    if !takes_fused_path(bn, &x) {
        let y = bn.forward(x);
        return if then_relu { relu(y) } else { y };
    }
    let (y, mean, variance) = <Dispatch as FusedBatchNorm>::batch_norm_train(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        bn.epsilon,
        then_relu,
    );
    // The running statistics as burn's `BatchNorm::forward_train` updates them.
    let (mean, variance) = (
        Tensor::<1>::from_dispatch(mean),
        Tensor::<1>::from_dispatch(variance),
    );
    let m = bn.momentum;
    let device = mean.device();
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    let running_mean = running_mean.mul_scalar(1.0 - m).add(mean.mul_scalar(m));
    let running_var = running_var.mul_scalar(1.0 - m).add(variance.mul_scalar(m));
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
    Tensor::from_dispatch(y)
}

/// The fused path takes what burn's `BatchNorm` would run in training (an autodiff device,
/// the layer not frozen) when it is flex in f32 and the channels match.
fn takes_fused_path(bn: &BatchNorm, x: &Tensor<4>) -> bool {
    let device = x.device();
    let training = device.is_autodiff() && bn.training.is_enabled();
    let [channels] = bn.gamma.dims();
    training
        && device.without_autodiff() == Device::flex()
        && x.dtype() == DType::F32
        && bn.gamma.val().dtype() == DType::F32
        && bn.beta.val().dtype() == DType::F32
        && x.dims()[1] == channels
}

/// Batch normalization with the batch's own statistics (and ReLU after it when `relu`),
/// returning the output, the mean and the biased variance.
#[backend_extension(Flex, Autodiff)]
pub trait FusedBatchNorm: Backend {
    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl FusedBatchNorm for Flex {
    fn batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (y, s) = forward(&x, &gamma, &beta, epsilon, relu);
        let channels = s.mean.len();
        (y, vector(s.mean, channels), vector(s.variance, channels))
    }
}

/// Output and statistics of the forward pass.
fn forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
    relu: bool,
) -> (FlexTensor, Statistics) {
    let d = dims(x);
    let x_floats = floats(x);
    let s = batch_norm::statistics(&x_floats, d, epsilon);
    let y = batch_norm::forward(&x_floats, d, &s, &floats(gamma), &floats(beta), relu);
    let y = FlexTensor::from_data(TensorData::new(y, x.shape()));
    (y, s)
}

impl<C: CheckpointStrategy> FusedBatchNorm for Autodiff<Flex, C> {
    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x_value, gamma_value, beta_value) = (
            x.primitive().clone(),
            gamma.primitive().clone(),
            beta.primitive().clone(),
        );
        let (y, s) = forward(&x_value, &gamma_value, &beta_value, epsilon, relu);
        let channels = s.mean.len();
        let mean = vector(s.mean.clone(), channels);
        let variance = vector(s.variance.clone(), channels);
        let y = match BatchNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = State {
                    x: prep.checkpoint(&x),
                    gamma: gamma_value,
                    beta: beta_value,
                    statistics: s,
                    relu,
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (
            y,
            FloatTensor::<Self>::new(mean),
            FloatTensor::<Self>::new(variance),
        )
    }
}

/// What the backward pass needs of the forward.
#[derive(Debug, Clone)]
struct State {
    x: NodeId,
    gamma: FlexTensor,
    beta: FlexTensor,
    statistics: Statistics,
    relu: bool,
}

/// The backward pass of [FusedBatchNorm::batch_norm_train].
#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    type State = State;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let state = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(state.x);
        let d = dims(&x);
        let (dx, dgamma, dbeta) = batch_norm::backward(
            &floats(&x),
            &floats(&dy),
            d,
            &state.statistics,
            &floats(&state.gamma),
            &floats(&state.beta),
            state.relu,
        );
        if let Some(node) = node_x {
            grads.register::<Flex>(
                node.id,
                FlexTensor::from_data(TensorData::new(dx, x.shape())),
            );
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, vector(dgamma, d.channels));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, vector(dbeta, d.channels));
        }
    }
}

/// `[batch, channels, positions]` of an NC… tensor.
fn dims(x: &FlexTensor) -> Dims {
    let shape = x.shape();
    Dims {
        batch: shape[0],
        channels: shape[1],
        plane: shape.iter().skip(2).product(),
    }
}

fn vector(data: Vec<f32>, len: usize) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, Shape::new([len])))
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    /// `[batch, channels, height, width]`, and an offset added to the input (a mean far from
    /// zero tests the statistics' rounding).
    const CASES: [([usize; 4], f32); 5] = [
        ([4, 16, 8, 8], 0.0),
        ([1, 3, 5, 7], 0.0),
        ([3, 5, 1, 1], 0.0),
        ([2, 6, 17, 3], 50.0),
        ([5, 4, 6, 6], -3.0),
    ];

    /// A layer with γ, β and running statistics away from their initial values.
    fn layer(channels: usize, device: &Device) -> BatchNorm {
        let mut bn = BatchNormConfig::new(channels).init(device);
        let random =
            |mean: f64| Tensor::<1>::random([channels], Distribution::Normal(mean, 0.5), device);
        bn.gamma = burn::module::Param::from_tensor(random(1.0));
        bn.beta = burn::module::Param::from_tensor(random(0.0));
        bn.running_mean = burn::module::RunningState::new(random(0.0));
        bn.running_var = burn::module::RunningState::new(random(2.0).abs());
        bn
    }

    /// An independent copy (a clone's running statistics are shared with the original).
    fn copy(bn: &BatchNorm, device: &Device) -> BatchNorm {
        let mut other = BatchNormConfig::new(bn.gamma.dims()[0]).init(device);
        let value = |t: Tensor<1>| Tensor::<1>::from_data(t.into_data(), device);
        other.gamma = burn::module::Param::from_tensor(value(bn.gamma.val()));
        other.beta = burn::module::Param::from_tensor(value(bn.beta.val()));
        other.running_mean = burn::module::RunningState::new(value(bn.running_mean.value()));
        other.running_var = burn::module::RunningState::new(value(bn.running_var.value()));
        other
    }

    /// Output, running statistics and the gradients of x, γ and β against burn's
    /// `BatchNorm` (then `relu`) and its autodiff on flex, for a random upstream gradient.
    #[test]
    fn matches_burn_forward_gradients_and_running_statistics() {
        let device = Device::flex().autodiff();
        for (shape, offset) in CASES {
            for then_relu in [false, true] {
                let bn = layer(shape[1], &device);
                let reference = copy(&bn, &device);
                let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 2.0), &device)
                    .add_scalar(offset)
                    .require_grad();
                assert!(takes_fused_path(&bn, &x));
                let expected = reference.forward(x.clone());
                let expected = if then_relu { relu(expected) } else { expected };
                let actual = if then_relu {
                    normalize_relu(&bn, x.clone())
                } else {
                    normalize(&bn, x.clone())
                };
                let close = Tolerance::absolute(1e-4);
                let case = format!("{shape:?} + {offset}, relu {then_relu}");
                let data = |t: Tensor<1>| t.into_data();
                actual
                    .to_data()
                    .assert_approx_eq::<f32>(&expected.to_data(), close);
                data(bn.running_mean.value_sync())
                    .assert_approx_eq::<f32>(&data(reference.running_mean.value_sync()), close);
                data(bn.running_var.value_sync()).assert_approx_eq::<f32>(
                    &data(reference.running_var.value_sync()),
                    Tolerance::absolute(1e-3),
                );
                let upstream = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device);
                let g_expected = (expected * upstream.clone()).sum().backward();
                let g_actual = (actual * upstream).sum().backward();
                let dx = |g| x.grad(g).unwrap().into_data();
                dx(&g_actual).assert_approx_eq::<f32>(&dx(&g_expected), close);
                for (ours, theirs) in [
                    (bn.gamma.val(), reference.gamma.val()),
                    (bn.beta.val(), reference.beta.val()),
                ] {
                    let a = ours.grad(&g_actual).unwrap().into_data();
                    let e = theirs.grad(&g_expected).unwrap().into_data();
                    assert_eq!(a.shape(), e.shape(), "{case}");
                    a.assert_approx_eq::<f32>(&e, Tolerance::absolute(1e-3));
                }
            }
        }
    }

    /// Evaluation (no autodiff), a frozen layer and another device keep burn's `BatchNorm`.
    #[test]
    fn leaves_the_rest_to_burn() {
        let train = Device::flex().autodiff();
        let x = Tensor::<4>::zeros([2, 3, 4, 4], &train);
        assert!(takes_fused_path(&layer(3, &train), &x));
        assert!(!takes_fused_path(&layer(3, &train).no_grad().freeze(), &x));
        assert!(!takes_fused_path(&layer(4, &train), &x));
        let eval = Device::flex();
        assert!(!takes_fused_path(
            &layer(3, &eval),
            &Tensor::zeros([2, 3, 4, 4], &eval)
        ));
    }
}
