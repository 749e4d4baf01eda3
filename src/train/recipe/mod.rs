//! The run spec: everything that defines a training run, with every default in one place.
//!
//! `resnet train` flags, the page's form and the npm `Trainer.create` options all build a
//! [RunSpec]; it is written into the run directory (`config.json`), into every snapshot and
//! into exported model cards, so `resnet train --spec` can reproduce a run started in the page
//! and `Trainer.create(spec, dataset)` a run started natively.

use serde::{Deserialize, Serialize};

mod options;
pub use options::{FineTuneSpec, OptimizerSpec, Recipe, ScheduleKind, ScheduleSpec};

use super::config::TrainConfig;
use super::schedule::{ErrorWarmup, LrPolicy, Schedule, paper_cifar_iterations};
use super::sgd::SgdConfig;
use crate::data::augment::Augmentation;
use crate::data::spec::DataSpec;
use crate::io::Normalization;
use crate::model::amp::Amp;
use crate::model::{NetConfig, ResNetConfig, ShortcutOption, StridePlacement};

/// Everything a training run is made of. Absent fields take the defaults documented here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RunSpec {
    /// Architecture name: `resnet20` (default), `resnet56`, `plain20`, `resnet18`, …
    pub arch: String,
    /// Train the plain twin of `arch` (the same layers without shortcuts).
    pub plain: bool,
    /// Train the residual net and its plain twin side by side on the same data order.
    pub compare: bool,
    /// More architectures trained beside `arch` on the same data order, up to three nets in
    /// all: e.g. `["plain20", "preact_resnet20"]` (see [RunSpec::nets]).
    pub compare_with: Vec<String>,
    /// Shortcut option A, B or C [default: the architecture's (A for CIFAR nets, B else)].
    pub shortcut: Option<ShortcutOption>,
    /// Bottleneck stride on the 3x3 (v1.5) or the first 1x1 (v1) [default: the name's].
    pub stride_placement: Option<StridePlacement>,
    /// Which defaults the schedule takes: the paper's CIFAR recipe or a constant rate.
    pub recipe: Recipe,
    /// SGD hyper-parameters.
    pub optimizer: OptimizerSpec,
    /// The learning-rate schedule.
    pub schedule: ScheduleSpec,
    /// Images per step (128 in the paper).
    pub batch_size: usize,
    /// Batches whose gradients are summed into one update (1): an update sees
    /// `batchSize × accumulate` images, and the rate, the epochs and the schedule count in
    /// updates of that size (batch 256 on a device that holds 64: 64 × 4).
    pub accumulate: usize,
    /// Seeds the init, the data order and the augmentation.
    pub seed: u64,
    /// Augment training images: 4-pixel pad + random 32x32 crop + horizontal flip on
    /// CIFAR-sized data (the paper's), [RunSpec::augmentation] on full-size images.
    pub augment: bool,
    /// How full-size (ImageNet-layout) training images are augmented [default: the paper's
    /// scale augmentation for paper-imagenet, RandomResizedCrop otherwise].
    pub augmentation: Option<Augmentation>,
    /// Side of the square training crop of full-size images [default: 224]; CIFAR-sized
    /// data is 32.
    pub image_size: Option<usize>,
    /// Label smoothing ε (0 in the paper).
    pub label_smoothing: f64,
    /// Mixed precision: the convolutions in f16 (with dynamic loss scaling) or bf16, the rest
    /// in f32, as PyTorch's autocast (`off`).
    pub amp: Amp,
    /// Iterations of the run [default: the paper's 64k iterations for 45k images at batch
    /// 128 (182 epochs), scaled to the data and the batch].
    pub iterations: Option<usize>,
    /// Epochs of the run, instead of `iterations`.
    pub epochs: Option<usize>,
    /// Steps between evaluations on the test set (and one at the end); 0: once per epoch.
    pub eval_every: usize,
    /// Evaluate on at most this many test images (all if absent).
    pub eval_limit: Option<usize>,
    /// Steps between checkpoints (one is also written at every epoch end).
    pub checkpoint_every: usize,
    /// Seconds between snapshots, as well (the page's IndexedDB snapshots).
    pub snapshot_seconds: Option<f64>,
    /// Steps each net takes before the loop yields (to the page, or to the other net).
    pub steps_per_round: usize,
    /// Fine-tuning: start from trained weights with a new classifier.
    pub fine_tune: Option<FineTuneSpec>,
    /// The data.
    pub data: DataSpec,
}

