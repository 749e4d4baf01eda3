//! The training step shared by the native CLI and the browser: one SGD step with one
//! read-back. No threads, no filesystem, no synchronous reads. Evaluation is in
//! [super::evaluate], snapshots in [super::snapshot], the loop around steps in [super::session].

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsAccumulator;
use burn::tensor::{Device, Tensor, TensorData};

use super::config::{StepMetrics, TrainConfig, TrainError};
use super::gradients::{Sums, batch_gradients, gradient_sum};
use super::loss_scale::{LossScale, Verdict};
use super::schedule::LrPolicy;
use super::sgd::{Sgd, SgdConfig};
use crate::data::augment::{CropPlan, normalize, pad_crop_flip};
use crate::data::dataset::{Dataset, Sampler};
use crate::data::rng::Rng;
use crate::io::ModelCard;
use crate::model::{Network, ResNet, in_pool};
use crate::readback::read_f32;

/// A network being trained, with its optimizer, data order and augmentation stream.
pub struct Trainer {
    pub(super) config: TrainConfig,
    pub(super) model: Network,
    pub(super) sgd: Sgd,
    pub(super) sampler: Sampler,
    pub(super) rng: Rng,
    pub(super) step: usize,
    layers: Vec<Layer>,
    pub(super) device: Device,
    pub(super) classes: Vec<String>,
    /// The run spec this trainer was made from, kept in snapshots and model cards.
    pub(super) spec: Option<super::recipe::RunSpec>,
    /// Devices the accumulated batches of an update run on side by side (none: all on
    /// `device`).
    #[cfg(not(target_family = "wasm"))]
    replicas: Vec<Device>,
    /// f16 loss scaling ([TrainConfig::amp] f16 only).
    pub(super) loss_scale: Option<LossScale>,
}

/// A weighted layer whose gradient norm is reported.
#[derive(Debug, Clone)]
pub(super) struct Layer {
    name: String,
    id: ParamId,
    rank: usize,
}

/// The weight tensors of convolutions and the classifier, input to output.
#[derive(Default)]
struct LayerCollector {
    path: crate::model::network::ModulePath,
    layers: Vec<Layer>,
}

impl ModuleVisitor for LayerCollector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.path.exit(container_type);
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = &self.path.0;
        let is_weight = path.last().is_some_and(|p| p == "weight");
        let is_shortcut = path.iter().any(|p| p == "downsample");
        if is_weight && (D == 4 || D == 2) && !is_shortcut {
            let name = path[..path.len() - 1].join(".");
            self.layers.push(Layer {
                name,
                id: param.id,
                rank: D,
            });
        }
    }
}

impl Trainer {
    /// A fresh network, initialised from the seed, on `device` (autodiff is added).
    pub fn new(config: TrainConfig, data: &Dataset, device: &Device) -> Result<Self, TrainError> {
        config
            .model
            .validate()
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        if data.image_size() != config.input_size {
            return Err(TrainError::Invalid(format!(
                "the run trains on {0}x{0} images but the data gives {1}x{1}",
                config.input_size,
                data.image_size()
            )));
        }
        let device = device.clone().autodiff();
        device.seed(config.seed);
        let model = config.model.init(&device);
        Self::with_model(config, model, data.classes(), data.len(), &device)
    }

