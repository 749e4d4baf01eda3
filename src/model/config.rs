//! Configuration of a ResNet: which blocks, how many, how the shortcuts and strides work.
//!
//! The two families of the paper share one config:
//! - ImageNet nets (section 3.4, Table 1): 7x7/2 stem + 3x3/2 max-pool, four stages of
//!   64/128/256/512 planes.
//! - CIFAR nets (section 4.2): 3x3 stem, three stages of 16/32/64 filters, 6n+2 layers.

use burn::config::Config;

/// The residual function F of one block.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3x3 convolutions (ResNet-18/34 and the CIFAR nets). Expansion 1.
    Basic,
    /// 1x1 reduce, 3x3, 1x1 expand by 4 (ResNet-50/101/152).
    Bottleneck,
}

impl BlockKind {
    /// Output channels of a block over its `planes` (its inner width).
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }

    /// Weighted layers on the block's main path.
    pub fn depth(self) -> usize {
        match self {
            BlockKind::Basic => 2,
            BlockKind::Bottleneck => 3,
        }
    }
}

/// The shortcut options of the paper (section 3.3 and Table 3).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum ShortcutOption {
    /// Identity; where the shape changes, subsample `x[:, :, ::s, ::s]` and append zero
    /// channels after the existing ones. Parameter-free (the CIFAR nets' choice).
    A,
    /// Identity; a 1x1 projection + BN only where the shape changes (stride != 1 or the
    /// channel count differs). torchvision's choice.
    B,
    /// A 1x1 projection + BN on every block.
    C,
}

/// Where a downsampling bottleneck puts its stride.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum StridePlacement {
    /// On the first 1x1 convolution, as in the paper (and Caffe's release).
    V1,
    /// On the 3x3 convolution, as in torchvision ("ResNet v1.5"): ~0.5% better top-1.
    V1_5,
}

/// The layers before the first stage.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Stem {
    /// 7x7/2 conv (64) + BN + ReLU + 3x3/2 max-pool.
    ImageNet,
    /// 3x3/1 conv (16) + BN + ReLU.
    Cifar,
}

impl Stem {
    /// The input side the family is built for: 224 (ImageNet) or 32 (CIFAR), where `resnet
    /// info` counts multiply-adds unless told otherwise.
    pub fn input_size(self) -> usize {
        match self {
            Stem::ImageNet => 224,
            Stem::Cifar => 32,
        }
    }
}

/// What ResNet's successors change inside a block: ResNeXt's grouped 3x3 (Xie et al. 2017),
/// Wide ResNet's wider bottleneck (Zagoruyko & Komodakis 2016), squeeze-excitation (Hu et
/// al. 2018) and pre-activation (He et al. 2016). [BlockVariant::RESNET] is the 2015 block.
/// The fields are torchvision's `groups` and `width_per_group` and timm's `attn_layer='se'`
/// and `resnetv2`, so their checkpoints map by name.
///
/// Plain serde rather than `#[derive(Config)]`: a field added later (pre-activation) must
/// read as its default from weights files written before it existed, which Config's
/// generated deserializer does not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct BlockVariant {
    /// Groups of each bottleneck's 3x3 convolution: ResNeXt's cardinality C (32 in
    /// resnext50_32x4d); 1 in ResNet and Wide ResNet.
    pub groups: usize,
    /// Channels per group of the first stage's 3x3 (ResNeXt's d, torchvision's
    /// `width_per_group`), doubled at each stage like the planes: 4 in resnext50_32x4d, 128 in
    /// wide_resnet50_2, 64 in ResNet. A bottleneck's inner width is
    /// `planes * width_per_group / 64 * groups`.
    pub width_per_group: usize,
    /// A squeeze-and-excitation gate on each block's residual branch, after its last BN (timm's
    /// `SEModule`: global pool, 1x1 conv with bias to channels/16 rounded to a multiple of 8,
    /// ReLU, 1x1 conv back, sigmoid).
    pub squeeze_excitation: bool,
    /// Pre-activation ("Identity Mappings in Deep Residual Networks", He et al. 2016): each
    /// block is BN-ReLU-conv (-BN-ReLU-conv …) and returns `F(x) + x` with no ReLU after the
    /// sum, so the identity path runs clean from the stem to a final BN-ReLU before the pool.
    /// The stem is a bare convolution; a projection shortcut is a bare 1x1 convolution of the
    /// block's pre-activated input (timm's `resnetv2`).
    pub preactivation: bool,
    /// Split attention (ResNeSt, Zhang et al. 2020): each bottleneck's 3x3 computes `radix`
    /// splits that a gate weighs per channel ([crate::model::SplitAttention]); 0 is the plain
    /// 3x3 (timm's `radix`, 2 in resnest50d).
    pub radix: usize,
    /// ResNeSt's "avd": a downsampling bottleneck keeps its 3x3 at stride 1 and subsamples
    /// with a 3x3 average pool (padding 1) after it.
    pub avd: bool,
    /// ResNet-D's projection (He et al. 2019, "Bag of Tricks"): a 2x2 average pool of the
    /// block's stride, then a stride-1 1x1 convolution and BN, so that the projection sees
    /// every input pixel (timm's `avg_down`; keys `downsample.1`, `downsample.2`).
    pub avg_down: bool,
}

