//! The native `resnet` command.

mod bench;
mod data;
mod device;
mod progress;
mod train;

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use clap::{Args, Parser, Subcommand};

use crate::Error;
use crate::data::views::TestView;
use crate::infer::Classifier;
use crate::io::npy::NpyF32;
use crate::io::{ModelCard, Precision, WeightsFile};
use crate::model::{ResNetConfig, ShortcutOption, StridePlacement, arch};
use crate::readback::read_f32;
pub use device::Backend;

/// ResNet (He et al. 2015) on Burn: inspect, import, run and train ResNets.
#[derive(Parser, Debug)]
#[command(name = "resnet", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parameters, multiply-adds and depth of an architecture.
    Info {
        #[command(flatten)]
        model: ModelArgs,
        /// Input side length the multiply-adds are counted at [default: 224, or 32 for CIFAR nets].
        #[arg(long)]
        size: Option<usize>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Convert a torchvision-layout state dict (.pth or .safetensors) to a Burnpack file.
    Import {
        /// The PyTorch or safetensors file.
        file: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        /// Class names, one per line, stored in the output.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Where to write the Burnpack file.
        #[arg(long)]
        out: PathBuf,
        /// Store 16-bit floats (half the size).
        #[arg(long)]
        f16: bool,
    },
    /// Logits of a float32 NCHW .npy batch, in eval mode, written as a .npy.
    Logits {
        #[command(flatten)]
        model: ModelArgs,
        /// Weights: .bpk, .pth or .safetensors.
        #[arg(long)]
        weights: PathBuf,
        /// Input batch `[N, 3, H, W]`, float32, already normalised.
        #[arg(long)]
        input: PathBuf,
        /// Output logits `[N, classes]`, float32.
        #[arg(long)]
        output: PathBuf,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Top-k classes of images (JPEG, PNG, WebP, GIF, BMP).
    Classify {
        #[command(flatten)]
        model: ModelArgs,
        /// Weights: .bpk, .pth or .safetensors.
        #[arg(long)]
        weights: PathBuf,
        /// Class names, one per line [default: the file's, or ImageNet's for 1000 classes].
        #[arg(long)]
        labels: Option<PathBuf>,
        /// How many classes to show.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Test-time views: center, ten-crop or multi-scale.
        #[arg(long, default_value = "center")]
        views: TestView,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        device: DeviceArgs,
        /// The images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Train a ResNet (or its plain twin) on CIFAR-sized data, with checkpoints and resume.
    Train(Box<train::TrainArgs>),
    /// Top-1/top-5 error and confusion matrix of weights on a test set.
    Eval(train::EvalArgs),
    /// Write the model of a run directory or checkpoint as a Burnpack file for the page.
    Export(train::ExportArgs),
    /// Images per second of inference or training (one JSON line).
    Bench(bench::BenchArgs),
    /// Datasets: download CIFAR, write Shapes samples.
    #[command(subcommand)]
    Data(data::DataCommand),
}

/// Which architecture: a name plus the paper's variations.
#[derive(Args, Debug, Clone)]
struct ModelArgs {
    /// resnet18/34/50/101/152, resnet20/32/44/56/110 (any 6n+2), plain18, plain20, …
    /// (optional when a .bpk weights file names its own).
    #[arg(long)]
    arch: Option<String>,
    /// Number of classes [default: 1000 for ImageNet nets, 10 for CIFAR nets].
    #[arg(long)]
    classes: Option<usize>,
    /// Shortcut option A (zero-pad), B (project when the shape changes) or C (always project).
    #[arg(long, value_parser = parse_shortcut)]
    shortcut: Option<ShortcutOption>,
    /// Bottleneck stride on the 3x3 (v1.5, torchvision) or the first 1x1 (v1, the paper).
    #[arg(long, value_parser = parse_variant)]
    variant: Option<StridePlacement>,
}

#[derive(Args, Debug, Clone, Copy)]
struct DeviceArgs {
    /// Backend: flex (CPU, default), wgpu (Vulkan/Metal/DX12) or cuda.
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    device: Backend,
}

fn parse_shortcut(s: &str) -> Result<ShortcutOption, String> {
    match s.to_ascii_uppercase().as_str() {
        "A" => Ok(ShortcutOption::A),
        "B" => Ok(ShortcutOption::B),
        "C" => Ok(ShortcutOption::C),
        _ => Err(format!(
            "'{s}' is not a shortcut option: expected A, B or C"
        )),
    }
}

fn parse_variant(s: &str) -> Result<StridePlacement, String> {
    match s {
        "v1" | "1" => Ok(StridePlacement::V1),
        "v1.5" | "1.5" => Ok(StridePlacement::V1_5),
        _ => Err(format!("'{s}' is not a variant: expected v1 or v1.5")),
    }
}

impl ModelArgs {
    /// The configuration named on the command line, if an architecture was given.
    fn config(&self) -> Result<Option<ResNetConfig>, Error> {
        let Some(name) = &self.arch else {
            return Ok(None);
        };
        let mut config = arch::parse(name)?;
        if let Some(classes) = self.classes {
            config = config.with_num_classes(classes);
        }
        if let Some(shortcut) = self.shortcut {
            config = config.with_shortcut(shortcut);
        }
        if let Some(variant) = self.variant {
            config = config.with_stride_placement(variant);
        }
        config.validate()?;
        Ok(Some(config))
    }

    fn required_config(&self) -> Result<ResNetConfig, Error> {
        self.config()?
            .ok_or_else(|| Error::Other("--arch is required (e.g. --arch resnet50)".into()))
    }

    /// Loads weights into the model they describe.
    fn classifier(&self, weights: &Path, device: DeviceArgs) -> Result<Classifier, Error> {
        let device = device.device.device().map_err(Error::Device)?;
        let file = WeightsFile::open(weights)?;
        Classifier::load(file, self.config()?, &device)
    }
}

/// Runs the command line; errors are returned for `main` to print.
pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Info { model, size, json } => info(&model, size, json),
        Command::Import {
            file,
            model,
            labels,
            out,
            f16,
        } => import(&file, &model, labels.as_deref(), &out, f16),
        Command::Logits {
            model,
            weights,
            input,
            output,
            device,
        } => logits(&model, &weights, &input, &output, device),
        Command::Classify {
            model,
            weights,
            labels,
            top,
            views,
            json,
            device,
            images,
        } => classify(
            &model,
            &weights,
            labels.as_deref(),
            top,
            views,
            json,
            device,
            &images,
        ),
        Command::Train(args) => train::train(*args),
        Command::Eval(args) => train::eval(args),
        Command::Export(args) => train::export(args),
        Command::Bench(args) => bench::bench(args),
        Command::Data(command) => data::data(command),
    }
}

