//! Any member of the family behind one type: the ResNet tree (ResNet, its plain twins,
//! ResNeXt, Wide ResNet, SE, pre-activation, ResNeSt, ResNet-D), DenseNet and
//! Inception-ResNet-v2. Model cards, the classifier and weights files hold these, so that a
//! DenseNet classifies, exports and loads in the page like a ResNet.
//!
//! Both enums wrap the trees' own types: a card written before the enum existed (a bare
//! [ResNetConfig]) reads as [NetConfig::ResNet], and weights files name tensors by the
//! wrapped module's paths, without the variant (burn-store's `skip_enum_variants`).

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::arch::{self, UnknownArch};
use super::densenet::{self, DenseNet, DenseNetConfig};
use super::inception_resnet::{self, InceptionResNet, InceptionResNetConfig};
use super::{ConfigError, ModelStats, ResNet, ResNetConfig};

/// The configuration of any member of the family.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum NetConfig {
    /// The ResNet tree (every block variant).
    ResNet(ResNetConfig),
    /// DenseNet (torchvision's layout).
    DenseNet(DenseNetConfig),
    /// Inception-ResNet-v2 (timm's layout).
    InceptionResNet(InceptionResNetConfig),
}

/// Reads the tree from the fields: DenseNet's `block_config`, Inception-ResNet's `repeats`,
/// otherwise a ResNet, so that a damaged ResNet card reports the ResNet field it lacks
/// rather than serde's "no variant matched".
impl<'de> Deserialize<'de> for NetConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        let tree = |key| value.get(key).is_some();
        if tree("block_config") {
            DenseNetConfig::deserialize(value)
                .map(Self::DenseNet)
                .map_err(D::Error::custom)
        } else if tree("repeats") {
            InceptionResNetConfig::deserialize(value)
                .map(Self::InceptionResNet)
                .map_err(D::Error::custom)
        } else {
            ResNetConfig::deserialize(value)
                .map(Self::ResNet)
                .map_err(D::Error::custom)
        }
    }
}

impl From<ResNetConfig> for NetConfig {
    fn from(config: ResNetConfig) -> Self {
        Self::ResNet(config)
    }
}

impl From<DenseNetConfig> for NetConfig {
    fn from(config: DenseNetConfig) -> Self {
        Self::DenseNet(config)
    }
}

impl From<InceptionResNetConfig> for NetConfig {
    fn from(config: InceptionResNetConfig) -> Self {
        Self::InceptionResNet(config)
    }
}

/// Any architecture name of the family: the ResNet tree's ([arch::parse]), DenseNets and
/// `inception_resnet_v2`.
pub fn parse(name: &str) -> Result<NetConfig, UnknownArch> {
    match arch::parse(name) {
        Ok(config) => Ok(config.into()),
        Err(unknown) => densenet::parse(name)
            .map(NetConfig::from)
            .or_else(|| inception_resnet::parse(name).map(NetConfig::from))
            .ok_or(unknown),
    }
}

/// Why a name is not a ResNet for a command that takes the ResNet tree only (training, the
/// lesion and gradient studies).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotResNet {
    /// No architecture of the family.
    #[error(transparent)]
    Unknown(#[from] UnknownArch),
    /// A DenseNet or Inception-ResNet.
    #[error(
        "{0} is not of the ResNet tree: the lesion study needs residual blocks, and a family \
         comparison (compareWith) takes the ResNet tree and DenseNets; every member runs in \
         `resnet info`, `logits`, `import`, `classify`, `train`, `eval`, `bench` and `export`"
    )]
    OtherTree(String),
}

/// A ResNet-tree name ([arch::parse]); the other trees' names are refused as such.
pub fn parse_resnet(name: &str) -> Result<ResNetConfig, NotResNet> {
    match parse(name)? {
        NetConfig::ResNet(config) => Ok(config),
        other => Err(NotResNet::OtherTree(other.name())),
    }
}

impl NetConfig {
    /// The ResNet tree's configuration, if it is one.
    pub fn resnet(&self) -> Option<&ResNetConfig> {
        match self {
            Self::ResNet(config) => Some(config),
            _ => None,
        }
    }

    /// The name [parse] reads back.
    pub fn name(&self) -> String {
        match self {
            Self::ResNet(c) => c.name(),
            Self::DenseNet(c) => c.name(),
            Self::InceptionResNet(c) => c.name(),
        }
    }

    /// Number of output classes.
    pub fn num_classes(&self) -> usize {
        match self {
            Self::ResNet(c) => c.num_classes,
            Self::DenseNet(c) => c.num_classes,
            Self::InceptionResNet(c) => c.num_classes,
        }
    }

    /// The same net with `classes` outputs.
    pub fn with_num_classes(self, classes: usize) -> Self {
        match self {
            Self::ResNet(c) => Self::ResNet(c.with_num_classes(classes)),
            Self::DenseNet(c) => Self::DenseNet(c.with_num_classes(classes)),
            Self::InceptionResNet(c) => Self::InceptionResNet(c.with_num_classes(classes)),
        }
    }

    /// Channels of the input image.
    pub fn in_channels(&self) -> usize {
        match self {
            Self::ResNet(c) => c.in_channels,
            Self::DenseNet(c) => c.in_channels,
            Self::InceptionResNet(c) => c.in_channels,
        }
    }