impl BlockVariant {
    /// The 2015 ResNet block: no groups, torchvision's widths, no gate.
    pub const RESNET: BlockVariant = BlockVariant {
        groups: 1,
        width_per_group: 64,
        squeeze_excitation: false,
        preactivation: false,
        radix: 0,
        avd: false,
        avg_down: false,
    };

    /// [BlockVariant::RESNET], to build on with the `with_` methods.
    pub fn new() -> Self {
        Self::RESNET
    }

    /// With ResNeXt's cardinality.
    pub fn with_groups(self, groups: usize) -> Self {
        Self { groups, ..self }
    }

    /// With channels per group (ResNeXt's d, Wide ResNet's 64·k).
    pub fn with_width_per_group(self, width_per_group: usize) -> Self {
        Self {
            width_per_group,
            ..self
        }
    }

    /// With or without squeeze-excitation gates.
    pub fn with_squeeze_excitation(self, squeeze_excitation: bool) -> Self {
        Self {
            squeeze_excitation,
            ..self
        }
    }

    /// With or without pre-activation blocks.
    pub fn with_preactivation(self, preactivation: bool) -> Self {
        Self {
            preactivation,
            ..self
        }
    }

    /// With split attention of `radix` splits (0: none) and ResNeSt's avd pooling.
    pub fn with_split_attention(self, radix: usize, avd: bool) -> Self {
        Self { radix, avd, ..self }
    }

    /// With or without ResNet-D's average-pooled projections.
    pub fn with_avg_down(self, avg_down: bool) -> Self {
        Self { avg_down, ..self }
    }

    /// Inner width of a bottleneck with `planes` planes (torchvision's
    /// `int(planes * (width_per_group / 64.)) * groups`).
    pub fn bottleneck_width(&self, planes: usize) -> usize {
        planes * self.width_per_group / 64 * self.groups
    }

    /// Whether the width differs from ResNet's (grouped or widened).
    pub fn reshapes_bottleneck(&self) -> bool {
        self.groups != 1 || self.width_per_group != 64
    }
}

impl Default for BlockVariant {
    fn default() -> Self {
        Self::RESNET
    }
}

/// The choices every block of a net shares, taken from its [ResNetConfig] (which documents
/// each field and takes its defaults from [Joining::DEFAULT]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Joining {
    /// [ResNetConfig::shortcut].
    pub shortcut: ShortcutOption,
    /// [ResNetConfig::stride_placement].
    pub stride_placement: StridePlacement,
    /// [ResNetConfig::residual].
    pub residual: bool,
    /// [ResNetConfig::zero_init_residual].
    pub zero_init_residual: bool,
    /// [ResNetConfig::variant], [BlockVariant::RESNET] where it is `None`.
    pub variant: BlockVariant,
}

