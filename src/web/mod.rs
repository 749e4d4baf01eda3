//! The browser package — the only `#[wasm_bindgen]` code in the crate.
//!
//! ```js
//! import init, { Classifier, backendInfo } from "resnet-burn";
//! await init();
//! const classifier = await Classifier.load(bytes, { device: "auto" });
//! const { predictions, ms, backend } = await classifier.classify(imageBytes, { topK: 5 });
//! ```

mod backend;
mod classifier;
mod dataset;
mod error;
mod js;
mod trainer;

use wasm_bindgen::prelude::*;

pub use backend::{BackendInfo, Preference, device};
pub use classifier::Classifier;
pub use dataset::Dataset;
pub use trainer::Trainer;
/// `initThreadPool(n)` (threaded build only): starts `n` Web Workers as the CPU kernels'
/// threads; the page's model worker awaits it once, after `init()` and before any model.
#[cfg(target_feature = "atomics")]
pub use wasm_bindgen_rayon::init_thread_pool;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Options of `Classifier.load`. */
export interface LoadOptions {
  /** Architecture, e.g. "resnet20"; optional for .bpk files written by this project. */
  arch?: string;
  /** Number of classes (defaults: 1000 for ImageNet nets, 10 for CIFAR nets, or the file's). */
  numClasses?: number;
  /** Class names, one per class. */
  labels?: string[];
  /** "auto" (WebGPU, else CPU), "webgpu" (or fail) or "cpu". */
  device?: "auto" | "webgpu" | "cpu";
  /** Overrides of the model's preprocessing. */
  input?: { size?: number; mean?: [number, number, number]; std?: [number, number, number] };
}
/** Options of `classifier.classify`. */
export interface ClassifyOptions {
  /** How many classes to return (default 5). */
  topK?: number;
  /** Test-time views: one center crop, the paper's 10-crop, or fully-convolutional multi-scale. */
  tta?: "center" | "ten-crop" | "multi-scale";
}
export interface Prediction { index: number; label: string; probability: number; }
export interface Classification {
  predictions: Prediction[];
  /** Wall-clock milliseconds of preprocessing, network and read-back. */
  ms: number;
  backend: "webgpu" | "cpu";
  /** Views averaged: 1, 10, or 2 per scale. */
  views: number;
}
export interface BackendInfo {
  backend: "webgpu" | "cpu";
  /** The adapter's description, or the CPU backend's. */
  adapter: string;
  /** Why the CPU runs although WebGPU was wanted. */
  fallbackReason?: string;
  /** The CPU's threads: 1, or the threaded build's pool (`initThreadPool`); absent on WebGPU. */
  threads?: number;
}
export interface OptimizerOptions {
  /** Base learning rate (0.1 in the paper; 0.01 when fine-tuning). */
  lr?: number;
  /** SGD momentum (0.9). */
  momentum?: number;
  /** L2 weight decay (1e-4). */
  weightDecay?: number;
  nesterov?: boolean;
  /** Decay BN γ/β and biases too (the paper did). */
  decayBnAndBias?: boolean;
}
export interface ScheduleOptions {
  /** "paper" (÷10 at 1/2 and 3/4 of the run), "step", "cosine", "plateau" or "constant" (default: paper). */
  kind?: "paper" | "step" | "cosine" | "plateau" | "constant";
  /** Iterations the schedule spans (default: the run's iterations). */
  total?: number;
  /** Iterations between decays (step; default 30 epochs). */
  every?: number;
  /** Factor of each step decay (0.1). */
  gamma?: number;
  /** Linear warm-up iterations (cosine). */
  warmup?: number;
  /** Hold lr/10 until the training error is below 80% (the paper's ResNet-110 trick; default for 110+ layers). */
  errorWarmup?: boolean;
  /** Plateau: evaluations without improvement before ÷10 (3). */
  patience?: number;
  /** Plateau: smallest relative improvement that counts (0.01). */
  threshold?: number;
}
/** A run spec (src/train/recipe.rs documents every default); `resnet train --spec` reads the same JSON. */
export interface TrainerOptions {
  /** "resnet20" (default), "resnet56", "plain20", … */
  arch?: string;
  /** Train the plain twin (no shortcuts). */
  plain?: boolean;
  /** Train the residual net and its plain twin side by side on the same data order. */
  compare?: boolean;
  /** More architectures beside `arch` on the same data order, three nets at most (e.g. ["plain20", "preact_resnet20"]); every net is then named by its architecture. */
  compareWith?: string[];
  /** "paper-cifar" (default) or "custom" (a constant rate unless a schedule is given); the ImageNet recipes ("paper-imagenet", "torchvision-v1", "modern") are for native runs on full-size images. */
  recipe?: "paper-cifar" | "custom" | "paper-imagenet" | "torchvision-v1" | "modern";
  optimizer?: OptimizerOptions;
  schedule?: ScheduleOptions;
  /** Images per step (128). */
  batchSize?: number;
  /** Batches whose gradients are summed into one update (1): an update sees batchSize × accumulate images. */
  accumulate?: number;
  /** Seeds the init, the data order and the augmentation (0). */
  seed?: number;
  /** 4-pixel pad + random crop + flip (true). */
  augment?: boolean;
  labelSmoothing?: number;
  /** Mixed precision ("off"): the convolutions in "f16" (with dynamic loss scaling) or "bf16", the rest in f32; refused, with a message, where the device lacks the dtype. */
  amp?: "off" | "f16" | "bf16";
  /** Iterations of the run (default: the paper's 182 epochs scaled to the data and batch). */
  iterations?: number;
  epochs?: number;
  /** Steps between evaluations in `run` (1000). */
  evalEvery?: number;
  /** Test images per evaluation in `run` (all). */
  evalLimit?: number;
  /** Steps between snapshot events in `run` (500; also at every epoch end). */
  checkpointEvery?: number;
  /** Seconds between snapshot events in `run`, as well. */
  snapshotSeconds?: number;
  /** Steps each net takes per `run` call (1). */
  stepsPerRound?: number;
  /** Must equal the dataset's class count if given. */
  numClasses?: number;
  device?: "auto" | "webgpu" | "cpu";
}
export interface FineTuneOptions extends TrainerOptions {
  /** Classes of the new head (default: the dataset's). */
  newNumClasses?: number;
  /** Train the classifier only; BN layers keep their statistics. */
  freezeBackbone?: boolean;
}
export interface NetInfo {
  /** "residual" / "plain" (a net and its twin), "single" (fine-tuning), or the architecture's name in a `compareWith` run. */
  name: string;
  arch: string;
  stepCount: number;
  epoch: number;
  stepsPerEpoch: number;
  lr: number;
  layers: string[];
  /** Why the net stopped, if it diverged. */
  diverged?: string;
}
/** What `trainer.run` reports, in order. */
export type TrainEvent =
  | { event: "step"; net: string; metrics: StepMetrics; imagesPerSecond: number }
  | { event: "epoch"; net: string; summary: { epoch: number; step: number; steps: number; complete: boolean; loss: number; top1Error: number; top5Error: number; imagesPerSecond: number; lr: number } }
  | { event: "eval"; net: string; step: number; report: EvalReport }
  | { event: "snapshot"; step: number }
  | { event: "diverged"; net: string; message: string }
  | { event: "applied"; step: number; description: string }
  | { event: "finished"; step: number };
