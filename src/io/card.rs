//! What a weights file says about its model: the architecture, class names and the input
//! preprocessing, so that a page or a CLI can load it without being told, and refuse it when
//! told something else.

use serde::{Deserialize, Serialize};

use crate::model::{NetConfig, Stem};

/// Per-channel input normalisation: `(pixel / 255 - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean of each RGB channel on the [0, 1] scale.
    pub mean: [f32; 3],
    /// Standard deviation of each RGB channel on the [0, 1] scale.
    pub std: [f32; 3],
}

impl Normalization {
    /// torchvision's ImageNet statistics.
    pub const IMAGENET: Self = Self {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    /// Inception's (timm's `IMAGENET_INCEPTION_MEAN` / `_STD`): pixels mapped to [-1, 1].
    pub const INCEPTION: Self = Self {
        mean: [0.5, 0.5, 0.5],
        std: [0.5, 0.5, 0.5],
    };
    /// The CIFAR-10 training set's statistics.
    pub const CIFAR10: Self = Self {
        mean: [0.4914, 0.4822, 0.4465],
        std: [0.2470, 0.2435, 0.2616],
    };
}

/// What a Burnpack file says about the model it holds, so that a page or a CLI can load it
/// without being told the architecture, and refuse it when told a different one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The architecture the tensors belong to (a bare ResNet configuration in cards written
    /// before the other trees could be carded; it reads the same).
    pub config: NetConfig,
    /// Class names, index by index.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// How images are normalised before the network.
    pub normalization: Normalization,
    /// Side of the square crop the network was trained on (224 or 32).
    pub input_size: usize,
    /// Free text: data, steps, accuracy.
    #[serde(default)]
    pub description: Option<String>,
    /// The run spec that trained these weights (`resnet train --spec` reads it back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<serde_json::Value>,
}

impl ModelCard {
    /// The defaults for a configuration: ImageNet preprocessing for ImageNet nets, CIFAR-10's
    /// for CIFAR nets, Inception's for Inception-ResNet.
    pub fn for_config(config: impl Into<NetConfig>) -> Self {
        let config = config.into();
        let normalization = match (&config, config.stem()) {
            (NetConfig::InceptionResNet(_), _) => Normalization::INCEPTION,
            (_, Stem::ImageNet) => Normalization::IMAGENET,
            (_, Stem::Cifar) => Normalization::CIFAR10,
        };
        let input_size = config.input_size();
        Self {
            config,
            labels: None,
            normalization,
            input_size,
            description: None,
            spec: None,
        }
    }
}

/// The largest input side a card may ask for: the paper's largest test scale (640) with room
/// to spare, and far below what would make one view allocate gigabytes.
pub const MAX_INPUT_SIZE: usize = 1024;
/// The smallest input side: below 8 pixels no ResNet stem leaves anything to pool.
pub const MIN_INPUT_SIZE: usize = 8;

impl ModelCard {
    /// Refuses preprocessing that cannot work: an input side outside
    /// [MIN_INPUT_SIZE, MAX_INPUT_SIZE] (0 would divide by zero, 100,000 would ask for tens of
    /// gigabytes per view) or a normalisation with a non-finite mean or a non-positive std.
    pub fn validate(&self) -> Result<(), String> {
        let min = MIN_INPUT_SIZE.max(self.config.min_input_size());
        if !(min..=MAX_INPUT_SIZE).contains(&self.input_size) {
            return Err(format!(
                "input size {} is out of range: {} takes {min} to {MAX_INPUT_SIZE} pixels",
                self.input_size,
                self.config.name()
            ));
        }
        let n = &self.normalization;
        if n.mean.iter().any(|m| !m.is_finite())
            || n.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(format!(
                "normalisation mean {:?} / std {:?}: every mean must be finite and every std positive",
                n.mean, n.std
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_with_impossible_preprocessing_are_refused() {
        let good = ModelCard::for_config(crate::model::arch::parse("resnet20").unwrap());
        assert_eq!(good.validate(), Ok(()));
        for size in [0, 7, 100_000] {
            let card = ModelCard {
                input_size: size,
                ..good.clone()
            };
            let err = card.validate().unwrap_err();
            assert!(err.contains(&format!("input size {size}")), "{err}");
        }
        let mut card = good.clone();
        card.normalization.std[1] = 0.0;
        assert!(card.validate().unwrap_err().contains("std"));
        let mut card = good;
        card.normalization.mean[0] = f32::NAN;
        assert!(card.validate().is_err());
    }

    /// A card written before the block variants existed (this JSON is what the bundled
    /// ResNet-20 card said) still reads, as the 2015 ResNet; a ResNeXt card round-trips.
    #[test]
    fn cards_without_a_variant_read_as_the_2015_resnet() {
        let old = r#"{"config":{"layers":[3,3,3],"block":"Basic","stem":"Cifar","base_width":16,
            "num_classes":10,"shortcut":"A","stride_placement":"V1_5","residual":true,
            "zero_init_residual":false,"in_channels":3},"labels":null,
            "normalization":{"mean":[0.4914,0.4822,0.4465],"std":[0.247,0.2435,0.2616]},
            "input_size":32,"description":null}"#;
        let card: ModelCard = serde_json::from_str(old).unwrap();
        assert_eq!(
            card.config,
            crate::model::arch::parse("resnet20").unwrap().into()
        );
        // ... and one written before pre-activation existed, as the ResNeXt it was.
        let resnext_card = old.replace(
            r#""in_channels":3}"#,
            r#""in_channels":3,"variant":{"groups":32,"width_per_group":4,"squeeze_excitation":false}}"#,
        );
        let card: ModelCard = serde_json::from_str(&resnext_card).unwrap();
        let config = card.config.resnet().unwrap();
        let variant = config.block_variant();
        assert_eq!((variant.groups, variant.preactivation), (32, false));
        // (and before split attention and ResNet-D: no radix, no pooled projections, 7x7 stem)
        assert_eq!((variant.radix, variant.avg_down), (0, false));
        assert_eq!(config.deep_stem, None);
        for arch in ["resnext50_32x4d", "resnest50d", "resnet50d"] {
            let card = ModelCard::for_config(crate::model::arch::parse(arch).unwrap());
            let json = serde_json::to_string(&card).unwrap();
            assert_eq!(serde_json::from_str::<ModelCard>(&json).unwrap(), card);
        }
    }
}
