//! `Trainer` for JavaScript: the shared training core ([crate::train::Trainer]) on WebGPU or
//! the CPU, stepped from a Web Worker.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Promise, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::backend::{self, BackendInfo, Preference};
use super::classifier::{now_ms, options as parse_options, to_js};
use super::dataset::Dataset;
use super::error::{Kind, js_error};
use crate::io::{Precision, WeightsFile};
use crate::model::arch;
use crate::train::{self, ErrorWarmup, LrPolicy, Schedule, SgdConfig, TrainConfig, TrainError};

/// `optimizer` options.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct OptimizerOptions {
    lr: Option<f64>,
    momentum: Option<f64>,
    weight_decay: Option<f64>,
    nesterov: Option<bool>,
    decay_bn_and_bias: Option<bool>,
}

/// `schedule` options.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ScheduleOptions {
    /// "paper" (÷10 at 1/2 and 3/4 of `total`), "step", "cosine", "plateau", "constant".
    kind: Option<String>,
    total: Option<usize>,
    every: Option<usize>,
    gamma: Option<f64>,
    warmup: Option<usize>,
    /// The paper's ResNet-110 warm-up (lr/10 until the training error is below 80%).
    error_warmup: Option<bool>,
}

/// Options of `Trainer.create` and `Trainer.fineTune`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct CreateOptions {
    arch: Option<String>,
    plain: Option<bool>,
    num_classes: Option<usize>,
    optimizer: OptimizerOptions,
    schedule: ScheduleOptions,
    batch_size: Option<usize>,
    seed: Option<u64>,
    augment: Option<bool>,
    label_smoothing: Option<f64>,
    device: Option<String>,
    // Fine-tuning only.
    new_num_classes: Option<usize>,
    freeze_backbone: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StepResult {
    steps: Vec<train::StepMetrics>,
    ms_per_step: f64,
    images_per_second: f64,
}

fn train_error(err: TrainError) -> JsValue {
    match err {
        TrainError::Diverged { .. } => js_error(Kind::Diverged, err),
        TrainError::Invalid(_) => js_error(Kind::Input, err),
        TrainError::Device(_) => js_error(Kind::Device, err),
        TrainError::Snapshot(_) => js_error(Kind::Weights, err),
        TrainError::OutOfMemory(_) => js_error(Kind::Device, err),
    }
}

/// wasm32 addresses at most 4 GiB; the module, the dataset and the allocator need the rest.
const WASM_CPU_BUDGET: u64 = 3 << 30;

/// On the CPU fallback a batch too large for wasm32's address space would abort the module:
/// refuse it up front. (WebGPU memory is not knowable from the page; a failed allocation there
/// surfaces as a device error.)
fn check_batch_memory(config: &TrainConfig, backend: &BackendInfo) -> Result<(), JsValue> {
    if backend.backend != "cpu" {
        return Ok(());
    }
    train::check_batch_memory(
        &config.model,
        config.batch_size,
        WASM_CPU_BUDGET,
        "WebAssembly's memory allows",
    )
    .map_err(train_error)
}

fn policy(base_lr: f64, o: &ScheduleOptions, depth: usize) -> Result<LrPolicy, JsValue> {
    let total = o.total.unwrap_or(64_000);
    let schedule = match o.kind.as_deref().unwrap_or("paper") {
        "paper" => Schedule::PaperCifar { total },
        "step" => Schedule::Step {
            every: o.every.unwrap_or(total / 3).max(1),
            gamma: o.gamma.unwrap_or(0.1),
        },
        "cosine" => Schedule::Cosine {
            warmup: o.warmup.unwrap_or(0),
            total,
        },
        "plateau" => Schedule::Plateau {
            patience: 3,
            threshold: 0.01,
        },
        "constant" => Schedule::Constant,
        other => {
            return Err(js_error(
                Kind::Input,
                format!(
                    "unknown schedule '{other}': expected paper, step, cosine, plateau or constant"
                ),
            ));
        }
    };
    let mut policy = LrPolicy::new(base_lr, schedule);
    if o.error_warmup.unwrap_or(depth >= 110) {
        policy = policy.with_error_warmup(ErrorWarmup {
            lr: base_lr / 10.0,
            until_error_below: 0.8,
        });
    }
    Ok(policy)
}

fn sgd(o: &OptimizerOptions, base: &SgdConfig) -> SgdConfig {
    SgdConfig {
        momentum: o.momentum.unwrap_or(base.momentum),
        nesterov: o.nesterov.unwrap_or(base.nesterov),
        weight_decay: o.weight_decay.unwrap_or(base.weight_decay),
        decay_bn_and_bias: o.decay_bn_and_bias.unwrap_or(base.decay_bn_and_bias),
    }
}

