//! The network: stem, up to four stages of blocks, global average pooling, classifier.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use super::block::{Block, BlockConfig, batch_norm, conv};
use super::config::{BlockKind, Joining, ResNetConfig, Stem};
use super::cpu::{convolve, max_pool2d, normalize_relu};
use super::pool::global_average;
use super::stem::DeepStem;

/// Why a configuration cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Stages must number 1 to 4, each with at least one block.
    #[error("a ResNet has 1 to 4 stages of at least one block each, got {0:?}")]
    Layers(Vec<usize>),
    /// Zero classes, zero width or zero input channels.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// A block variant the block kind cannot take, or a width that rounds to zero.
    #[error("{0}")]
    Variant(String),
    /// A network too large to allocate (a crafted or mistyped configuration).
    #[error("the network is too large to build: {0}")]
    TooLarge(String),
}

/// The largest network [ResNetConfig::init] builds: a billion parameters (4 GB of f32), ten
/// times torchvision's largest ResNet-family member, so a typo or a crafted file cannot ask
/// for terabytes.
pub const MAX_PARAMS: u64 = 1_000_000_000;

impl ResNetConfig {
    /// Checks the configuration, so that [init](Self::init) cannot fail on it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.layers.is_empty() || self.layers.len() > 4 || self.layers.contains(&0) {
            return Err(ConfigError::Layers(self.layers.clone()));
        }
        for (value, name) in [
            (self.num_classes, "num_classes"),
            (self.base_width, "base_width"),
            (self.in_channels, "in_channels"),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.stem_width == Some(0) {
            return Err(ConfigError::Zero("stem_width"));
        }
        let variant = self.block_variant();
        if variant.preactivation && (variant.reshapes_bottleneck() || variant.squeeze_excitation) {
            // timm's resnetv2 and the pre-activation papers define neither.
            return Err(ConfigError::Variant(
                "pre-activation blocks are built without groups, wider bottlenecks or \
                 squeeze-excitation (widen a pre-activation net with base_width, as Wide \
                 ResNet does)"
                    .into(),
            ));
        }
        if (variant.radix > 0 || variant.avd)
            && (self.block == BlockKind::Basic
                || variant.preactivation
                || self.stride_placement == super::config::StridePlacement::V1)
        {
            // ResNeSt defines split attention and avd for v1.5 bottlenecks only (avd takes
            // the 3x3's stride, which v1 puts on the first 1x1).
            return Err(ConfigError::Variant(
                "split attention and avd pooling need bottleneck blocks in the 2015 order with \
                 the stride on the 3x3 (v1.5), as in ResNeSt"
                    .into(),
            ));
        }
        if variant.radix > 64 {
            return Err(ConfigError::TooLarge(format!("radix {}", variant.radix)));
        }
        match self.deep_stem {
            Some(0) => return Err(ConfigError::Zero("deep_stem")),
            Some(w) if w > 1 << 16 => {
                return Err(ConfigError::TooLarge(format!("a deep stem of width {w}")));
            }
            Some(_) if self.stem != Stem::ImageNet => {
                return Err(ConfigError::Variant(
                    "a deep stem replaces the ImageNet stem's 7x7; CIFAR nets have a 3x3 stem"
                        .into(),
                ));
            }
            _ => {}
        }
        if self.block == BlockKind::Basic && variant.reshapes_bottleneck() {
            // torchvision refuses the same ("BasicBlock only supports groups=1 and
            // base_width=64"): ResNeXt and Wide ResNet change the bottleneck's 3x3.
            return Err(ConfigError::Variant(format!(
                "basic blocks have no bottleneck to group or widen (groups {}, width per group \
                 {}): use a bottleneck depth (50, 101, 152) or a CIFAR ResNeXt (9n+2)",
                variant.groups, variant.width_per_group
            )));
        }
        if variant.groups == 0 || variant.width_per_group == 0 {
            return Err(ConfigError::Zero("groups and width_per_group"));
        }
        if variant.groups > 1 << 12 || variant.width_per_group > 1 << 16 {
            return Err(ConfigError::TooLarge(format!(
                "{} groups of width {}",
                variant.groups, variant.width_per_group
            )));
        }
        if self.block == BlockKind::Bottleneck && variant.bottleneck_width(self.base_width) == 0 {
            return Err(ConfigError::Variant(format!(
                "a first stage of {} planes at {} channels per group has no channels",
                self.base_width, variant.width_per_group
            )));
        }
        // Bound the inputs first so that counting the parameters cannot overflow.
        if self.layers.iter().any(|&n| n > 10_000)
            || self.base_width > 1 << 16
            || self.stem_channels() > 1 << 16
            || self.in_channels > 1 << 10
            || self.num_classes > 1 << 24
        {
            return Err(ConfigError::TooLarge(format!(
                "stages {:?}, width {}, {} input channels, {} classes",
                self.layers, self.base_width, self.in_channels, self.num_classes
            )));
        }
        if variant.radix > 0 {
            for planes in self.stage_planes() {
                let width = variant.bottleneck_width(planes);
                let hidden = super::split_attn::attention_channels(width, variant.radix);
                if !width.is_multiple_of(variant.groups) || !hidden.is_multiple_of(variant.groups) {
                    return Err(ConfigError::Variant(format!(
                        "split attention over {width} channels (gate {hidden}) cannot be cut \
                         into {} groups",
                        variant.groups
                    )));
                }
            }
        }
        let params = self.stats(32).params as u64;
        if params > MAX_PARAMS {
            return Err(ConfigError::TooLarge(format!(
                "{params} parameters, more than the {MAX_PARAMS} this crate builds"
            )));
        }
        Ok(())
    }

    /// The choices all its blocks share.
    pub fn joining(&self) -> Joining {
        Joining {
            shortcut: self.shortcut,
            stride_placement: self.stride_placement,
            residual: self.residual,
            zero_init_residual: self.zero_init_residual,
            variant: self.block_variant(),
        }
    }

    /// The configuration of every block, stage by stage.
    pub fn block_configs(&self) -> Vec<Vec<BlockConfig>> {
        let mut in_channels = self.stem_channels();
        self.layers
            .iter()
            .zip(self.stage_planes())
            .enumerate()
            .map(|(stage, (&blocks, planes))| {
                (0..blocks)
                    .map(|i| {
                        let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                        let block = BlockConfig::new(self.block, in_channels, planes)
                            .with_stride(stride)
                            .with_joining(self.joining());
                        in_channels = block.out_channels();
                        block
                    })
                    .collect()
            })
            .collect()
    }

    /// Initialize a new [ResNet] with He (fan-out) init.
    ///
    /// # Panics
    /// If [validate](Self::validate) fails.
    pub fn init(&self, device: &Device) -> ResNet {
        if let Err(err) = self.validate() {
            panic!("invalid ResNet configuration: {err}");
        }
        let width = self.stem_channels();
        let deep_stem = self
            .deep_stem
            .map(|w| DeepStem::new(self.in_channels, w, device));
        let (conv1, maxpool) = match self.stem {
            Stem::ImageNet => (
                match self.deep_stem {
                    Some(w) => conv(w, width, 3, 1, device),
                    None => conv(self.in_channels, width, 7, 2, device),
                },
                Some(
                    MaxPool2dConfig::new([3, 3])
                        .with_strides([2, 2])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .init(),
                ),
            ),
            Stem::Cifar => (conv(self.in_channels, width, 3, 1, device), None),
        };
        let mut stages = self
            .block_configs()
            .into_iter()
            .map(|stage| stage.iter().map(|b| b.init(device)).collect::<Vec<_>>());
        let mut next = || stages.next().unwrap_or_default();
        let preact = self.preactivation();
        ResNet {
            deep_stem,
            conv1,
            bn1: (!preact).then(|| batch_norm(width, false, device)),
            maxpool,
            layer1: next(),
            layer2: next(),
            layer3: next(),
            layer4: next(),
            norm: preact.then(|| batch_norm(self.feature_channels(), false, device)),
            fc: LinearConfig::new(self.feature_channels(), self.num_classes).init(device),
        }
    }
}

