//! The convolution of every unfolded net on flex (training, and inference with separate BN):
//! [super::nchw]'s kernels as a burn backend extension, with its own backward pass.
//!
//! What it replaces, per convolution of a training step (ResNet-20, batch 128, 2 threads):
//! flex's forward converts NCHW to NHWC and back; its input gradient is a direct transposed
//! convolution; and the weight gradient is burn's generic one, a convolution whose kernel is
//! the whole output map (32x32), so flex sees a 3x3 "output" and runs it on one thread.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{DType, Device, Shape, Tensor, TensorData};

use super::nchw::{self, Geometry};
use super::train_winograd::{self, Pass};
use super::transposed;

/// Floats of im2col scratch one thread may hold (64 MB); larger convolutions (a stem at
/// 640x640) keep burn's.
const MAX_COLS: usize = 16 << 20;

/// `conv.forward(x)`: in 16 bits inside an [amp](crate::model::amp) scope, else through [nchw]
/// when `x` is on flex, else burn's.
///
/// # Shapes
/// - `x`: `[batch, in, height, width]`
/// - output: `[batch, out, oh, ow]`
pub(crate) fn convolve(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if let Some(y) = crate::model::amp::convolve(conv, &x) {
        return y;
    }
    let Some(geometry) = geometry(conv, &x) else {
        return conv.forward(x);
    };
    let weight = conv.weight.val();
    let y = Tensor::<4>::from_dispatch(<Dispatch as NchwConv>::nchw_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        geometry,
    ));
    match &conv.bias {
        Some(bias) => y + bias.val().reshape([1, geometry.out_channels, 1, 1]),
        None => y,
    }
}

/// `x`'s convolution geometry when this path takes it.
fn geometry(conv: &Conv2d, x: &Tensor<4>) -> Option<Geometry> {
    if x.device().without_autodiff() != Device::flex() || x.dtype() != DType::F32 {
        return None;
    }
    if conv.weight.val().dtype() != DType::F32 {
        return None;
    }
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Same => return None,
    };
    let [batch, in_channels, height, width] = x.dims();
    let [out_channels, in_per_group, kh, kw] = conv.weight.dims();
    let g = Geometry {
        batch,
        in_channels,
        height,
        width,
        out_channels,
        kernel: [kh, kw],
        stride: conv.stride,
        dilation: conv.dilation,
        padding,
        groups: conv.groups,
    };
    // Anything odd (channels that do not match, a kernel larger than the input) goes to
    // burn's, which reports it.
    let fits = g.is_valid() && in_per_group * conv.groups == in_channels;
    (fits && batch > 0 && g.cols_len() <= MAX_COLS).then_some(g)
}

/// The convolution as a backend operation: flex runs it, autodiff over flex differentiates
/// it with [ConvBackward].
#[backend_extension(Flex, Autodiff)]
pub trait NchwConv: Backend {
    /// `conv(x, weight)` without bias.
    fn nchw_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        g: Geometry,
    ) -> FloatTensor<Self>;
}

impl NchwConv for Flex {
    fn nchw_conv2d(x: FlexTensor, weight: FlexTensor, g: Geometry) -> FlexTensor {
        let (x, weight) = (floats(&x), floats(&weight));
        let y = match train_winograd::applies(&g, Pass::Forward) {
            true => train_winograd::forward(&x, &weight, &g),
            false => nchw::forward(&x, &weight, &g),
        };
        let [oh, ow] = g.output_size().unwrap_or([0, 0]);
        tensor(y, [g.batch, g.out_channels, oh, ow])
    }
}

impl<C: CheckpointStrategy> NchwConv for Autodiff<Flex, C> {
    fn nchw_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        g: Geometry,
    ) -> FloatTensor<Self> {
        let (x_value, w_value) = (x.primitive().clone(), weight.primitive().clone());
        match ConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight), g);
                prep.finish(state, Flex::nchw_conv2d(x_value, w_value, g))
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::nchw_conv2d(x_value, w_value, g)),
        }
    }
}

