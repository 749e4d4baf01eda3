//! `resnet train`, `resnet eval`, `resnet export`.

use std::path::{Path, PathBuf};

use burn::module::Module;
use clap::{Args, ValueEnum};

use super::{DeviceArgs, ModelArgs};
use crate::Error;
use crate::data::cifar::Variant;
use crate::data::dataset::Dataset;
use crate::data::synthetic::{self, Shapes};
use crate::data::views::TestView;
use crate::io::{ModelCard, Normalization, Precision, WeightsFile};
use crate::train::learner::{self, RunDir, RunOptions};
use crate::train::schedule::paper_cifar_iterations;
use crate::train::{ErrorWarmup, LrPolicy, Schedule, SgdConfig, TrainConfig, Trainer};

/// Seed of the embedded Shapes dataset (fixed: the data is the same whatever the run's seed).
pub const SHAPES_SEED: u64 = 2015;

/// `--data`: where the images come from.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// synthetic (the embedded Shapes), cifar10:DIR, cifar100:DIR or folder:DIR.
    #[arg(long, default_value = "synthetic")]
    data: String,
    /// Shapes only: training images.
    #[arg(long, default_value_t = synthetic::DEFAULT_TRAIN)]
    train_size: usize,
    /// Shapes only: test images.
    #[arg(long, default_value_t = synthetic::DEFAULT_TEST)]
    test_size: usize,
}

/// Train and test sets, their normalisation and a description.
pub struct Data {
    pub train: Dataset,
    pub test: Dataset,
    pub normalization: Normalization,
    pub description: String,
}

