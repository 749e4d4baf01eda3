//! ResNet-C/D's deep stem (He et al. 2019, "Bag of Tricks for Image Classification"): the
//! 7x7/2 convolution replaced by three 3x3 ones (the first of stride 2) of `w`, `w` and the
//! stem's width, each with BN and ReLU; the max-pool follows as before. resnet50d, resnest50d
//! (w = 32) and resnest101e (w = 64) use it.
//!
//! timm's keys are an `nn.Sequential`: `conv1.0`, `conv1.1` (BN), `conv1.3`, `conv1.4` and
//! `conv1.6`, then `bn1`. The last convolution is the net's own `conv1` (and `bn1` its BN),
//! the two before it are [DeepStem]'s (see [crate::io] for the keys).

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

use super::block::{batch_norm, conv};
use super::cpu::{convolve, normalize_relu};

/// The two convolutions of a deep stem before the net's `conv1`.
#[derive(Module, Debug)]
pub struct DeepStem {
    /// 3x3/2 from the image to `w` channels (timm's `conv1.0`).
    pub conv1: Conv2d,
    /// BN after `conv1` (`conv1.1`).
    pub bn1: BatchNorm,
    /// 3x3/1, `w` to `w` channels (`conv1.3`).
    pub conv2: Conv2d,
    /// BN after `conv2` (`conv1.4`).
    pub bn2: BatchNorm,
}

impl DeepStem {
    /// The first two convolutions of a deep stem of width `w` on `in_channels` channels.
    pub fn new(in_channels: usize, w: usize, device: &Device) -> Self {
        Self {
            conv1: conv(in_channels, w, 3, 2, device),
            bn1: batch_norm(w, false, device),
            conv2: conv(w, w, 3, 1, device),
            bn2: batch_norm(w, false, device),
        }
    }

    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - output: `[batch, w, height / 2, width / 2]` (rounded up)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = normalize_relu(&self.bn1, convolve(&self.conv1, x));
        normalize_relu(&self.bn2, convolve(&self.conv2, x))
    }
}