/// The backward pass of [NchwConv::nchw_conv2d].
#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 2> for ConvBackward {
    type State = (NodeId, NodeId, Geometry);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x_state, weight_state, g) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let weight = checkpointer.retrieve_node_output::<FlexTensor>(weight_state);
        let dy = floats(&dy);
        let want = [node_x.is_some(), node_weight.is_some()];
        let (x, weight) = (floats(&x), floats(&weight));
        let (dx, dw) = match train_winograd::applies(&g, Pass::Backward) {
            true => train_winograd::backward(&x, &weight, &dy, &g, want),
            false => transposed::backward(&x, &weight, &dy, &g, want).unwrap_or_else(|| {
                (
                    want[0].then(|| nchw::input_grad(&weight, &dy, &g)),
                    want[1].then(|| nchw::weight_grad(&x, &dy, &g)),
                )
            }),
        };
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(
                node.id,
                tensor(dx, [g.batch, g.in_channels, g.height, g.width]),
            );
        }
        if let (Some(node), Some(dw)) = (node_weight, dw) {
            let [kh, kw] = g.kernel;
            let shape = [g.out_channels, g.in_channels / g.groups, kh, kw];
            grads.register::<Flex>(node.id, tensor(dw, shape));
        }
    }
}

/// The tensor's floats in row-major order (borrowed when it is contiguous already).
pub(super) fn floats(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => s.into(),
        None => t
            .to_contiguous()
            .as_slice::<f32>()
            .map(<[f32]>::to_vec)
            .unwrap_or_default()
            .into(),
    }
}

fn tensor(data: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, Shape::new(shape)))
}

#[cfg(test)]
mod tests {
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    /// Geometry: `[in, out, kh, kw, stride, dilation, groups, batch, height, width]` and the
    /// padding (top, left, bottom, right).
    type Case = ([usize; 10], [usize; 4]);

    /// ResNet's convolutions and the odd ones: CIFAR 3x3, its stride-2 first, a 1x1
    /// projection with stride 2, a bottleneck's pointwise 1x1, the ImageNet stem, ResNeXt's
    /// grouped 3x3, a dilated 3x3, asymmetric padding on a non-square map (with stride 2, and
    /// with stride 1, whose input gradient is a convolution of its own), an unpadded 3x3
    /// (output narrower than the input), batch 1 (the gemm splits over the threads) and 5
    /// (uneven image ranges); and two that [train_winograd] takes: a wide map with 64 channels
    /// (forward and backward), and 128 channels on 7x7 (its backward only).
    const CASES: [Case; 14] = [
        ([16, 16, 3, 3, 1, 1, 1, 4, 8, 8], [1, 1, 1, 1]),
        ([16, 32, 3, 3, 2, 1, 1, 4, 8, 8], [1, 1, 1, 1]),
        ([8, 16, 1, 1, 2, 1, 1, 3, 9, 9], [0, 0, 0, 0]),
        ([12, 6, 1, 1, 1, 1, 1, 3, 5, 7], [0, 0, 0, 0]),
        ([3, 8, 7, 7, 2, 1, 1, 2, 20, 20], [3, 3, 3, 3]),
        ([16, 16, 3, 3, 1, 1, 4, 2, 6, 6], [1, 1, 1, 1]),
        ([4, 4, 3, 3, 1, 2, 1, 2, 9, 9], [2, 2, 2, 2]),
        ([5, 7, 3, 2, 2, 1, 1, 2, 7, 10], [0, 1, 2, 0]),
        ([5, 7, 3, 2, 1, 1, 1, 2, 7, 10], [0, 1, 2, 0]),
        ([4, 6, 3, 3, 1, 1, 1, 2, 7, 9], [0, 0, 0, 0]),
        ([6, 10, 3, 3, 1, 1, 1, 1, 11, 11], [1, 1, 1, 1]),
        ([6, 10, 3, 3, 1, 1, 1, 5, 6, 6], [1, 1, 1, 1]),
        ([64, 64, 3, 3, 1, 1, 1, 1, 28, 29], [1, 1, 1, 1]),
        ([128, 128, 3, 3, 1, 1, 1, 3, 7, 7], [1, 1, 1, 1]),
    ];