export interface StepMetrics {
  step: number;
  epoch: number;
  loss: number;
  top1Error: number;
  top5Error: number;
  lr: number;
  /** L2 norm of each layer's weight gradient, input to output (`trainer.layers`). */
  gradNorms: number[];
  /** The loss scale of the step's gradients (amp "f16" only). */
  lossScale?: number;
  /** The gradients overflowed f16: the update was skipped and the loss scale halved. */
  skipped: boolean;
}
export interface StepResult {
  steps: StepMetrics[];
  msPerStep: number;
  imagesPerSecond: number;
  /** Queued hyper-parameter changes that took effect during these steps. */
  applied: TrainEvent[];
}
export interface EvalReport {
  images: number;
  loss: number;
  top1Error: number;
  top5Error: number;
  /** confusion[true][predicted] */
  confusion: number[][];
}
/** `trainer.lesion()`: the test error with each block deleted in turn (Veit et al. 2016). */
export interface LesionReport {
  images: number;
  /** Top-1 error of the intact net. */
  intactError: number;
  /** One entry per block in forward order; `block` is its weights name, e.g. "layer2.0". */
  blocks: { block: string; downsampling: boolean; top1Error: number }[];
}
/** `trainer.gradientCorrelation()`: input-gradient correlation of nearby inputs per block (Balduzzi et al. 2017). */
export interface GradientCorrelation {
  images: number;
  /** Standard deviation of the perturbation, in normalised input units. */
  noise: number;
  /** Up to 12 evenly spaced blocks; `depth` counts weighted layers from the input. */
  blocks: { block: string; depth: number; correlation: number }[];
}
/** Every rejected promise carries one of these. */
export interface ResNetError extends Error {
  name: "ResNetError";
  kind: "arch" | "weights" | "image" | "input" | "device" | "data" | "diverged";
}
"#;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// Initialises (once) and describes the backend models will run on: `"auto"` tries WebGPU
/// and falls back to the CPU, saying why; `"cpu"` forces the CPU.
#[wasm_bindgen(js_name = backendInfo, unchecked_return_type = "Promise<BackendInfo>")]
pub fn backend_info(
    #[wasm_bindgen(unchecked_optional_param_type = "\"auto\" | \"webgpu\" | \"cpu\"")]
    device: Option<String>,
) -> js_sys::Promise {
    wasm_bindgen_futures::future_to_promise(async move {
        let preference = backend::Preference::parse(device.as_deref())
            .map_err(|e| error::js_error(error::Kind::Input, e))?;
        let (_, info) = backend::device(preference)
            .await
            .map_err(|e| error::js_error(error::Kind::Device, e))?;
        Ok(js::to_js(&info))
    })
}

/// The package version.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
