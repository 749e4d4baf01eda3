//! Inception-ResNet-v2 (Szegedy et al. 2016, "Inception-v4, Inception-ResNet and the Impact of
//! Residual Connections on Learning"): Inception's multi-branch units with a residual
//! connection around each, `y = relu(x + s · F(x))` with F's output scaled down (s = 0.17, 0.1,
//! 0.2) because, the paper found, unscaled residuals of more than ~1000 channels made training
//! die. timm's `inception_resnet_v2`, with its module names, so its state dicts load.
//!
//! A third module tree beside [crate::model::ResNet] and [crate::model::DenseNet]. The
//! architecture is written once as tables of convolutions ([units]) that both
//! [InceptionResNetConfig::init] and [InceptionResNetConfig::stats] read.

mod net;

use burn::config::Config;

use super::ConfigError;
use super::stats::ModelStats;

pub use net::{ConvBn, InceptionResNet, Mixed, Residual};

/// Configuration to create an [InceptionResNet], using [init](InceptionResNetConfig::init).
#[derive(Config, Debug, PartialEq)]
pub struct InceptionResNetConfig {
    /// Number of output classes.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Channels of the input image.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Residual units at each of the three resolutions (Inception-ResNet-A, -B and -C: timm's
    /// `repeat`, `repeat_1`, `repeat_2`), not counting the last, unscaled C unit (`block8`).
    #[config(default = "[10, 20, 9]")]
    pub repeats: [usize; 3],
}

/// One conv-BN-ReLU unit: input and output channels, kernel `[h, w]`, stride, padding
/// `[h, w]`. timm's `ConvNormAct` with BN ε = 0.001 (TensorFlow's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel height and width (1x7 and 7x1 in the B units).
    pub kernel: [usize; 2],
    /// Stride (both directions).
    pub stride: usize,
    /// Zero padding of height and width.
    pub pad: [usize; 2],
}

/// A square `k`x`k` unit with padding `pad`.
const fn sq(cin: usize, cout: usize, k: usize, stride: usize, pad: usize) -> Unit {
    Unit {
        cin,
        cout,
        kernel: [k, k],
        stride,
        pad: [pad, pad],
    }
}

/// A 1x1 unit.
const fn pw(cin: usize, cout: usize) -> Unit {
    sq(cin, cout, 1, 1, 0)
}

/// The tables of the net: each unit's branches (each a chain of [Unit]s), in timm's order.
pub mod units {
    use super::{Unit, pw, sq};