impl Default for RunSpec {
    fn default() -> Self {
        Self {
            arch: "resnet20".into(),
            plain: false,
            compare: false,
            compare_with: Vec::new(),
            shortcut: None,
            stride_placement: None,
            recipe: Recipe::PaperCifar,
            optimizer: OptimizerSpec::default(),
            schedule: ScheduleSpec::default(),
            batch_size: 128,
            accumulate: 1,
            seed: 0,
            augment: true,
            augmentation: None,
            image_size: None,
            label_smoothing: 0.0,
            amp: Amp::Off,
            iterations: None,
            epochs: None,
            eval_every: 1000,
            eval_limit: None,
            checkpoint_every: 500,
            snapshot_seconds: None,
            steps_per_round: 1,
            fine_tune: None,
            data: DataSpec::default(),
        }
    }
}

impl RunSpec {
    /// The defaults of `recipe`: the default spec with the recipe's batch, label smoothing,
    /// weight-decay exemptions and evaluation cadence. (Its schedule, length and rate are
    /// resolved from `recipe` when the run starts, so a spec file that names a recipe gets them
    /// too.)
    pub fn for_recipe(recipe: Recipe) -> Self {
        let mut spec = Self {
            recipe,
            ..Self::default()
        };
        if recipe.is_imagenet() {
            spec.batch_size = 256;
            spec.eval_every = 0;
            spec.checkpoint_every = 1000;
        }
        if recipe == Recipe::Modern {
            spec.label_smoothing = 0.1;
            spec.optimizer.decay_bn_and_bias = false;
        }
        spec
    }

    /// Side of the square training images on this spec's data.
    pub fn image_size(&self) -> Result<usize, String> {
        match (&self.data, self.image_size) {
            (DataSpec::ImageNet { .. }, size) => Ok(size.unwrap_or(224)),
            (_, None | Some(32)) => Ok(32),
            (data, Some(size)) => Err(format!(
                "an image size of {size} needs full-size images (--data imagenet:DIR); {} is \
                 32x32",
                data.describe()
            )),
        }
    }

    /// The augmentation of full-size training images.
    pub fn augmentation(&self) -> Augmentation {
        self.augmentation.unwrap_or(match self.recipe {
            Recipe::PaperImagenet => Augmentation::Scale,
            _ => Augmentation::RandomResizedCrop,
        })
    }

    /// The network: `arch`, made plain if asked, with `classes` outputs. A DenseNet or an
    /// Inception-ResNet trains as it is (no shortcuts to remove or change); the training
    /// configuration checks that its images are large enough.
    pub fn model(&self, classes: usize) -> Result<NetConfig, crate::Error> {
        let model = match crate::model::network::parse(&self.arch)? {
            NetConfig::ResNet(mut model) => {
                if let Some(shortcut) = self.shortcut {
                    model = model.with_shortcut(shortcut);
                }
                if let Some(placement) = self.stride_placement {
                    model = model.with_stride_placement(placement);
                }
                let residual = model.residual && !self.plain;
                NetConfig::ResNet(model.with_residual(residual))
            }
            other => {
                if self.plain || self.compare || self.shortcut.is_some() {
                    return Err(crate::Error::Other(format!(
                        "{} has no shortcuts: plain, compare (its plain twin) and shortcut are \
                         ResNet options (compare a DenseNet with compareWith)",
                        other.name()
                    )));
                }
                other
            }
        };
        let model = model.with_num_classes(classes);
        model.validate()?;
        Ok(model)
    }

