//! `resnet train`: a run spec from flags (over `--spec`), then the run directory's loop.

use std::path::{Path, PathBuf};

use clap::Args;

use super::progress::Progress;
use super::{DeviceArgs, ModelArgs};
use crate::Error;
use crate::data::folder::{self, LoadedData};
use crate::data::spec::DataSpec;
use crate::io::WeightsFile;
use crate::model::amp::Amp;
use crate::train::learner::{self, RunDir, RunOptions};
use crate::train::recipe::{Recipe, ScheduleKind};
use crate::train::{RunSpec, TrainConfig};

/// `--data`: where the images come from.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// synthetic (the embedded Shapes), cifar10:DIR, cifar100:DIR, folder:DIR (shrunk to
    /// 32x32) or imagenet:DIR (full size, streamed: train/<wnid>/ and val/<wnid>/ or a flat
    /// val/ with val_labels.txt) [default: synthetic, or the --spec's data].
    #[arg(long)]
    data: Option<String>,
    /// imagenet:DIR only: threads decoding and augmenting images [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Shapes only: training images [default: 50000].
    #[arg(long)]
    train_size: Option<usize>,
    /// Shapes only: test images [default: 10000].
    #[arg(long)]
    test_size: Option<usize>,
}

impl DataArgs {
    /// The data these flags name, on top of `base` (a spec's, or the default).
    fn spec(&self, base: &DataSpec) -> Result<DataSpec, Error> {
        let mut spec = match &self.data {
            Some(text) => DataSpec::parse(text).map_err(Error::Other)?,
            None => base.clone(),
        };
        if let DataSpec::Shapes {
            train_size,
            test_size,
        } = &mut spec
        {
            *train_size = self.train_size.unwrap_or(*train_size);
            *test_size = self.test_size.unwrap_or(*test_size);
        }
        spec.validate().map_err(Error::Other)?;
        Ok(spec)
    }

    /// Reads the data (opens a streamed set).
    pub fn load(&self) -> Result<LoadedData, Error> {
        folder::load_with(&self.spec(&DataSpec::default())?, self.workers)
            .map_err(|e| Error::Other(e.to_string()))
    }
}