    /// The stem before `mixed_5b`: conv2d_1a, 2a, 2b, (max-pool 3a), 3b, 4a, (max-pool 5a).
    /// The first unit's input is the image (its `cin` is replaced by `in_channels`).
    pub const STEM: [Unit; 5] = [
        sq(3, 32, 3, 2, 0),
        sq(32, 32, 3, 1, 0),
        sq(32, 64, 3, 1, 1),
        pw(64, 80),
        sq(80, 192, 3, 1, 0),
    ];
    /// `mixed_5b` (35x35, 192 → 320): 1x1; 1x1-5x5; 1x1-3x3-3x3; 3x3 average pool-1x1.
    pub const MIXED_5B: [&[Unit]; 4] = [
        &[pw(192, 96)],
        &[pw(192, 48), sq(48, 64, 5, 1, 2)],
        &[pw(192, 64), sq(64, 96, 3, 1, 1), sq(96, 96, 3, 1, 1)],
        &[pw(192, 64)],
    ];
    /// Inception-ResNet-A (`Block35`, 320 channels), then the 1x1 back to 320.
    pub const BLOCK35: [&[Unit]; 3] = [
        &[pw(320, 32)],
        &[pw(320, 32), sq(32, 32, 3, 1, 1)],
        &[pw(320, 32), sq(32, 48, 3, 1, 1), sq(48, 64, 3, 1, 1)],
    ];
    /// Reduction-A (`mixed_6a`, 35 → 17, 320 → 1088): 3x3/2; 1x1-3x3-3x3/2; and a max-pool.
    pub const MIXED_6A: [&[Unit]; 2] = [
        &[sq(320, 384, 3, 2, 0)],
        &[pw(320, 256), sq(256, 256, 3, 1, 1), sq(256, 384, 3, 2, 0)],
    ];
    /// Inception-ResNet-B (`Block17`, 1088 channels): 1x1; 1x1-1x7-7x1.
    pub const BLOCK17: [&[Unit]; 2] = [
        &[pw(1088, 192)],
        &[
            pw(1088, 128),
            Unit {
                cin: 128,
                cout: 160,
                kernel: [1, 7],
                stride: 1,
                pad: [0, 3],
            },
            Unit {
                cin: 160,
                cout: 192,
                kernel: [7, 1],
                stride: 1,
                pad: [3, 0],
            },
        ],
    ];
    /// Reduction-B (`mixed_7a`, 17 → 8, 1088 → 2080): three 1x1-3x3/2 chains and a max-pool.
    pub const MIXED_7A: [&[Unit]; 3] = [
        &[pw(1088, 256), sq(256, 384, 3, 2, 0)],
        &[pw(1088, 256), sq(256, 288, 3, 2, 0)],
        &[pw(1088, 256), sq(256, 288, 3, 1, 1), sq(288, 320, 3, 2, 0)],
    ];
    /// Inception-ResNet-C (`Block8`, 2080 channels): 1x1; 1x1-1x3-3x1.
    pub const BLOCK8: [&[Unit]; 2] = [
        &[pw(2080, 192)],
        &[
            pw(2080, 192),
            Unit {
                cin: 192,
                cout: 224,
                kernel: [1, 3],
                stride: 1,
                pad: [0, 1],
            },
            Unit {
                cin: 224,
                cout: 256,
                kernel: [3, 1],
                stride: 1,
                pad: [1, 0],
            },
        ],
    ];
    /// `conv2d_7b`: 2080 → 1536 before the pool.
    pub const HEAD: Unit = pw(2080, 1536);
    /// The residual scales of the A, B and C units (the last C unit: 1, and no ReLU).
    pub const SCALES: [f64; 3] = [0.17, 0.10, 0.20];
}

/// The name timm gives it; the only Inception-ResNet this crate builds.
pub const NAME: &str = "inception_resnet_v2";

/// The Inception-ResNet a name describes: `inception_resnet_v2` (1000 classes).
pub fn parse(name: &str) -> Option<InceptionResNetConfig> {
    (name.trim().eq_ignore_ascii_case(NAME)).then(InceptionResNetConfig::new)
}

/// Output side of a window over `size` pixels.
fn out_size(size: usize, kernel: usize, stride: usize, pad: usize) -> Option<usize> {
    (size + 2 * pad).checked_sub(kernel).map(|s| s / stride + 1)
}

impl InceptionResNetConfig {
    /// timm's name (with the repeats where they differ from the paper's 10, 20, 9).
    pub fn name(&self) -> String {
        match self.repeats {
            [10, 20, 9] => NAME.to_string(),
            [a, b, c] => format!("{NAME}-{a}x{b}x{c}"),
        }
    }

    /// The input side it is built for (299, as Inception-v3 and -v4).
    pub fn input_size(&self) -> usize {
        299
    }

    /// The smallest input side the valid (unpadded) convolutions and pools accept.
    pub const MIN_INPUT: usize = 75;

    /// Weighted layers on the longest path: the stem's five convolutions, the deepest branch
    /// of each unit plus its 1x1 (A: 3 + 1, B: 3 + 1, C: 3 + 1), the reductions' deepest
    /// chains (3 each), `conv2d_7b` and the classifier.
    pub fn depth(&self) -> usize {
        let [a, b, c] = self.repeats;
        5 + 3 + 4 * a + 3 + 4 * b + 3 + 4 * (c + 1) + 1 + 1
    }