impl Joining {
    /// torchvision's: projections where shapes change, stride on the 3x3, residual, γ = 1.
    pub const DEFAULT: Joining = Joining {
        shortcut: ShortcutOption::B,
        stride_placement: StridePlacement::V1_5,
        residual: true,
        zero_init_residual: false,
        variant: BlockVariant::RESNET,
    };
}

impl Default for Joining {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Configuration to create a [ResNet](crate::model::ResNet), using [init](ResNetConfig::init).
#[derive(Config, Debug, PartialEq)]
pub struct ResNetConfig {
    /// Number of blocks in each stage, e.g. `[3, 4, 6, 3]` for ResNet-50 or `[3, 3, 3]`
    /// for ResNet-20. The first stage keeps the resolution, each later one halves it.
    pub layers: Vec<usize>,
    /// The residual function of every block.
    pub block: BlockKind,
    /// The layers before the first stage.
    pub stem: Stem,
    /// Planes of the first stage (doubled at each later stage): 64 for ImageNet, 16 for CIFAR.
    pub base_width: usize,
    /// Number of output classes of the final fully-connected layer.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Shortcut option A, B or C of the paper.
    #[config(default = "Joining::DEFAULT.shortcut")]
    pub shortcut: ShortcutOption,
    /// Stride on the first 1x1 (v1, the paper) or the 3x3 (v1.5, torchvision) of bottlenecks.
    #[config(default = "Joining::DEFAULT.stride_placement")]
    pub stride_placement: StridePlacement,
    /// `false` builds the "plain" twin: the same layers with every shortcut removed.
    #[config(default = "Joining::DEFAULT.residual")]
    pub residual: bool,
    /// Initialise the last BN γ of every block to 0, so each block starts as the identity
    /// (Goyal et al. 2017); ignored by plain nets' forward but still applied to their init.
    #[config(default = "Joining::DEFAULT.zero_init_residual")]
    pub zero_init_residual: bool,
    /// Channels of the input image.
    #[config(default = 3)]
    pub in_channels: usize,
    /// ResNeXt / Wide ResNet / SE / pre-activation blocks; `None` is the 2015 ResNet (and what
    /// weights files written before the variants existed say, by leaving the field out).
    pub variant: Option<BlockVariant>,
    /// Channels of the stem convolution where they differ from `base_width`: Wide ResNet's
    /// CIFAR nets keep a 16-channel stem under stages of 16·k planes. `None`: `base_width`.
    pub stem_width: Option<usize>,
    /// ResNet-C/D's deep stem (He et al. 2019; timm's `stem_type='deep'`, `stem_width`) in
    /// place of the 7x7: three 3x3 convolutions (the first of stride 2) of `w`, `w` and
    /// [stem_channels](Self::stem_channels) channels, each with BN, then the max-pool. 32 in
    /// resnet50d and resnest50d, 64 in resnest101e. ImageNet stem only.
    pub deep_stem: Option<usize>,
}

impl ResNetConfig {
    /// The block variant, [BlockVariant::RESNET] where none is set.
    pub fn block_variant(&self) -> BlockVariant {
        self.variant.unwrap_or_default()
    }

    /// Planes (inner width) of every stage.
    pub fn stage_planes(&self) -> Vec<usize> {
        (0..self.layers.len())
            .map(|i| self.base_width << i)
            .collect()
    }

    /// Channels entering the first stage.
    pub fn stem_channels(&self) -> usize {
        self.stem_width.unwrap_or(self.base_width)
    }

    /// Whether the blocks are pre-activation ones (see [BlockVariant::preactivation]).
    pub fn preactivation(&self) -> bool {
        self.block_variant().preactivation
    }

    /// Channels of the last stage's output, the input of the classifier.
    pub fn feature_channels(&self) -> usize {
        self.stage_planes()
            .last()
            .copied()
            .unwrap_or(self.base_width)
            * self.block.expansion()
    }