/// `resnet train`: every flag overrides the same field of the run spec (`--spec`, or the
/// defaults documented in `RunSpec`; `--print-spec` shows the result).
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A run spec to start from: JSON (a spec, a run's config.json) or a .bpk exported by
    /// the page or `resnet export` (its model card carries the spec).
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Print the run spec these flags make, as JSON, and exit.
    #[arg(long)]
    print_spec: bool,
    #[command(flatten)]
    model: ModelArgs,
    /// Train the plain twin (no shortcuts).
    #[arg(long)]
    plain: bool,
    #[command(flatten)]
    data: DataArgs,
    /// A recipe by name: its batch, schedule, length and regularisation become the defaults
    /// (paper-cifar when absent; the ImageNet recipes scale the rate with the batch).
    #[arg(long, value_enum)]
    recipe: Option<Recipe>,
    /// Side of the square training crop of full-size images [default: 224].
    #[arg(long)]
    image_size: Option<usize>,
    /// Augmentation of full-size images [default: scale for paper-imagenet, else
    /// random-resized-crop].
    #[arg(long, value_enum)]
    augmentation: Option<crate::data::augment::Augmentation>,
    /// Iterations in total [default: the paper's 182 epochs, scaled to the data and batch].
    #[arg(long, conflicts_with = "epochs")]
    iterations: Option<usize>,
    /// Epochs in total (instead of --iterations).
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per batch [default: 128; 256 for the ImageNet recipes].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Batches whose gradients are summed into one update (gradient accumulation) [default: 1,
    /// or one per device with --devices].
    #[arg(long)]
    accumulate: Option<usize>,
    /// Data parallelism: the batches of an update run side by side on these devices, one each
    /// (e.g. wgpu:0,wgpu:1; replicas of the model, gradients summed on the first device).
    #[arg(long, value_delimiter = ',', conflicts_with = "device")]
    devices: Vec<super::Backend>,
    /// Base learning rate [default: 0.1].
    #[arg(long)]
    lr: Option<f64>,
    /// SGD momentum [default: 0.9].
    #[arg(long)]
    momentum: Option<f64>,
    /// Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// L2 weight decay [default: 1e-4].
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Exempt BN parameters and biases from weight decay.
    #[arg(long)]
    no_decay_bn_bias: bool,
    /// Learning-rate schedule [default: paper for paper-cifar, constant for custom].
    #[arg(long, value_enum)]
    schedule: Option<ScheduleKind>,
    /// Warm-up iterations of the cosine schedule.
    #[arg(long)]
    warmup: Option<usize>,
    /// Iterations between decays of the step schedule [default: 30 epochs].
    #[arg(long)]
    step_every: Option<usize>,
    /// Hold lr/10 until the training error is below 80% (the paper's ResNet-110 trick)
    /// [default: on for 110+ layers with paper-cifar].
    #[arg(long)]
    error_warmup: Option<bool>,
    /// Label smoothing ε [default: 0].
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// Mixed precision, as PyTorch's autocast: the convolutions in f16 (with dynamic loss
    /// scaling) or bf16, batch normalization, the classifier, the loss and the weights in f32
    /// [default: off].
    #[arg(long, value_enum)]
    amp: Option<Amp>,
    /// Turn off pad-and-crop + flip augmentation.
    #[arg(long)]
    no_augment: bool,
    /// Seeds the init, data order and augmentation [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    device: DeviceArgs,
    /// The run directory.
    #[arg(long, required_unless_present = "print_spec")]
    out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Steps between checkpoints (one is also written at every epoch end) [default: 500].
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Steps between evaluations on the test set [default: 1000].
    #[arg(long)]
    eval_every: Option<usize>,
    /// Evaluate on at most this many test images.
    #[arg(long)]
    eval_limit: Option<usize>,
    /// No progress bar (logs only).
    #[arg(long)]
    no_progress: bool,
}

impl TrainArgs {
    /// The run spec: `--spec` (or the defaults) with every given flag applied.
    fn run_spec(&self) -> Result<RunSpec, Error> {
        fn set<T>(field: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *field = v;
            }
        }
        // A recipe's defaults under the flags; a spec file keeps its own values.
        let mut spec = match &self.spec {
            Some(path) => read_spec(path)?,
            None => RunSpec::for_recipe(self.recipe.unwrap_or_default()),
        };
        if let Some(arch) = &self.model.arch {
            spec.arch = arch.clone();
        }
        spec.shortcut = self.model.shortcut.or(spec.shortcut);
        spec.stride_placement = self.model.variant.or(spec.stride_placement);
        spec.plain |= self.plain;
        spec.data = self.data.spec(&spec.data)?;
        set(&mut spec.recipe, self.recipe);
        spec.image_size = self.image_size.or(spec.image_size);
        spec.augmentation = self.augmentation.or(spec.augmentation);
        if self.iterations.is_some() || self.epochs.is_some() {
            spec.iterations = self.iterations;
            spec.epochs = self.epochs;
        }
        set(&mut spec.batch_size, self.batch_size);
        set(&mut spec.accumulate, self.accumulate);
        if self.accumulate.is_none() && self.devices.len() > spec.accumulate {
            // One batch per device: the update grows with the devices, like PyTorch's DDP.
            spec.accumulate = self.devices.len();
        }
        crate::train::config::check_devices(spec.accumulate, self.devices.len())
            .map_err(Error::Other)?;
        spec.optimizer.lr = self.lr.or(spec.optimizer.lr);
        set(&mut spec.optimizer.momentum, self.momentum);
        spec.optimizer.nesterov |= self.nesterov;
        set(&mut spec.optimizer.weight_decay, self.weight_decay);
        spec.optimizer.decay_bn_and_bias &= !self.no_decay_bn_bias;
        spec.schedule.kind = self.schedule.or(spec.schedule.kind);
        set(&mut spec.schedule.warmup, self.warmup);
        spec.schedule.every = self.step_every.or(spec.schedule.every);
        spec.schedule.error_warmup = self.error_warmup.or(spec.schedule.error_warmup);
        set(&mut spec.label_smoothing, self.label_smoothing);
        set(&mut spec.amp, self.amp);
        spec.augment &= !self.no_augment;
        set(&mut spec.seed, self.seed);
        set(&mut spec.checkpoint_every, self.checkpoint_every);
        set(&mut spec.eval_every, self.eval_every);
        spec.eval_limit = self.eval_limit.or(spec.eval_limit);
        // The page's display cadence means nothing to a native run.
        spec.snapshot_seconds = None;
        spec.steps_per_round = 1;
        Ok(spec)
    }
}

