//! The residual building blocks of Figure 5: BasicBlock (two 3x3) and Bottleneck
//! (1x1, 3x3, 1x1), both computing `y = relu(F(x) + shortcut(x))` — or `relu(F(x))` in a
//! plain net. The successors' blocks are the same code: ResNeXt groups the bottleneck's 3x3,
//! Wide ResNet widens it, SE-nets gate F(x) before the sum ([BlockVariant]).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, s};

use super::config::{BlockKind, Joining, ShortcutOption, StridePlacement};
use super::se::SqueezeExcitation;

/// He et al. 2015 ("Delving deep into rectifiers") normal init, fan-out mode, ReLU gain —
/// torchvision's `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
pub(crate) fn he_normal_fan_out() -> Initializer {
    Initializer::KaimingNormal {
        gain: std::f64::consts::SQRT_2,
        fan_out_only: true,
    }
}

/// A bias-free `k`x`k` convolution with "same" padding for odd `k` (every ResNet conv).
pub(crate) fn conv(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    device: &Device,
) -> Conv2d {
    grouped_conv(in_channels, out_channels, kernel, stride, 1, device)
}

/// [conv] split into `groups` groups (ResNeXt's 3x3).
///
/// Burn's fan-out of a grouped convolution is `out / groups · k²`; PyTorch's
/// `kaiming_normal_` uses `out · k²` whatever the groups, so a grouped layer gets the
/// explicit normal that torchvision's ResNeXt starts from.
pub(crate) fn grouped_conv(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    let pad = kernel / 2;
    let initializer = match groups {
        1 => he_normal_fan_out(),
        _ => Initializer::Normal {
            mean: 0.0,
            std: (2.0 / (out_channels * kernel * kernel) as f64).sqrt(),
        },
    };
    Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_groups(groups)
        .with_bias(false)
        .with_initializer(initializer)
        .init(device)
}

/// BatchNorm with PyTorch's defaults (ε = 1e-5, momentum 0.1), γ = 1, β = 0.
pub(crate) fn batch_norm(channels: usize, zero_gamma: bool, device: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(channels).init(device);
    if zero_gamma {
        bn.gamma = Initializer::Zeros.init([channels], device);
    }
    bn
}

/// Configuration to create a [Block], using [init](BlockConfig::init).
#[derive(Config, Debug)]
pub struct BlockConfig {
    /// Basic (two 3x3) or bottleneck (1x1, 3x3, 1x1).
    pub kind: BlockKind,
    /// Channels of the block's input.
    pub in_channels: usize,
    /// Planes; the block outputs `planes * expansion` channels. A bottleneck's inner width
    /// is [BlockConfig::width] (`planes` unless grouped or widened).
    pub planes: usize,
    /// Spatial stride of the block (2 at the first block of a downsampling stage).
    #[config(default = 1)]
    pub stride: usize,
    /// The net-wide shortcut, stride-placement and init choices.
    #[config(default = "Joining::DEFAULT")]
    pub joining: Joining,
}

impl BlockConfig {
    /// Channels the block outputs.
    pub fn out_channels(&self) -> usize {
        self.planes * self.kind.expansion()
    }

    /// Channels inside the block: `planes` for a basic block, the variant's bottleneck width
    /// (`planes` for ResNet, `2 · planes` for resnext50_32x4d and wide_resnet50_2).
    pub fn width(&self) -> usize {
        match self.kind {
            BlockKind::Basic => self.planes,
            BlockKind::Bottleneck => self.joining.variant.bottleneck_width(self.planes),
        }
    }

    /// Whether the shortcut is a 1x1 projection (and so has parameters).
    pub fn has_projection(&self) -> bool {
        let shape_changes = self.stride != 1 || self.in_channels != self.out_channels();
        self.joining.residual
            && match self.joining.shortcut {
                ShortcutOption::A => false,
                ShortcutOption::B => shape_changes,
                ShortcutOption::C => true,
            }
    }

    /// Initialize a new [Block].
    pub fn init(&self, device: &Device) -> Block {
        let out = self.out_channels();
        let width = self.width();
        let zero = self.joining.zero_init_residual;
        let (conv1, conv2, conv3, bn3) = match self.kind {
            BlockKind::Basic => (
                conv(self.in_channels, self.planes, 3, self.stride, device),
                conv(self.planes, self.planes, 3, 1, device),
                None,
                None,
            ),
            BlockKind::Bottleneck => {
                let (stride_1x1, stride_3x3) = match self.joining.stride_placement {
                    StridePlacement::V1 => (self.stride, 1),
                    StridePlacement::V1_5 => (1, self.stride),
                };
                let groups = self.joining.variant.groups;
                (
                    conv(self.in_channels, width, 1, stride_1x1, device),
                    grouped_conv(width, width, 3, stride_3x3, groups, device),
                    Some(conv(width, out, 1, 1, device)),
                    Some(batch_norm(out, zero, device)),
                )
            }
        };
        let last_bn_is_bn2 = bn3.is_none();
        let downsample = self.has_projection().then(|| Downsample {
            conv: conv(self.in_channels, out, 1, self.stride, device),
            bn: batch_norm(out, false, device),
        });
        let se = self
            .joining
            .variant
            .squeeze_excitation
            .then(|| SqueezeExcitation::new(out, device));
        Block {
            conv1,
            bn1: batch_norm(width, false, device),
            conv2,
            bn2: batch_norm(width, zero && last_bn_is_bn2, device),
            conv3,
            bn3,
            se,
            downsample,
            stride: self.stride,
            residual: self.joining.residual,
        }
    }
}