    /// The family of its stem and data: ImageNet (Inception-ResNet too) or CIFAR.
    pub fn stem(&self) -> super::Stem {
        match self {
            Self::ResNet(c) => c.stem,
            Self::DenseNet(c) => c.stem,
            Self::InceptionResNet(_) => super::Stem::ImageNet,
        }
    }

    /// The input side the net is built for: 224 (ImageNet), 32 (CIFAR), 299
    /// (Inception-ResNet).
    pub fn input_size(&self) -> usize {
        match self {
            Self::ResNet(c) => c.stem.input_size(),
            Self::DenseNet(c) => c.stem.input_size(),
            Self::InceptionResNet(c) => c.input_size(),
        }
    }

    /// The smallest input side the net takes: 1 for nets with padded windows everywhere,
    /// 75 for Inception-ResNet's valid windows.
    pub fn min_input_size(&self) -> usize {
        match self {
            Self::InceptionResNet(_) => InceptionResNetConfig::MIN_INPUT,
            _ => 1,
        }
    }

    /// Checks the configuration, so that [init](Self::init) cannot fail on it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::ResNet(c) => c.validate(),
            Self::DenseNet(c) => c.validate(),
            Self::InceptionResNet(c) => c.validate(),
        }
    }

    /// Parameters and multiply-adds of one `input_size`x`input_size` image.
    pub fn stats(&self, input_size: usize) -> ModelStats {
        match self {
            Self::ResNet(c) => c.stats(input_size),
            Self::DenseNet(c) => c.stats(input_size),
            Self::InceptionResNet(c) => c.stats(input_size),
        }
    }

    /// Initialize the network.
    ///
    /// # Panics
    /// If [validate](Self::validate) fails.
    pub fn init(&self, device: &Device) -> Network {
        match self {
            Self::ResNet(c) => Network::ResNet(c.init(device)),
            Self::DenseNet(c) => Network::DenseNet(c.init(device)),
            Self::InceptionResNet(c) => Network::InceptionResNet(c.init(device)),
        }
    }
}

/// A module visitor's position in the tree, as the tensor paths of weights files, snapshots,
/// momentum buffers and layer names spell it: [Network]'s variant is no part of it, so a
/// ResNet's paths are the same whether it is held alone or in a [Network].
#[derive(Debug, Default, Clone)]
pub struct ModulePath(pub Vec<String>);

impl ModulePath {
    /// `ModuleVisitor::enter_module` / `ModuleMapper::enter_module`.
    pub fn enter(&mut self, name: &str, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.0.push(name.to_string());
        }
    }

    /// `exit_module`.
    pub fn exit(&mut self, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.0.pop();
        }
    }

    /// `conv1.weight`, `layer2.0.bn1.gamma`.
    pub fn joined(&self) -> String {
        self.0.join(".")
    }
}

/// Any member of the family.
// The networks are held one at a time, never in collections: the size of the largest variant
// costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Network {
    /// The ResNet tree.
    ResNet(ResNet),
    /// DenseNet.
    DenseNet(DenseNet),
    /// Inception-ResNet-v2.
    InceptionResNet(InceptionResNet),
}

impl From<ResNet> for Network {
    fn from(model: ResNet) -> Self {
        Self::ResNet(model)
    }
}

impl Network {
    /// The ResNet, if it is one.
    pub fn resnet(&self) -> Option<&ResNet> {
        match self {
            Self::ResNet(model) => Some(model),
            _ => None,
        }
    }

    /// Number of output classes.
    pub fn num_classes(&self) -> usize {
        match self {
            Self::ResNet(m) => m.num_classes(),
            Self::DenseNet(m) => m.classifier.weight.shape().dims::<2>()[1],
            Self::InceptionResNet(m) => m.classif.weight.shape().dims::<2>()[1],
        }
    }

    /// Logits for a batch of normalised images.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Self::ResNet(m) => m.forward(x),
            Self::DenseNet(m) => m.forward(x),
            Self::InceptionResNet(m) => m.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cards hold a [NetConfig]: each tree round-trips through JSON, a bare ResNet config
    /// (what cards said before) reads as the ResNet, and a damaged one names its problem.
    #[test]
    fn configs_round_trip_and_read_by_their_fields() {
        for name in [
            "resnet20",
            "resnest50d",
            "densenet_bc100_12",
            "densenet121",
            "inception_resnet_v2",
        ] {
            let config = parse(name).unwrap();
            let json = serde_json::to_string(&config).unwrap();
            assert_eq!(
                serde_json::from_str::<NetConfig>(&json).unwrap(),
                config,
                "{json}"
            );
            assert_eq!(config.name(), name);
        }
        let bare = serde_json::to_string(&arch::parse("resnet50").unwrap()).unwrap();
        assert_eq!(
            serde_json::from_str::<NetConfig>(&bare).unwrap().resnet(),
            Some(&arch::parse("resnet50").unwrap())
        );
        let damaged = bare.replace("\"layers\"", "\"stages\"");
        let err = serde_json::from_str::<NetConfig>(&damaged).unwrap_err();
        assert!(err.to_string().contains("layers"), "{err}");
        assert!(
            parse("vgg16")
                .unwrap_err()
                .to_string()
                .contains("unknown architecture")
        );
    }
}