/// A run spec from a JSON file or from the model card / snapshot state of a .bpk.
fn read_spec(path: &Path) -> Result<RunSpec, Error> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    let bad = |e: String| Error::Other(format!("{}: {e}", path.display()));
    if crate::io::WeightsFormat::sniff(&bytes) == Some(crate::io::WeightsFormat::Burnpack) {
        let file = WeightsFile::from_bytes(bytes, &path.display().to_string())?;
        let spec = file
            .card
            .and_then(|card| card.spec)
            .ok_or_else(|| bad("this weights file does not carry a run spec".into()))?;
        return serde_json::from_value(spec).map_err(|e| bad(format!("not a run spec: {e}")));
    }
    let text = String::from_utf8(bytes).map_err(|_| bad("neither JSON nor a .bpk".into()))?;
    RunSpec::from_json(&text).map_err(bad)
}

pub fn train(args: TrainArgs) -> Result<(), Error> {
    let spec = args.run_spec()?;
    if args.print_spec {
        println!(
            "{}",
            serde_json::to_string_pretty(&spec).expect("spec serialises")
        );
        return Ok(());
    }
    let out = args.out.clone().expect("clap requires --out");
    let data = folder::load_with(&spec.data, args.data.workers)
        .map_err(|e| Error::Other(e.to_string()))?
        .with_views(
            spec.image_size().map_err(Error::Other)?,
            spec.augmentation(),
        );
    let classes = data.train.classes().len();
    if args.model.classes.is_some_and(|c| c != classes) {
        return Err(Error::Other(format!(
            "--classes {} but the data has {classes} classes",
            args.model.classes.unwrap()
        )));
    }
    let model = spec.model(classes)?;
    // Full-size images take ImageNet's statistics (the first images of a sorted folder are
    // all one class), Inception's for Inception-ResNet as timm's weights do; CIFAR-sized data
    // its own.
    let normalization = if data.train.image_size() == 32 {
        data.train.channel_statistics(5_000)
    } else if let crate::model::NetConfig::InceptionResNet(_) = model {
        crate::io::Normalization::INCEPTION
    } else {
        crate::io::Normalization::IMAGENET
    };
    let config = spec
        .train_config(model, data.train.len(), normalization)
        .map_err(Error::Other)?;
    let backends = match args.devices.as_slice() {
        [] => vec![args.device.device],
        list => list.to_vec(),
    };
    if backends.contains(&super::Backend::Flex) {
        check_memory(&config, config.batch_size)?;
    }
    let devices = backends
        .iter()
        .map(|b| b.device())
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Device)?;
    let device = devices[0].clone();
    let iterations = spec.iterations(data.train.len());
    let per_epoch = spec.updates_per_epoch(data.train.len());
    let options = RunOptions {
        out: out.clone(),
        resume: args.resume,
        data_description: data.description.clone(),
        devices,
    };
    eprintln!(
        "training {} on {} for {iterations} iterations ({:.1} epochs of {per_epoch}), batch {}{}, \
         lr {}{}, {}",
        config.model.name(),
        data.description,
        iterations as f64 / per_epoch as f64,
        config.batch_size,
        if config.accumulate > 1 {
            format!(" × {} accumulated", config.accumulate)
        } else {
            String::new()
        },
        config.lr.base_lr,
        match config.amp.dtype() {
            Some(_) => format!(", convolutions in {}", config.amp.name()),
            None => String::new(),
        },
        if args.resume {
            "resuming"
        } else {
            "from scratch"
        }
    );
    let mut bar = Progress::new(!args.no_progress, iterations);
    let result = learner::run(
        &spec,
        config,
        &data.train,
        &data.test,
        &device,
        &options,
        &mut |event| bar.show(event),
    );
    bar.finish(result.is_ok());
    let (_, report) = result.map_err(|e| Error::Other(e.to_string()))?;
    if let Some(report) = report {
        println!(
            "test top-1 error {:.2}%, top-5 error {:.2}% on {} images; weights in {}",
            report.top1_error * 100.0,
            report.top5_error * 100.0,
            report.images,
            RunDir(out).model().display()
        );
    }
    Ok(())
}

/// Refuses a batch whose training step would not fit in the memory available (Linux).
fn check_memory(config: &TrainConfig, batch: usize) -> Result<(), Error> {
    let Some(available) = available_memory() else {
        return Ok(());
    };
    crate::train::check_batch_memory(
        &config.model,
        config.input_size,
        batch,
        available / 10 * 9,
        "the memory available",
    )
    .map_err(|e| Error::Other(format!("{e} (--batch-size)")))
}

/// `MemAvailable` of /proc/meminfo, in bytes.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