/// A ResNet being trained in the page.
#[wasm_bindgen]
pub struct Trainer {
    inner: Rc<RefCell<train::Trainer>>,
    data: Dataset,
    backend: BackendInfo,
}

#[wasm_bindgen]
impl Trainer {
    /// A fresh network on `dataset`, seeded, on WebGPU (or the CPU).
    pub async fn create(
        #[wasm_bindgen(unchecked_param_type = "TrainerOptions")] options: JsValue,
        dataset: &Dataset,
    ) -> Result<Trainer, JsValue> {
        let o: CreateOptions = parse_options(options)?;
        let mut model =
            arch::parse(o.arch.as_deref().unwrap_or("resnet20")).map_err(crate::Error::from)?;
        let classes = dataset.num_classes();
        if o.num_classes.is_some_and(|n| n != classes) {
            return Err(js_error(
                Kind::Input,
                format!(
                    "numClasses is {} but the dataset has {classes} classes",
                    o.num_classes.unwrap()
                ),
            ));
        }
        let residual = model.residual && !o.plain.unwrap_or(false);
        model = model.with_num_classes(classes).with_residual(residual);
        let base_lr = o.optimizer.lr.unwrap_or(0.1);
        let config = TrainConfig {
            lr: policy(base_lr, &o.schedule, model.depth())?,
            model,
            sgd: sgd(&o.optimizer, &SgdConfig::default()),
            batch_size: o.batch_size.unwrap_or(128),
            seed: o.seed.unwrap_or(0),
            augment: o.augment.unwrap_or(true),
            label_smoothing: o.label_smoothing.unwrap_or(0.0),
            normalization: dataset.train.channel_statistics(5_000),
            freeze_backbone: false,
        };
        let preference =
            Preference::parse(o.device.as_deref()).map_err(|e| js_error(Kind::Input, e))?;
        let (device, backend) = backend::device(preference)
            .await
            .map_err(|e| js_error(Kind::Device, e))?;
        check_batch_memory(&config, &backend)?;
        let inner = train::Trainer::new(config, &dataset.train, &device).map_err(train_error)?;
        Ok(Trainer {
            inner: Rc::new(RefCell::new(inner)),
            data: dataset.clone(),
            backend,
        })
    }

    /// Starts from trained weights (a `.bpk` from the page or the CLI, or torchvision-layout
    /// safetensors with `arch`), replaces the classifier for `newNumClasses` (default: the
    /// dataset's classes) and, with `freezeBackbone`, trains the classifier only.
    #[wasm_bindgen(js_name = fineTune)]
    pub async fn fine_tune(
        weights: Uint8Array,
        #[wasm_bindgen(unchecked_param_type = "FineTuneOptions")] options: JsValue,
        dataset: &Dataset,
    ) -> Result<Trainer, JsValue> {
        let o: CreateOptions = parse_options(options)?;
        let file =
            WeightsFile::from_bytes(weights.to_vec(), "weights").map_err(crate::Error::from)?;
        let source = match (&o.arch, &file.card) {
            (Some(name), _) => {
                let mut c = arch::parse(name).map_err(crate::Error::from)?;
                if let Some(n) = o.num_classes {
                    c = c.with_num_classes(n);
                }
                c
            }
            (None, Some(card)) => card.config.clone(),
            (None, None) => {
                return Err(js_error(
                    Kind::Arch,
                    "these weights do not name their architecture: pass arch",
                ));
            }
        };
        let classes = o.new_num_classes.unwrap_or(dataset.num_classes());
        if classes != dataset.num_classes() {
            return Err(js_error(
                Kind::Input,
                format!(
                    "newNumClasses is {classes} but the dataset has {}",
                    dataset.num_classes()
                ),
            ));
        }
        let preference =
            Preference::parse(o.device.as_deref()).map_err(|e| js_error(Kind::Input, e))?;
        let (device, backend) = backend::device(preference)
            .await
            .map_err(|e| js_error(Kind::Device, e))?;
        let loaded = crate::infer::Classifier::load(file, Some(source.clone()), &device)?;
        let target = source.clone().with_num_classes(classes);
        let model = crate::train::finetune::replace_head(loaded.model().clone(), &target, &device);
        let base_lr = o.optimizer.lr.unwrap_or(0.01);
        let config = TrainConfig {
            lr: policy(base_lr, &o.schedule, target.depth())?,
            model: target,
            sgd: sgd(&o.optimizer, &SgdConfig::default()),
            batch_size: o.batch_size.unwrap_or(128),
            seed: o.seed.unwrap_or(0),
            augment: o.augment.unwrap_or(true),
            label_smoothing: o.label_smoothing.unwrap_or(0.0),
            normalization: loaded.card().normalization.clone(),
            freeze_backbone: o.freeze_backbone.unwrap_or(false),
        };
        check_batch_memory(&config, &backend)?;
        let inner = train::Trainer::with_model(
            config,
            model,
            dataset.classes(),
            dataset.train_size(),
            &device,
        )
        .map_err(train_error)?;
        Ok(Trainer {
            inner: Rc::new(RefCell::new(inner)),
            data: dataset.clone(),
            backend,
        })
    }