fn info(model: &ModelArgs, size: Option<usize>, json: bool) -> Result<(), Error> {
    let config = model.required_config()?;
    let size = size.unwrap_or(match config.stem {
        crate::model::Stem::ImageNet => 224,
        crate::model::Stem::Cifar => 32,
    });
    let stats = config.stats(size);
    if json {
        let mut value = serde_json::to_value(&stats).expect("stats serialise");
        value["block"] = format!("{:?}", config.block).to_lowercase().into();
        value["layers"] = serde_json::json!(config.layers);
        value["shortcut"] = format!("{:?}", config.shortcut).into();
        value["residual"] = config.residual.into();
        println!("{value}");
    } else {
        println!(
            "{}: {} parameters, {:.3} G multiply-adds at {size}x{size}, {} weighted layers \
             ({:?} blocks {:?}, shortcut option {:?}, {} classes)",
            stats.arch,
            thousands(stats.params as u64),
            stats.macs as f64 / 1e9,
            stats.depth,
            config.block,
            config.layers,
            config.shortcut,
            config.num_classes
        );
    }
    Ok(())
}

fn import(
    file: &Path,
    model: &ModelArgs,
    labels: Option<&Path>,
    out: &Path,
    f16: bool,
) -> Result<(), Error> {
    let config = model.required_config()?;
    let weights = WeightsFile::open(file)?;
    let tensors = weights.keys().len();
    let mut classifier = Classifier::load(weights, Some(config), &burn::tensor::Device::flex())?;
    if let Some(labels) = labels {
        classifier.set_labels(read_labels(labels)?)?;
    }
    let card = ModelCard {
        description: Some(format!("imported from {}", file.display())),
        ..classifier.card().clone()
    };
    let precision = if f16 { Precision::F16 } else { Precision::F32 };
    crate::io::save(classifier.model(), &card, out, precision)?;
    println!(
        "{}: {tensors} tensors ({} parameters) of {} written to {}",
        file.display(),
        thousands(card.config.stats(card.input_size).params as u64),
        card.config.name(),
        out.display()
    );
    Ok(())
}

