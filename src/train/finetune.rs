//! Fine-tuning: a new classifier for new classes, optionally on a frozen backbone.

use burn::module::Module;
use burn::nn::LinearConfig;
use burn::tensor::Device;

use crate::model::{Network, ResNet, ResNetConfig};

/// Replaces the classifier with a freshly initialised one for `target.num_classes` classes
/// (the backbone keeps its weights). `target` must match the model but for the class count.
pub fn replace_head(mut model: ResNet, target: &ResNetConfig, device: &Device) -> ResNet {
    if model.num_classes() != target.num_classes {
        model.fc = LinearConfig::new(target.feature_channels(), target.num_classes).init(device);
    }
    model
}

/// Freezes everything but the classifier: no gradients, and BN layers keep their running
/// statistics (a frozen backbone is a fixed feature extractor).
pub fn freeze_backbone(model: Network) -> Network {
    match model.freeze() {
        Network::ResNet(mut model) => {
            model.fc = model.fc.unfreeze();
            Network::ResNet(model)
        }
        Network::DenseNet(mut model) => {
            model.classifier = model.classifier.unfreeze();
            Network::DenseNet(model)
        }
        #[cfg(not(target_family = "wasm"))]
        Network::InceptionResNet(mut model) => {
            model.classif = model.classif.unfreeze();
            Network::InceptionResNet(model)
        }
        #[cfg(target_family = "wasm")]
        Network::InceptionResNet(model) => Network::InceptionResNet(model),
    }
}