    fn layer(case: &Case, bias: bool, device: &Device) -> Conv2d {
        let ([i, o, kh, kw, s, d, g, ..], [t, l, b, r]) = *case;
        Conv2dConfig::new([i, o], [kh, kw])
            .with_stride([s, s])
            .with_dilation([d, d])
            .with_groups(g)
            .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
            .with_bias(bias)
            .init(device)
    }

    fn input(case: &Case, device: &Device) -> Tensor<4> {
        let [i, .., n, h, w] = case.0;
        Tensor::random([n, i, h, w], Distribution::Normal(0.0, 1.0), device)
    }

    /// Output, input gradient and weight gradient against burn's convolution and its
    /// autodiff on flex, for a random upstream gradient.
    #[test]
    fn matches_burn_forward_and_gradients() {
        let device = Device::flex().autodiff();
        for (c, case) in CASES.iter().enumerate() {
            let conv = layer(case, c == 0, &device);
            let x = input(case, &device).require_grad();
            let g = geometry(&conv, &x);
            assert!(g.is_some(), "case {c} must take this path");
            let winograd = g.map(|g| train_winograd::applies(&g, Pass::Backward));
            assert_eq!(winograd, Some(c >= 12), "case {c}: Winograd's backward");
            let expected = conv.forward(x.clone());
            let actual = convolve(&conv, x.clone());
            let upstream = Tensor::random(expected.dims(), Distribution::Normal(0.0, 1.0), &device);
            let close = Tolerance::absolute(1e-4);
            actual
                .to_data()
                .assert_approx_eq::<f32>(&expected.to_data(), close);
            let g_expected = (expected * upstream.clone()).sum().backward();
            let g_actual = (actual * upstream).sum().backward();
            let grad = |t: &Tensor<4>, g| t.grad(g).unwrap().into_data();
            let w = conv.weight.val();
            grad(&x, &g_actual).assert_approx_eq::<f32>(&grad(&x, &g_expected), close);
            grad(&w, &g_actual)
                .assert_approx_eq::<f32>(&grad(&w, &g_expected), Tolerance::absolute(1e-3));
            let b = |g| {
                conv.bias
                    .as_ref()
                    .map(|b| b.val().grad(g).unwrap().into_data())
            };
            if let (Some(a), Some(e)) = (b(&g_actual), b(&g_expected)) {
                a.assert_approx_eq::<f32>(&e, close);
            }
        }
    }

    /// Without autodiff (evaluation of an unfolded net) the forward alone runs.
    #[test]
    fn matches_burn_without_autodiff() {
        let device = Device::flex();
        for case in &CASES[..3] {
            let conv = layer(case, true, &device);
            let x = input(case, &device);
            let expected = conv.forward(x.clone()).into_data();
            convolve(&conv, x)
                .into_data()
                .assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-4));
        }
    }

    /// Input that does not fit (wrong channels, kernel larger than the map, `Same` padding)
    /// is left to burn's convolution.
    #[test]
    fn declines_what_it_does_not_cover() {
        let device = Device::flex();
        let conv = layer(&CASES[0], false, &device);
        let wrong_channels = Tensor::<4>::zeros([1, 3, 8, 8], &device);
        assert!(geometry(&conv, &wrong_channels).is_none());
        let unpadded = layer(&([3, 8, 7, 7, 2, 1, 1, 1, 1, 1], [0; 4]), false, &device);
        assert!(geometry(&unpadded, &Tensor::zeros([1, 3, 5, 5], &device)).is_none());
        let same = Conv2dConfig::new([3, 3], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init(&device);
        assert!(geometry(&same, &Tensor::zeros([1, 3, 8, 8], &device)).is_none());
    }
}