    /// Runs `n` steps; resolves with each step's metrics, ms per step and images/s.
    #[wasm_bindgen(unchecked_return_type = "Promise<StepResult>")]
    pub fn step(&self, n: usize) -> Promise {
        let inner = self.inner.clone();
        let data = self.data.train.clone();
        future_to_promise(async move {
            let mut trainer = inner.try_borrow_mut().map_err(|_| {
                js_error(
                    Kind::Input,
                    "this trainer is already busy (await the previous call)",
                )
            })?;
            let started = now_ms();
            let mut steps = Vec::with_capacity(n);
            for _ in 0..n.max(1) {
                steps.push(trainer.step(&data).await.map_err(train_error)?);
            }
            let ms = (now_ms() - started) / steps.len() as f64;
            let images = trainer.config().batch_size as f64;
            Ok(to_js(&StepResult {
                steps,
                ms_per_step: ms,
                images_per_second: images * 1e3 / ms.max(1e-9),
            }))
        })
    }

    /// Test loss, errors and confusion matrix (on at most `limit` test images).
    #[wasm_bindgen(unchecked_return_type = "Promise<EvalReport>")]
    pub fn evaluate(&self, limit: Option<usize>) -> Promise {
        let inner = self.inner.clone();
        let test = self.data.test.clone();
        future_to_promise(async move {
            let mut trainer = inner
                .try_borrow_mut()
                .map_err(|_| js_error(Kind::Input, "this trainer is busy"))?;
            let report = trainer
                .evaluate(&test, limit, 100)
                .await
                .map_err(train_error)?;
            Ok(to_js(&report))
        })
    }

