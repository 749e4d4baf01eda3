//! The native `resnet` command.

mod allocator;
mod analyse;
mod bench;
mod data;
mod device;
mod eval;
mod infer;
mod kernel_cache;
mod loader_bench;
mod progress;
mod train;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::Error;
use crate::data::views::TestView;
use crate::infer::Classifier;
use crate::io::WeightsFile;
use crate::model::{NetConfig, ResNetConfig, ShortcutOption, StridePlacement};
pub use allocator::keep_freed_memory;
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
    Eval(eval::EvalArgs),
    /// Write the model of a run directory or checkpoint as a Burnpack file for the page.
    Export(eval::ExportArgs),
    /// The lesion study (Veit et al. 2016): test error with each block deleted in turn.
    Analyse(analyse::AnalyseArgs),
    /// Images per second of inference or training (one JSON line).
    Bench(bench::BenchArgs),
    /// Datasets: download CIFAR, write Shapes samples.
    #[command(subcommand)]
    Data(data::DataCommand),
}

/// Which architecture: a name plus the paper's variations.
#[derive(Args, Debug, Clone)]
struct ModelArgs {
    /// resnet18/34/50/101/152, resnet20/32/44/56/110 (any 6n+2), plain18, plain20, …,
    /// resnext50_32x4d, resnext101_32x8d, wide_resnet50_2, seresnet50, seresnext50_32x4d,
    /// resnext29_8x64d (CIFAR), resnetv2_50, preact_resnet110, wrn28_10, resnest50d, resnet50d,
    /// densenet121, densenet_bc100_12, inception_resnet_v2, … (optional when a .bpk weights
    /// file names its own).
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
    /// Backend: flex (CPU, default; also `cpu`), wgpu[:N] (Vulkan/Metal/DX12), vulkan[:N]
    /// (SPIR-V kernels with `--features vulkan`) or cuda[:N]; N counts discrete GPUs from 0.
    #[arg(long, default_value = "flex")]
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
    /// The architecture named on the command line, of any tree, if one was given.
    fn net_config(&self) -> Result<Option<NetConfig>, Error> {
        let Some(name) = &self.arch else {
            return Ok(None);
        };
        let config = crate::model::network::parse(name)?;
        let config = match self.classes {
            Some(classes) => config.with_num_classes(classes),
            None => config,
        };
        let config = match config {
            NetConfig::ResNet(mut config) => {
                if let Some(shortcut) = self.shortcut {
                    config = config.with_shortcut(shortcut);
                }
                if let Some(variant) = self.variant {
                    config = config.with_stride_placement(variant);
                }
                NetConfig::ResNet(config)
            }
            other if self.shortcut.is_some() || self.variant.is_some() => {
                return Err(Error::Other(format!(
                    "--shortcut and --variant are ResNet options: {} has neither",
                    other.name()
                )));
            }
            other => other,
        };
        config.validate()?;
        Ok(Some(config))
    }

    /// The ResNet named on the command line, if an architecture was given; the other trees
    /// are refused with the commands that take them.
    fn config(&self) -> Result<Option<ResNetConfig>, Error> {
        match self.net_config()? {
            None => Ok(None),
            Some(NetConfig::ResNet(config)) => Ok(Some(config)),
            Some(other) => Err(not_a_resnet(&other.name())),
        }
    }

    fn required_config(&self) -> Result<ResNetConfig, Error> {
        self.config()?
            .ok_or_else(|| Error::Other("--arch is required (e.g. --arch resnet50)".into()))
    }

    fn required_net_config(&self) -> Result<NetConfig, Error> {
        self.net_config()?
            .ok_or_else(|| Error::Other("--arch is required (e.g. --arch resnet50)".into()))
    }

    /// Loads weights into the model they describe.
    fn classifier(&self, weights: &Path, device: DeviceArgs) -> Result<Classifier, Error> {
        // The arguments first: a bad architecture is named before any file is read.
        let config = self.net_config()?;
        let device = device.device.device().map_err(Error::Device)?;
        let file = WeightsFile::open(weights)?;
        Classifier::load(file, config, &device)
    }
}

/// Why a command that trains or analyses residual blocks refuses a DenseNet or an
/// Inception-ResNet, and which commands take it.
pub(crate) fn not_a_resnet(name: &str) -> Error {
    crate::model::network::NotResNet::OtherTree(name.to_string()).into()
}

/// The line `resnet info` prints: the counts every architecture has, then its own `details`.
fn stats_line(stats: &crate::model::ModelStats, details: &str) -> String {
    let size = stats.input_size;
    format!(
        "{}: {} parameters, {:.3} G multiply-adds at {size}x{size}, {} weighted layers ({details})",
        stats.arch,
        thousands(stats.params as u64),
        stats.macs as f64 / 1e9,
        stats.depth,
    )
}

/// `resnet info` for a DenseNet.
fn densenet_info(
    config: crate::model::DenseNetConfig,
    size: Option<usize>,
    json: bool,
) -> Result<(), Error> {
    let size = size.unwrap_or(config.stem.input_size());
    let stats = config.stats(size);
    if json {
        let mut value = serde_json::to_value(&stats).expect("stats serialise");
        value["block"] = "dense".into();
        value["layers"] = serde_json::json!(config.block_config);
        value["growth_rate"] = config.growth_rate.into();
        println!("{value}");
    } else {
        let details = format!(
            "dense blocks {:?}, growth rate {}, bottleneck {}k, compression 0.5, {} classes",
            config.block_config, config.growth_rate, config.bn_size, config.num_classes
        );
        println!("{}", stats_line(&stats, &details));
    }
    Ok(())
}

