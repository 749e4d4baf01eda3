//! The crate's error: every way a user's input can be refused, each with a message that
//! names the problem (and the file, where there is one).

use crate::data::image::ImageError;
use crate::io::WeightsError;
use crate::io::npy::NpyError;
use crate::model::ConfigError;
use crate::model::arch::UnknownArch;

/// Anything that can go wrong between a user's input and a result.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An architecture name that is not one.
    #[error(transparent)]
    UnknownArch(#[from] UnknownArch),
    /// A DenseNet or Inception-ResNet given where only the ResNet tree goes.
    #[error(transparent)]
    NotResNet(#[from] crate::model::network::NotResNet),
    /// A configuration that cannot be built.
    #[error("invalid model configuration: {0}")]
    Config(#[from] ConfigError),
    /// Weights that cannot be read or do not fit.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// An image that cannot be decoded.
    #[error("{0}")]
    Image(#[from] ImageError),
    /// A `.npy` file that cannot be used.
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// A weights file without a model card, and no architecture given.
    #[error(
        "{path}: the file does not say which architecture it holds: pass --arch (and --classes)"
    )]
    NoArchitecture {
        /// The file.
        path: String,
    },
    /// Class names that do not match the classifier.
    #[error("{given} labels given for a model with {classes} classes")]
    Labels {
        /// Labels given.
        given: usize,
        /// Classes of the model.
        classes: usize,
    },
    /// An input tensor of the wrong shape.
    #[error("{0}")]
    Shape(String),
    /// The device failed (lost, out of memory, unavailable backend).
    #[error("device error: {0}")]
    Device(String),
    /// Anything else: a file that cannot be read, say.
    #[error("{0}")]
    Other(String),
}
