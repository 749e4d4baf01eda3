//! Parameter and multiply-add counts computed from a configuration alone (no tensors), so that
//! `resnet info` answers instantly even for ResNet-152.

use serde::Serialize;

use super::config::{ResNetConfig, Stem};
use super::network::NetConfig;
use super::se::{SqueezeExcitation, reduced_channels};
use super::split_attn::SplitAttention;

/// What `resnet info` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelStats {
    /// Architecture name, e.g. `resnet50`.
    pub arch: String,
    /// Trainable parameters (BN running statistics are buffers, not parameters).
    pub params: usize,
    /// Multiply-adds of the convolutions and the classifier for one image.
    pub macs: u64,
    /// Weighted layers on the main path.
    pub depth: usize,
    /// Input side length the MACs were counted at.
    pub input_size: usize,
    /// Output classes.
    pub num_classes: usize,
}

/// Output side of a convolution or pooling window.
fn out_size(size: usize, kernel: usize, stride: usize, pad: usize) -> usize {
    (size + 2 * pad - kernel) / stride + 1
}

/// A convolution's parameters and MACs, threading the spatial size through.
struct Counter {
    params: usize,
    macs: u64,
    activations: u64,
    /// Whether every convolution is followed by a BN; pre-activation nets put their BNs
    /// before the convolutions and count them with [Counter::bn].
    bn_after_conv: bool,
}

impl Counter {
    /// A BN's γ and β.
    fn bn(&mut self, channels: usize) {
        self.params += 2 * channels;
    }

    /// A bias-free conv followed by BN (2 parameters per channel) unless the net is a
    /// pre-activation one; returns the output size.
    fn conv_bn(&mut self, size: usize, cin: usize, cout: usize, k: usize, stride: usize) -> usize {
        self.grouped_conv_bn(size, cin, cout, k, stride, 1)
    }

    /// [Counter::conv_bn] with `groups` groups: each output sees `cin / groups` inputs.
    fn grouped_conv_bn(
        &mut self,
        size: usize,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
    ) -> usize {
        let out = out_size(size, k, stride, k / 2);
        let weights = cin / groups * cout * k * k;
        self.params += weights;
        if self.bn_after_conv {
            self.bn(cout);
        }
        self.macs += (weights * out * out) as u64;
        self.activations += (cout * out * out) as u64;
        out
    }
}

/// Bytes one training step needs, roughly: every conv output is kept several times for the
/// backward pass (conv, BN and ReLU outputs, their gradients), plus parameters, gradients and
/// momentum. An estimate for refusing hopeless batch sizes up front, not an exact figure.
pub fn training_bytes(config: &NetConfig, input_size: usize, batch: usize) -> u64 {
    const COPIES_PER_ACTIVATION: u64 = 6;
    let (activations, params) = match config {
        NetConfig::ResNet(config) => config.activation_and_param_counts(input_size),
        NetConfig::DenseNet(config) => (
            config.activations(input_size),
            config.stats(input_size).params,
        ),
        NetConfig::InceptionResNet(config) => (
            config.activations(input_size),
            config.stats(input_size).params,
        ),
    };
    batch as u64 * activations * 4 * COPIES_PER_ACTIVATION + params as u64 * 4 * 4
}

impl ResNetConfig {
    /// Conv output elements per image and parameters.
    fn activation_and_param_counts(&self, input_size: usize) -> (u64, usize) {
        let c = self.count(input_size);
        (c.activations, c.params)
    }

    /// Parameters and multiply-adds of one `input_size`x`input_size` image.
    pub fn stats(&self, input_size: usize) -> ModelStats {
        let c = self.count(input_size);
        ModelStats {
            arch: self.name(),
            params: c.params,
            macs: c.macs,
            depth: self.depth(),
            input_size,
            num_classes: self.num_classes,
        }
    }