    /// Weighted layers on the main path: stem conv + blocks + fc (what "ResNet-50" counts).
    pub fn depth(&self) -> usize {
        1 + self.layers.iter().sum::<usize>() * self.block.depth() + 1
    }

    /// Total downsampling of the trunk (32 for ImageNet nets, 4 for CIFAR nets).
    pub fn output_stride(&self) -> usize {
        let stem = match self.stem {
            Stem::ImageNet => 4,
            Stem::Cifar => 1,
        };
        stem << self.layers.len().saturating_sub(1)
    }

    /// ResNet-C/D/E/S's letter after the depth (timm's names): a deep stem of 32 (`c`, with
    /// average-pooled projections `d`) or of 64 (`s`, `e`); empty for the 7x7 stem.
    fn stem_letter(&self) -> &'static str {
        let avg_down = self.block_variant().avg_down;
        match (self.deep_stem, avg_down) {
            (Some(32), false) => "c",
            (Some(32), true) => "d",
            (Some(64), false) => "s",
            (Some(64), true) => "e",
            _ => "",
        }
    }

    /// A short human name: `resnet50`, `plain20`, `resnet20-B`, `resnet50-v1`,
    /// `resnext50_32x4d`, `wide_resnet50_2`, `seresnet50`, `resnet50d`, `resnest50d`;
    /// [crate::model::arch::parse] reads it back.
    pub fn name(&self) -> String {
        let variant = self.block_variant();
        let depth = self.depth();
        let se = if variant.squeeze_excitation { "se" } else { "" };
        let letter = self.stem_letter();
        let mut name = if variant.preactivation {
            let plain = if self.residual { "" } else { "plain-" };
            match self.stem {
                Stem::ImageNet => format!("{plain}resnetv2_{depth}"),
                // Wide ResNet counts its three projections: depth 6n + 4.
                Stem::Cifar if self.stem_channels() != self.base_width => format!(
                    "{plain}wrn{}_{}",
                    depth + 2,
                    self.base_width / self.stem_channels()
                ),
                Stem::Cifar => format!("{plain}preact_resnet{depth}"),
            }
        } else if variant.radix > 0 {
            // timm: resnest50d, and resnest50d_4s2x40d for other radices, cardinalities and
            // widths.
            let shape = (variant.radix, variant.groups, variant.width_per_group);
            match shape {
                (2, 1, 64) if variant.avd => format!("{se}resnest{depth}{letter}"),
                (r, c, w) => format!("{se}resnest{depth}{letter}_{r}s{c}x{w}d"),
            }
        } else if variant.groups > 1 || !variant.width_per_group.is_multiple_of(64) {
            format!(
                "{se}resnext{depth}{letter}_{}x{}d",
                variant.groups, variant.width_per_group
            )
        } else if variant.width_per_group != 64 {
            format!(
                "{se}wide_resnet{depth}{letter}_{}",
                variant.width_per_group / 64
            )
        } else if self.residual || variant != BlockVariant::RESNET || self.deep_stem.is_some() {
            format!("{se}resnet{depth}{letter}")
        } else {
            format!("plain{depth}")
        };
        if !self.residual
            && (variant != BlockVariant::RESNET || self.deep_stem.is_some())
            && !variant.preactivation
        {
            name = format!("plain-{name}");
        }
        if self.stem == Stem::Cifar
            && !variant.preactivation
            && crate::model::arch::imagenet_preset(depth).is_some()
        {
            name = format!("cifar-{name}");
        }
        let default_shortcut = match (self.stem, self.block) {
            (Stem::Cifar, BlockKind::Basic) if !variant.preactivation => ShortcutOption::A,
            _ => ShortcutOption::B,
        };
        if self.residual && self.shortcut != default_shortcut {
            name.push_str(&format!("-{:?}", self.shortcut));
        }
        if self.block == BlockKind::Bottleneck && self.stride_placement == StridePlacement::V1 {
            name.push_str("-v1");
        }
        name
    }
}