/// Largest batch sent to the device at once by `resnet logits`.
const LOGITS_CHUNK: usize = 32;

fn logits(
    model: &ModelArgs,
    weights: &Path,
    input: &Path,
    output: &Path,
    device: DeviceArgs,
) -> Result<(), Error> {
    let array = NpyF32::read(input)?;
    let [n, c, h, w] = array.shape[..] else {
        return Err(Error::Shape(format!(
            "{}: expected a 4-D [N, 3, H, W] array, got shape {:?}",
            input.display(),
            array.shape
        )));
    };
    if c != 3 || n == 0 || h == 0 || w == 0 {
        return Err(Error::Shape(format!(
            "{}: expected [N, 3, H, W] with N, H, W >= 1, got {:?}",
            input.display(),
            array.shape
        )));
    }
    let classifier = model.classifier(weights, device)?;
    let classes = classifier.card().config.num_classes;
    let mut out = Vec::with_capacity(n * classes);
    for (i, chunk) in array.data.chunks(LOGITS_CHUNK * c * h * w).enumerate() {
        let batch = chunk.len() / (c * h * w);
        let x = Tensor::<4>::from_data(
            TensorData::new(chunk.to_vec(), [batch, c, h, w]),
            classifier.device(),
        );
        let y = pollster::block_on(read_f32(classifier.logits(x)))?;
        debug_assert_eq!(y.len(), batch * classes, "chunk {i}");
        out.extend(y);
    }
    NpyF32 {
        shape: vec![n, classes],
        data: out,
    }
    .write(output)?;
    eprintln!(
        "{}: logits [{n}, {classes}] written to {}",
        weights.display(),
        output.display()
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn classify(
    model: &ModelArgs,
    weights: &Path,
    labels: Option<&Path>,
    top: usize,
    views: TestView,
    json: bool,
    device: DeviceArgs,
    images: &[PathBuf],
) -> Result<(), Error> {
    let mut classifier = model.classifier(weights, device)?;
    if let Some(labels) = labels {
        classifier.set_labels(read_labels(labels)?)?;
    }
    for path in images {
        let bytes =
            std::fs::read(path).map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
        let image = crate::data::image::decode(&bytes)
            .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
        let started = std::time::Instant::now();
        let result = pollster::block_on(classifier.classify(&image, views, top))?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        if json {
            let mut value = serde_json::to_value(&result).expect("results serialise");
            value["image"] = path.display().to_string().into();
            value["ms"] = ms.into();
            println!("{value}");
        } else {
            println!("{} ({} views, {ms:.0} ms):", path.display(), result.views);
            for p in &result.predictions {
                println!(
                    "  {:6.2}%  {:4}  {}",
                    p.probability * 100.0,
                    p.index,
                    p.label
                );
            }
        }
    }
    Ok(())
}

/// Class names, one per line; blank lines are refused rather than silently shifting classes.
fn read_labels(path: &Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    let labels: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    if let Some(i) = labels.iter().position(String::is_empty) {
        return Err(Error::Other(format!(
            "{}: line {} is empty",
            path.display(),
            i + 1
        )));
    }
    Ok(labels)
}

/// 11689512 → "11,689,512".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