/// The projection shortcut (options B and C): 1x1 conv with the block's stride, then BN.
/// torchvision calls these `downsample.0` and `downsample.1`; see [crate::io] for the remap.
#[derive(Module, Debug)]
pub struct Downsample {
    /// 1x1 projection to the block's output channels.
    pub conv: Conv2d,
    /// BatchNorm after the projection.
    pub bn: BatchNorm,
}

/// A residual block; BasicBlock when `conv3` is `None`, Bottleneck otherwise.
///
/// Field names follow torchvision, so `layer1.0.conv1.weight` means the same in both.
#[derive(Module, Debug)]
pub struct Block {
    /// First conv: 3x3 (basic) or the 1x1 reduction (bottleneck).
    pub conv1: Conv2d,
    /// BN after `conv1`.
    pub bn1: BatchNorm,
    /// Second conv: 3x3 in both kinds.
    pub conv2: Conv2d,
    /// BN after `conv2`.
    pub bn2: BatchNorm,
    /// Bottleneck only: the 1x1 expansion.
    pub conv3: Option<Conv2d>,
    /// Bottleneck only: BN after `conv3`.
    pub bn3: Option<BatchNorm>,
    /// SE-nets only: the gate on F(x), after its last BN.
    pub se: Option<SqueezeExcitation>,
    /// Projection shortcut, where the option calls for one.
    pub downsample: Option<Downsample>,
    /// Spatial stride of the block; option A's shortcut subsamples by it.
    pub stride: usize,
    /// `false` in a plain net: no shortcut at all.
    pub residual: bool,
}

impl Block {
    /// The residual function F(x): every layer but the final ReLU.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height / stride, width / stride]` (rounded up)
    pub fn residual_branch(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.bn1.forward(self.conv1.forward(x)));
        let out = self.bn2.forward(self.conv2.forward(out));
        let out = match (&self.conv3, &self.bn3) {
            (Some(conv3), Some(bn3)) => bn3.forward(conv3.forward(relu(out))),
            _ => out,
        };
        match &self.se {
            Some(se) => se.forward(out),
            None => out,
        }
    }

    /// The shortcut applied to `x` so that it matches `out_channels` channels:
    /// the identity, option A's subsample + zero channels, or the projection.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height / stride, width / stride]` (rounded up)
    pub fn shortcut(&self, x: Tensor<4>, out_channels: usize) -> Tensor<4> {
        if let Some(downsample) = &self.downsample {
            return downsample.bn.forward(downsample.conv.forward(x));
        }
        parameter_free_shortcut(x, self.stride, out_channels)
    }

    /// Applies the block.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height / stride, width / stride]` (rounded up)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if !self.residual {
            return relu(self.residual_branch(x));
        }
        let out = self.residual_branch(x.clone());
        let out_channels = out.dims()[1];
        relu(out + self.shortcut(x, out_channels))
    }
}

/// The shortcut without parameters: the identity, or option A's subsampling by `stride`
/// with zero channels appended up to `out_channels`.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`
/// - output: `[batch, out_channels, height / stride, width / stride]` (rounded up)
pub(crate) fn parameter_free_shortcut(
    x: Tensor<4>,
    stride: usize,
    out_channels: usize,
) -> Tensor<4> {
    let x = if stride > 1 {
        // x[:, :, ::s, ::s], the subsampling of the paper's option A.
        let s = stride as isize;
        x.slice(s![.., .., 0..;s, 0..;s])
    } else {
        x
    };
    let [batch, channels, height, width] = x.dims();
    if channels == out_channels {
        return x;
    }
    // The new channels go after the existing ones, as in the original Torch code.
    let zeros = Tensor::zeros([batch, out_channels - channels, height, width], &x.device());
    Tensor::cat(vec![x, zeros], 1)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    /// Option A by hand: x[:, :, ::2, ::2], then zero channels after the existing ones.
    #[test]
    fn option_a_subsamples_and_appends_zero_channels() {
        let block = BlockConfig::new(BlockKind::Basic, 2, 4)
            .with_stride(2)
            .with_joining(Joining {
                shortcut: ShortcutOption::A,
                ..Joining::DEFAULT
            })
            .init(&device());
        assert!(block.downsample.is_none());
        let x: Vec<f32> = (0..32).map(|v| v as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(x, [1, 2, 4, 4]), &device());
        let y = block.shortcut(x, 4);
        let expected = TensorData::new(
            vec![
                0.0f32, 2.0, 8.0, 10.0, // channel 0 at rows 0, 2 and columns 0, 2
                16.0, 18.0, 24.0, 26.0, // channel 1
                0.0, 0.0, 0.0, 0.0, // appended zeros
                0.0, 0.0, 0.0, 0.0,
            ],
            [1, 4, 2, 2],
        );
        assert_eq!(y.into_data(), expected);
    }
}
