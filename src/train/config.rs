//! What defines a run ([TrainConfig]), what a step and an evaluation measure, and why
//! training stops.

use serde::{Deserialize, Serialize};

use super::schedule::LrPolicy;
use super::sgd::SgdConfig;
use crate::io::Normalization;
use crate::model::NetConfig;
use crate::model::amp::Amp;

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainConfig {
    /// The network (residual or plain, classes included): the ResNet tree or a DenseNet
    /// (a bare ResNet configuration in runs written before DenseNets trained; it reads the
    /// same).
    pub model: NetConfig,
    /// Optimizer hyper-parameters.
    pub sgd: SgdConfig,
    /// Learning rate and its schedule.
    pub lr: LrPolicy,
    /// Images per step (128 in the paper).
    pub batch_size: usize,
    /// Seeds the init, the data order and the augmentation.
    pub seed: u64,
    /// 4-pixel pad + random crop + horizontal flip.
    pub augment: bool,
    /// Label smoothing ε (0 in the paper).
    pub label_smoothing: f64,
    /// Input normalisation.
    pub normalization: Normalization,
    /// Side of the square training images: 32 for CIFAR-sized data, 224 for ImageNet
    /// (runs written before full-size training read as 32).
    #[serde(default = "cifar_size")]
    pub input_size: usize,
    /// Batches whose gradients are summed into one update (gradient accumulation): an update
    /// sees `batch_size × accumulate` images (1 in runs written before it existed).
    #[serde(default = "one")]
    pub accumulate: usize,
    /// Train the classifier only (fine-tuning): kept in snapshots so a restored run stays frozen.
    #[serde(default)]
    pub freeze_backbone: bool,
    /// Mixed precision: the convolutions' dtype ([Amp]; off in runs written before it).
    #[serde(default)]
    pub amp: Amp,
}

fn cifar_size() -> usize {
    32
}

fn one() -> usize {
    1
}

/// What one step measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepMetrics {
    /// Iterations done, this one included.
    pub step: usize,
    /// Epoch this step belongs to (0-based).
    pub epoch: usize,
    /// Mean cross-entropy of the batch.
    pub loss: f32,
    /// Top-1 error of the batch, in [0, 1].
    pub top1_error: f32,
    /// Top-5 error of the batch, in [0, 1].
    pub top5_error: f32,
    /// Learning rate used.
    pub lr: f64,
    /// L2 norm of the weight gradient of each layer, input to output ([Trainer::layers]).
    pub grad_norms: Vec<f32>,
    /// The loss scale the step's gradients were computed at (f16 mixed precision only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f32>,
    /// The gradients overflowed f16: the update was skipped and the loss scale halved.
    #[serde(default)]
    pub skipped: bool,
}

/// What an evaluation measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvalReport {
    /// Images evaluated.
    pub images: usize,
    /// Mean cross-entropy.
    pub loss: f32,
    /// Top-1 error in [0, 1].
    pub top1_error: f32,
    /// Top-5 error in [0, 1].
    pub top5_error: f32,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u32>>,
    /// Images left out because they could not be decoded (streamed datasets).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Why training stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    /// The loss became NaN or infinite; the update was not applied.
    #[error(
        "the loss diverged to {loss} at step {step} (learning rate {lr}); the model keeps its last good weights: try a lower learning rate"
    )]
    Diverged {
        /// The step that diverged.
        step: usize,
        /// The loss read.
        loss: f32,
        /// The rate in use.
        lr: f64,
    },
    /// Dataset or configuration problems.
    #[error("{0}")]
    Invalid(String),
    /// A read-back failed.
    #[error("device error: {0}")]
    Device(String),
    /// A snapshot that cannot be restored.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// The batch would not fit in the device's memory.
    #[error("{0}")]
    OutOfMemory(String),
}

/// Refuses a batch whose training step needs more than `budget` bytes (the estimate of
/// [crate::model::training_bytes]) and names the largest batch that fits. `limit` says where
/// the budget comes from, for the message.
pub fn check_batch_memory(
    model: &NetConfig,
    input_size: usize,
    batch: usize,
    budget: u64,
    limit: &str,
) -> Result<(), TrainError> {
    let needed = |b| crate::model::training_bytes(model, input_size, b);
    if needed(batch) <= budget {
        return Ok(());
    }
    let advice = match (1..batch).rev().find(|&b| needed(b) <= budget) {
        Some(fits) => format!("use a batch of {fits} or less"),
        None => "even one image does not fit: use a smaller network".to_string(),
    };
    Err(TrainError::OutOfMemory(format!(
        "a batch of {batch} needs about {:.1} GB to train {}, more than {limit} ({:.1} GB): {advice}",
        needed(batch) as f64 / 1e9,
        model.name(),
        budget as f64 / 1e9
    )))
}

/// Refuses `devices` that would share the `accumulate` batches of an update unevenly.
pub fn check_devices(accumulate: usize, devices: usize) -> Result<(), String> {
    if devices > 1 && !accumulate.is_multiple_of(devices) {
        return Err(format!(
            "{devices} devices share the {accumulate} batches of an update unevenly: \
             accumulate a multiple of {devices} batches"
        ));
    }
    Ok(())
}

impl TrainConfig {
    /// Refuses values no run can train with: an invalid network, a zero batch, a rate,
    /// momentum, weight decay or label smoothing out of range, an impossible normalisation.
    pub fn validate(&self) -> Result<(), String> {
        self.model.validate().map_err(|e| e.to_string())?;
        let min = self.model.min_input_size();
        if self.input_size < min {
            return Err(format!(
                "{} needs images of at least {min}x{min} (its windows are unpadded), not \
                 {1}x{1}: train it on full-size images (--data imagenet:DIR, --image-size)",
                self.model.name(),
                self.input_size
            ));
        }
        let sizes = crate::io::MIN_INPUT_SIZE..=crate::io::MAX_INPUT_SIZE;
        if !sizes.contains(&self.input_size) {
            return Err(format!(
                "training images of {0}x{0}: choose a side between {1} and {2}",
                self.input_size,
                sizes.start(),
                sizes.end()
            ));
        }
        if self.batch_size == 0 {
            return Err("the batch size must be at least 1".into());
        }
        if self.accumulate == 0 {
            return Err("gradient accumulation needs at least 1 batch per update".into());
        }
        let sgd = &self.sgd;
        if !(0.0..1.0).contains(&sgd.momentum) {
            return Err(format!("momentum {} is not in [0, 1)", sgd.momentum));
        }
        if !(sgd.weight_decay.is_finite() && sgd.weight_decay >= 0.0) {
            return Err(format!(
                "weight decay {} is not a non-negative number",
                sgd.weight_decay
            ));
        }
        if !(self.lr.base_lr.is_finite() && self.lr.base_lr >= 0.0) {
            return Err(format!(
                "learning rate {} is not a non-negative number",
                self.lr.base_lr
            ));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(format!(
                "label smoothing {} is not in [0, 1)",
                self.label_smoothing
            ));
        }
        let card = crate::io::ModelCard {
            normalization: self.normalization.clone(),
            ..crate::io::ModelCard::for_config(self.model.clone())
        };
        card.validate()
    }
}

impl From<crate::Error> for TrainError {
    fn from(err: crate::Error) -> Self {
        TrainError::Device(err.to_string())
    }
}