/// `resnet info` for Inception-ResNet-v2.
fn inception_info(
    config: crate::model::InceptionResNetConfig,
    size: Option<usize>,
    json: bool,
) -> Result<(), Error> {
    let size = size.unwrap_or(config.input_size());
    let min = crate::model::InceptionResNetConfig::MIN_INPUT;
    if size < min {
        return Err(Error::Other(format!(
            "--size {size}: Inception-ResNet's unpadded windows need at least {min}x{min}"
        )));
    }
    let stats = config.stats(size);
    if json {
        let mut value = serde_json::to_value(&stats).expect("stats serialise");
        value["block"] = "inception-resnet".into();
        value["layers"] = serde_json::json!(config.repeats);
        println!("{value}");
    } else {
        let [a, b, c] = config.repeats;
        let details = format!(
            "Inception-ResNet units {a} A (x0.17), {b} B (x0.1), {c} + 1 C (x0.2, the last x1), \
             {} classes",
            config.num_classes
        );
        println!("{}", stats_line(&stats, &details));
    }
    Ok(())
}

/// Runs the command line; errors are returned for `main` to print.
pub fn run(cli: Cli) -> Result<(), Error> {
    // Before any GPU device exists.
    kernel_cache::configure();
    match cli.command {
        Command::Info { model, size, json } => info(&model, size, json),
        Command::Import {
            file,
            model,
            labels,
            out,
            f16,
        } => infer::import(&file, &model, labels.as_deref(), &out, f16),
        Command::Logits {
            model,
            weights,
            input,
            output,
            device,
        } => infer::logits(&model, &weights, &input, &output, device),
        Command::Classify {
            model,
            weights,
            labels,
            top,
            views,
            json,
            device,
            images,
        } => infer::classify(
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
        Command::Eval(args) => eval::eval(args),
        Command::Export(args) => eval::export(args),
        Command::Analyse(args) => analyse::analyse(args),
        Command::Bench(args) => bench::bench(args),
        Command::Data(command) => data::data(command),
    }
}

fn info(model: &ModelArgs, size: Option<usize>, json: bool) -> Result<(), Error> {
    let config = match model.required_net_config()? {
        NetConfig::ResNet(config) => config,
        NetConfig::DenseNet(config) => return densenet_info(config, size, json),
        NetConfig::InceptionResNet(config) => return inception_info(config, size, json),
    };
    let size = size.unwrap_or(config.stem.input_size());
    let stats = config.stats(size);
    if json {
        let mut value = serde_json::to_value(&stats).expect("stats serialise");
        value["block"] = format!("{:?}", config.block).to_lowercase().into();
        value["layers"] = serde_json::json!(config.layers);
        value["shortcut"] = format!("{:?}", config.shortcut).into();
        value["residual"] = config.residual.into();
        let variant = config.block_variant();
        value["groups"] = variant.groups.into();
        value["width_per_group"] = variant.width_per_group.into();
        value["squeeze_excitation"] = variant.squeeze_excitation.into();
        value["preactivation"] = variant.preactivation.into();
        value["stem_width"] = config.stem_channels().into();
        value["deep_stem"] = config.deep_stem.into();
        value["radix"] = variant.radix.into();
        value["avd"] = variant.avd.into();
        value["avg_down"] = variant.avg_down.into();
        println!("{value}");
    } else {
        let variant = config.block_variant();
        let mut extras = String::new();
        if variant.reshapes_bottleneck() {
            extras.push_str(&format!(
                ", 3x3 in {} groups of {} channels at the first stage",
                variant.groups, variant.width_per_group
            ));
        }
        if variant.squeeze_excitation {
            extras.push_str(", squeeze-excitation");
        }
        if variant.preactivation {
            extras.push_str(", pre-activation");
        }
        if variant.radix > 0 {
            extras.push_str(&format!(", split attention of radix {}", variant.radix));
        }
        if variant.avd {
            extras.push_str(", strides on 3x3 average pools (avd)");
        }
        if let Some(w) = config.deep_stem {
            extras.push_str(&format!(
                ", deep stem of 3x3 convolutions ({w}, {w}, then the stem width)"
            ));
        }
        if variant.avg_down {
            extras.push_str(", average-pooled projections");
        }
        if config.stem_channels() != config.base_width {
            extras.push_str(&format!(
                ", {}-channel stem under {}-plane first stage",
                config.stem_channels(),
                config.base_width
            ));
            if variant.preactivation {
                // The name's depth is Zagoruyko & Komodakis's count, not the main path's.
                extras.push_str(", named by Wide ResNet's depth 6n + 4");
            }
        }
        let details = format!(
            "{:?} blocks {:?}, shortcut option {:?}{extras}, {} classes",
            config.block, config.layers, config.shortcut, config.num_classes
        );
        println!("{}", stats_line(&stats, &details));
    }
    Ok(())
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
