//! DenseNet (Huang et al. 2017, "Densely Connected Convolutional Networks"), the successor
//! that concatenates instead of adding: every layer of a dense block sees the feature maps of
//! all the layers before it. torchvision's `densenet121/169/201/161` and the paper's CIFAR
//! DenseNet-BC (`densenet_bc100_12`), with torchvision's module names.
//!
//! A second module tree beside [crate::model::ResNet], with torchvision's layout so its state
//! dicts load; the classifier, the trainer (fresh runs and fine-tuning) and the page take it.

mod net;

use burn::config::Config;

use super::config::Stem;
use super::stats::ModelStats;

pub use net::{DenseLayer, DenseNet, Features, Transition};

/// Configuration to create a [DenseNet], using [init](DenseNetConfig::init). The fields are
/// torchvision's `DenseNet(growth_rate, block_config, num_init_features, bn_size)`.
#[derive(Config, Debug, PartialEq)]
pub struct DenseNetConfig {
    /// Layers in each dense block: `[6, 12, 24, 16]` for DenseNet-121, `[16, 16, 16]` for
    /// DenseNet-BC-100. One to four blocks.
    pub block_config: Vec<usize>,
    /// Growth rate k: the channels each layer adds (32; 48 in DenseNet-161; 12 on CIFAR).
    pub growth_rate: usize,
    /// Channels of the stem convolution (64; 96 in DenseNet-161; 2k on CIFAR).
    pub num_init_features: usize,
    /// Each layer's 1x1 bottleneck has `bn_size · k` channels (the "B" of DenseNet-BC).
    #[config(default = 4)]
    pub bn_size: usize,
    /// ImageNet: 7x7/2 conv, BN-ReLU, 3x3/2 max-pool. CIFAR: a bare 3x3/1 conv.
    pub stem: Stem,
    /// Number of output classes.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Channels of the input image.
    #[config(default = 3)]
    pub in_channels: usize,
}

/// The four ImageNet DenseNets of torchvision: `(depth, growth rate, blocks, stem width)`.
const IMAGENET: [(usize, usize, [usize; 4], usize); 4] = [
    (121, 32, [6, 12, 24, 16], 64),
    (169, 32, [6, 12, 32, 32], 64),
    (201, 32, [6, 12, 48, 32], 64),
    (161, 48, [6, 12, 36, 24], 96),
];

/// The DenseNet a name describes: `densenet121`, `densenet169`, `densenet201`, `densenet161`
/// (ImageNet, 1000 classes) or `densenet_bc{L}_{k}` (CIFAR DenseNet-BC with depth L = 6n + 4
/// and growth rate k, 10 classes: `densenet_bc100_12`, `densenet_bc250_24`, `densenet_bc190_40`).
pub fn parse(name: &str) -> Option<DenseNetConfig> {
    let name = name.trim().to_ascii_lowercase();
    if let Some(rest) = name.strip_prefix("densenet_bc") {
        let (depth, k) = rest.split_once('_')?;
        let (depth, k): (usize, usize) = (depth.parse().ok()?, k.parse().ok()?);
        if depth < 10 || !(depth - 4).is_multiple_of(6) || k == 0 || k > 1 << 10 {
            return None;
        }
        // Three blocks of n bottleneck layers (two convolutions each), compression 0.5.
        let n = (depth - 4) / 6;
        return Some(
            DenseNetConfig::new(vec![n, n, n], k, 2 * k, Stem::Cifar).with_num_classes(10),
        );
    }
    let depth: usize = name.strip_prefix("densenet")?.parse().ok()?;
    let (_, k, blocks, width) = IMAGENET.into_iter().find(|(d, ..)| *d == depth)?;
    Some(DenseNetConfig::new(
        blocks.to_vec(),
        k,
        width,
        Stem::ImageNet,
    ))
}

/// The DenseNets with published weights or results, for listings.
pub const KNOWN: [&str; 5] = [
    "densenet121",
    "densenet169",
    "densenet201",
    "densenet161",
    "densenet_bc100_12",
];

impl DenseNetConfig {
    /// The name [parse] reads back.
    pub fn name(&self) -> String {
        match self.stem {
            Stem::Cifar => format!("densenet_bc{}_{}", self.depth(), self.growth_rate),
            Stem::ImageNet => format!("densenet{}", self.depth()),
        }
    }

    /// Weighted layers on the main path: the stem, two per dense layer, one per transition and
    /// the classifier (121 for DenseNet-121; the CIFAR nets count 6n + 4 the same way).
    pub fn depth(&self) -> usize {
        let layers: usize = self.block_config.iter().sum();
        1 + 2 * layers + self.block_config.len().saturating_sub(1) + 1
    }

