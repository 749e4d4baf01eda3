//! The ResNet family: ImageNet nets (18–152), CIFAR nets (6n+2), their plain twins, and the
//! successors that change the block (ResNeXt, Wide ResNet, squeeze-excitation,
//! pre-activation, ResNeSt's split attention) or the stem and projections (ResNet-D), and
//! DenseNet, the successor that concatenates ([densenet]), and Inception-ResNet-v2, Inception's
//! multi-branch units made residual ([inception_resnet]).

pub mod amp;
pub mod arch;
mod block;
mod config;
mod cpu;
pub mod densenet;
mod fold;
pub mod inception_resnet;
pub mod network;
mod pool;
mod resnet;
mod se;
mod split_attn;
mod stats;
mod stem;

pub use block::{Block, BlockConfig, Downsample};
pub use config::{
    BlockKind, BlockVariant, Joining, ResNetConfig, ShortcutOption, Stem, StridePlacement,
};
pub(crate) use cpu::in_pool;
pub use densenet::{DenseNet, DenseNetConfig};
pub use fold::FoldedResNet;
pub use inception_resnet::{InceptionResNet, InceptionResNetConfig};
pub use network::{NetConfig, Network};
pub use pool::global_average;
pub use resnet::{ConfigError, ResNet};
pub use se::SqueezeExcitation;
pub use split_attn::SplitAttention;
pub use stats::{ModelStats, training_bytes};
pub use stem::DeepStem;
