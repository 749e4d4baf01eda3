//! Inference with every BatchNorm folded into the convolution before it.
//!
//! In eval mode BN is an affine map per channel, `y = γ (x − μ) / σ + β` with
//! σ = √(var + ε), so `BN(W ∗ x + b) = (s W) ∗ x + (β + s (b − μ))` with `s = γ / σ`
//! per output channel. A folded net computes the same logits (up to float rounding) with one
//! convolution plus bias where the net had a convolution and five element-wise passes over the
//! activations (subtract, divide, multiply, add, and their broadcasts): on the CPU those
//! passes cost as much memory traffic as a 1x1 convolution; on a GPU each is a dispatch.
//!
//! A pre-activation net (BN-ReLU-conv) folds each BN that follows a convolution into it; the
//! BN before a block's first convolution and the final one follow an addition, not a
//! convolution, and stay as one per-channel multiply-add ([Affine]).
//!
//! Folding is done with tensor operations on the model's device (no read-back, so it also
//! runs in a browser); it leaves the [ResNet] it reads untouched. A folded net cannot train
//! (batch statistics are gone) and is not saved: checkpoints and exports keep the real BN.

use burn::module::Param;
use burn::nn::BatchNorm;
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2d, MaxPool2d};
use burn::tensor::Tensor;

use std::sync::Arc;

use super::amp;
use super::block::{Block, Downsample, parameter_free_shortcut, split_and_pool};
use super::cpu::{BlockPlan, CpuConv, NetPlan, SePlan};
use super::resnet::{ResNet, pool_and_classify};
use super::se::SqueezeExcitation;
use super::split_attn::SplitAttention;

/// `bn(conv(x))` as one convolution with a bias.
pub(crate) fn fold(conv: &Conv2d, bn: &BatchNorm) -> Conv2d {
    let channels = bn.gamma.shape().dims::<1>()[0];
    let sigma = bn.running_var.value().add_scalar(bn.epsilon).sqrt();
    let scale = bn.gamma.val() / sigma;
    let bias = match &conv.bias {
        Some(b) => b.val() - bn.running_mean.value(),
        None => bn.running_mean.value().neg(),
    };
    let bias = bn.beta.val() + bias * scale.clone();
    let weight = channels_last(conv.weight.val() * scale.reshape([channels, 1, 1, 1]));
    let mut folded = conv.clone();
    folded.weight = Param::from_tensor(weight);
    folded.bias = Some(Param::from_tensor(bias));
    folded
}

/// A convolution weight `[out, in, kh, kw]` stored `[out, kh, kw, in]` on a GPU: the
/// channels-last layout burn's GPU convolutions read, which they copy a weight into on every
/// call otherwise (19 of ResNet-20's 98 launches per image on wgpu). A reshape must write a
/// permuted tensor in its logical order, so the copy is made once here and viewed back.
/// flex reads `[out, in, kh, kw]` and is left alone (ResNet-18 took 1.5x as long with this
/// layout on the CPU).
fn channels_last(weight: Tensor<4>) -> Tensor<4> {
    if on_cpu(&weight) {
        return weight;
    }
    let [o, i, kh, kw] = weight.dims();
    weight
        .permute([0, 2, 3, 1])
        .reshape([o, kh * kw * i, 1, 1])
        .reshape([o, kh, kw, i])
        .permute([0, 3, 1, 2])
}

/// ReLU as one kernel on a GPU: burn's `relu` is a comparison and a masked fill, two launches
/// (38 of ResNet-20's 98 per image on wgpu). Only for inference: under autodiff a clamp's
/// backward costs more than ReLU's. WGSL leaves `clamp` of NaN undefined, which inference can
/// afford. flex keeps burn's `relu`, a little faster there than its clamp.
fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if on_cpu(&x) {
        return burn::tensor::activation::relu(x);
    }
    x.clamp(0.0, f32::INFINITY)
}

/// Whether `x` is on flex, the CPU backend, rather than a GPU (the levers above are for the
/// GPU's kernels).
fn on_cpu<const D: usize>(x: &Tensor<D>) -> bool {
    x.device().without_autodiff() == burn::tensor::Device::flex()
}

/// `conv` followed by `bn` folded into one convolution, or `conv` alone.
fn fold_if(conv: &Conv2d, bn: Option<&BatchNorm>) -> Conv2d {
    match bn {
        Some(bn) => fold(conv, bn),
        None => {
            let mut conv = conv.clone();
            conv.weight = Param::from_tensor(channels_last(conv.weight.val()));
            conv
        }
    }
}

