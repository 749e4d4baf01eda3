//! `resnet bench`: images per second of inference or training, as one JSON line.

use std::time::Instant;

use burn::tensor::{Distribution, Tensor, TensorData};
use clap::{Args, ValueEnum};

use super::{DeviceArgs, ModelArgs};
use crate::Error;
use crate::model::amp::{self, Amp};
use crate::model::{FoldedResNet, NetConfig, in_pool};
use crate::readback::read_f32;
use crate::train::gradients::{batch_gradients, worst_convolution_gradient_error};
use crate::train::{Sgd, SgdConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Forward pass in eval mode.
    Infer,
    /// Forward, backward and an SGD update.
    Train,
}

/// `resnet bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// What to time.
    #[arg(long, value_enum, default_value_t = Mode::Infer)]
    mode: Mode,
    /// Images per batch.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Input side [default: 224 for ImageNet nets, 32 for CIFAR nets].
    #[arg(long)]
    size: Option<usize>,
    /// Untimed batches first (shader compilation, autotuning, allocation).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed batches; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Inference with BatchNorm as separate layers, as in training (by default BN is
    /// folded into the convolutions, as `classify` runs it).
    #[arg(long)]
    unfolded: bool,
    /// Mixed precision: the convolutions in f16 or bf16 (training with f16 scales the loss
    /// by a constant 1024 here: no overflow check, as no overflow is expected on random data).
    #[arg(long, value_enum, default_value_t = Amp::Off)]
    amp: Amp,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn bench(args: BenchArgs) -> Result<(), Error> {
    let config = args.model.required_net_config()?;
    let size = args.size.unwrap_or(config.input_size());
    if args.batch == 0 || args.runs == 0 {
        return Err(Error::Other("--batch and --runs must be at least 1".into()));
    }
    let device = args.device.device.device().map_err(Error::Device)?;
    args.amp.check(&device).map_err(Error::Other)?;
    let shape = [args.batch, 3, size, size];
    let mut times = Vec::with_capacity(args.runs);
    // The first batch alone: kernel compilation and autotuning on a GPU, allocation on the CPU.
    let mut first_step = None;
    let mut grad_error = None;
    let folded_bn = matches!(config, NetConfig::ResNet(_)) && !args.unfolded;
    match args.mode {
        Mode::Infer => {
            let model = config.init(&device);
            // BN is folded into the ResNet tree's convolutions (what `classify` runs); the
            // other trees run with BN as layers.
            let folded = model
                .resnet()
                .filter(|_| !args.unfolded)
                .map(FoldedResNet::new);
            let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            for i in 0..args.warmup + args.runs {
                let started = Instant::now();
                let logits = amp::scope(args.amp, || match &folded {
                    Some(folded) => folded.forward(x.clone()),
                    None => model.forward(x.clone()),
                });
                pollster::block_on(read_f32(logits))?;
                first_step.get_or_insert(started.elapsed().as_secs_f64());
                if i >= args.warmup {
                    times.push(started.elapsed().as_secs_f64());
                }
            }
        }
        Mode::Train => {
            let device = device.autodiff();
            let mut model = config.init(&device);
            let mut sgd = Sgd::new(SgdConfig::default());
            let scale = if args.amp.scales_loss() { 1024.0 } else { 1.0 };
            let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let classes = config.num_classes();
            let one_hot: Vec<f32> = (0..args.batch * classes)
                .map(|i| (i % classes == (i / classes) % classes) as u8 as f32)
                .collect();
            let one_hot =
                Tensor::<2>::from_data(TensorData::new(one_hot, [args.batch, classes]), &device);
            // How far the mixed-precision gradients are from f32's on this device.
            if args.amp != Amp::Off {
                let gradients = |amp, scale| {
                    let (x, one_hot) = (x.clone(), one_hot.clone());
                    batch_gradients(&model, x, one_hot, 0.0, 1.0, amp, scale).0
                };
                let (got, want) = (gradients(args.amp, scale), gradients(Amp::Off, 1.0));
                if let Some(error) = worst_convolution_gradient_error(&model, &got, scale, &want) {
                    grad_error = Some(pollster::block_on(read_f32(error.inner()))?[0]);
                }
            }
            for i in 0..args.warmup + args.runs {
                let started = Instant::now();
                // As the trainer's step does (train::Trainer::step).
                let (loss, next) = in_pool(|| {
                    let (x, one_hot) = (x.clone(), one_hot.clone());
                    let (grads, (loss, _, _)) =
                        batch_gradients(&model, x, one_hot, 0.0, 1.0, args.amp, scale);
                    (loss, sgd.step_scaled(0.01, model, grads, scale))
                });
                model = next;
                pollster::block_on(read_f32(loss))?;
                first_step.get_or_insert(started.elapsed().as_secs_f64());
                if i >= args.warmup {
                    times.push(started.elapsed().as_secs_f64());
                }
            }
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let line = serde_json::json!({
        "arch": config.name(),
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "device": args.device.device.to_string(),
        "batch": args.batch,
        "amp": args.amp.name(),
        // The largest error of a convolution's weight gradient against f32's, relative to
        // that gradient's largest value (training with --amp).
        "amp_gradient_error": grad_error,
        "bn": if args.mode == Mode::Train { "train" } else if folded_bn { "folded" } else { "separate" },
        "size": size,
        "runs": args.runs,
        "ms_per_batch": (median * 1e4).round() / 10.0,
        "ms_min": (times[0] * 1e4).round() / 10.0,
        "first_step_ms": (first_step.unwrap_or(0.0) * 1e4).round() / 10.0,
        "images_per_second": ((args.batch as f64 / median) * 10.0).round() / 10.0,
        // Where compiled kernels and autotune results persist (GPU devices only).
        "kernel_cache": super::kernel_cache::configure().map(|p| p.display().to_string()),
    });
    println!("{line}");
    Ok(())
}
