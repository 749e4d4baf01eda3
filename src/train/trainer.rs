//! The training core shared by the native CLI and the browser: one step, evaluation,
//! snapshots. No threads, no filesystem, no synchronous reads: every number comes back
//! through one async read per step (or per evaluation batch).

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::store::burn_pack::{self, Reader, Tensor as PackTensor, Writer};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::schedule::LrPolicy;
use super::sgd::{Sgd, SgdConfig};
use crate::data::augment::{CropPlan, normalize, pad_crop_flip};
use crate::data::dataset::{Dataset, Sampler};
use crate::data::synthetic::Rng;
use crate::data::views::TestView;
use crate::infer::read_f32;
use crate::io::{ModelCard, Normalization, Precision};
use crate::model::{ResNet, ResNetConfig};

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainConfig {
    /// The network (residual or plain, classes included).
    pub model: ResNetConfig,
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
    /// Train the classifier only (fine-tuning): kept in snapshots so a restored run stays frozen.
    #[serde(default)]
    pub freeze_backbone: bool,
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
    model: &crate::model::ResNetConfig,
    batch: usize,
    budget: u64,
    limit: &str,
) -> Result<(), TrainError> {
    let needed = |b| crate::model::training_bytes(model, 32, b);
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

impl From<crate::Error> for TrainError {
    fn from(err: crate::Error) -> Self {
        TrainError::Device(err.to_string())
    }
}

/// A network being trained, with its optimizer, data order and augmentation stream.
pub struct Trainer {
    config: TrainConfig,
    model: ResNet,
    sgd: Sgd,
    sampler: Sampler,
    rng: Rng,
    step: usize,
    layers: Vec<Layer>,
    device: Device,
    classes: Vec<String>,
}

/// A weighted layer whose gradient norm is reported.
#[derive(Debug, Clone)]
struct Layer {
    name: String,
    id: ParamId,
    rank: usize,
}

/// The weight tensors of convolutions and the classifier, input to output.
#[derive(Default)]
struct LayerCollector {
    path: Vec<String>,
    layers: Vec<Layer>,
}

impl ModuleVisitor for LayerCollector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let is_weight = self.path.last().is_some_and(|p| p == "weight");
        let is_shortcut = self.path.iter().any(|p| p == "downsample");
        if is_weight && (D == 4 || D == 2) && !is_shortcut {
            let name = self.path[..self.path.len() - 1].join(".");
            self.layers.push(Layer {
                name,
                id: param.id,
                rank: D,
            });
        }
    }
}

/// What a snapshot stores beside the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    config: TrainConfig,
    sampler: Sampler,
    rng: u64,
    step: usize,
    classes: Vec<String>,
}

/// Metadata key of a snapshot's [TrainerState].
const STATE_KEY: &str = "resnet.trainer";
/// Prefix of momentum buffers in a snapshot.
const VELOCITY: &str = "sgd.velocity.";

impl Trainer {
    /// A fresh network, initialised from the seed, on `device` (autodiff is added).
    pub fn new(config: TrainConfig, data: &Dataset, device: &Device) -> Result<Self, TrainError> {
        config
            .model
            .validate()
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        let device = device.clone().autodiff();
        device.seed(config.seed);
        let model = config.model.init(&device);
        Self::with_model(config, model, data.classes(), data.len(), &device)
    }

    /// Continues from an existing model (fine-tuning); its config must match `config.model`.
    pub fn with_model(
        config: TrainConfig,
        model: ResNet,
        classes: Vec<String>,
        dataset_len: usize,
        device: &Device,
    ) -> Result<Self, TrainError> {
        if config.batch_size == 0 || dataset_len < config.batch_size {
            return Err(TrainError::Invalid(format!(
                "the batch size must be between 1 and the {dataset_len} training images, got {}",
                config.batch_size
            )));
        }
        if classes.len() != config.model.num_classes {
            return Err(TrainError::Invalid(format!(
                "the data has {} classes but the network has {} outputs",
                classes.len(),
                config.model.num_classes
            )));
        }
        let device = device.clone().autodiff();
        let model = if config.freeze_backbone {
            super::finetune::freeze_backbone(model)
        } else {
            model
        };
        let mut collector = LayerCollector::default();
        model.visit(&mut collector);
        Ok(Self {
            sampler: Sampler::new(config.seed, dataset_len, config.batch_size),
            rng: Rng::new(config.seed, 0xA06),
            sgd: Sgd::new(config.sgd.clone()),
            layers: collector.layers,
            // A module loaded on a plain device (fine-tuning) needs `train` to track gradients.
            model: model.fork(&device).train(),
            step: 0,
            device,
            classes,
            config,
        })
    }

