//! The ResNet family: ImageNet nets (18–152), CIFAR nets (6n+2), their plain twins, and the
//! successors that change the block (ResNeXt, Wide ResNet, squeeze-excitation).

pub mod arch;
mod block;
mod config;
mod fold;
mod resnet;
mod se;
mod stats;

pub use block::{Block, BlockConfig, Downsample};
pub use config::{
    BlockKind, BlockVariant, Joining, ResNetConfig, ShortcutOption, Stem, StridePlacement,
};
pub use fold::FoldedResNet;
pub use resnet::{ConfigError, ResNet};
pub use se::SqueezeExcitation;
pub use stats::{ModelStats, training_bytes};