/// An eval-mode BN that follows no convolution: `x · s + t` per channel.
#[derive(Debug, Clone)]
struct Affine {
    scale: Tensor<4>,
    shift: Tensor<4>,
}

impl Affine {
    fn new(bn: &BatchNorm) -> Self {
        let channels = bn.gamma.shape().dims::<1>()[0];
        let sigma = bn.running_var.value().add_scalar(bn.epsilon).sqrt();
        let scale = bn.gamma.val() / sigma;
        let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
        Self {
            scale: scale.reshape([1, channels, 1, 1]),
            shift: shift.reshape([1, channels, 1, 1]),
        }
    }

    /// `relu(bn(x))`.
    ///
    /// # Shapes
    /// - `x`, output: `[batch, channels, height, width]`
    fn relu(&self, x: Tensor<4>) -> Tensor<4> {
        relu(x * self.scale.clone() + self.shift.clone())
    }
}

/// A projection shortcut with its BN folded: (ResNet-D) pool, then the 1x1 convolution.
#[derive(Debug, Clone)]
struct Projection {
    pool: Option<AvgPool2d>,
    conv: Conv2d,
}

impl Projection {
    fn new(downsample: &Downsample) -> Self {
        Self {
            pool: downsample.pool.clone(),
            conv: fold_if(&downsample.conv, downsample.bn.as_ref()),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match &self.pool {
            Some(pool) => pool.forward(x),
            None => x,
        };
        amp::forward(&self.conv, x)
    }
}

/// A [Block] with its BNs folded.
#[derive(Debug, Clone)]
struct FoldedBlock {
    /// Pre-activation blocks: the BN-ReLU on the block's input.
    pre: Option<Affine>,
    conv1: Conv2d,
    conv2: Conv2d,
    /// ResNeSt: the split-attention gate (its BN folded into `fc1`) and the avd pool.
    attn: Option<SplitAttention>,
    avd: Option<AvgPool2d>,
    conv3: Option<Conv2d>,
    se: Option<SqueezeExcitation>,
    downsample: Option<Projection>,
    stride: usize,
    residual: bool,
    out_channels: usize,
    /// Deleted for a lesion study: only the shortcut is left.
    removed: bool,
}

impl FoldedBlock {
    fn new(block: &Block) -> Self {
        // Which BN follows each convolution: bn1, bn2, bn3 in the 2015 order; bn2, bn3 and
        // none with pre-activation.
        let (after1, after2, after3) = match block.preactivation {
            false => (Some(&block.bn1), Some(&block.bn2), block.bn3.as_ref()),
            true => (Some(&block.bn2), block.bn3.as_ref(), None),
        };
        Self {
            pre: block.preactivation.then(|| Affine::new(&block.bn1)),
            conv1: fold_if(&block.conv1, after1),
            conv2: fold_if(&block.conv2, after2),
            attn: block.attn.as_ref().map(|attn| SplitAttention {
                fc1: fold_if(&attn.fc1, attn.bn1.as_ref()),
                bn1: None,
                ..attn.clone()
            }),
            avd: block.avd.clone(),
            conv3: block.conv3.as_ref().map(|conv| fold_if(conv, after3)),
            se: block.se.clone(),
            downsample: block.downsample.as_ref().map(Projection::new),
            stride: block.stride,
            residual: block.residual,
            out_channels: block.conv3.as_ref().unwrap_or(&block.conv2).weight.dims()[0],
            removed: false,
        }
    }

    /// [Block::forward], folded; a removed block is `relu(shortcut(x))`, the block with
    /// F(x) = 0 (a plain block's "shortcut" is the parameter-free one: identity, or option A's
    /// subsampling and zero channels where the shape changes).
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if let Some(pre) = &self.pre {
            return self.forward_preactivated(pre, x);
        }
        if self.removed {
            return match &self.downsample {
                Some(projection) => relu(projection.forward(x)),
                // x is a ReLU's output, so relu(x) = x.
                None => parameter_free_shortcut(x, self.stride, self.out_channels),
            };
        }
        let out = self.branch(x.clone());
        if !self.residual {
            return relu(out);
        }
        let shortcut = match &self.downsample {
            Some(projection) => projection.forward(x),
            None => parameter_free_shortcut(x, self.stride, out.dims()[1]),
        };
        relu(out + shortcut)
    }

