//! The parts of a run spec: the recipe by name, the optimizer, the learning-rate schedule
//! and fine-tuning options, each with its defaults.

use serde::{Deserialize, Serialize};

/// A training recipe by name: the defaults of the schedule, the run's length and (through
/// [RunSpec::for_recipe]) the batch and regularisation. ImageNet recipes scale the rate
/// linearly with the batch (0.1 per 256 images, Goyal et al. 2017).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(not(target_family = "wasm"), derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Recipe {
    /// Section 4.2: ÷10 at 1/2 and 3/4 of the run, and the 0.01 warm-up for 110+ layers.
    #[default]
    PaperCifar,
    /// Section 3.4: batch 256, lr 0.1 ÷10 when the validation error plateaus, 60×10⁴
    /// iterations, scale augmentation with PCA lighting; evaluated once per epoch.
    PaperImagenet,
    /// torchvision's reference: 90 epochs, ÷10 every 30, batch 256, RandomResizedCrop.
    TorchvisionV1,
    /// "Bag of tricks" (He et al. 2019): 120 epochs of cosine after 5 warm-up epochs, label
    /// smoothing 0.1, no weight decay on BN and biases, batch 256, RandomResizedCrop.
    Modern,
    /// A constant rate and no warm-up unless asked for.
    Custom,
}

impl Recipe {
    /// Whether this is one of the ImageNet recipes.
    pub fn is_imagenet(self) -> bool {
        matches!(
            self,
            Self::PaperImagenet | Self::TorchvisionV1 | Self::Modern
        )
    }
}

/// SGD hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OptimizerSpec {
    /// Base learning rate [default: 0.1 (the paper); 0.01 when fine-tuning].
    pub lr: Option<f64>,
    /// SGD momentum (0.9).
    pub momentum: f64,
    /// L2 weight decay (1e-4).
    pub weight_decay: f64,
    /// Nesterov momentum (off).
    pub nesterov: bool,
    /// Decay BN γ/β and biases too (the paper did).
    pub decay_bn_and_bias: bool,
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        Self {
            lr: None,
            momentum: 0.9,
            weight_decay: 1e-4,
            nesterov: false,
            decay_bn_and_bias: true,
        }
    }
}

/// Learning-rate schedules by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_family = "wasm"), derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// ÷10 at 1/2 and 3/4 of the run.
    Paper,
    /// ×`gamma` every `every` iterations.
    Step,
    /// Linear warm-up for `warmup` iterations, then cosine to 0.
    Cosine,
    /// ÷10 when the test error stops improving (fed by every evaluation).
    Plateau,
    /// The base rate throughout.
    Constant,
}

/// The learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScheduleSpec {
    /// The schedule [default: paper for the paper-cifar recipe, constant for custom].
    pub kind: Option<ScheduleKind>,
    /// Iterations the schedule spans [default: the run's iterations].
    pub total: Option<usize>,
    /// Iterations between decays of the step schedule [default: 30 epochs].
    pub every: Option<usize>,
    /// Factor of each step decay (0.1).
    pub gamma: f64,
    /// Warm-up iterations of the cosine schedule (0).
    pub warmup: usize,
    /// Warm-up of the cosine schedule in epochs, instead of `warmup` [default: 5 for the
    /// modern recipe].
    pub warmup_epochs: Option<f64>,
    /// Hold lr/10 until the training error is below 80% (the paper's ResNet-110 trick)
    /// [default: on for 110+ layers with the paper-cifar recipe].
    pub error_warmup: Option<bool>,
    /// Evaluations without improvement before a plateau decay (3).
    pub patience: usize,
    /// Smallest relative improvement that counts for the plateau schedule (0.01).
    pub threshold: f64,
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        Self {
            kind: None,
            total: None,
            every: None,
            gamma: 0.1,
            warmup: 0,
            warmup_epochs: None,
            error_warmup: None,
            patience: 3,
            threshold: 0.01,
        }
    }
}

/// Fine-tuning options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FineTuneSpec {
    /// Train the classifier only; BN layers keep their statistics.
    pub freeze_backbone: bool,
}