/// Global average pooling, then `fc`: the head of [ResNet] and of its folded form.
///
/// # Shapes
/// - `features`: `[batch, feature_channels, h, w]`
/// - output: `[batch, num_classes]`
pub(crate) fn pool_and_classify(fc: &Linear, features: Tensor<4>) -> Tensor<2> {
    let [batch, channels, _, _] = features.dims();
    fc.forward(global_average(features).reshape([batch, channels]))
}

/// A ResNet (or its plain twin) of either family.
///
/// Field names follow torchvision (`conv1, bn1, layer1..4, fc`); CIFAR nets leave `layer4`
/// empty and have no max-pool. Pre-activation nets have no `bn1` but a final `norm` (timm's
/// name) before the pool.
#[derive(Module, Debug)]
pub struct ResNet {
    /// ResNet-C/D's deep stem: the two 3x3 convolutions before `conv1`.
    pub deep_stem: Option<DeepStem>,
    /// Stem convolution: 7x7/2 (ImageNet), 3x3/1 (CIFAR, and the last of a deep stem).
    pub conv1: Conv2d,
    /// BN (and ReLU) after the stem convolution; none in a pre-activation net, whose first
    /// block normalises its own input.
    pub bn1: Option<BatchNorm>,
    /// 3x3/2 max-pool of the ImageNet stem.
    pub maxpool: Option<MaxPool2d>,
    /// Stage 1 (conv2_x in Table 1), full stem resolution.
    pub layer1: Vec<Block>,
    /// Stage 2 (conv3_x), half resolution.
    pub layer2: Vec<Block>,
    /// Stage 3 (conv4_x), quarter resolution.
    pub layer3: Vec<Block>,
    /// Stage 4 (conv5_x); empty in CIFAR nets.
    pub layer4: Vec<Block>,
    /// Pre-activation nets only: the BN (and ReLU) after the last block, before the pool.
    pub norm: Option<BatchNorm>,
    /// Classifier over the globally pooled features.
    pub fc: Linear,
}