    /// This block as [CpuConv]s, if it is made of convolutions, shortcuts and
    /// squeeze-excitation only.
    fn cpu_plan(&self) -> Option<BlockPlan> {
        let plain = self.pre.is_none() && self.attn.is_none() && self.avd.is_none();
        let pooled = self.downsample.as_ref().is_some_and(|d| d.pool.is_some());
        if !plain || pooled {
            return None;
        }
        Some(BlockPlan {
            conv1: CpuConv::new(&self.conv1)?,
            conv2: CpuConv::new(&self.conv2)?,
            conv3: match &self.conv3 {
                Some(conv) => Some(CpuConv::new(conv)?),
                None => None,
            },
            se: match &self.se {
                Some(se) => Some(SePlan {
                    fc1: CpuConv::new(&se.fc1)?,
                    fc2: CpuConv::new(&se.fc2)?,
                }),
                None => None,
            },
            downsample: match &self.downsample {
                Some(projection) => Some(CpuConv::new(&projection.conv)?),
                None => None,
            },
            stride: self.stride,
            residual: self.residual,
            out_channels: self.out_channels,
        })
    }

    /// The convolutions (BNs folded) and the SE gate of F, from the block's input (its
    /// pre-activated input in a pre-activation block).
    fn branch(&self, input: Tensor<4>) -> Tensor<4> {
        let out = amp::forward(&self.conv2, relu(amp::forward(&self.conv1, input)));
        let out = match &self.conv3 {
            Some(conv3) => {
                let mixed = split_and_pool(self.attn.as_ref(), self.avd.as_ref(), relu(out));
                amp::forward(conv3, mixed)
            }
            None => out,
        };
        match &self.se {
            Some(se) => se.forward(out),
            None => out,
        }
    }

    /// The pre-activation block: `F(x) + shortcut(x)`; removed, `shortcut(x)`.
    fn forward_preactivated(&self, pre: &Affine, x: Tensor<4>) -> Tensor<4> {
        let activated = pre.relu(x.clone());
        let shortcut = |out_channels| match &self.downsample {
            Some(projection) => projection.forward(activated.clone()),
            None => parameter_free_shortcut(x.clone(), self.stride, out_channels),
        };
        if self.removed {
            return shortcut(self.out_channels);
        }
        let out = self.branch(activated.clone());
        if !self.residual {
            return out;
        }
        out + shortcut(self.out_channels)
    }
}

/// A [ResNet] in eval mode with every BN folded into its convolution: the network
/// [crate::infer::Classifier] runs.
#[derive(Debug, Clone)]
pub struct FoldedResNet {
    /// ResNet-C/D's deep stem: two convolutions (BNs folded), each followed by a ReLU.
    deep_stem: Vec<Conv2d>,
    conv1: Conv2d,
    /// Whether the stem has a (folded) BN and ReLU: not in pre-activation nets.
    stem_relu: bool,
    maxpool: Option<MaxPool2d>,
    blocks: Vec<FoldedBlock>,
    /// Pre-activation nets: the final BN-ReLU.
    norm: Option<Affine>,
    fc: Linear,
    /// On flex, the net as channels-last convolutions ([super::cpu]): none where a block has
    /// more than convolutions and shortcuts.
    cpu: Option<Arc<NetPlan>>,
}

impl FoldedResNet {
    /// Folds `model`'s running statistics into its convolutions.
    pub fn new(model: &ResNet) -> Self {
        let deep_stem = match &model.deep_stem {
            Some(stem) => vec![fold(&stem.conv1, &stem.bn1), fold(&stem.conv2, &stem.bn2)],
            None => Vec::new(),
        };
        let mut folded = Self {
            deep_stem,
            conv1: fold_if(&model.conv1, model.bn1.as_ref()),
            stem_relu: model.bn1.is_some(),
            maxpool: model.maxpool.clone(),
            blocks: model.stages().flatten().map(FoldedBlock::new).collect(),
            norm: model.norm.as_ref().map(Affine::new),
            fc: model.fc.clone(),
            cpu: None,
        };
        folded.cpu = folded.cpu_plan().map(Arc::new);
        folded
    }

