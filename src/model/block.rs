//! The residual building blocks of Figure 5: BasicBlock (two 3x3) and Bottleneck
//! (1x1, 3x3, 1x1), both computing `y = relu(F(x) + shortcut(x))` — or `relu(F(x))` in a
//! plain net. The successors' blocks are the same code: ResNeXt groups the bottleneck's 3x3,
//! Wide ResNet widens it, SE-nets gate F(x) before the sum, and pre-activation blocks
//! (He et al. 2016) reorder each layer to BN-ReLU-conv and drop the ReLU after the sum:
//! `y = F(x) + shortcut(x)` ([BlockVariant]).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, s};

#[cfg(doc)]
use super::config::BlockVariant;
use super::config::{BlockKind, Joining, ShortcutOption, StridePlacement};
use super::cpu::{add_relu, convolve, normalize, normalize_relu};
use super::se::SqueezeExcitation;
use super::split_attn::SplitAttention;

/// ResNeSt's avd: a 3x3 average pool of `stride`, padding 1 counted (PyTorch's default).
pub(crate) fn avd_pool(stride: usize) -> AvgPool2d {
    AvgPool2dConfig::new([3, 3])
        .with_strides([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init()
}

/// ResNet-D's projection pool: 2x2 of `stride`, ceil mode, averaging only the pixels inside
/// the map (timm's `AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)`).
pub(crate) fn avg_down_pool(stride: usize) -> AvgPool2d {
    AvgPool2dConfig::new([2, 2])
        .with_strides([stride, stride])
        .with_count_include_pad(false)
        .with_ceil_mode(true)
        .init()
}

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
        let preact = self.joining.variant.preactivation;
        // A block starts as its shortcut: the last BN's γ = 0 (Goyal et al.), or in a
        // pre-activation block, which ends on a convolution, that convolution's weights = 0
        // (timm's `zero_init_last`).
        let zero = self.joining.zero_init_residual;
        let (conv1, mut conv2, mut conv3) = match self.kind {
            BlockKind::Basic => (
                conv(self.in_channels, self.planes, 3, self.stride, device),
                conv(self.planes, self.planes, 3, 1, device),
                None,
            ),
            BlockKind::Bottleneck => {
                let (stride_1x1, stride_3x3) = match self.joining.stride_placement {
                    StridePlacement::V1 => (self.stride, 1),
                    StridePlacement::V1_5 => (1, self.stride),
                };
                let variant = self.joining.variant;
                // avd moves the 3x3's stride to a pool after it; split attention computes
                // `radix` splits in `radix` times the groups.
                let stride_3x3 = if variant.avd { 1 } else { stride_3x3 };
                let splits = variant.radix.max(1);
                (
                    conv(self.in_channels, width, 1, stride_1x1, device),
                    grouped_conv(
                        width,
                        width * splits,
                        3,
                        stride_3x3,
                        variant.groups * splits,
                        device,
                    ),
                    Some(conv(width, out, 1, 1, device)),
                )
            }
        };
        let bottleneck = conv3.is_some();
        let (bn1, bn2, bn3) = if preact {
            if zero {
                let last = conv3.as_mut().unwrap_or(&mut conv2);
                last.weight = Initializer::Zeros.init(last.weight.dims(), device);
            }
            // Each BN normalises the input of the convolution that follows it.
            let bn3 = bottleneck.then(|| batch_norm(width, false, device));
            (
                batch_norm(self.in_channels, false, device),
                batch_norm(width, false, device),
                bn3,
            )
        } else {
            let bn3 = bottleneck.then(|| batch_norm(out, zero, device));
            (
                batch_norm(width, false, device),
                batch_norm(conv2.weight.dims()[0], zero && !bottleneck, device),
                bn3,
            )
        };
        let variant = self.joining.variant;
        let avg_down = variant.avg_down && self.stride > 1;
        let downsample = self.has_projection().then(|| Downsample {
            pool: avg_down.then(|| avg_down_pool(self.stride)),
            conv: conv(
                self.in_channels,
                out,
                1,
                if variant.avg_down { 1 } else { self.stride },
                device,
            ),
            bn: (!preact).then(|| batch_norm(out, false, device)),
        });
        let (attn, avd) = match bottleneck {
            true => (
                (variant.radix > 0)
                    .then(|| SplitAttention::new(width, variant.radix, variant.groups, device)),
                (variant.avd && self.stride > 1).then(|| avd_pool(self.stride)),
            ),
            false => (None, None),
        };
        let se = self
            .joining
            .variant
            .squeeze_excitation
            .then(|| SqueezeExcitation::new(out, device));
        Block {
            conv1,
            bn1,
            conv2,
            bn2,
            conv3,
            bn3,
            attn,
            avd,
            se,
            downsample,
            stride: self.stride,
            residual: self.joining.residual,
            preactivation: preact,
        }
    }
}

