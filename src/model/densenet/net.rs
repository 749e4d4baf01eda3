//! DenseNet's modules with torchvision's names: `features.conv0`, `features.norm0`,
//! `features.denseblockB.L` (torchvision's `denselayer{L+1}`, mapped by [crate::io]),
//! `features.transitionB`, `features.norm5`, `classifier`.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::DenseNetConfig;
use crate::model::block::batch_norm;
use crate::model::config::Stem;
use crate::model::cpu::{convolve, normalize, normalize_relu};
use crate::model::resnet::pool_and_classify;

/// A bias-free convolution with torchvision's DenseNet init (`kaiming_normal_`: fan-in, ReLU
/// gain), "same" padding for odd kernels.
fn conv(cin: usize, cout: usize, kernel: usize, stride: usize, device: &Device) -> Conv2d {
    let pad = kernel / 2;
    Conv2dConfig::new([cin, cout], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: false,
        })
        .init(device)
}

/// One layer of a dense block: BN-ReLU-1x1 conv to `bn_size · k` channels, BN-ReLU-3x3 conv
/// to k channels; its output is concatenated to its input.
#[derive(Module, Debug)]
pub struct DenseLayer {
    /// BN of the concatenated input.
    pub norm1: BatchNorm,
    /// The 1x1 bottleneck.
    pub conv1: Conv2d,
    /// BN of the bottleneck.
    pub norm2: BatchNorm,
    /// The 3x3 producing the k new channels.
    pub conv2: Conv2d,
}

impl DenseLayer {
    /// The k new feature maps.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, h, w]`
    /// - output: `[batch, growth_rate, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = convolve(&self.conv1, normalize_relu(&self.norm1, x));
        convolve(&self.conv2, normalize_relu(&self.norm2, x))
    }
}

/// Between two dense blocks: BN-ReLU, a 1x1 convolution halving the channels, 2x2/2 average
/// pooling.
#[derive(Module, Debug)]
pub struct Transition {
    /// BN of the block's output.
    pub norm: BatchNorm,
    /// 1x1 compression to half the channels.
    pub conv: Conv2d,
    /// 2x2 average pooling, stride 2.
    pub pool: AvgPool2d,
}

impl Transition {
    /// # Shapes
    /// - `x`: `[batch, c, h, w]`
    /// - output: `[batch, c / 2, h / 2, w / 2]` (rounded down)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pool
            .forward(convolve(&self.conv, normalize_relu(&self.norm, x)))
    }
}

/// torchvision's `DenseNet.features`; CIFAR nets have no `norm0`/`pool0` and three blocks.
#[derive(Module, Debug)]
pub struct Features {
    /// Stem convolution: 7x7/2 (ImageNet) or 3x3/1 (CIFAR).
    pub conv0: Conv2d,
    /// ImageNet stem: BN (and ReLU) after `conv0`.
    pub norm0: Option<BatchNorm>,
    /// ImageNet stem: 3x3/2 max-pool.
    pub pool0: Option<MaxPool2d>,
    /// Dense block 1.
    pub denseblock1: Vec<DenseLayer>,
    /// Transition after block 1 (absent after the last block).
    pub transition1: Option<Transition>,
    /// Dense block 2 (empty when the net has fewer blocks).
    pub denseblock2: Vec<DenseLayer>,
    /// Transition after block 2.
    pub transition2: Option<Transition>,
    /// Dense block 3.
    pub denseblock3: Vec<DenseLayer>,
    /// Transition after block 3.
    pub transition3: Option<Transition>,
    /// Dense block 4.
    pub denseblock4: Vec<DenseLayer>,
    /// BN of the last block's output (ReLU, pooling and the classifier follow).
    pub norm5: BatchNorm,
}

/// A DenseNet: [Features], then ReLU, global average pooling and `classifier`.
#[derive(Module, Debug)]
pub struct DenseNet {
    /// Everything before the head.
    pub features: Features,
    /// Classifier over the globally pooled features.
    pub classifier: Linear,
}