    /// The net as [CpuConv]s, on flex only.
    fn cpu_plan(&self) -> Option<NetPlan> {
        let device = self.conv1.weight.device();
        if device != burn::tensor::Device::flex() || self.norm.is_some() {
            return None;
        }
        let stem = self.deep_stem.iter().chain([&self.conv1]);
        Some(NetPlan {
            stem: stem.map(CpuConv::new).collect::<Option<_>>()?,
            stem_relu: self.stem_relu,
            maxpool: self.maxpool.clone(),
            blocks: self
                .blocks
                .iter()
                .map(FoldedBlock::cpu_plan)
                .collect::<Option<_>>()?,
        })
    }

    /// Number of output classes.
    pub fn num_classes(&self) -> usize {
        self.fc.weight.shape().dims::<2>()[1]
    }

    /// Number of blocks, all stages together.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// This net with block `index` (counted over all stages) deleted, keeping its shortcut:
    /// the lesion of Veit et al. 2016 ("Residual networks behave like ensembles of relatively
    /// shallow networks"). `None` if there is no such block.
    pub fn without_block(&self, index: usize) -> Option<Self> {
        let mut lesioned = self.clone();
        lesioned.blocks.get_mut(index)?.removed = true;
        Some(lesioned)
    }

    /// [ResNet::forward] in eval mode.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        if let Some(plan) = self
            .cpu
            .as_ref()
            .filter(|_| x.device() == burn::tensor::Device::flex() && !amp::active())
        {
            let removed: Vec<bool> = self.blocks.iter().map(|b| b.removed).collect();
            if let Some(logits) = plan.forward(&x, &removed, &self.fc) {
                return logits;
            }
        }
        let x = self
            .deep_stem
            .iter()
            .fold(x, |x, conv| relu(amp::forward(conv, x)));
        let x = amp::forward(&self.conv1, x);
        let x = if self.stem_relu { relu(x) } else { x };
        let x = match &self.maxpool {
            Some(pool) => pool.forward(x),
            None => x,
        };
        let x = self.blocks.iter().fold(x, |x, block| block.forward(x));
        let x = match &self.norm {
            Some(norm) => norm.relu(x),
            None => x,
        };
        pool_and_classify(&self.fc, x)
    }
}

#[cfg(test)]
mod tests {
    use burn::module::RunningState;
    use burn::tensor::{Device, Distribution, Tensor, Tolerance};

    use super::*;
    use crate::model::arch::parse;
    use crate::model::{ResNetConfig, ShortcutOption};

    fn device() -> Device {
        Device::flex()
    }

    /// A net whose BNs are far from the identity, as after training: random γ, β, running
    /// mean and variance (tame enough that 50 layers do not blow the logits up to where
    /// float rounding alone differs by more than the tolerance).
    fn trained_like(config: &ResNetConfig) -> ResNet {
        let mut model = config.init(&device());
        model.bn1.iter_mut().for_each(randomize);
        if let Some(stem) = model.deep_stem.as_mut() {
            randomize(&mut stem.bn1);
            randomize(&mut stem.bn2);
        }
        model.norm.iter_mut().for_each(randomize);
        for stage in [
            &mut model.layer1,
            &mut model.layer2,
            &mut model.layer3,
            &mut model.layer4,
        ] {
            for block in stage.iter_mut() {
                randomize(&mut block.bn1);
                randomize(&mut block.bn2);
                block.bn3.iter_mut().for_each(randomize);
                block
                    .attn
                    .iter_mut()
                    .for_each(|a| a.bn1.iter_mut().for_each(randomize));
                block
                    .downsample
                    .iter_mut()
                    .for_each(|d| d.bn.iter_mut().for_each(randomize));
            }
        }
        model
    }

    fn randomize(bn: &mut BatchNorm) {
        let shape = bn.gamma.shape();
        let random = |low, high| {
            Tensor::<1>::random(shape.clone(), Distribution::Uniform(low, high), &device())
        };
        bn.gamma = Param::from_tensor(random(0.3, 1.2));
        bn.beta = Param::from_tensor(random(-0.5, 0.5));
        bn.running_mean = RunningState::new(random(-0.5, 0.5));
        bn.running_var = RunningState::new(random(0.5, 2.0));
    }