/// The projection shortcut (options B and C): 1x1 conv with the block's stride, then BN.
/// torchvision calls these `downsample.0` and `downsample.1` (ResNet-D: `downsample.1` and
/// `downsample.2` after the pool); see [crate::io] for the remap.
#[derive(Module, Debug)]
pub struct Downsample {
    /// ResNet-D: the 2x2 average pool that takes the stride, before a stride-1 `conv`.
    pub pool: Option<AvgPool2d>,
    /// 1x1 projection to the block's output channels.
    pub conv: Conv2d,
    /// BatchNorm after the projection; none in a pre-activation block, whose projection
    /// reads the already normalised input.
    pub bn: Option<BatchNorm>,
}

impl Downsample {
    /// The projection of `x`.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height / stride, width / stride]` (rounded up)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match &self.pool {
            Some(pool) => pool.forward(x),
            None => x,
        };
        let x = convolve(&self.conv, x);
        match &self.bn {
            Some(bn) => normalize(bn, x),
            None => x,
        }
    }
}

/// A residual block; BasicBlock when `conv3` is `None`, Bottleneck otherwise.
///
/// Field names follow torchvision, so `layer1.0.conv1.weight` means the same in both. In a
/// pre-activation block `bnK` comes before `convK` (timm's `normK`, mapped by [crate::io]).
#[derive(Module, Debug)]
pub struct Block {
    /// First conv: 3x3 (basic) or the 1x1 reduction (bottleneck).
    pub conv1: Conv2d,
    /// BN after `conv1` (pre-activation: before it, on the block's input).
    pub bn1: BatchNorm,
    /// Second conv: 3x3 in both kinds.
    pub conv2: Conv2d,
    /// BN after `conv2` (pre-activation: before it).
    pub bn2: BatchNorm,
    /// Bottleneck only: the 1x1 expansion.
    pub conv3: Option<Conv2d>,
    /// Bottleneck only: BN after `conv3` (pre-activation: before it).
    pub bn3: Option<BatchNorm>,
    /// ResNeSt only: the split-attention gate that weighs and sums `conv2`'s splits (timm's
    /// `conv2.fc1`, `conv2.bn1`, `conv2.fc2`).
    pub attn: Option<SplitAttention>,
    /// ResNeSt's avd: the 3x3 average pool that takes a downsampling block's stride after
    /// its 3x3.
    pub avd: Option<AvgPool2d>,
    /// SE-nets only: the gate on F(x), after its last BN.
    pub se: Option<SqueezeExcitation>,
    /// Projection shortcut, where the option calls for one.
    pub downsample: Option<Downsample>,
    /// Spatial stride of the block; option A's shortcut subsamples by it.
    pub stride: usize,
    /// `false` in a plain net: no shortcut at all.
    pub residual: bool,
    /// BN-ReLU before each convolution and no ReLU after the sum ([BlockVariant::preactivation]).
    pub preactivation: bool,
}

impl Block {
    /// The residual function F(x): every layer but the final ReLU.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height / stride, width / stride]` (rounded up)
    pub fn residual_branch(&self, x: Tensor<4>) -> Tensor<4> {
        if self.preactivation {
            return self.preactivated_branch(self.preactivate(x));
        }
        self.branch(x, false)
    }

    /// F(x) of a post-activation block, with its ReLU after when `then_relu` (a plain
    /// block's output): fused into the last BN unless a gate comes between them.
    fn branch(&self, x: Tensor<4>, then_relu: bool) -> Tensor<4> {
        let fuse = then_relu && self.se.is_none();
        let last = |bn: &BatchNorm, out| match fuse {
            true => normalize_relu(bn, out),
            false => normalize(bn, out),
        };
        let out = normalize_relu(&self.bn1, convolve(&self.conv1, x));
        let out = convolve(&self.conv2, out);
        let out = match (&self.conv3, &self.bn3) {
            (Some(conv3), Some(bn3)) => {
                let out = self.mix(normalize_relu(&self.bn2, out));
                last(bn3, convolve(conv3, out))
            }
            _ => last(&self.bn2, out),
        };
        match then_relu && !fuse {
            true => relu(self.gate(out)),
            false => self.gate(out),
        }
    }