    fn count(&self, input_size: usize) -> Counter {
        let mut c = Counter {
            params: 0,
            macs: 0,
            activations: 0,
            bn_after_conv: !self.preactivation(),
        };
        let width = self.stem_channels();
        let mut size = match self.stem {
            Stem::ImageNet => {
                let s = match self.deep_stem {
                    Some(w) => {
                        let s = c.conv_bn(input_size, self.in_channels, w, 3, 2);
                        let s = c.conv_bn(s, w, w, 3, 1);
                        c.conv_bn(s, w, width, 3, 1)
                    }
                    None => c.conv_bn(input_size, self.in_channels, width, 7, 2),
                };
                out_size(s, 3, 2, 1)
            }
            Stem::Cifar => c.conv_bn(input_size, self.in_channels, width, 3, 1),
        };
        let variant = self.block_variant();
        for block in self.block_configs().into_iter().flatten() {
            let (p, out) = (block.width(), block.out_channels());
            let input = size;
            if variant.preactivation {
                // BN before each convolution: on the input, then on the inner width.
                c.bn(block.in_channels + p * (block.kind.depth() - 1));
            }
            size = match block.kind {
                super::config::BlockKind::Basic => {
                    let s = c.conv_bn(input, block.in_channels, p, 3, block.stride);
                    c.conv_bn(s, p, p, 3, 1)
                }
                super::config::BlockKind::Bottleneck => {
                    let (s1, s3) = match block.joining.stride_placement {
                        super::config::StridePlacement::V1 => (block.stride, 1),
                        super::config::StridePlacement::V1_5 => (1, block.stride),
                    };
                    let s = c.conv_bn(input, block.in_channels, p, 1, s1);
                    // ResNeSt: `radix` splits from one grouped conv, its gate, then (avd) the
                    // pool that takes the stride.
                    let splits = variant.radix.max(1);
                    let s3 = if variant.avd { 1 } else { s3 };
                    let s = c.grouped_conv_bn(s, p, p * splits, 3, s3, variant.groups * splits);
                    if variant.radix > 0 {
                        c.params += SplitAttention::params(p, variant.radix, variant.groups);
                        c.macs += SplitAttention::macs(p, variant.radix, variant.groups);
                    }
                    let s = match variant.avd {
                        true => out_size(s, 3, block.stride, 1),
                        false => s,
                    };
                    c.conv_bn(s, p, out, 1, 1)
                }
            };
            if variant.squeeze_excitation {
                // Two 1x1 convolutions with bias on the pooled vector.
                let se = SqueezeExcitation::params(out);
                c.params += se;
                c.macs += (se - reduced_channels(out) - out) as u64;
            }
            if block.has_projection() {
                // ResNet-D pools first (ceil mode) and projects at stride 1: the same output
                // size, the same parameters and multiply-adds.
                c.conv_bn(input, block.in_channels, out, 1, block.stride);
            }
        }
        let features = self.feature_channels();
        if variant.preactivation {
            c.bn(features);
        }
        c.params += features * self.num_classes + self.num_classes;
        c.macs += (features * self.num_classes) as u64;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::training_bytes;
    use crate::model::arch::parse;

    /// ResNet-20 keeps 188,416 conv outputs per 32x32 image (by hand: 7 convs of 32·32·16,
    /// 6 of 16·16·32, 6 of 8·8·64).
    #[test]
    fn training_memory_grows_with_the_batch() {
        let r20 = parse("resnet20").unwrap();
        let one = 188_416 * 4 * 6 + 269_722 * 16;
        let r20 = r20.into();
        assert_eq!(training_bytes(&r20, 32, 1), one);
        assert_eq!(
            training_bytes(&r20, 32, 128) - training_bytes(&r20, 32, 64),
            64 * 188_416 * 4 * 6
        );
    }

    /// torchvision's published parameter counts (1000 classes) and the CIFAR counts of the
    /// paper's Table 6 (0.27M, 0.46M, 0.66M, 0.85M, 1.7M), exact.
    #[test]
    fn parameter_counts_match_torchvision_and_the_paper() {
        for (arch, params) in [
            ("resnet18", 11_689_512),
            ("resnet34", 21_797_672),
            ("resnet50", 25_557_032),
            ("resnet101", 44_549_160),
            ("resnet152", 60_192_808),
            ("resnet20", 269_722),
            ("resnet32", 464_154),
            ("resnet44", 658_586),
            ("resnet56", 853_018),
            ("resnet110", 1_727_962),
        ] {
            assert_eq!(parse(arch).unwrap().stats(224).params, params, "{arch}");
        }
    }

    /// The successors' counts: torchvision's (ResNeXt, Wide ResNet) and timm's (WSL ResNeXt,
    /// SE nets) for 1000 classes, exact; the ResNeXt paper's CIFAR nets (Table 7: 34.4M and
    /// 68.1M, truncated to 0.1M: a count by hand of the Torch release's layers gives
    /// 34,426,698 and 68,155,210).
    #[test]
    fn successor_parameter_counts_match_torchvision_timm_and_the_paper() {
        for (arch, params) in [
            ("resnext50_32x4d", 25_028_904),
            ("resnext101_32x8d", 88_791_336),
            ("resnext101_64x4d", 83_455_272),
            ("resnext101_32x16d", 194_026_792),
            ("wide_resnet50_2", 68_883_240),
            ("wide_resnet101_2", 126_886_696),
            ("seresnet50", 28_088_024),
            ("seresnext50_32x4d", 27_559_896),
            // timm 1.0.31, `sum(p.numel() for p in create_model(name).parameters())`.
            ("seresnext101_32x8d", 93_569_048),
            ("seresnet18", 11_779_624),
            ("seresnet34", 21_960_416),
            ("resnetv2_18", 11_687_720),
            ("resnetv2_34", 21_795_880),
            ("resnetv2_50", 25_549_352),
            ("resnetv2_101", 44_541_480),
            ("resnetv2_152", 60_185_128),
            ("resnest14d", 10_611_688),
            ("resnest26d", 17_069_448),
            ("resnest50d", 27_483_240),
            ("resnest101e", 48_275_016),
            ("resnest200e", 70_201_544),
            ("resnest269e", 110_929_480),
            ("resnest50d_4s2x40d", 30_417_592),
            ("resnest50d_1s4x24d", 25_677_000),
            ("resnet18d", 11_708_744),
            ("resnet34d", 21_816_904),
            ("resnet50d", 25_576_264),
            ("resnet101d", 44_568_392),
            ("resnet152d", 60_212_040),
            ("resnet50c", 25_576_264),
            ("resnet50s", 25_680_808),
            ("resnet152s", 60_316_584),
            ("resnext50d_32x4d", 25_048_136),
        ] {
            assert_eq!(parse(arch).unwrap().stats(224).params, params, "{arch}");
        }
        for (arch, tenths, by_hand) in [
            ("resnext29_8x64d", 344, 34_426_698),
            ("resnext29_16x64d", 681, 68_155_210),
            // He et al. 2016 (Identity Mappings), Tables 2 and 3: 1.7M each; exact counts of
            // bearpaw/pytorch-classification's preresnet (the same layers), tests/fixtures/
            // family_counts.py.
            ("preact_resnet110", 17, 1_730_522),
            ("preact_resnet164", 17, 1_703_258),
            // Zagoruyko & Komodakis, Tables 4 and 5: 2.7M and 36.5M (rounded; 364 tenths
            // truncated); xternalz/WideResNet-pytorch's layers give the exact counts.
            ("wrn16_4", 27, 2_748_890),
            ("wrn28_10", 364, 36_479_194),
        ] {
            let params = parse(arch).unwrap().stats(32).params;
            assert_eq!((params / 100_000, params), (tenths, by_hand), "{arch}");
        }
    }

    #[test]
    fn option_b_adds_two_projections_to_resnet20() {
        let a = parse("resnet20").unwrap();
        let b = a.clone().with_shortcut(crate::model::ShortcutOption::B);
        assert_eq!(b.stats(32).params - a.stats(32).params, 2_752);
        // A plain net with option A has exactly its residual twin's parameters.
        assert_eq!(
            parse("plain20").unwrap().stats(32).params,
            a.stats(32).params
        );
    }

    /// torchvision's model table lists GFLOPS (multiply-adds, in fact) at 224x224:
    /// 1.81, 3.66, 4.09, 7.80, 11.51. The paper's Table 1 gives 1.8, 3.6, 3.8, 7.6, 11.3
    /// for v1 (stride on the 1x1, which is cheaper for the bottleneck nets).
    #[test]
    fn multiply_adds_match_published_figures() {
        for (arch, gmacs) in [
            ("resnet18", 1.81),
            ("resnet34", 3.66),
            ("resnet50", 4.09),
            ("resnet101", 7.80),
            ("resnet152", 11.51),
        ] {
            let macs = parse(arch).unwrap().stats(224).macs as f64 / 1e9;
            assert!(
                (macs - gmacs).abs() / gmacs < 0.01,
                "{arch}: {macs} vs {gmacs}"
            );
        }
        for (arch, gmacs) in [("resnet50", 3.8), ("resnet101", 7.6), ("resnet152", 11.3)] {
            let config = parse(arch)
                .unwrap()
                .with_stride_placement(crate::model::StridePlacement::V1);
            let macs = config.stats(224).macs as f64 / 1e9;
            assert!(
                (macs - gmacs).abs() / gmacs < 0.03,
                "{arch} v1: {macs} vs {gmacs}"
            );
        }
        // torchvision's GFLOPS for the successors; timm's table for resnet50d; the ResNeSt
        // paper's Table 1 for ResNeSt-50 (5.39 G, which also counts the pooling and the gate).
        for (arch, gmacs) in [
            ("resnet50d", 4.35),
            ("resnest50d", 5.39),
            ("resnext50_32x4d", 4.23),
            ("resnext101_32x8d", 16.41),
            ("resnext101_64x4d", 15.46),
            ("wide_resnet50_2", 11.40),
            ("wide_resnet101_2", 22.75),
        ] {
            let macs = parse(arch).unwrap().stats(224).macs as f64 / 1e9;
            assert!(
                (macs - gmacs).abs() / gmacs < 0.01,
                "{arch}: {macs} vs {gmacs}"
            );
        }
        // ResNet-20 at 32x32, by hand: stem 32²·27·16 = 442,368; stage 1, six convs of
        // 32²·9·16·16; stages 2 and 3, one conv of 16²·9·16·32 (resp. 8²·9·32·64) and five of
        // 16²·9·32·32 (8²·9·64·64), each 2,359,296 but the first 1,179,648; fc 64·10.
        let by_hand = 442_368 + 6 * 2_359_296 + 2 * (1_179_648 + 5 * 2_359_296) + 640;
        assert_eq!(parse("resnet20").unwrap().stats(32).macs, by_hand);
    }
}