    /// Checks the configuration, so that [init](Self::init) cannot fail on it.
    pub fn validate(&self) -> Result<(), super::ConfigError> {
        use super::ConfigError;
        let blocks = &self.block_config;
        if blocks.is_empty() || blocks.len() > 4 || blocks.contains(&0) {
            return Err(ConfigError::Layers(blocks.clone()));
        }
        for (value, name) in [
            (self.growth_rate, "growth_rate"),
            (self.num_init_features, "num_init_features"),
            (self.bn_size, "bn_size"),
            (self.num_classes, "num_classes"),
            (self.in_channels, "in_channels"),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if blocks.iter().any(|&n| n > 1_000)
            || self.growth_rate > 1 << 10
            || self.num_init_features > 1 << 12
            || self.bn_size > 64
            || self.num_classes > 1 << 24
            || self.in_channels > 1 << 10
        {
            return Err(ConfigError::TooLarge(format!("{self:?}")));
        }
        let params = self.stats(32).params as u64;
        if params > super::resnet::MAX_PARAMS {
            return Err(ConfigError::TooLarge(format!("{params} parameters")));
        }
        Ok(())
    }

    /// Channels entering the classifier.
    pub fn feature_channels(&self) -> usize {
        self.channel_plan().last().map_or(0, |&(_, out)| out)
    }

    /// Channels into and out of each dense block (the transition after block i halves the
    /// output, torchvision's `num_features // 2`).
    fn channel_plan(&self) -> Vec<(usize, usize)> {
        let mut channels = self.num_init_features;
        let last = self.block_config.len() - 1;
        let mut plan = Vec::new();
        for (i, &layers) in self.block_config.iter().enumerate() {
            let out = channels + layers * self.growth_rate;
            plan.push((channels, out));
            channels = if i < last { out / 2 } else { out };
        }
        plan
    }

    /// Elements per image a training step keeps for the backward pass, counted like the
    /// ResNets' conv outputs: each layer's BN-ReLU input (a fresh concatenation of `cin`
    /// channels: the memory grows with the square of the block's depth), its bottleneck and
    /// its k new maps; each transition's input.
    pub fn activations(&self, input_size: usize) -> u64 {
        let (k, width) = (self.growth_rate, self.bn_size * self.growth_rate);
        let mut size = match self.stem {
            Stem::ImageNet => ((input_size + 6 - 7) / 2 + 1 + 2 - 3) / 2 + 1,
            Stem::Cifar => input_size,
        };
        let mut total = (self.num_init_features * size * size) as u64;
        let plan = self.channel_plan();
        for (i, &(input, out)) in plan.iter().enumerate() {
            for j in 0..self.block_config[i] {
                let cin = input + j * k;
                total += ((cin + width + k) * size * size) as u64;
            }
            if i + 1 < plan.len() {
                total += (out * size * size) as u64;
                size /= 2;
            }
        }
        total
    }

    /// Parameters and multiply-adds of one `input_size`x`input_size` image.
    pub fn stats(&self, input_size: usize) -> ModelStats {
        let (k, width) = (self.growth_rate, self.bn_size * self.growth_rate);
        let (mut params, mut macs) = (0usize, 0u64);
        let conv = |cin: usize, cout: usize, kernel: usize, size: usize| {
            let weights = cin * cout * kernel * kernel;
            (weights, (weights * size * size) as u64)
        };
        let c0 = self.num_init_features;
        let mut size = match self.stem {
            Stem::ImageNet => {
                let s = (input_size + 6 - 7) / 2 + 1;
                let (p, m) = conv(self.in_channels, c0, 7, s);
                params += p + 2 * c0;
                macs += m;
                (s + 2 - 3) / 2 + 1
            }
            Stem::Cifar => {
                let (p, m) = conv(self.in_channels, c0, 3, input_size);
                params += p;
                macs += m;
                input_size
            }
        };
        let plan = self.channel_plan();
        for (i, &(input, out)) in plan.iter().enumerate() {
            for j in 0..self.block_config[i] {
                let cin = input + j * k;
                let (p1, m1) = conv(cin, width, 1, size);
                let (p2, m2) = conv(width, k, 3, size);
                params += 2 * cin + p1 + 2 * width + p2;
                macs += m1 + m2;
            }
            if i + 1 < plan.len() {
                let (p, m) = conv(out, out / 2, 1, size);
                params += 2 * out + p;
                macs += m;
                size /= 2;
            }
        }
        let features = self.feature_channels();
        params += 2 * features + features * self.num_classes + self.num_classes;
        macs += (features * self.num_classes) as u64;
        ModelStats {
            arch: self.name(),
            params,
            macs,
            depth: self.depth(),
            input_size,
            num_classes: self.num_classes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// torchvision's counts (`sum(p.numel() for p in densenet121().parameters())`, …) and the
    /// DenseNet-BC of the paper's Table 2 (L = 100, k = 12: 0.8M; torchvision's own layers in
    /// that shape give 769,162, tests/fixtures/family_counts.py).
    #[test]
    fn parameter_counts_match_torchvision_and_the_paper() {
        for (name, params) in [
            ("densenet121", 7_978_856),
            ("densenet169", 14_149_480),
            ("densenet201", 20_013_928),
            ("densenet161", 28_681_000),
        ] {
            assert_eq!(parse(name).unwrap().stats(224).params, params, "{name}");
        }
        let bc = parse("densenet_bc100_12").unwrap().stats(32).params;
        assert_eq!((bc / 100_000, bc), (7, 769_162));
    }

    /// torchvision's table: 2.83, 3.36, 4.29 and 7.73 GFLOPS (multiply-adds) at 224.
    #[test]
    fn multiply_adds_match_torchvision() {
        for (name, gmacs) in [
            ("densenet121", 2.83),
            ("densenet169", 3.36),
            ("densenet201", 4.29),
            ("densenet161", 7.73),
        ] {
            let macs = parse(name).unwrap().stats(224).macs as f64 / 1e9;
            assert!((macs - gmacs).abs() / gmacs < 0.01, "{name}: {macs}");
        }
    }

    #[test]
    fn names_round_trip_and_bad_names_are_refused() {
        for name in KNOWN
            .iter()
            .chain(&["densenet_bc250_24", "densenet_bc190_40"])
        {
            assert_eq!(parse(name).unwrap().name(), *name);
        }
        for bad in [
            "densenet",
            "densenet120",
            "densenet_bc101_12",
            "densenet_bc100",
            "densenet_bc100_0",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        assert!(parse("densenet121").unwrap().validate().is_ok());
        let empty = DenseNetConfig::new(vec![], 12, 24, Stem::Cifar);
        assert!(empty.validate().is_err());
    }
}
