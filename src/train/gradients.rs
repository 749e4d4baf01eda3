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

/// Every gradient in `grads` of a parameter of `model`, in the model's order, flattened, with
/// its parameter's rank.
fn flat_gradients(model: &Network, grads: &GradientsParams) -> Vec<(usize, Tensor<1>)> {
    use burn::module::{Module, ModuleVisitor, Param};
    struct Flat<'a>(&'a GradientsParams, Vec<(usize, Tensor<1>)>);
    impl ModuleVisitor for Flat<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(param.id) {
                self.1.push((D, g.flatten(0, D - 1)));
            }
        }
    }
    let mut flat = Flat(grads, Vec::new());
    model.visit(&mut flat);
    flat.1
}

/// The sum of every value of every gradient in `grads` (finite unless one overflowed).
pub(super) fn gradient_sum(model: &Network, grads: &GradientsParams, device: &Device) -> Tensor<1> {
    flat_gradients(model, grads)
        .into_iter()
        .fold(Tensor::zeros([1], device), |sum, (_, g)| sum + g.sum())
}

/// The largest error of a convolution's weight gradient in `got` (computed at loss scale
/// `scale`) against `want`, relative to that gradient's largest value: how much mixed
/// precision changes the update, on the device at hand (`resnet bench --amp`). Both hold a
/// gradient for every parameter of `model`.
pub fn worst_convolution_gradient_error(
    model: &Network,
    got: &GradientsParams,
    scale: f32,
    want: &GradientsParams,
) -> Option<Tensor<1>> {
    let errors: Vec<Tensor<1>> = flat_gradients(model, got)
        .into_iter()
        .zip(flat_gradients(model, want))
        .filter(|((rank, _), _)| *rank == 4)
        .map(|((_, got), (_, want))| (got / scale - want.clone()).abs().max() / want.abs().max())
        .collect();
    (!errors.is_empty()).then(|| Tensor::cat(errors, 0).max())
}