impl ResNet {
    /// The non-empty stages, in order.
    pub fn stages(&self) -> impl Iterator<Item = &Vec<Block>> {
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .filter(|stage| !stage.is_empty())
    }

    /// Every block with its name in the weights (`layer2.0`), in forward order.
    pub fn named_blocks(&self) -> Vec<(String, &Block)> {
        // Stages are named by position in the struct (layer1..4), not among non-empty ones.
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .enumerate()
            .flat_map(|(stage, blocks)| {
                blocks
                    .iter()
                    .enumerate()
                    .map(move |(i, block)| (format!("layer{}.{i}", stage + 1), block))
            })
            .collect()
    }

    /// Stem: conv, BN, ReLU (none of the two in a pre-activation net) and (ImageNet)
    /// max-pool.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]`
    /// - output: `[batch, stem_channels, height / s, width / s]`, s = 4 (ImageNet) or 1 (CIFAR)
    pub fn forward_stem(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match &self.deep_stem {
            Some(stem) => stem.forward(x),
            None => x,
        };
        let x = convolve(&self.conv1, x);
        let x = match &self.bn1 {
            Some(bn1) => normalize_relu(bn1, x),
            None => x,
        };
        match &self.maxpool {
            Some(pool) => max_pool2d(pool, x),
            None => x,
        }
    }