    /// The run's configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Iterations done.
    pub fn step_count(&self) -> usize {
        self.step
    }

    /// Current epoch (0-based).
    pub fn epoch(&self) -> usize {
        self.sampler.epoch
    }

    /// Full batches per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.sampler.batches_per_epoch()
    }

    /// Whether the last step finished an epoch (the next one starts a new permutation).
    pub fn at_epoch_end(&self) -> bool {
        self.sampler.position >= self.sampler.batches_per_epoch()
    }

    /// The device, without autodiff (for evaluation and inference).
    pub fn device(&self) -> Device {
        self.device.clone().inner()
    }

    /// Names of the layers of [StepMetrics::grad_norms].
    pub fn layers(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.name.clone()).collect()
    }

    /// Class names.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Changes hyper-parameters between steps (the optimizer keeps its momentum).
    pub fn set_hyperparameters(&mut self, sgd: SgdConfig, lr: LrPolicy) {
        self.sgd.config = sgd.clone();
        self.config.sgd = sgd;
        self.config.lr = lr;
    }

    /// Reports a test error to the learning-rate policy (drives ÷10 on plateau).
    pub fn observe_eval_error(&mut self, error: f64) -> bool {
        self.config.lr.observe_eval_error(error)
    }

    /// The network in eval mode (BN running statistics, no autodiff).
    pub fn model(&self) -> ResNet {
        self.model.valid()
    }

    /// A model card for the network as it is now.
    pub fn card(&self, description: Option<String>) -> ModelCard {
        ModelCard {
            config: self.config.model.clone(),
            labels: Some(self.classes.clone()),
            normalization: self.config.normalization.clone(),
            input_size: 32,
            description,
        }
    }

    /// Normalised (and, for training, augmented) images and one-hot targets for `indices`.
    fn inputs(
        &mut self,
        data: &Dataset,
        indices: &[usize],
        augment: bool,
    ) -> (Tensor<4>, Tensor<2>, Vec<usize>) {
        let (pixels, labels) = data.batch(indices);
        let n = &self.config.normalization;
        let x = normalize(
            pixels,
            [indices.len(), 3, 32, 32],
            n.mean,
            n.std,
            &self.device,
        );
        let x = if augment {
            pad_crop_flip(x, &CropPlan::random(indices.len(), 4, &mut self.rng))
        } else {
            x
        };
        let classes = self.config.model.num_classes;
        let mut one_hot = vec![0.0f32; indices.len() * classes];
        for (i, &label) in labels.iter().enumerate() {
            one_hot[i * classes + label] = 1.0;
        }
        let one_hot = Tensor::from_data(
            TensorData::new(one_hot, [indices.len(), classes]),
            &self.device,
        );
        (x, one_hot, labels)
    }

    /// One SGD step on the next batch of `data`; one read-back.
    pub async fn step(&mut self, data: &Dataset) -> Result<StepMetrics, TrainError> {
        if data.len() != self.sampler.len {
            return Err(TrainError::Invalid(format!(
                "the trainer was set up for {} images, this dataset has {}",
                self.sampler.len,
                data.len()
            )));
        }
        // The forward pass updates BN running statistics: keep a synced, independent copy of
        // the model (no tensor is copied) to return to if the step diverges.
        let last_good = self.model.valid();
        let indices = self.sampler.next_batch();
        let (x, one_hot, _) = self.inputs(data, &indices, self.config.augment);
        let batch = indices.len() as f32;

        let logits = self.model.forward(x);
        let (loss, top1, top5) = loss_and_hits(logits, one_hot, self.config.label_smoothing);
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);

        // Gradient norms of every layer, read back with the loss in one transfer.
        // A frozen layer (fine-tuning) has no gradient: its norm is 0.
        let inner = self.device.clone().inner();
        let norms: Vec<Tensor<1>> = self
            .layers
            .iter()
            .map(|layer| {
                let squares = match layer.rank {
                    4 => grads.get::<4>(layer.id).map(|g| (g.clone() * g).sum()),
                    _ => grads.get::<2>(layer.id).map(|g| (g.clone() * g).sum()),
                };
                squares.unwrap_or_else(|| Tensor::zeros([1], &inner))
            })
            .collect();
        let mut parts = vec![loss.detach().inner(), top1.inner(), top5.inner()];
        parts.extend(norms);
        let values = read_f32(Tensor::cat(parts, 0)).await?;

        let lr = self.config.lr.lr(self.step);
        let loss = values[0];
        if !loss.is_finite() {
            self.model = last_good.train();
            return Err(TrainError::Diverged {
                step: self.step + 1,
                loss,
                lr,
            });
        }
        self.model = self.sgd.step(lr, self.model.clone(), grads);
        self.step += 1;
        let top1_error = 1.0 - values[1] / batch;
        self.config.lr.observe_train_error(top1_error as f64);
        Ok(StepMetrics {
            step: self.step,
            epoch: self.sampler.epoch,
            loss,
            top1_error,
            top5_error: 1.0 - values[2] / batch,
            lr,
            grad_norms: values[3..].iter().map(|v| v.sqrt()).collect(),
        })
    }

    /// Loss, errors and confusion matrix on (up to `limit` images of) `data`, in eval mode,
    /// in batches of `batch_size`; one read-back per batch.
    pub async fn evaluate(
        &mut self,
        data: &Dataset,
        limit: Option<usize>,
        batch_size: usize,
    ) -> Result<EvalReport, TrainError> {
        let device = self.device.clone().inner();
        evaluate_views(
            &self.model(),
            &self.config.normalization,
            data,
            limit,
            batch_size,
            TestView::Center,
            &device,
        )
        .await
    }

    /// Model, momentum buffers and trainer state as one Burnpack (async reads only).
    pub async fn snapshot(&self) -> Result<Vec<u8>, TrainError> {
        // `model()` syncs the BN running statistics the last forward pass updated.
        let mut tensors = crate::io::read_tensors(&self.model(), Precision::F32)
            .await
            .map_err(|e| TrainError::Device(e.to_string()))?;
        for (path, velocity) in &self.sgd.velocity {
            let data = velocity
                .clone()
                .inner()
                .into_data_async()
                .await
                .map_err(|e| TrainError::Device(format!("{e:?}")))?;
            let shape = data.shape().clone();
            let (bytes, _, dtype) = data.into_parts();
            tensors.push(PackTensor::new(
                format!("{VELOCITY}{path}"),
                dtype,
                shape,
                None,
                bytes,
            ));
        }
        let state = TrainerState {
            config: self.config.clone(),
            sampler: self.sampler.clone(),
            rng: self.rng.state(),
            step: self.step,
            classes: self.classes.clone(),
        };
        let card =
            serde_json::to_string(&self.card(Some(format!("snapshot at step {}", self.step))))
                .expect("card serialises");
        let state = serde_json::to_string(&state).expect("state serialises");
        Writer::new(tensors)
            .with_metadata(crate::io::CARD_KEY, &card)
            .with_metadata(STATE_KEY, &state)
            .into_bytes()
            .map(|b| b.to_vec())
            .map_err(|e| TrainError::Snapshot(e.to_string()))
    }

    /// Rebuilds a trainer from [snapshot](Self::snapshot) bytes on `device`.
    pub fn restore(bytes: Vec<u8>, device: &Device) -> Result<Self, TrainError> {
        let bad = |e: &dyn std::fmt::Display| TrainError::Snapshot(e.to_string());
        let reader =
            Reader::from_bytes(burn_pack::Bytes::from_bytes_vec(bytes)).map_err(|e| bad(&e))?;
        let state: TrainerState = match reader.metadata().get(STATE_KEY) {
            Some(json) => serde_json::from_str(json).map_err(|e| bad(&e))?,
            None => {
                return Err(bad(
                    &"this is a weights file, not a training snapshot (no trainer state)",
                ));
            }
        };
        let (velocity, params): (Vec<PackTensor>, Vec<PackTensor>) = reader
            .into_tensors()
            .map_err(|e| bad(&e))?
            .into_iter()
            .partition(|t| t.name.starts_with(VELOCITY));
        let device = device.clone().autodiff();
        let model = state.config.model.init(&device);
        let model = crate::io::WeightsFile::from_tensors("snapshot", params)
            .apply(model, &state.config.model)
            .map_err(|e| bad(&e))?;
        let mut trainer = Self::with_model(
            state.config,
            model,
            state.classes,
            state.sampler.len,
            &device,
        )?;
        trainer.sampler = state.sampler;
        trainer.rng = Rng::from_state(state.rng);
        trainer.step = state.step;
        for t in velocity {
            let name = t.name[VELOCITY.len()..].to_string();
            let (_, dtype, shape, _, bytes) = t.into_parts().map_err(|e| bad(&e))?;
            let data = TensorData::from_bytes(bytes, shape, dtype);
            trainer.sgd.velocity.insert(
                name,
                Tensor::from_data(data, &trainer.device.clone().inner()),
            );
        }
        Ok(trainer)
    }
}