impl DataArgs {
    pub fn load(&self) -> Result<Data, Error> {
        let data_error = |e: crate::data::folder::DataError| Error::Other(e.to_string());
        let (kind, dir) = match self.data.split_once(':') {
            Some((kind, dir)) => (kind, Some(PathBuf::from(dir))),
            None => (self.data.as_str(), None),
        };
        let need_dir = || {
            dir.clone().ok_or_else(|| {
                Error::Other(format!(
                    "--data {kind} needs a directory: --data {kind}:DIR"
                ))
            })
        };
        let (train, test, description) = match kind {
            "synthetic" | "shapes" => (
                Dataset::Shapes(Shapes {
                    len: self.train_size,
                    ..Shapes::train(SHAPES_SEED)
                }),
                Dataset::Shapes(Shapes {
                    len: self.test_size,
                    ..Shapes::test(SHAPES_SEED)
                }),
                format!(
                    "Shapes (embedded, {} train / {} test images)",
                    self.train_size, self.test_size
                ),
            ),
            "cifar10" | "cifar100" => {
                let variant = if kind == "cifar10" {
                    Variant::Cifar10
                } else {
                    Variant::Cifar100
                };
                let dir = need_dir()?;
                let (train, test) =
                    crate::data::folder::read_cifar(&dir, variant).map_err(data_error)?;
                let description = format!(
                    "{} ({} train / {} test images)",
                    kind.to_uppercase(),
                    train.len(),
                    test.len()
                );
                (Dataset::Images(train), Dataset::Images(test), description)
            }
            "folder" => {
                let dir = need_dir()?;
                let (train, test) = if dir.join("train").is_dir() && dir.join("test").is_dir() {
                    let train =
                        crate::data::folder::read_folder(&dir.join("train")).map_err(data_error)?;
                    let test =
                        crate::data::folder::read_folder(&dir.join("test")).map_err(data_error)?;
                    if train.classes != test.classes {
                        return Err(Error::Other(format!(
                            "{}: train/ and test/ have different class folders",
                            dir.display()
                        )));
                    }
                    (train, test)
                } else {
                    // No test set given: hold out a random 10%.
                    crate::data::folder::read_folder(&dir)
                        .map_err(data_error)?
                        .split(0.1, SHAPES_SEED)
                };
                let description = format!(
                    "folder {} ({} classes, {} train / {} test images)",
                    dir.display(),
                    train.classes.len(),
                    train.len(),
                    test.len()
                );
                (Dataset::Images(train), Dataset::Images(test), description)
            }
            other => {
                return Err(Error::Other(format!(
                    "unknown --data '{other}': expected synthetic, cifar10:DIR, cifar100:DIR or folder:DIR"
                )));
            }
        };
        if train.is_empty() || test.is_empty() {
            return Err(Error::Other(format!(
                "{}: the dataset has no images",
                self.data
            )));
        }
        let normalization = train.channel_statistics(5_000);
        Ok(Data {
            train,
            test,
            normalization,
            description,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Recipe {
    /// Section 4.2: lr 0.1 ÷10 at 1/2 and 3/4 of 182 epochs, batch 128, momentum 0.9,
    /// weight decay 1e-4, augmentation, and the 0.01 warm-up for 110+ layers.
    PaperCifar,
    /// The same defaults, but a constant rate and no warm-up unless asked for.
    Custom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleKind {
    /// ÷10 at 1/2 and 3/4 of the run.
    Paper,
    /// ×0.1 every --step-every iterations.
    Step,
    /// Linear warm-up for --warmup iterations, then cosine to 0.
    Cosine,
    /// ÷10 when the test error stops improving.
    Plateau,
    /// The base rate throughout.
    Constant,
}

/// `resnet train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Train the plain twin (no shortcuts).
    #[arg(long)]
    plain: bool,
    #[command(flatten)]
    data: DataArgs,
    /// Defaults of the schedule and warm-up.
    #[arg(long, value_enum, default_value_t = Recipe::PaperCifar)]
    recipe: Recipe,
    /// Iterations in total [default: the paper's 182 epochs, scaled to the data and batch].
    #[arg(long, conflicts_with = "epochs")]
    iterations: Option<usize>,
    /// Epochs in total (instead of --iterations).
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Base learning rate.
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// L2 weight decay.
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Exempt BN parameters and biases from weight decay.
    #[arg(long)]
    no_decay_bn_bias: bool,
    /// Learning-rate schedule [default: paper for paper-cifar, constant for custom].
    #[arg(long, value_enum)]
    schedule: Option<ScheduleKind>,
    /// Warm-up iterations of the cosine schedule.
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// Iterations between decays of the step schedule.
    #[arg(long)]
    step_every: Option<usize>,
    /// Hold lr 0.01 until the training error is below 80% (the paper's ResNet-110 trick)
    /// [default: on for 110+ layers with paper-cifar].
    #[arg(long)]
    error_warmup: Option<bool>,
    /// Label smoothing ε.
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f64,
    /// Turn off pad-and-crop + flip augmentation.
    #[arg(long)]
    no_augment: bool,
    /// Seeds the init, data order and augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    device: DeviceArgs,
    /// The run directory.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Steps between checkpoints (one is also written at every epoch end).
    #[arg(long, default_value_t = 500)]
    checkpoint_every: usize,
    /// Steps between evaluations on the test set.
    #[arg(long, default_value_t = 1000)]
    eval_every: usize,
    /// Evaluate on at most this many test images.
    #[arg(long)]
    eval_limit: Option<usize>,
    /// No progress bar (logs only).
    #[arg(long)]
    no_progress: bool,
}

pub fn train(args: TrainArgs) -> Result<(), Error> {
    let data = args.data.load()?;
    let mut model = args.model.required_config()?;
    if args.plain {
        model = model.with_residual(false);
    }
    let classes = data.train.classes().len();
    if args.model.classes.is_some_and(|c| c != classes) {
        return Err(Error::Other(format!(
            "--classes {} but the data has {classes} classes",
            args.model.classes.unwrap()
        )));
    }
    model = model.with_num_classes(classes);
    model.validate()?;

    let per_epoch = data.train.len() / args.batch_size.max(1);
    let iterations = match (args.iterations, args.epochs) {
        (Some(i), _) => i,
        (None, Some(e)) => e * per_epoch.max(1),
        (None, None) => paper_cifar_iterations(data.train.len(), args.batch_size),
    };
    let kind = args.schedule.unwrap_or(match args.recipe {
        Recipe::PaperCifar => ScheduleKind::Paper,
        Recipe::Custom => ScheduleKind::Constant,
    });
    let schedule = match kind {
        ScheduleKind::Paper => Schedule::PaperCifar { total: iterations },
        ScheduleKind::Step => Schedule::Step {
            every: args.step_every.unwrap_or(30 * per_epoch.max(1)),
            gamma: 0.1,
        },
        ScheduleKind::Cosine => Schedule::Cosine {
            warmup: args.warmup,
            total: iterations,
        },
        ScheduleKind::Plateau => Schedule::Plateau {
            patience: 3,
            threshold: 0.01,
        },
        ScheduleKind::Constant => Schedule::Constant,
    };
    let mut lr = LrPolicy::new(args.lr, schedule);
    let warm = args
        .error_warmup
        .unwrap_or(args.recipe == Recipe::PaperCifar && model.depth() >= 110);
    if warm {
        lr = lr.with_error_warmup(ErrorWarmup {
            lr: args.lr / 10.0,
            until_error_below: 0.8,
        });
    }
    let config = TrainConfig {
        model,
        sgd: SgdConfig {
            momentum: args.momentum,
            nesterov: args.nesterov,
            weight_decay: args.weight_decay,
            decay_bn_and_bias: !args.no_decay_bn_bias,
        },
        lr,
        batch_size: args.batch_size,
        seed: args.seed,
        augment: !args.no_augment,
        label_smoothing: args.label_smoothing,
        normalization: data.normalization.clone(),
        freeze_backbone: false,
    };
    if args.device.device == super::Backend::Flex {
        check_memory(&config, args.batch_size)?;
    }
    let device = args.device.device.device().map_err(Error::Device)?;
    let options = RunOptions {
        out: args.out.clone(),
        iterations,
        checkpoint_every: args.checkpoint_every,
        eval_every: args.eval_every,
        eval_limit: args.eval_limit,
        resume: args.resume,
        progress: !args.no_progress,
        data_description: data.description.clone(),
    };
    eprintln!(
        "training {} on {} for {iterations} iterations ({:.1} epochs of {per_epoch}), batch {}, {}",
        config.model.name(),
        data.description,
        iterations as f64 / per_epoch.max(1) as f64,
        config.batch_size,
        if args.resume {
            "resuming"
        } else {
            "from scratch"
        }
    );
    let (_, report) = learner::run(config, &data.train, &data.test, &device, &options)
        .map_err(|e| Error::Other(e.to_string()))?;
    let dir = RunDir(args.out);
    if let Some(report) = report {
        println!(
            "test top-1 error {:.2}%, top-5 error {:.2}% on {} images; weights in {}",
            report.top1_error * 100.0,
            report.top5_error * 100.0,
            report.images,
            dir.model().display()
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

/// `resnet eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Weights: .bpk (a model or a checkpoint), .pth or .safetensors.
    #[arg(long)]
    weights: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Test-time views: center or ten-crop (4-pixel padding, corners, center, flips).
    #[arg(long, default_value = "center")]
    crop: TestView,
    /// Evaluate at most this many test images.
    #[arg(long)]
    limit: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn eval(args: EvalArgs) -> Result<(), Error> {
    let data = args.data.load()?;
    let device = args.device.device.device().map_err(Error::Device)?;
    let (model, card) = load_model(&args.weights, &args.model, &device)?;
    if card.config.num_classes != data.test.classes().len() {
        return Err(Error::Other(format!(
            "{}: the model has {} classes, the data {}",
            args.weights.display(),
            card.config.num_classes,
            data.test.classes().len()
        )));
    }
    let report = pollster::block_on(crate::train::trainer::evaluate_views(
        &model,
        &card.normalization,
        &data.test,
        args.limit,
        128,
        args.crop,
        &device,
    ))
    .map_err(|e| Error::Other(e.to_string()))?;
    if args.json {
        let mut value = serde_json::to_value(&report).expect("report serialises");
        value["classes"] = serde_json::json!(data.test.classes());
        value["crop"] = format!("{:?}", args.crop).into();
        println!("{value}");
        return Ok(());
    }
    println!(
        "{} on {} ({} images, {:?}): top-1 error {:.2}%, top-5 error {:.2}%, loss {:.4}",
        card.config.name(),
        data.description,
        report.images,
        args.crop,
        report.top1_error * 100.0,
        report.top5_error * 100.0,
        report.loss
    );
    print_confusion(&data.test.classes(), &report.confusion);
    Ok(())
}

fn print_confusion(classes: &[String], confusion: &[Vec<u32>]) {
    if classes.len() > 20 {
        println!(
            "(confusion matrix omitted for {} classes: use --json)",
            classes.len()
        );
        return;
    }
    // Row labels up to 12 characters; column headers cut to 6 so ten classes fit 80 columns.
    let width = classes
        .iter()
        .map(|c| c.len())
        .max()
        .unwrap_or(4)
        .clamp(9, 12);
    print!("{:>width$} ", "true\\pred");
    for c in classes {
        print!(" {:>6}", &c[..c.len().min(6)]);
    }
    println!();
    for (c, row) in classes.iter().zip(confusion) {
        print!("{:>width$} ", &c[..c.len().min(width)]);
        for v in row {
            print!(" {v:>6}");
        }
        println!();
    }
}

/// A model from a weights file or a training checkpoint / run directory.
pub fn load_model(
    path: &Path,
    args: &ModelArgs,
    device: &burn::tensor::Device,
) -> Result<(crate::model::ResNet, ModelCard), Error> {
    let path = if path.is_dir() {
        RunDir(path.to_path_buf()).checkpoint()
    } else {
        path.to_path_buf()
    };
    let bytes =
        std::fs::read(&path).map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    if let Ok(trainer) = Trainer::restore(bytes, device) {
        let card = trainer.card(Some(format!(
            "{} at step {}",
            trainer.config().model.name(),
            trainer.step_count()
        )));
        return Ok((trainer.model().to_device(device), card));
    }
    let classifier =
        crate::infer::Classifier::load(WeightsFile::open(&path)?, args.config()?, device)?;
    Ok((classifier.model().clone(), classifier.card().clone()))
}

/// `resnet export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A run directory or a checkpoint file.
    source: PathBuf,
    /// Where to write the Burnpack file for the page and `Classifier.load`.
    #[arg(long)]
    out: PathBuf,
    /// Store 16-bit floats (half the size).
    #[arg(long)]
    f16: bool,
}

pub fn export(args: ExportArgs) -> Result<(), Error> {
    let device = burn::tensor::Device::flex();
    let checkpoint = if args.source.is_dir() {
        RunDir(args.source.clone()).checkpoint()
    } else {
        args.source.clone()
    };
    let bytes = std::fs::read(&checkpoint)
        .map_err(|e| Error::Other(format!("{}: {e}", checkpoint.display())))?;
    let trainer = Trainer::restore(bytes, &device)
        .map_err(|e| Error::Other(format!("{}: {e}", checkpoint.display())))?;
    let description = format!(
        "{} trained {} steps (exported from {})",
        trainer.config().model.name(),
        trainer.step_count(),
        checkpoint.display()
    );
    let precision = if args.f16 {
        Precision::F16
    } else {
        Precision::F32
    };
    crate::io::save(
        &trainer.model(),
        &trainer.card(Some(description)),
        &args.out,
        precision,
    )?;
    println!(
        "{} (step {}) written to {}",
        trainer.config().model.name(),
        trainer.step_count(),
        args.out.display()
    );
    Ok(())
}