    /// The output of every stage (`layer1`, `layer2`, …); in a pre-activation net the
    /// last one has been through the final BN-ReLU.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]`, any size ≥ 32 (smaller ones work for CIFAR nets)
    /// - output `i`: `[batch, channels_i, height / s_i, width / s_i]`
    pub fn forward_features(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut x = self.forward_stem(x);
        let mut features = Vec::with_capacity(4);
        for stage in self.stages() {
            x = stage.iter().fold(x, |x, block| block.forward(x));
            features.push(x.clone());
        }
        if let Some(last) = features.pop() {
            features.push(self.finish(last));
        }
        features
    }

    /// The final BN-ReLU of a pre-activation net; the identity otherwise.
    ///
    /// # Shapes
    /// - `x`, output: `[batch, feature_channels, h, w]`
    pub fn finish(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.norm {
            Some(norm) => normalize_relu(norm, x),
            None => x,
        }
    }

    /// Global average pooling and the classifier. Pooling over whatever spatial size
    /// arrives is what makes the net fully convolutional (the paper's multi-scale test).
    ///
    /// # Shapes
    /// - `features`: `[batch, feature_channels, h, w]`
    /// - output: `[batch, num_classes]`
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<2> {
        pool_and_classify(&self.fc, features)
    }

    /// Logits for a batch of normalised images.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.forward_stem(x);
        for stage in self.stages() {
            x = stage.iter().fold(x, |x, block| block.forward(x));
        }
        self.forward_head(self.finish(x))
    }

    /// Number of output classes.
    pub fn num_classes(&self) -> usize {
        self.fc.weight.shape().dims::<2>()[1]
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::relu;
    use burn::tensor::{Distribution, Tensor, Tolerance};

    use super::*;
    use crate::model::arch::{KNOWN, parse};
    use crate::model::{BlockKind, Joining, ShortcutOption};

    fn device() -> Device {
        Device::flex()
    }

    fn random(shape: [usize; 4]) -> Tensor<4> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device())
    }

    /// Every architecture at the paper's size and at two odd ones: the pooling is global,
    /// so any size gives `[batch, classes]`.
    #[test]
    fn every_architecture_classifies_any_input_size() {
        for arch in KNOWN {
            let config = parse(arch).unwrap();
            let model = config.init(&device());
            let sizes: &[usize] = match config.stem {
                Stem::ImageNet => &[224, 160, 257],
                Stem::Cifar => &[32, 33, 57],
            };
            for &size in sizes {
                let logits = model.forward(random([1, 3, size, size]));
                assert_eq!(logits.dims(), [1, config.num_classes], "{arch} at {size}");
            }
        }
    }

    #[test]
    fn features_have_the_resolution_and_width_of_each_stage() {
        let model = parse("resnet50").unwrap().init(&device());
        let features = model.forward_features(random([2, 3, 224, 224]));
        let shapes: Vec<[usize; 4]> = features.iter().map(|f| f.dims()).collect();
        assert_eq!(
            shapes,
            vec![
                [2, 256, 56, 56],
                [2, 512, 28, 28],
                [2, 1024, 14, 14],
                [2, 2048, 7, 7]
            ]
        );
        let cifar = parse("resnet20").unwrap().init(&device());
        let shapes: Vec<[usize; 4]> = cifar
            .forward_features(random([1, 3, 32, 32]))
            .iter()
            .map(|f| f.dims())
            .collect();
        assert_eq!(
            shapes,
            vec![[1, 16, 32, 32], [1, 32, 16, 16], [1, 64, 8, 8]]
        );
        // forward == forward_head(last feature).
        let x = random([1, 3, 32, 32]);
        let last = cifar.forward_features(x.clone()).pop().unwrap();
        cifar
            .forward_head(last)
            .into_data()
            .assert_approx_eq::<f32>(&cifar.forward(x).into_data(), Tolerance::default());
    }

    /// The module's own count (of tensors actually created) equals the analytic one, which
    /// `stats` tests against torchvision's figures.
    #[test]
    fn module_parameters_equal_the_analytic_count() {
        for arch in KNOWN.iter().chain(&[
            "plain18",
            "plain20",
            "plain34",
            "resnet50-v1",
            "resnext50_32x4d",
            "wide_resnet50_2",
            "seresnext50_32x4d",
            "seresnet18",
            "resnext29_8x64d",
            "resnetv2_50",
            "preact_resnet110",
            "preact_resnet29",
            "wrn16_4",
            "plain-preact_resnet20",
        ]) {
            let config = match arch.strip_suffix("-v1") {
                // The paper's v1: the stride on the first 1x1 of each bottleneck.
                Some(name) => parse(name)
                    .unwrap()
                    .with_stride_placement(crate::model::StridePlacement::V1),
                None => parse(arch).unwrap(),
            };
            let model = config.init(&device());
            // BN running statistics are buffers: 2 per channel per BN, not parameters.
            let buffers: usize = count_bn_channels(&model) * 2;
            assert_eq!(
                model.num_params() - buffers,
                config.stats(224).params,
                "{arch}"
            );
        }
    }

    fn count_bn_channels(model: &ResNet) -> usize {
        let bn = |b: &BatchNorm| b.gamma.shape().dims::<1>()[0];
        let mut n = model.bn1.as_ref().map_or(0, bn) + model.norm.as_ref().map_or(0, bn);
        for block in model.stages().flatten() {
            n += bn(&block.bn1) + bn(&block.bn2) + block.bn3.as_ref().map_or(0, bn);
            n += block
                .downsample
                .as_ref()
                .and_then(|d| d.bn.as_ref())
                .map_or(0, bn);
        }
        n
    }

    /// Option B projects exactly where the shape changes, including ResNet-50's first block
    /// (64 → 256 channels at stride 1), which a stride-only rule misses.
    #[test]
    fn option_b_projects_exactly_where_the_shape_changes() {
        let model = parse("resnet50").unwrap().init(&device());
        let projected: Vec<usize> = model
            .stages()
            .map(|stage| stage.iter().filter(|b| b.downsample.is_some()).count())
            .collect();
        assert_eq!(projected, vec![1, 1, 1, 1]);
        assert!(model.layer1[0].downsample.is_some());
        let r18 = parse("resnet18").unwrap().init(&device());
        assert!(r18.layer1[0].downsample.is_none());
        let c = parse("resnet18")
            .unwrap()
            .with_shortcut(ShortcutOption::C)
            .init(&device());
        assert!(c.stages().flatten().all(|b| b.downsample.is_some()));
        let plain = parse("plain34").unwrap().init(&device());
        assert!(
            plain
                .stages()
                .flatten()
                .all(|b| b.downsample.is_none() && !b.residual)
        );
    }

    /// With zero-init-residual every block starts as relu(shortcut(x)), the premise of
    /// Goyal et al.; for a plain net it would be relu(0) = 0. A pre-activation block starts
    /// as shortcut(x) (its last convolution is zero, and no ReLU follows the sum).
    #[test]
    fn zero_init_residual_makes_every_block_its_shortcut() {
        for arch in [
            "resnet20",
            "resnet18",
            "resnet50",
            "preact_resnet20",
            "resnetv2_50",
        ] {
            let config = parse(arch).unwrap().with_zero_init_residual(true);
            let model = config.init(&device());
            let size = if config.stem == Stem::Cifar { 16 } else { 64 };
            let mut x = model.forward_stem(random([2, 3, size, size]));
            for block in model.stages().flatten() {
                let y = block.forward(x.clone());
                let channels = y.dims()[1];
                let expected = match block.preactivation {
                    true => block.shortcut(x, channels),
                    false => relu(block.shortcut(x, channels)),
                };
                y.clone()
                    .into_data()
                    .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::default());
                x = y;
            }
        }
    }

    /// A plain block computes relu(F(x)) and nothing else; its residual twin adds x.
    #[test]
    fn a_plain_net_has_no_skip() {
        let plain = parse("plain20")
            .unwrap()
            .with_zero_init_residual(true)
            .init(&device());
        // F(x) = 0 everywhere, so a plain net's features vanish after the first block.
        let features = plain.forward_features(random([1, 3, 32, 32]));
        let max = features[2].clone().abs().max().into_scalar::<f32>();
        assert_eq!(max, 0.0);

        let block = BlockConfig::new(BlockKind::Basic, 16, 16)
            .with_joining(Joining {
                residual: false,
                ..Joining::DEFAULT
            })
            .init(&device());
        let x = random([1, 16, 8, 8]);
        block
            .forward(x.clone())
            .into_data()
            .assert_eq(&relu(block.residual_branch(x)).into_data(), true);
    }

    /// The successors at a small input: shapes of every stage and the logits.
    #[test]
    fn successors_classify_and_keep_the_stage_widths() {
        for (arch, widths) in [
            ("resnext50_32x4d", [256, 512, 1024, 2048]),
            ("seresnet18", [64, 128, 256, 512]),
        ] {
            let model = parse(arch).unwrap().init(&device());
            let features = model.forward_features(random([1, 3, 64, 64]));
            let channels: Vec<usize> = features.iter().map(|f| f.dims()[1]).collect();
            assert_eq!(channels, widths, "{arch}");
            assert_eq!(model.forward(random([2, 3, 64, 64])).dims(), [2, 1000]);
        }
        let cifar = parse("resnext29_8x64d").unwrap().init(&device());
        assert_eq!(cifar.forward(random([1, 3, 32, 32])).dims(), [1, 10]);
    }

    #[test]
    fn invalid_configurations_are_refused() {
        let bad = ResNetConfig::new(vec![], BlockKind::Basic, Stem::Cifar, 16);
        assert!(matches!(bad.validate(), Err(ConfigError::Layers(_))));
        let grouped_basic = parse("resnet18")
            .unwrap()
            .with_variant(Some(crate::model::BlockVariant::new().with_groups(32)));
        let err = grouped_basic.validate().unwrap_err().to_string();
        assert!(err.contains("basic blocks have no bottleneck"), "{err}");
        let zero = parse("resnet50").unwrap().with_variant(Some(
            crate::model::BlockVariant::new().with_width_per_group(0),
        ));
        assert!(zero.validate().is_err());
        let bad = parse("resnet20").unwrap().with_num_classes(0);
        assert_eq!(bad.validate(), Err(ConfigError::Zero("num_classes")));
    }

    /// He init, fan-out: conv weights have std sqrt(2 / (k² · out_channels)), grouped ones
    /// included (PyTorch's fan-out ignores the groups; Burn's default would divide by them).
    #[test]
    fn convolutions_use_he_fan_out_init() {
        let model = parse("resnet50").unwrap().init(&device());
        // layer3.1.conv2: 3x3, 256 → 256.
        assert_he_fan_out(&model.layer3[1].conv2, 256);
        // resnext50_32x4d's layer3.1.conv2: 3x3, 512 → 512 in 32 groups.
        let resnext = parse("resnext50_32x4d").unwrap().init(&device());
        assert_eq!(resnext.layer3[1].conv2.weight.dims(), [512, 16, 3, 3]);
        assert_he_fan_out(&resnext.layer3[1].conv2, 512);
    }

    fn assert_he_fan_out(conv: &Conv2d, out_channels: usize) {
        let values = conv.weight.val().into_data().try_into_vec::<f32>().unwrap();
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        let expected = (2.0f64 / (9.0 * out_channels as f64)).sqrt();
        assert!(
            (var.sqrt() - expected).abs() / expected < 0.02,
            "{} vs {expected}",
            var.sqrt()
        );
        assert!(mean.abs() < expected * 0.02);
    }
}
