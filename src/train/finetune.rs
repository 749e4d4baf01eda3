//! Fine-tuning: a new classifier for new classes, optionally on a frozen backbone, for every
//! member of the family (ResNet's `fc`, DenseNet's `classifier`, Inception-ResNet's `classif`).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::Device;

use crate::model::Network;

/// A fresh classifier for `classes` classes on the features `head` reads.
fn new_head(head: &Linear, classes: usize, device: &Device) -> Linear {
    // burn stores a linear layer's weight as [inputs, outputs].
    let [features, _] = head.weight.dims();
    LinearConfig::new(features, classes).init(device)
}

/// Replaces the classifier with a freshly initialised one for `classes` classes (the backbone
/// keeps its weights); a model that already has `classes` outputs is returned as is.
pub fn replace_head(model: Network, classes: usize, device: &Device) -> Network {
    if model.num_classes() == classes {
        return model;
    }
    match model {
        Network::ResNet(mut model) => {
            model.fc = new_head(&model.fc, classes, device);
            Network::ResNet(model)
        }
        Network::DenseNet(mut model) => {
            model.classifier = new_head(&model.classifier, classes, device);
            Network::DenseNet(model)
        }
        #[cfg(not(target_family = "wasm"))]
        Network::InceptionResNet(mut model) => {
            model.classif = new_head(&model.classif, classes, device);
            Network::InceptionResNet(model)
        }
        #[cfg(target_family = "wasm")]
        Network::InceptionResNet(model) => Network::InceptionResNet(model),
    }
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

#[cfg(all(test, not(target_family = "wasm")))]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use super::*;
    use crate::data::dataset::Dataset;
    use crate::data::synthetic::Shapes;
    use crate::model::network;
    use crate::train::recipe::{FineTuneSpec, OptimizerSpec, ScheduleKind, ScheduleSpec};
    use crate::train::{RunSpec, Trainer};

    /// A DenseNet-BC with 5 outputs, fine-tuned to the 10 shape classes with a frozen
    /// backbone: the new head reads the same features, the backbone is unchanged, only the
    /// head gets gradients, and the loss on the (16) training images falls at every step.
    #[test]
    fn a_densenet_is_fine_tuned_on_a_frozen_backbone() {
        let device = Device::flex();
        device.seed(3);
        let source = network::parse("densenet_bc16_4")
            .unwrap()
            .with_num_classes(5);
        let trained = source.init(&device);
        let model = replace_head(trained.clone(), 10, &device);
        assert_eq!(model.num_classes(), 10);
        let (Network::DenseNet(old), Network::DenseNet(new)) = (&trained, &model) else {
            panic!("not a DenseNet")
        };
        assert_eq!(
            new.classifier.weight.dims()[0],
            old.classifier.weight.dims()[0]
        );
        let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let (a, b) = (old.features.forward(x.clone()), new.features.forward(x));
        assert_eq!(a.into_data(), b.into_data(), "the backbone changed");

        let data = Dataset::Shapes(Shapes {
            len: 16,
            ..Shapes::train(1)
        });
        let spec = RunSpec {
            arch: source.name(),
            batch_size: 16,
            augment: false,
            // Plain gradient descent at a rate under 1/L of the head's loss (no momentum,
            // which at 0.9 made the loss overshoot on some inits: 2.97, 2.46, 2.28, 2.39, …).
            optimizer: OptimizerSpec {
                lr: Some(0.1),
                momentum: 0.0,
                ..Default::default()
            },
            schedule: ScheduleSpec {
                kind: Some(ScheduleKind::Constant),
                ..Default::default()
            },
            fine_tune: Some(FineTuneSpec {
                freeze_backbone: true,
            }),
            ..RunSpec::default()
        };
        let config = spec
            .train_config(
                source.with_num_classes(10),
                data.len(),
                data.channel_statistics(16),
            )
            .unwrap();
        assert!(config.freeze_backbone);
        let mut trainer =
            Trainer::with_model(config, model, data.classes(), data.len(), &device).unwrap();
        let mut losses = Vec::new();
        let mut norms = Vec::new();
        for _ in 0..12 {
            let m = pollster::block_on(trainer.step(&data)).unwrap();
            losses.push(m.loss);
            norms = m.grad_norms;
        }
        let (head, backbone) = norms.split_last().unwrap();
        assert!(backbone.iter().all(|&n| n == 0.0), "{norms:?}");
        assert!(*head > 0.0, "{norms:?}");
        // Every step sees all 16 images and the frozen BN layers use their running
        // statistics: the head's loss is convex and falls at every step.
        assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
    }
}
