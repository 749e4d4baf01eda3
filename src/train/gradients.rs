//! One batch's forward and backward pass: what the trainer's step, its device replicas and
//! `resnet bench` all run.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};

use super::evaluate::loss_and_hits;
use crate::model::Network;
use crate::model::amp::{self, Amp};

/// The loss, top-1 and top-5 hits of a batch (without autodiff).
pub type Sums = (Tensor<1>, Tensor<1>, Tensor<1>);

/// The gradients of `model`'s loss on one batch, the loss divided by `divide` (the batches an
/// update accumulates) and multiplied by `loss_scale` (f16's loss scaling: the gradients come
/// out multiplied by it); the convolutions in `amp`'s dtype. With the batch's sums (the loss
/// divided, not scaled).
///
/// # Shapes
/// - `x`: `[batch, 3, size, size]`, `one_hot`: `[batch, classes]`
pub fn batch_gradients(
    model: &Network,
    x: Tensor<4>,
    one_hot: Tensor<2>,
    smoothing: f64,
    divide: f32,
    amp: Amp,
    loss_scale: f32,
) -> (GradientsParams, Sums) {
    let logits = amp::scope(amp, || model.forward(x));
    let (loss, top1, top5) = loss_and_hits(logits, one_hot, smoothing);
    let loss = if divide != 1.0 { loss / divide } else { loss };
    let scaled = if loss_scale != 1.0 {
        loss.clone() * loss_scale
    } else {
        loss.clone()
    };
    let grads = GradientsParams::from_grads(scaled.backward(), model);
    (grads, (loss.detach().inner(), top1.inner(), top5.inner()))
}

/// The sum of every value of every gradient in `grads` (finite unless one overflowed).
pub(super) fn gradient_sum(model: &Network, grads: &GradientsParams, device: &Device) -> Tensor<1> {
    use burn::module::{Module, ModuleVisitor, Param};
    struct Summer<'a> {
        grads: &'a GradientsParams,
        sum: Tensor<1>,
    }
    impl ModuleVisitor for Summer<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.sum = self.sum.clone() + g.sum();
            }
        }
    }
    let mut summer = Summer {
        grads,
        sum: Tensor::zeros([1], device),
    };
    model.visit(&mut summer);
    summer.sum
}

/// The largest error of a convolution's weight gradient in `got` (computed at loss scale
/// `scale`) against `want`, relative to that gradient's largest value: how much mixed
/// precision changes the update, on the device at hand (`resnet bench --amp`).
pub fn worst_convolution_gradient_error(
    model: &Network,
    got: &GradientsParams,
    scale: f32,
    want: &GradientsParams,
) -> Option<Tensor<1>> {
    use burn::module::{Module, ModuleVisitor, Param};
    struct Errors<'a> {
        got: &'a GradientsParams,
        want: &'a GradientsParams,
        scale: f32,
        errors: Vec<Tensor<1>>,
    }
    impl ModuleVisitor for Errors<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let (Some(got), Some(want)) =
                (self.got.get::<D>(param.id), self.want.get::<D>(param.id))
            else {
                return;
            };
            if D == 4 {
                let error = (got / self.scale - want.clone()).abs().max();
                self.errors.push(error / want.abs().max());
            }
        }
    }
    let mut errors = Errors {
        got,
        want,
        scale,
        errors: Vec::new(),
    };
    model.visit(&mut errors);
    (!errors.errors.is_empty()).then(|| Tensor::cat(errors.errors, 0).max())
}
