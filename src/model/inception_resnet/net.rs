//! Inception-ResNet-v2's modules with timm's names: `conv2d_1a` … `conv2d_4a`, `mixed_5b`,
//! `repeat.N`, `mixed_6a`, `repeat_1.N`, `mixed_7a`, `repeat_2.N`, `block8`, `conv2d_7b`,
//! `classif`. Every branch is a `Vec` of units (`branchB.I`); timm's single-unit branches
//! (`branch0.conv`) and `mixed_5b.branch3.1` (after its pool) are mapped by [crate::io].

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::{InceptionResNetConfig, Unit, units};
use crate::model::block::he_normal_fan_out;
use crate::model::cpu::{convolve, normalize_relu};
use crate::model::resnet::pool_and_classify;

/// Convolution (no bias), BN (ε = 0.001) and ReLU: timm's `ConvNormAct`.
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The convolution.
    pub conv: Conv2d,
    /// Its BN.
    pub bn: BatchNorm,
}

impl ConvBn {
    fn new(u: &Unit, device: &Device) -> Self {
        let [ph, pw] = u.pad;
        Self {
            conv: Conv2dConfig::new([u.cin, u.cout], u.kernel)
                .with_stride([u.stride, u.stride])
                .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
                .with_bias(false)
                .with_initializer(he_normal_fan_out())
                .init(device),
            bn: BatchNormConfig::new(u.cout).with_epsilon(1e-3).init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[batch, cin, h, w]`
    /// - output: `[batch, cout, h', w']` (the window's valid positions)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        normalize_relu(&self.bn, convolve(&self.conv, x))
    }
}

/// A chain of units.
fn chain(units: &[Unit], device: &Device) -> Vec<ConvBn> {
    units.iter().map(|u| ConvBn::new(u, device)).collect()
}

/// `x` through a chain of units.
fn run(chain: &[ConvBn], x: Tensor<4>) -> Tensor<4> {
    chain.iter().fold(x, |x, unit| unit.forward(x))
}

/// The 3x3/2 max-pool (no padding) of the stem and the reductions.
fn max_pool() -> MaxPool2d {
    MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).init()
}

/// A unit without a shortcut whose branches are concatenated: `mixed_5b` (a 3x3/1 average
/// pool, padding not counted, before `branch3`) and the reductions `mixed_6a` / `mixed_7a` (a
/// 3x3/2 max-pool as the last branch).
#[derive(Module, Debug)]
pub struct Mixed {
    /// First branch.
    pub branch0: Vec<ConvBn>,
    /// Second branch.
    pub branch1: Vec<ConvBn>,
    /// Third branch; empty in `mixed_6a`, whose third branch is the max-pool.
    pub branch2: Vec<ConvBn>,
    /// `mixed_5b` only: the 1x1 after the average pool.
    pub branch3: Vec<ConvBn>,
    /// `mixed_5b`: the average pool before `branch3`.
    pub avg_pool: Option<AvgPool2d>,
    /// The reductions: the max-pool concatenated after the convolution branches.
    pub max_pool: Option<MaxPool2d>,
}

impl Mixed {
    /// The unit whose branches `branches` lists ([units]).
    pub fn new(branches: &[&[Unit]], device: &Device) -> Self {
        let mut chains = branches.iter().map(|units| chain(units, device));
        let mut next = || chains.next().unwrap_or_default();
        let (branch0, branch1, branch2, branch3) = (next(), next(), next(), next());
        let avg_pool = (!branch3.is_empty()).then(|| {
            AvgPool2dConfig::new([3, 3])
                .with_strides([1, 1])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_count_include_pad(false)
                .init()
        });
        let max_pool = branch3.is_empty().then(max_pool);
        Self {
            branch0,
            branch1,
            branch2,
            branch3,
            avg_pool,
            max_pool,
        }
    }

    /// # Shapes
    /// - `x`: `[batch, cin, h, w]`
    /// - output: `[batch, cout, h', w']`: 35 → 35 (`mixed_5b`), 35 → 17, 17 → 8
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut outputs = Vec::with_capacity(4);
        for branch in [&self.branch0, &self.branch1, &self.branch2] {
            if !branch.is_empty() {
                outputs.push(run(branch, x.clone()));
            }
        }
        if let Some(pool) = &self.avg_pool {
            outputs.push(run(&self.branch3, pool.forward(x.clone())));
        }
        if let Some(pool) = &self.max_pool {
            outputs.push(pool.forward(x));
        }
        Tensor::cat(outputs, 1)
    }
}

/// An Inception-ResNet unit (timm's `Block35`, `Block17`, `Block8`):
/// `relu(x + scale · conv2d(concat(branches(x))))`.
#[derive(Module, Debug)]
pub struct Residual {
    /// First branch (a 1x1).
    pub branch0: Vec<ConvBn>,
    /// Second branch.
    pub branch1: Vec<ConvBn>,
    /// Third branch (A units only).
    pub branch2: Vec<ConvBn>,
    /// The 1x1 with bias from the concatenated branches back to the unit's width.
    pub conv2d: Conv2d,
    /// The residual's scale (0.17, 0.1, 0.2; 1 in the last unit).
    pub scale: f64,
    /// ReLU after the sum (not in the last unit, `block8`).
    pub relu: bool,
}

impl Residual {
    /// The unit of `channels` channels whose branches `branches` lists ([units]), its
    /// residual scaled by `scale`.
    pub fn new(branches: &[&[Unit]], channels: usize, scale: f64, device: &Device) -> Self {
        let mut chains = branches.iter().map(|units| chain(units, device));
        let mut next = || chains.next().unwrap_or_default();
        let (branch0, branch1, branch2) = (next(), next(), next());
        let concat = branches
            .iter()
            .filter_map(|b| b.last())
            .map(|u| u.cout)
            .sum();
        Self {
            branch0,
            branch1,
            branch2,
            conv2d: Conv2dConfig::new([concat, channels], [1, 1])
                .with_initializer(he_normal_fan_out())
                .init(device),
            scale,
            relu: true,
        }
    }

    /// # Shapes
    /// - `x`, output: `[batch, channels, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let branches: Vec<Tensor<4>> = [&self.branch0, &self.branch1, &self.branch2]
            .into_iter()
            .filter(|b| !b.is_empty())
            .map(|b| run(b, x.clone()))
            .collect();
        let out = convolve(&self.conv2d, Tensor::cat(branches, 1)) * self.scale + x;
        if self.relu { relu(out) } else { out }
    }
}

/// Inception-ResNet-v2 with timm's module names.
#[derive(Module, Debug)]
pub struct InceptionResNet {
    /// 3x3/2, 32 channels.
    pub conv2d_1a: ConvBn,
    /// 3x3, 32 channels.
    pub conv2d_2a: ConvBn,
    /// 3x3 (padded), 64 channels.
    pub conv2d_2b: ConvBn,
    /// 3x3/2 max-pool.
    pub maxpool_3a: MaxPool2d,
    /// 1x1, 80 channels.
    pub conv2d_3b: ConvBn,
    /// 3x3, 192 channels.
    pub conv2d_4a: ConvBn,
    /// 3x3/2 max-pool.
    pub maxpool_5a: MaxPool2d,
    /// 192 → 320 channels at 35x35.
    pub mixed_5b: Mixed,
    /// Inception-ResNet-A units, scale 0.17.
    pub repeat: Vec<Residual>,
    /// Reduction-A: 35x35 → 17x17, 320 → 1088.
    pub mixed_6a: Mixed,
    /// Inception-ResNet-B units, scale 0.1.
    pub repeat_1: Vec<Residual>,
    /// Reduction-B: 17x17 → 8x8, 1088 → 2080.
    pub mixed_7a: Mixed,
    /// Inception-ResNet-C units, scale 0.2.
    pub repeat_2: Vec<Residual>,
    /// The last C unit: scale 1, no ReLU.
    pub block8: Residual,
    /// 1x1, 2080 → 1536.
    pub conv2d_7b: ConvBn,
    /// Classifier over the globally pooled 1536 features.
    pub classif: Linear,
}

impl InceptionResNetConfig {
    /// Initialize a new [InceptionResNet] with He (fan-out) init.
    ///
    /// # Panics
    /// If [validate](Self::validate) fails.
    pub fn init(&self, device: &Device) -> InceptionResNet {
        if let Err(err) = self.validate() {
            panic!("invalid Inception-ResNet configuration: {err}");
        }
        let mut stem = units::STEM;
        stem[0].cin = self.in_channels;
        let [a, b, c] = units::SCALES;
        let repeat = |branches: &[&[Unit]], channels, scale, n| {
            (0..n)
                .map(|_| Residual::new(branches, channels, scale, device))
                .collect()
        };
        InceptionResNet {
            conv2d_1a: ConvBn::new(&stem[0], device),
            conv2d_2a: ConvBn::new(&stem[1], device),
            conv2d_2b: ConvBn::new(&stem[2], device),
            maxpool_3a: max_pool(),
            conv2d_3b: ConvBn::new(&stem[3], device),
            conv2d_4a: ConvBn::new(&stem[4], device),
            maxpool_5a: max_pool(),
            mixed_5b: Mixed::new(&units::MIXED_5B, device),
            repeat: repeat(&units::BLOCK35, 320, a, self.repeats[0]),
            mixed_6a: Mixed::new(&units::MIXED_6A, device),
            repeat_1: repeat(&units::BLOCK17, 1088, b, self.repeats[1]),
            mixed_7a: Mixed::new(&units::MIXED_7A, device),
            repeat_2: repeat(&units::BLOCK8, 2080, c, self.repeats[2]),
            block8: Residual {
                relu: false,
                ..Residual::new(&units::BLOCK8, 2080, 1.0, device)
            },
            conv2d_7b: ConvBn::new(&units::HEAD, device),
            classif: LinearConfig::new(units::HEAD.cout, self.num_classes).init(device),
        }
    }
}

impl InceptionResNet {
    /// Logits for a batch of normalised images (timm's Inception normalisation: mean and
    /// std 0.5).
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`, sides ≥ 75 (299 in the paper)
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self
            .conv2d_2b
            .forward(self.conv2d_2a.forward(self.conv2d_1a.forward(x)));
        let x = self.maxpool_3a.forward(x);
        let x = self.conv2d_4a.forward(self.conv2d_3b.forward(x));
        let x = self.mixed_5b.forward(self.maxpool_5a.forward(x));
        let x = self.repeat.iter().fold(x, |x, unit| unit.forward(x));
        let x = self.mixed_6a.forward(x);
        let x = self.repeat_1.iter().fold(x, |x, unit| unit.forward(x));
        let x = self.mixed_7a.forward(x);
        let x = self.repeat_2.iter().fold(x, |x, unit| unit.forward(x));
        let x = self.conv2d_7b.forward(self.block8.forward(x));
        pool_and_classify(&self.classif, x)
    }
}