/// Cross-entropy (with label smoothing ε) and the top-1 / top-5 hit counts of a batch.
///
/// Hits come from the rank of the target's logit (how many logits beat it), which needs
/// no sort: WebGPU cannot sort without a synchronous read.
///
/// # Shapes
/// - `logits`, `one_hot`: `[batch, classes]`
/// - outputs: `[1]` each
pub fn loss_and_hits(
    logits: Tensor<2>,
    one_hot: Tensor<2>,
    smoothing: f64,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let [_, classes] = logits.dims();
    let target = if smoothing > 0.0 {
        one_hot.clone() * (1.0 - smoothing) + smoothing / classes as f64
    } else {
        one_hot.clone()
    };
    let loss = (target * log_softmax(logits.clone(), 1))
        .sum_dim(1)
        .mean()
        .neg();
    let logits = logits.detach();
    let target_logit = (logits.clone() * one_hot.detach()).sum_dim(1); // [batch, 1]
    let rank = logits.greater(target_logit).float().sum_dim(1); // [batch, 1]
    let top1 = rank.clone().lower_elem(1.0).float().sum();
    let top5 = rank.lower_elem(5.0).float().sum();
    (loss, top1, top5)
}

/// Evaluates `model` (eval mode) on up to `limit` images of `data`, averaging the softmax
/// over the test views: the center (the whole 32x32 image) or the paper's 10-crop (corner and
/// center crops of the image padded by 4, and their mirrors).
pub async fn evaluate_views(
    model: &ResNet,
    normalization: &Normalization,
    data: &Dataset,
    limit: Option<usize>,
    batch_size: usize,
    views: TestView,
    device: &Device,
) -> Result<EvalReport, TrainError> {
    let total = limit.unwrap_or(data.len()).min(data.len());
    if total == 0 {
        return Err(TrainError::Invalid(
            "nothing to evaluate: the dataset is empty".into(),
        ));
    }
    let plans: Vec<Option<(Vec<(usize, usize)>, bool)>> = match views {
        TestView::Center => vec![None],
        TestView::TenCrop => [false, true]
            .into_iter()
            .flat_map(|flip| {
                [(0, 0), (8, 0), (0, 8), (8, 8), (4, 4)].map(|o| Some((vec![o], flip)))
            })
            .collect(),
        TestView::MultiScale => {
            return Err(TrainError::Invalid(
                "multi-scale testing needs full-size images: use `resnet classify --views multi-scale`".into(),
            ));
        }
    };
    let classes = model.num_classes();
    let mut confusion = vec![vec![0u32; classes]; classes];
    let (mut loss_sum, mut top1, mut top5) = (0.0f64, 0usize, 0usize);
    let indices: Vec<usize> = (0..total).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let n = chunk.len();
        let (pixels, labels) = data.batch(chunk);
        if let Some(&bad) = labels.iter().find(|&&l| l >= classes) {
            return Err(TrainError::Invalid(format!(
                "label {bad} is out of range for {classes} classes"
            )));
        }
        let x = normalize(
            pixels,
            [n, 3, 32, 32],
            normalization.mean,
            normalization.std,
            device,
        );
        let mut probabilities: Option<Tensor<2>> = None;
        for plan in &plans {
            let view = match plan {
                None => x.clone(),
                Some((offset, flip)) => {
                    let plan = CropPlan {
                        pad: 4,
                        offsets: vec![offset[0]; n],
                        flips: vec![*flip; n],
                    };
                    pad_crop_flip(x.clone(), &plan)
                }
            };
            let p = softmax(model.forward(view), 1);
            probabilities = Some(match probabilities {
                Some(sum) => sum + p,
                None => p,
            });
        }
        let probabilities = probabilities.expect("at least one view") / plans.len() as f32;
        let mut one_hot = vec![0.0f32; n * classes];
        for (i, &label) in labels.iter().enumerate() {
            one_hot[i * classes + label] = 1.0;
        }
        let one_hot = Tensor::<2>::from_data(TensorData::new(one_hot, [n, classes]), device);
        let target = (probabilities.clone() * one_hot).sum_dim(1); // [n, 1]
        let loss = target.clone().clamp_min(1e-12).log().mean().neg();
        let rank = probabilities.clone().greater(target).float().sum_dim(1);
        let hits1 = rank.clone().lower_elem(1.0).float().sum();
        let hits5 = rank.lower_elem(5.0).float().sum();
        let predictions = probabilities.argmax(1).float().reshape([n]);
        let values = read_f32(Tensor::cat(vec![loss, hits1, hits5, predictions], 0)).await?;
        loss_sum += values[0] as f64 * n as f64;
        top1 += values[1] as usize;
        top5 += values[2] as usize;
        for (label, predicted) in labels.iter().zip(&values[3..]) {
            confusion[*label][*predicted as usize] += 1;
        }
    }
    Ok(EvalReport {
        images: total,
        loss: (loss_sum / total as f64) as f32,
        top1_error: 1.0 - top1 as f32 / total as f32,
        top5_error: 1.0 - top5 as f32 / total as f32,
        confusion,
    })
}
