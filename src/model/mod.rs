//! The ResNet family: ImageNet nets (18–152), CIFAR nets (6n+2) and their plain twins.

pub mod arch;
mod block;
mod config;
mod fold;
mod resnet;
mod stats;

pub use block::{Block, BlockConfig, Downsample};
pub use config::{BlockKind, Joining, ResNetConfig, ShortcutOption, Stem, StridePlacement};
pub use fold::FoldedResNet;
pub use resnet::{ConfigError, ResNet};
pub use stats::{ModelStats, training_bytes};