    /// The base learning rate: given, or 0.1 (0.01 when fine-tuning a trained network);
    /// an ImageNet recipe's 0.1 is per 256 images, scaled linearly with the batch.
    pub fn base_lr(&self) -> f64 {
        let scale = if self.recipe.is_imagenet() {
            self.images_per_update() as f64 / 256.0
        } else {
            1.0
        };
        self.optimizer
            .lr
            .unwrap_or(if self.fine_tune.is_some() { 0.01 } else { 0.1 } * scale)
    }

    /// Iterations of the run on `train_len` training images.
    pub fn iterations(&self, train_len: usize) -> usize {
        let per_epoch = self.updates_per_epoch(train_len);
        match (self.iterations, self.epochs) {
            (Some(i), _) => i,
            (None, Some(e)) => e.saturating_mul(per_epoch),
            (None, None) => match self.recipe {
                // 60×10⁴ iterations of 256 images.
                Recipe::PaperImagenet => 600_000 * 256 / self.images_per_update(),
                Recipe::TorchvisionV1 => 90 * per_epoch,
                Recipe::Modern => 120 * per_epoch,
                Recipe::PaperCifar | Recipe::Custom => {
                    paper_cifar_iterations(train_len, self.images_per_update())
                }
            },
        }
    }

    /// Images one update sees: the batch times the batches accumulated.
    pub fn images_per_update(&self) -> usize {
        (self.batch_size * self.accumulate).max(1)
    }

    /// Updates in an epoch of `train_len` images (at least 1).
    pub fn updates_per_epoch(&self, train_len: usize) -> usize {
        (train_len / self.images_per_update()).max(1)
    }

    /// Steps between evaluations on `train_len` images (`eval_every`, or one epoch if 0).
    pub fn eval_every(&self, train_len: usize) -> usize {
        match self.eval_every {
            0 => self.updates_per_epoch(train_len),
            every => every,
        }
    }

    /// The SGD configuration.
    pub fn sgd(&self) -> SgdConfig {
        let o = &self.optimizer;
        SgdConfig {
            momentum: o.momentum,
            nesterov: o.nesterov,
            weight_decay: o.weight_decay,
            decay_bn_and_bias: o.decay_bn_and_bias,
        }
    }

    /// The learning-rate policy for a net of `depth` layers on `train_len` images.
    pub fn lr_policy(&self, depth: usize, train_len: usize) -> LrPolicy {
        let s = &self.schedule;
        let total = s.total.unwrap_or_else(|| self.iterations(train_len));
        let per_epoch = self.updates_per_epoch(train_len);
        let kind = s.kind.unwrap_or(match self.recipe {
            Recipe::PaperCifar => ScheduleKind::Paper,
            Recipe::PaperImagenet => ScheduleKind::Plateau,
            Recipe::TorchvisionV1 => ScheduleKind::Step,
            Recipe::Modern => ScheduleKind::Cosine,
            Recipe::Custom => ScheduleKind::Constant,
        });
        let warmup_epochs = s
            .warmup_epochs
            .or((self.recipe == Recipe::Modern).then_some(5.0));
        let warmup = match warmup_epochs {
            Some(epochs) => (epochs * per_epoch as f64).round() as usize,
            None => s.warmup,
        };
        let schedule = match kind {
            ScheduleKind::Paper => Schedule::PaperCifar { total },
            ScheduleKind::Step => Schedule::Step {
                every: s.every.unwrap_or(30 * per_epoch).max(1),
                gamma: s.gamma,
            },
            ScheduleKind::Cosine => Schedule::Cosine { warmup, total },
            ScheduleKind::Plateau => Schedule::Plateau {
                patience: s.patience,
                threshold: s.threshold,
            },
            ScheduleKind::Constant => Schedule::Constant,
        };
        let base = self.base_lr();
        let mut policy = LrPolicy::new(base, schedule);
        let warm = s
            .error_warmup
            .unwrap_or(self.recipe == Recipe::PaperCifar && depth >= 110);
        if warm {
            policy = policy.with_error_warmup(ErrorWarmup {
                lr: base / 10.0,
                until_error_below: 0.8,
            });
        }
        policy
    }