    /// Top-3 predictions for test images `indices` (for the page's stream of examples).
    #[wasm_bindgen(
        unchecked_return_type = "Promise<{ index: number; label: number; top: { index: number; probability: number }[] }[]>"
    )]
    pub fn predict(&self, indices: Vec<usize>) -> Promise {
        let inner = self.inner.clone();
        let test = self.data.test.clone();
        future_to_promise(async move {
            if let Some(&bad) = indices.iter().find(|&&i| i >= test.len()) {
                return Err(js_error(
                    Kind::Input,
                    format!("test image {bad} of {}", test.len()),
                ));
            }
            let (model, card, device) = {
                let trainer = inner
                    .try_borrow()
                    .map_err(|_| js_error(Kind::Input, "this trainer is busy"))?;
                (trainer.model(), trainer.card(None), trainer.device())
            };
            let (pixels, labels) = test.batch(&indices);
            let n = &card.normalization;
            let x = crate::data::augment::normalize(
                pixels,
                [indices.len(), 3, 32, 32],
                n.mean,
                n.std,
                &device,
            );
            let p = crate::infer::read_f32(burn::tensor::activation::softmax(model.forward(x), 1))
                .await?;
            let classes = card.config.num_classes;
            let out: Vec<serde_json::Value> = indices
                .iter()
                .zip(labels)
                .zip(p.chunks(classes))
                .map(|((&index, label), probs)| {
                    let mut order: Vec<usize> = (0..classes).collect();
                    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
                    let top: Vec<_> = order
                        .iter()
                        .take(3)
                        .map(|&c| serde_json::json!({ "index": c, "probability": probs[c] }))
                        .collect();
                    serde_json::json!({ "index": index, "label": label, "top": top })
                })
                .collect();
            Ok(to_js(&out))
        })
    }

    /// Changes the optimizer and schedule between steps (momentum buffers are kept).
    #[wasm_bindgen(js_name = setHyperparameters)]
    pub fn set_hyperparameters(
        &self,
        #[wasm_bindgen(
            unchecked_param_type = "{ optimizer?: OptimizerOptions; schedule?: ScheduleOptions }"
        )]
        options: JsValue,
    ) -> Result<(), JsValue> {
        let o: CreateOptions = parse_options(options)?;
        let mut trainer = self
            .inner
            .try_borrow_mut()
            .map_err(|_| js_error(Kind::Input, "this trainer is busy"))?;
        let config = trainer.config().clone();
        let sgd = sgd(&o.optimizer, &config.sgd);
        let lr = match (o.optimizer.lr, o.schedule.kind.is_some()) {
            (None, false) => config.lr,
            (lr, _) => {
                let mut next = policy(
                    lr.unwrap_or(config.lr.base_lr),
                    &o.schedule,
                    config.model.depth(),
                )?;
                if o.schedule.kind.is_none() {
                    next.schedule = config.lr.schedule.clone();
                    next.warmup = config.lr.warmup.clone();
                    next.warmed_up = config.lr.warmed_up;
                }
                next
            }
        };
        trainer.set_hyperparameters(sgd, lr);
        Ok(())
    }

    /// The weights in eval mode as Burnpack bytes (what `Classifier.load` and the CLI take).
    #[wasm_bindgen(js_name = exportWeights, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export_weights(
        &self,
        #[wasm_bindgen(unchecked_param_type = "{ f16?: boolean } | undefined")] options: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        let data_name = self.data.name.clone();
        future_to_promise(async move {
            let f16 = js_sys::Reflect::get(&options, &"f16".into())
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let (model, card) = {
                let t = inner
                    .try_borrow()
                    .map_err(|_| js_error(Kind::Input, "this trainer is busy"))?;
                let description = format!(
                    "{} trained {} steps in the browser on {data_name}",
                    t.config().model.name(),
                    t.step_count()
                );
                (t.model(), t.card(Some(description)))
            };
            let precision = if f16 { Precision::F16 } else { Precision::F32 };
            let bytes = crate::io::to_bytes_async(&model, &card, precision)
                .await
                .map_err(crate::Error::from)?;
            Ok(Uint8Array::from(&bytes[..]).into())
        })
    }

    /// Model, optimizer state, data order, RNG and step as bytes (for IndexedDB).
    #[wasm_bindgen(unchecked_return_type = "Promise<Uint8Array>")]
    pub fn snapshot(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let trainer = inner
                .try_borrow()
                .map_err(|_| js_error(Kind::Input, "this trainer is busy"))?;
            let bytes = trainer.snapshot().await.map_err(train_error)?;
            Ok(Uint8Array::from(&bytes[..]).into())
        })
    }

    /// Continues a [snapshot](Self::snapshot) on `dataset` (the one it was trained on).
    pub async fn restore(
        bytes: Uint8Array,
        dataset: &Dataset,
        #[wasm_bindgen(unchecked_optional_param_type = "\"auto\" | \"webgpu\" | \"cpu\"")]
        device: Option<String>,
    ) -> Result<Trainer, JsValue> {
        let preference =
            Preference::parse(device.as_deref()).map_err(|e| js_error(Kind::Input, e))?;
        let (device, backend) = backend::device(preference)
            .await
            .map_err(|e| js_error(Kind::Device, e))?;
        let inner = train::Trainer::restore(bytes.to_vec(), &device).map_err(train_error)?;
        check_batch_memory(inner.config(), &backend)?;
        if inner.classes() != dataset.classes().as_slice() {
            return Err(js_error(
                Kind::Data,
                "this snapshot was trained on a dataset with other classes",
            ));
        }
        Ok(Trainer {
            inner: Rc::new(RefCell::new(inner)),
            data: dataset.clone(),
            backend,
        })
    }

    /// Steps done.
    #[wasm_bindgen(getter, js_name = stepCount)]
    pub fn step_count(&self) -> usize {
        self.inner.borrow().step_count()
    }

    /// Current epoch (0-based).
    #[wasm_bindgen(getter)]
    pub fn epoch(&self) -> usize {
        self.inner.borrow().epoch()
    }

    /// Steps per epoch.
    #[wasm_bindgen(getter, js_name = stepsPerEpoch)]
    pub fn steps_per_epoch(&self) -> usize {
        self.inner.borrow().steps_per_epoch()
    }

    /// Names of the layers of `gradNorms`, input to output.
    #[wasm_bindgen(getter)]
    pub fn layers(&self) -> Vec<String> {
        self.inner.borrow().layers()
    }

    /// Architecture name (`resnet56`, `plain56`, …).
    #[wasm_bindgen(getter)]
    pub fn arch(&self) -> String {
        self.inner.borrow().config().model.name()
    }

    /// The learning rate the next step will use.
    #[wasm_bindgen(getter)]
    pub fn lr(&self) -> f64 {
        let t = self.inner.borrow();
        t.config().lr.lr(t.step_count())
    }

    /// The full configuration as a plain object.
    #[wasm_bindgen(getter)]
    pub fn config(&self) -> JsValue {
        to_js(self.inner.borrow().config())
    }

    /// Which backend trains, on which adapter.
    #[wasm_bindgen(getter, unchecked_return_type = "BackendInfo")]
    pub fn backend(&self) -> JsValue {
        to_js(&self.backend)
    }
}