impl DenseNetConfig {
    /// Initialize a new [DenseNet].
    ///
    /// # Panics
    /// If [validate](Self::validate) fails.
    pub fn init(&self, device: &Device) -> DenseNet {
        if let Err(err) = self.validate() {
            panic!("invalid DenseNet configuration: {err}");
        }
        let c0 = self.num_init_features;
        let (conv0, norm0, pool0) = match self.stem {
            Stem::ImageNet => (
                conv(self.in_channels, c0, 7, 2, device),
                Some(batch_norm(c0, false, device)),
                Some(
                    MaxPool2dConfig::new([3, 3])
                        .with_strides([2, 2])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .init(),
                ),
            ),
            Stem::Cifar => (conv(self.in_channels, c0, 3, 1, device), None, None),
        };
        let (k, width) = (self.growth_rate, self.bn_size * self.growth_rate);
        let plan = self.channel_plan();
        let mut blocks = Vec::new();
        let mut transitions = Vec::new();
        for (i, &(input, out)) in plan.iter().enumerate() {
            blocks.push(
                (0..self.block_config[i])
                    .map(|j| {
                        let cin = input + j * k;
                        DenseLayer {
                            norm1: batch_norm(cin, false, device),
                            conv1: conv(cin, width, 1, 1, device),
                            norm2: batch_norm(width, false, device),
                            conv2: conv(width, k, 3, 1, device),
                        }
                    })
                    .collect::<Vec<_>>(),
            );
            transitions.push((i + 1 < plan.len()).then(|| Transition {
                norm: batch_norm(out, false, device),
                conv: conv(out, out / 2, 1, 1, device),
                pool: AvgPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            }));
        }
        let mut blocks = blocks.into_iter();
        let mut transitions = transitions.into_iter();
        let mut block = || blocks.next().unwrap_or_default();
        let mut transition = || transitions.next().flatten();
        let features = self.feature_channels();
        DenseNet {
            features: Features {
                conv0,
                norm0,
                pool0,
                denseblock1: block(),
                transition1: transition(),
                denseblock2: block(),
                transition2: transition(),
                denseblock3: block(),
                transition3: transition(),
                denseblock4: block(),
                norm5: batch_norm(features, false, device),
            },
            classifier: LinearConfig::new(features, self.num_classes).init(device),
        }
    }
}

impl Features {
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]`
    /// - output: `[batch, feature_channels, height / s, width / s]` (s = 32 for ImageNet
    ///   nets, 4 for the CIFAR ones), after `norm5` but before its ReLU
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = convolve(&self.conv0, x);
        if let Some(norm0) = &self.norm0 {
            x = normalize_relu(norm0, x);
        }
        if let Some(pool0) = &self.pool0 {
            x = pool0.forward(x);
        }
        let stages = [
            (&self.denseblock1, &self.transition1),
            (&self.denseblock2, &self.transition2),
            (&self.denseblock3, &self.transition3),
            (&self.denseblock4, &None),
        ];
        for (block, transition) in stages {
            // Each layer reads everything so far and appends its k channels.
            for layer in block {
                let new = layer.forward(x.clone());
                x = Tensor::cat(vec![x, new], 1);
            }
            if let Some(transition) = transition {
                x = transition.forward(x);
            }
        }
        normalize(&self.norm5, x)
    }
}

impl DenseNet {
    /// Logits for a batch of normalised images.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        pool_and_classify(&self.classifier, relu(self.features.forward(x)))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::model::densenet::parse;

    fn bn_channels(bn: &BatchNorm) -> usize {
        bn.gamma.shape().dims::<1>()[0]
    }

    /// The tensors created equal the analytic count, and any input size gives
    /// `[batch, classes]` (global pooling).
    #[test]
    fn modules_match_the_count_and_classify_any_size() {
        let device = Device::flex();
        for (name, sizes) in [("densenet121", [64, 77]), ("densenet_bc100_12", [32, 33])] {
            let config = parse(name).unwrap();
            let model = config.init(&device);
            let f = &model.features;
            let mut bn = bn_channels(&f.norm5) + f.norm0.as_ref().map_or(0, bn_channels);
            for layer in [
                &f.denseblock1,
                &f.denseblock2,
                &f.denseblock3,
                &f.denseblock4,
            ]
            .into_iter()
            .flatten()
            {
                bn += bn_channels(&layer.norm1) + bn_channels(&layer.norm2);
            }
            for t in [&f.transition1, &f.transition2, &f.transition3]
                .into_iter()
                .flatten()
            {
                bn += bn_channels(&t.norm);
            }
            // BN running statistics are buffers, not parameters.
            assert_eq!(
                model.num_params() - 2 * bn,
                config.stats(224).params,
                "{name}"
            );
            for size in sizes {
                let x = Tensor::<4>::random([1, 3, size, size], Distribution::Default, &device);
                assert_eq!(model.forward(x).dims(), [1, config.num_classes], "{name}");
            }
        }
    }
}