    /// ResNeSt's step between a bottleneck's activated 3x3 and its 1x1 expansion: the split
    /// attention that weighs and sums the splits, then the avd pool; the identity in other
    /// blocks.
    ///
    /// # Shapes
    /// - `x`: `[batch, radix · width, h, w]`
    /// - output: `[batch, width, h / stride, w / stride]` (rounded up) with avd, else `h`, `w`
    pub(crate) fn mix(&self, x: Tensor<4>) -> Tensor<4> {
        split_and_pool(self.attn.as_ref(), self.avd.as_ref(), x)
    }

    /// A pre-activation block's `relu(bn1(x))`, shared by its branch and its projection.
    fn preactivate(&self, x: Tensor<4>) -> Tensor<4> {
        normalize_relu(&self.bn1, x)
    }

    /// A pre-activation block's F from its pre-activated input: conv1, then BN-ReLU-conv
    /// once (basic) or twice (bottleneck).
    fn preactivated_branch(&self, pre: Tensor<4>) -> Tensor<4> {
        let out = convolve(&self.conv1, pre);
        let out = convolve(&self.conv2, normalize_relu(&self.bn2, out));
        let out = match (&self.conv3, &self.bn3) {
            (Some(conv3), Some(bn3)) => convolve(conv3, normalize_relu(bn3, out)),
            _ => out,
        };
        self.gate(out)
    }

    /// The squeeze-excitation gate of SE blocks, the identity otherwise.
    fn gate(&self, out: Tensor<4>) -> Tensor<4> {
        match &self.se {
            Some(se) => se.forward(out),
            None => out,
        }
    }

    /// The shortcut applied to `x` so that it matches `out_channels` channels:
    /// the identity, option A's subsample + zero channels, or the projection (of the
    /// pre-activated input, in a pre-activation block).
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height / stride, width / stride]` (rounded up)
    pub fn shortcut(&self, x: Tensor<4>, out_channels: usize) -> Tensor<4> {
        match &self.downsample {
            Some(downsample) if self.preactivation => downsample.forward(self.preactivate(x)),
            Some(downsample) => downsample.forward(x),
            None => parameter_free_shortcut(x, self.stride, out_channels),
        }
    }

    /// Applies the block: `relu(F(x) + shortcut(x))`, `F(x) + shortcut(x)` with
    /// pre-activation; a plain block leaves out the shortcut.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height / stride, width / stride]` (rounded up)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if self.preactivation {
            let pre = self.preactivate(x.clone());
            let out = self.preactivated_branch(pre.clone());
            if !self.residual {
                return out;
            }
            let shortcut = match &self.downsample {
                Some(downsample) => downsample.forward(pre),
                None => parameter_free_shortcut(x, self.stride, out.dims()[1]),
            };
            return out + shortcut;
        }
        if !self.residual {
            return self.branch(x, true);
        }
        let out = self.residual_branch(x.clone());
        match &self.downsample {
            Some(downsample) => add_relu(out, downsample.forward(x), 1),
            // The parameter-free shortcut (Block::shortcut's third arm) joins inside the op.
            None => add_relu(out, x, self.stride),
        }
    }
}

/// [Block::mix] from its parts (shared with the folded block).
pub(crate) fn split_and_pool(
    attn: Option<&SplitAttention>,
    avd: Option<&AvgPool2d>,
    x: Tensor<4>,
) -> Tensor<4> {
    // The gate's weights are a softmax (or a sigmoid) of non-negative splits, so the sum is
    // non-negative and ResNeSt's missing ReLU after it changes nothing.
    let x = match attn {
        Some(attn) => attn.forward(x),
        None => x,
    };
    match avd {
        Some(pool) => pool.forward(x),
        None => x,
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
    use burn::tensor::{Distribution, Tolerance};

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

    /// A plain block's output in training (its last BN and ReLU fused on flex) is
    /// `relu(F(x))`, for a basic and a bottleneck block.
    #[test]
    fn a_plain_block_ends_in_relu() {
        let device = Device::flex().autodiff();
        for kind in [BlockKind::Basic, BlockKind::Bottleneck] {
            let plain = Joining {
                residual: false,
                ..Joining::DEFAULT
            };
            let block = BlockConfig::new(kind, 4, 4)
                .with_joining(plain)
                .init(&device);
            let x = Tensor::<4>::random([2, 4, 6, 6], Distribution::Normal(0.0, 1.0), &device);
            let y = block.forward(x.clone());
            let expected = relu(block.residual_branch(x));
            assert!(y.clone().min().into_scalar::<f32>() >= 0.0);
            y.into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
        }
    }
}