    /// Continues from an existing model (fine-tuning); its config must match `config.model`.
    pub fn with_model(
        config: TrainConfig,
        model: impl Into<Network>,
        classes: Vec<String>,
        dataset_len: usize,
        device: &Device,
    ) -> Result<Self, TrainError> {
        config.validate().map_err(TrainError::Invalid)?;
        if config.batch_size == 0 || dataset_len < config.batch_size {
            return Err(TrainError::Invalid(format!(
                "the batch size must be between 1 and the {dataset_len} training images, got {}",
                config.batch_size
            )));
        }
        if classes.len() != config.model.num_classes() {
            return Err(TrainError::Invalid(format!(
                "the data has {} classes but the network has {} outputs",
                classes.len(),
                config.model.num_classes()
            )));
        }
        let device = device.clone().autodiff();
        config.amp.check(&device).map_err(TrainError::Invalid)?;
        let model = model.into();
        let model = if config.freeze_backbone {
            super::finetune::freeze_backbone(model)
        } else {
            model
        };
        let mut collector = LayerCollector::default();
        model.visit(&mut collector);
        let loss_scale = config.amp.scales_loss().then(LossScale::default);
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
            spec: None,
            #[cfg(not(target_family = "wasm"))]
            replicas: Vec::new(),
            loss_scale,
        })
    }

    /// Runs the batches of each update on `devices` side by side, one batch per device at a
    /// time (data parallelism; the first device should be the trainer's own). The batches an
    /// update accumulates must be a multiple of the devices: they set its size, the devices
    /// only its speed.
    #[cfg(not(target_family = "wasm"))]
    pub fn set_devices(&mut self, devices: Vec<Device>) -> Result<(), TrainError> {
        super::config::check_devices(self.config.accumulate, devices.len())
            .map_err(TrainError::Invalid)?;
        self.replicas = devices.into_iter().map(|d| d.autodiff()).collect();
        Ok(())
    }

    /// Records the run spec (saved in snapshots and exported model cards).
    pub fn set_spec(&mut self, spec: super::recipe::RunSpec) {
        self.spec = Some(spec);
    }

    /// The run spec, if the trainer was made from one.
    pub fn spec(&self) -> Option<&super::recipe::RunSpec> {
        self.spec.as_ref()
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

    /// Updates per epoch (full batches, divided by the batches accumulated per update).
    pub fn steps_per_epoch(&self) -> usize {
        (self.sampler.batches_per_epoch() / self.config.accumulate.max(1)).max(1)
    }

    /// Whether the last step finished an epoch: the next one would start a new permutation
    /// (with accumulation, an update that would straddle two epochs counts in the next).
    pub fn at_epoch_end(&self) -> bool {
        self.sampler.position + self.config.accumulate.max(1) > self.sampler.batches_per_epoch()
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
    pub fn model(&self) -> Network {
        self.model.valid()
    }

    /// The network as a ResNet, for the analyses of residual blocks (lesions, gradient
    /// correlation per block); a DenseNet has no such blocks and is refused by name.
    pub fn resnet(&self) -> Result<ResNet, TrainError> {
        match self.model() {
            Network::ResNet(model) => Ok(model),
            _ => Err(TrainError::Invalid(format!(
                "{} has no residual blocks to delete or probe: the lesion study and the \
                 gradient correlation take the ResNet tree (residual or plain)",
                self.config.model.name()
            ))),
        }
    }

    /// A model card for the network as it is now.
    pub fn card(&self, description: Option<String>) -> ModelCard {
        ModelCard {
            config: self.config.model.clone(),
            labels: Some(self.classes.clone()),
            normalization: self.config.normalization.clone(),
            input_size: self.config.input_size,
            description,
            spec: self
                .spec
                .as_ref()
                .map(|s| serde_json::to_value(s).expect("spec serialises")),
        }
    }

    /// The next batch of `data` in the sampler's order: normalised (and, if the config
    /// says so, augmented) images and one-hot targets. CIFAR-sized images are augmented on the
    /// device; full-size ones arrive augmented from the loader's threads.
    fn next_inputs(&mut self, data: &Dataset) -> (Tensor<4>, Tensor<2>, Vec<usize>) {
        let augment = self.config.augment;
        let size = self.config.input_size;
        // (pixels, labels, whether the device still has to pad, crop and flip them)
        let (pixels, labels, on_device) = match () {
            #[cfg(not(target_family = "wasm"))]
            () if data.files().is_some() => {
                let files = data.files().expect("checked");
                let (_, pixels, labels) =
                    files.next_batch(&mut self.sampler, self.config.seed, augment);
                (pixels, labels, false)
            }
            () => {
                let (pixels, labels) = data.batch(&self.sampler.next_batch());
                (pixels, labels, augment)
            }
        };
        let n = &self.config.normalization;
        let shape = [labels.len(), 3, size, size];
        let x = normalize(pixels, shape, n.mean, n.std, &self.device);
        let x = if on_device {
            pad_crop_flip(x, &CropPlan::random(labels.len(), 4, &mut self.rng))
        } else {
            x
        };
        let one_hot = self.one_hot(&labels);
        (x, one_hot, labels)
    }

    /// One-hot targets of `labels`.
    fn one_hot(&self, labels: &[usize]) -> Tensor<2> {
        let classes = self.config.model.num_classes();
        let mut one_hot = vec![0.0f32; labels.len() * classes];
        for (i, &label) in labels.iter().enumerate() {
            one_hot[i * classes + label] = 1.0;
        }
        Tensor::from_data(
            TensorData::new(one_hot, [labels.len(), classes]),
            &self.device,
        )
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
        // Gradient accumulation: each batch's loss is divided by their count, so the summed
        // gradients are those of the mean loss over all the update's images.
        let micro = self.config.accumulate.max(1);
        let amp = self.config.amp;
        let scale = self.loss_scale.as_ref().map_or(1.0, |s| s.scale);
        let mut accumulator = GradientsAccumulator::new();
        let mut batch = 0.0f32;
        let mut totals: Option<Sums> = None;
        #[cfg_attr(target_family = "wasm", allow(unused_mut))]
        let mut done = 0;
        #[cfg(not(target_family = "wasm"))]
        while self.replicas.len() > 1 && done < micro {
            let mut shards = Vec::with_capacity(self.replicas.len());
            for _ in 0..self.replicas.len() {
                let (x, one_hot, labels) = self.next_inputs(data);
                batch += labels.len() as f32;
                shards.push(super::replicas::Shard { x, one_hot });
            }
            done += shards.len();
            let results = super::replicas::parallel_gradients(
                &self.model,
                &self.replicas,
                shards,
                self.config.label_smoothing,
                (micro as f32, amp, scale),
                &self.device,
            );
            for (grads, part) in results {
                accumulator.accumulate(&self.model, grads);
                totals = Some(add_sums(totals, part));
            }
        }
        for _ in done..micro {
            let (x, one_hot, labels) = self.next_inputs(data);
            batch += labels.len() as f32;
            let (model, smoothing) = (&self.model, self.config.label_smoothing);
            let (grads, part) =
                in_pool(|| batch_gradients(model, x, one_hot, smoothing, micro as f32, amp, scale));
            accumulator.accumulate(&self.model, grads);
            totals = Some(add_sums(totals, part));
        }
        let grads = accumulator.grads();
        let (loss, top1, top5) = totals.expect("at least one batch");

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
        let mut parts = vec![loss, top1, top5];
        // With loss scaling, one more value: the sum of every gradient, finite unless one
        // overflowed.
        if self.loss_scale.is_some() {
            parts.push(gradient_sum(&self.model, &grads, &inner));
        }
        let count = parts.len();
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
        let verdict = match &mut self.loss_scale {
            Some(loss_scale) => loss_scale.observe(values[3].is_finite()),
            None => Verdict::Apply,
        };
        match verdict {
            Verdict::Apply => {
                let (sgd, model) = (&mut self.sgd, self.model.clone());
                self.model = in_pool(|| sgd.step_scaled(lr, model, grads, scale));
            }
            // As PyTorch's GradScaler: the batch counts as a step, its update is dropped
            // (the forward pass's BN statistics stay).
            Verdict::Skip => {}
            Verdict::OutOfRange => {
                self.model = last_good.train();
                return Err(TrainError::Invalid(format!(
                    "step {}: the gradients overflow f16 even without loss scaling; train \
                     with --amp bf16 or without --amp",
                    self.step + 1
                )));
            }
        }
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
            grad_norms: values[count..].iter().map(|v| v.sqrt() / scale).collect(),
            loss_scale: self.loss_scale.as_ref().map(|_| scale),
            skipped: verdict == Verdict::Skip,
        })
    }
}

/// The loss and hit sums of an update's batches so far, with one more batch's.
fn add_sums(totals: Option<Sums>, part: Sums) -> Sums {
    match totals {
        Some((l, t1, t5)) => (l + part.0, t1 + part.1, t5 + part.2),
        None => part,
    }
}