    /// A lesioned net is the unfolded net with that block replaced by `relu(shortcut(x))`
    /// (`shortcut(x)` with pre-activation), for residual (identity, option A and projection
    /// shortcuts) and plain nets.
    #[test]
    fn a_lesion_leaves_only_the_shortcut() {
        for arch in [
            "resnet20",
            "plain20",
            "resnet18",
            "preact_resnet20",
            "resnetv2_18",
            "resnest14d",
        ] {
            let model = trained_like(&parse(arch).unwrap());
            let size = if arch.ends_with("18") || arch.starts_with("resnest") {
                64
            } else {
                32
            };
            let x = Tensor::<4>::random(
                [2, 3, size, size],
                Distribution::Normal(0.0, 1.0),
                &device(),
            );
            let folded = FoldedResNet::new(&model);
            let blocks: Vec<&Block> = model.stages().flatten().collect();
            assert_eq!(folded.block_count(), blocks.len());
            assert!(folded.without_block(blocks.len()).is_none());
            // The first block, a downsampling one (option A or a projection) and the last.
            let downsampling = blocks.iter().position(|b| b.stride == 2).unwrap();
            for index in [0, downsampling, blocks.len() - 1] {
                let mut h = model.forward_stem(x.clone());
                for (i, block) in blocks.iter().enumerate() {
                    h = if i == index {
                        let out = block.residual_branch(h.clone()).dims()[1];
                        let shortcut = block.shortcut(h, out);
                        match block.preactivation {
                            true => shortcut,
                            false => relu(shortcut),
                        }
                    } else {
                        block.forward(h)
                    };
                }
                let expected = model.forward_head(model.finish(h));
                let scale = expected.clone().abs().max().into_scalar::<f32>();
                let lesioned = folded.without_block(index).unwrap().forward(x.clone());
                lesioned.into_data().assert_approx_eq::<f32>(
                    &expected.into_data(),
                    Tolerance::rel_abs(1e-4, 1e-5 * scale),
                );
            }
        }
    }

    /// The nets made of convolutions and shortcuts run as channels-last convolutions on flex
    /// (so the two tests here check that path against burn's unfolded net); the others keep
    /// burn's ops.
    #[test]
    fn the_cpu_path_covers_convolution_only_nets() {
        let cases = [
            ("resnet20", true),
            ("plain20", true),
            ("resnet50", true),
            ("resnext29_2x4d", true),
            ("wrn16_2", false), // pre-activation
            ("seresnet18", true),
            ("seresnext50_2x8d", true),
            ("preact_resnet20", false),
            ("resnest14d", false),
            ("resnet18d", false),
        ];
        for (arch, covered) in cases {
            let folded = FoldedResNet::new(&parse(arch).unwrap().init(&device()));
            assert_eq!(folded.cpu.is_some(), covered, "{arch}");
        }
    }

    /// The folded net gives the unfolded net's eval-mode logits, for both block kinds, the
    /// ImageNet stem, each shortcut option and a plain net.
    #[test]
    fn folding_keeps_the_logits() {
        let cases = [
            ("resnet20", None),
            ("resnet20", Some(ShortcutOption::B)),
            ("plain20", None),
            ("resnet18", Some(ShortcutOption::C)),
            ("resnet50", None),
            ("resnext29_2x4d", None),
            ("seresnext50_2x8d", None),
            ("seresnet18", None),
            ("preact_resnet20", None),
            ("preact_resnet29", None),
            ("plain-preact_resnet20", None),
            ("resnetv2_50", None),
            ("wrn16_2", None),
            ("resnest14d", None),
            ("resnest14d_4s2x40d", None),
            ("resnet18d", None),
        ];
        for (arch, shortcut) in cases {
            let mut config = parse(arch).unwrap();
            if let Some(option) = shortcut {
                config = config.with_shortcut(option);
            }
            // ImageNet nets at 64 (or an odd 65, where ResNet-D's ceil-mode pools and the avd
            // pools round), CIFAR nets at 32.
            let size = match arch {
                "resnest14d" | "resnet18d" => 65,
                a if a.contains("50") || a.ends_with("resnet18") || a.starts_with("resnest") => 64,
                _ => 32,
            };
            let model = trained_like(&config);
            let x = Tensor::<4>::random(
                [2, 3, size, size],
                Distribution::Normal(0.0, 1.0),
                &device(),
            );
            let expected = model.forward(x.clone());
            let scale = expected.clone().abs().max().into_scalar::<f32>();
            let folded = FoldedResNet::new(&model).forward(x).into_data();
            // Float rounding is relative to the logits' scale, not to each logit.
            folded.assert_approx_eq::<f32>(
                &expected.into_data(),
                Tolerance::rel_abs(1e-4, 1e-5 * scale),
            );
        }
    }
}