    /// Checks the configuration, so that [init](Self::init) cannot fail on it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (value, name) in [
            (self.num_classes, "num_classes"),
            (self.in_channels, "in_channels"),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.num_classes > 1 << 24
            || self.in_channels > 1 << 10
            || self.repeats.iter().any(|&n| n > 1000)
        {
            return Err(ConfigError::TooLarge(format!("{self:?}")));
        }
        Ok(())
    }

    /// Parameters and multiply-adds of one `input_size`x`input_size` image (at least
    /// [MIN_INPUT](Self::MIN_INPUT); smaller sizes count the parameters only).
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

    /// Convolution output elements of one `input_size`x`input_size` image (the training
    /// memory estimate's unit, as for the other trees).
    pub fn activations(&self, input_size: usize) -> u64 {
        self.count(input_size).activations
    }

    fn count(&self, input_size: usize) -> Count {
        let mut c = Count::default();
        let mut stem = units::STEM;
        stem[0].cin = self.in_channels;
        let mut size = Some(input_size);
        for (i, u) in stem.iter().enumerate() {
            size = c.unit(u, size, true);
            if i == 2 || i == 4 {
                size = max_pool(size);
            }
        }
        size = c.branches(&units::MIXED_5B, size);
        for _ in 0..self.repeats[0] {
            c.residual(&units::BLOCK35, 320, size);
        }
        size = max_pool(size).and(c.branches(&units::MIXED_6A, size));
        for _ in 0..self.repeats[1] {
            c.residual(&units::BLOCK17, 1088, size);
        }
        size = max_pool(size).and(c.branches(&units::MIXED_7A, size));
        for _ in 0..=self.repeats[2] {
            c.residual(&units::BLOCK8, 2080, size);
        }
        c.unit(&units::HEAD, size, true);
        c.params += units::HEAD.cout * self.num_classes + self.num_classes;
        c.macs += (units::HEAD.cout * self.num_classes) as u64;
        c
    }
}

/// The 3x3/2 max-pool of the stem and the reductions.
fn max_pool(size: Option<usize>) -> Option<usize> {
    size.and_then(|s| out_size(s, 3, 2, 0))
}

/// Parameters, multiply-adds and convolution outputs, threading the spatial size through (`None` once an input is
/// too small for a valid window).
#[derive(Default)]
struct Count {
    params: usize,
    macs: u64,
    activations: u64,
}

impl Count {
    /// A conv-BN-ReLU unit, or (`bn = false`) a convolution with a bias.
    fn unit(&mut self, u: &Unit, size: Option<usize>, bn: bool) -> Option<usize> {
        let weights = u.cin * u.cout * u.kernel[0] * u.kernel[1];
        self.params += weights + if bn { 2 * u.cout } else { u.cout };
        let out = size.and_then(|s| out_size(s, u.kernel[0], u.stride, u.pad[0]));
        if let Some(out) = out {
            self.macs += (weights * out * out) as u64;
            self.activations += (u.cout * out * out) as u64;
        }
        out
    }

    /// Parallel chains of units on the same input; the size they all output.
    fn branches(&mut self, branches: &[&[Unit]], size: Option<usize>) -> Option<usize> {
        let mut out = size;
        for chain in branches {
            out = chain.iter().fold(size, |s, u| self.unit(u, s, true));
        }
        out
    }

    /// A residual unit: its branches, then the 1x1 with bias from their concatenation back to
    /// `channels`.
    fn residual(&mut self, branches: &[&[Unit]], channels: usize, size: Option<usize>) {
        self.branches(branches, size);
        let concat = branches
            .iter()
            .filter_map(|b| b.last())
            .map(|u| u.cout)
            .sum();
        self.unit(&pw(concat, channels), size, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// timm 1.0.31: `sum(p.numel() for p in create_model('inception_resnet_v2').parameters())`;
    /// timm's table gives 13.2 G multiply-adds at 299x299.
    #[test]
    fn activations_match_timm() {
        // timm's model card (fvcore's count of convolution and linear outputs) gives 25.1 M
        // activations at 299x299; ours counts the convolutions: the linear adds 1,000.
        let config = parse("inception_resnet_v2").unwrap();
        let activations = config.activations(299) + 1_000;
        assert_eq!((activations as f64 / 1e5).round(), 251.0, "{activations}");
        // The training memory estimate reads it: a 75x75 image is a sliver of a 299 one.
        assert!(config.activations(75) * 10 < activations);
    }

    #[test]
    fn counts_match_timm() {
        let config = parse("inception_resnet_v2").unwrap();
        let stats = config.stats(299);
        assert_eq!(stats.params, 55_843_464);
        let gmacs = stats.macs as f64 / 1e9;
        assert!((gmacs - 13.2).abs() / 13.2 < 0.01, "{gmacs}");
        assert_eq!(parse("Inception_ResNet_v2 "), Some(config));
        assert_eq!(parse("inception_resnet_v1"), None);
    }
}