    /// The [TrainConfig] of one net of this run: `model` on `train_len` images normalised
    /// by `normalization`.
    pub fn train_config(
        &self,
        model: impl Into<NetConfig>,
        train_len: usize,
        normalization: Normalization,
    ) -> Result<TrainConfig, String> {
        let model = model.into();
        let input_size = self.image_size()?;
        // The depth decides the paper's ResNet-110 warm-up: a ResNet-tree rule.
        let depth = model.resnet().map_or(0, ResNetConfig::depth);
        let config = TrainConfig {
            lr: self.lr_policy(depth, train_len),
            model,
            sgd: self.sgd(),
            batch_size: self.batch_size,
            accumulate: self.accumulate,
            seed: self.seed,
            augment: self.augment,
            label_smoothing: self.label_smoothing,
            normalization,
            freeze_backbone: self.fine_tune.as_ref().is_some_and(|f| f.freeze_backbone),
            input_size,
            amp: self.amp,
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads a spec from JSON: a spec itself, a run directory's `config.json` (`{"spec": …}`)
    /// or a model card that carries one (`{"spec": …}` too).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let value = match value.get("spec") {
            Some(inner) => inner.clone(),
            None => value,
        };
        serde_json::from_value(value).map_err(|e| format!("not a run spec: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_papers_cifar_recipe() {
        let spec = RunSpec::default();
        let model = spec.model(10).unwrap();
        let config = spec
            .train_config(model, 45_000, Normalization::CIFAR10)
            .unwrap();
        assert_eq!(config.batch_size, 128);
        assert_eq!(config.sgd.momentum, 0.9);
        assert_eq!(config.sgd.weight_decay, 1e-4);
        assert!(config.augment);
        // 64k iterations for 45k images at batch 128, ÷10 at 32k and 48k.
        assert_eq!(spec.iterations(45_000), 64_000);
        assert_eq!(config.lr.lr(31_999), 0.1);
        assert!((config.lr.lr(32_000) - 0.01).abs() < 1e-12);
        assert!((config.lr.lr(48_000) - 0.001).abs() < 1e-12);
        // The ResNet-110 warm-up only for 110+ layers.
        assert!(config.lr.warmup.is_none());
        let deep = RunSpec {
            arch: "resnet110".into(),
            ..RunSpec::default()
        };
        assert!(deep.lr_policy(110, 45_000).warmup.is_some());
    }

    #[test]
    fn fine_tuning_keeps_the_users_optimizer_and_lowers_only_the_default_rate() {
        let spec: RunSpec = serde_json::from_str(
            r#"{"optimizer":{"momentum":0.5,"weightDecay":0.001},"fineTune":{"freezeBackbone":true}}"#,
        )
        .unwrap();
        assert_eq!(spec.base_lr(), 0.01);
        let config = spec
            .train_config(spec.model(3).unwrap(), 100, Normalization::CIFAR10)
            .unwrap();
        assert_eq!(config.sgd.momentum, 0.5);
        assert_eq!(config.sgd.weight_decay, 0.001);
        assert!(config.freeze_backbone);
    }

    #[test]
    fn a_spec_round_trips_and_is_found_inside_a_config_file() {
        let spec = RunSpec {
            arch: "resnet56".into(),
            compare: true,
            iterations: Some(300),
            data: DataSpec::parse("shapes:512").unwrap(),
            ..RunSpec::default()
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(RunSpec::from_json(&json).unwrap(), spec);
        let wrapped = format!(r#"{{"spec":{json},"data":"Shapes"}}"#);
        assert_eq!(RunSpec::from_json(&wrapped).unwrap(), spec);
        assert!(RunSpec::from_json(r#"{"batchSize":"big"}"#).is_err());
    }

    #[test]
    fn out_of_range_hyper_parameters_are_refused() {
        let spec = RunSpec {
            optimizer: OptimizerSpec {
                momentum: 1.5,
                ..OptimizerSpec::default()
            },
            ..RunSpec::default()
        };
        let err = spec
            .train_config(spec.model(10).unwrap(), 1000, Normalization::CIFAR10)
            .unwrap_err();
        assert!(err.contains("momentum 1.5"), "{err}");
    }
}
