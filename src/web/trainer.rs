//! `Trainer` for JavaScript: the shared run loop ([crate::train::Session]) over one net, or a
//! residual net and its plain twin, on WebGPU or the CPU, driven from a Web Worker.
//!
//! Every method is safe to call at any time: getters read a summary refreshed after each
//! operation (never the trainer a pending promise holds), hyper-parameter changes are queued
//! for the next step boundary, and an operation that needs the nets while another runs is
//! refused with a `ResNetError` of kind `input`.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, Promise, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::backend::{self, BackendInfo, Preference};
use super::dataset::Dataset;
use super::error::{Kind, js_error};
use super::js::{now_ms, options as parse_options, to_js};
use crate::io::{Precision, WeightsFile};
use crate::train::session::{Cadence, EpochMeans, HyperparameterChange, Net};
use crate::train::{self, Event, RunSpec, Session, TrainConfig, TrainError};

/// Options of `Trainer.create` and `Trainer.fineTune`: a run spec and where to run it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct CreateOptions {
    #[serde(flatten)]
    spec: RunSpec,
    /// Must equal the dataset's class count if given.
    num_classes: Option<usize>,
    device: Option<String>,
    /// Fine-tuning: classes of the new head (must be the dataset's).
    new_num_classes: Option<usize>,
    /// Fine-tuning: shorthand for `fineTune: { freezeBackbone }`.
    freeze_backbone: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StepResult {
    steps: Vec<train::StepMetrics>,
    ms_per_step: f64,
    images_per_second: f64,
    /// Queued hyper-parameter changes that took effect during these steps.
    applied: Vec<Event>,
}

/// What the getters report, refreshed after every operation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct NetInfo {
    name: String,
    arch: String,
    step_count: usize,
    epoch: usize,
    steps_per_epoch: usize,
    lr: f64,
    layers: Vec<String>,
    diverged: Option<String>,
    #[serde(skip)]
    config: TrainConfig,
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

fn busy() -> JsValue {
    js_error(
        Kind::Input,
        "this trainer is busy (await the previous call before starting another)",
    )
}

/// Resolves after the event loop has run its pending tasks (a zero-delay timer).
async fn next_task() {
    let promise = Promise::new(&mut |resolve, _| {
        let set_timeout = js_sys::Reflect::get(&js_sys::global(), &"setTimeout".into())
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok());
        match set_timeout {
            Some(set_timeout) => {
                let _ = set_timeout.call2(&JsValue::NULL, &resolve, &0.into());
            }
            None => {
                let _ = resolve.call0(&JsValue::NULL);
            }
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
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

/// One net, or a residual net and its plain twin, being trained in the page.
#[wasm_bindgen]
pub struct Trainer {
    session: Rc<RefCell<Session>>,
    pending: Rc<RefCell<Option<HyperparameterChange>>>,
    info: Rc<RefCell<Vec<NetInfo>>>,
    spec: RunSpec,
    data: Dataset,
    backend: BackendInfo,
}

impl Trainer {
    fn new(session: Session, data: &Dataset, backend: BackendInfo) -> Trainer {
        let info = Rc::new(RefCell::new(summarise(&session)));
        Trainer {
            spec: session.spec.clone(),
            pending: session.pending(),
            session: Rc::new(RefCell::new(session)),
            info,
            data: data.clone(),
            backend,
        }
    }

    /// A session over `trainers` with the spec's cadence.
    fn session(spec: RunSpec, trainers: Vec<(&str, train::Trainer)>, train_len: usize) -> Session {
        let cadence = Cadence::from_spec(&spec, train_len);
        let nets = trainers
            .into_iter()
            .map(|(name, mut trainer)| {
                trainer.set_spec(spec.clone());
                Net::new(name, trainer, EpochMeans::default())
            })
            .collect();
        Session::new(spec, nets, cadence, now_ms)
    }

    /// Index of net `name` (the first when absent).
    fn net_index(&self, name: Option<String>) -> Result<usize, JsValue> {
        let info = self.info.borrow();
        match name {
            None => Ok(0),
            Some(name) => info.iter().position(|n| n.name == name).ok_or_else(|| {
                js_error(
                    Kind::Input,
                    format!(
                        "no net '{name}': this trainer has {}",
                        info.iter()
                            .map(|n| n.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            }),
        }
    }

    fn first(&self) -> NetInfo {
        self.info.borrow()[0].clone()
    }
}

fn summarise(session: &Session) -> Vec<NetInfo> {
    session
        .nets
        .iter()
        .map(|net| {
            let t = &net.trainer;
            NetInfo {
                name: net.name.clone(),
                arch: t.config().model.name(),
                step_count: t.step_count(),
                epoch: t.epoch(),
                steps_per_epoch: t.steps_per_epoch(),
                lr: t.config().lr.lr(t.step_count()),
                layers: t.layers(),
                diverged: net.diverged.as_ref().map(|e| e.to_string()),
                config: t.config().clone(),
            }
        })
        .collect()
}

/// Runs `work` on the session if no other operation holds it, then refreshes the summary.
async fn with_session<T>(
    session: &Rc<RefCell<Session>>,
    info: &Rc<RefCell<Vec<NetInfo>>>,
    work: impl AsyncFnOnce(&mut Session) -> Result<T, JsValue>,
) -> Result<T, JsValue> {
    let mut guard = session.try_borrow_mut().map_err(|_| busy())?;
    let result = work(&mut guard).await;
    *info.borrow_mut() = summarise(&guard);
    result
}

#[wasm_bindgen]
impl Trainer {
    /// A fresh network (with `compare: true`, a residual net and its plain twin on the same
    /// data order) on `dataset`, seeded, on WebGPU (or the CPU).
    pub async fn create(
        #[wasm_bindgen(unchecked_param_type = "TrainerOptions")] options: JsValue,
        dataset: &Dataset,
    ) -> Result<Trainer, JsValue> {
        let o: CreateOptions = parse_options(options)?;
        let classes = dataset.num_classes();
        if o.num_classes.is_some_and(|n| n != classes) {
            return Err(js_error(
                Kind::Input,
                format!(
                    "numClasses is {} but the dataset has {classes} classes",
                    o.num_classes.unwrap_or_default()
                ),
            ));
        }
        let spec = RunSpec {
            fine_tune: None,
            ..o.spec
        };
        let model = spec.model(classes)?;
        let normalization = dataset.train.channel_statistics(5_000);
        let train_len = dataset.train_size();
        let preference =
            Preference::parse(o.device.as_deref()).map_err(|e| js_error(Kind::Input, e))?;
        let (device, backend) = backend::device(preference)
            .await
            .map_err(|e| js_error(Kind::Device, e))?;
        let models = if spec.compare {
            vec![
                ("residual", model.clone().with_residual(true)),
                ("plain", model.with_residual(false)),
            ]
        } else {
            vec![(if model.residual { "residual" } else { "plain" }, model)]
        };
        let mut trainers = Vec::new();
        for (name, model) in models {
            let config = spec
                .train_config(model, train_len, normalization.clone())
                .map_err(|e| js_error(Kind::Input, e))?;
            check_batch_memory(&config, &backend)?;
            trainers.push((
                name,
                train::Trainer::new(config, &dataset.train, &device).map_err(train_error)?,
            ));
        }
        let session = Self::session(spec, trainers, train_len);
        Ok(Trainer::new(session, dataset, backend))
    }

    /// Starts from trained weights (a `.bpk` from the page or the CLI, or torchvision-layout
    /// safetensors with `arch`), replaces the classifier for the dataset's classes and, with
    /// `freezeBackbone`, trains the classifier only. The optimizer options are the user's
    /// (only the default rate is lower: 0.01).
    #[wasm_bindgen(js_name = fineTune)]
    pub async fn fine_tune(
        weights: Uint8Array,
        #[wasm_bindgen(unchecked_param_type = "FineTuneOptions")] options: JsValue,
        dataset: &Dataset,
    ) -> Result<Trainer, JsValue> {
        let raw: serde_json::Value = parse_options(options.clone())?;
        let o: CreateOptions = parse_options(options)?;
        let file =
            WeightsFile::from_bytes(weights.to_vec(), "weights").map_err(crate::Error::from)?;
        // The architecture: given, or the file's own.
        let source = match (raw.get("arch").and_then(|a| a.as_str()), &file.card) {
            (Some(name), _) => {
                let mut c = crate::model::arch::parse(name).map_err(crate::Error::from)?;
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
        let mut spec = RunSpec {
            arch: source.name(),
            compare: false,
            ..o.spec
        };
        let mut fine_tune = spec.fine_tune.take().unwrap_or_default();
        fine_tune.freeze_backbone |= o.freeze_backbone.unwrap_or(false);
        spec.fine_tune = Some(fine_tune);
        let preference =
            Preference::parse(o.device.as_deref()).map_err(|e| js_error(Kind::Input, e))?;
        let (device, backend) = backend::device(preference)
            .await
            .map_err(|e| js_error(Kind::Device, e))?;
        let loaded = crate::infer::Classifier::load(file, Some(source.clone()), &device)?;
        let target = source.with_num_classes(classes);
        let model = crate::train::finetune::replace_head(loaded.model().clone(), &target, &device);
        let train_len = dataset.train_size();
        let config = spec
            .train_config(target, train_len, loaded.card().normalization.clone())
            .map_err(|e| js_error(Kind::Input, e))?;
        check_batch_memory(&config, &backend)?;
        let trainer =
            train::Trainer::with_model(config, model, dataset.classes(), train_len, &device)
                .map_err(train_error)?;
        let session = Self::session(spec, vec![("single", trainer)], train_len);
        Ok(Trainer::new(session, dataset, backend))
    }

    /// Runs `n` steps of the first net (or of `net`), no evaluation; resolves with each step's
    /// metrics, ms per step and images/s.
    #[wasm_bindgen(unchecked_return_type = "Promise<StepResult>")]
    pub fn step(&self, n: usize, net: Option<String>) -> Promise {
        let (session, info) = (self.session.clone(), self.info.clone());
        let data = self.data.train.clone();
        let index = self.net_index(net);
        future_to_promise(async move {
            let index = index?;
            with_session(&session, &info, async |s: &mut Session| {
                let started = now_ms();
                let mut events = Vec::new();
                let mut steps = Vec::with_capacity(n.max(1));
                for i in 0..n.max(1) {
                    if i > 0 {
                        // On the CPU a step never waits for a device: give the thread's event
                        // loop a turn between steps so a long call does not freeze it.
                        next_task().await;
                    }
                    let step = s
                        .train_steps(index, 1, &data, &mut |e| events.push(e))
                        .await
                        .map_err(train_error)?;
                    steps.extend(step);
                }
                let ms = (now_ms() - started) / steps.len().max(1) as f64;
                let images = s.nets[index].trainer.config().batch_size as f64;
                let applied = events
                    .into_iter()
                    .filter(|e| matches!(e, Event::Applied { .. }))
                    .collect();
                Ok(to_js(&StepResult {
                    steps,
                    ms_per_step: ms,
                    images_per_second: images * 1e3 / ms.max(1e-9),
                    applied,
                }))
            })
            .await
        })
    }

    /// One round of the run loop: each net steps `stepsPerRound` times, evaluating and asking
    /// for snapshots as the spec's cadence says. `onEvent` receives every event (`step`,
    /// `epoch`, `eval`, `snapshot`, `diverged`, `applied`, `finished`) as it happens; resolves
    /// with `{ finished, step }`.
    #[wasm_bindgen(unchecked_return_type = "Promise<{ finished: boolean; step: number }>")]
    pub fn run(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(event: TrainEvent) => void")] on_event: Function,
    ) -> Promise {
        let (session, info) = (self.session.clone(), self.info.clone());
        let (train, test) = (self.data.train.clone(), self.data.test.clone());
        future_to_promise(async move {
            with_session(&session, &info, async |s: &mut Session| {
                let mut emit = |event: Event| {
                    // A throwing listener must not stop training: its error is logged.
                    if let Err(err) = on_event.call1(&JsValue::NULL, &to_js(&event)) {
                        web_sys::console::error_1(&err);
                    }
                };
                let finished = s
                    .round(&train, &test, &mut emit)
                    .await
                    .map_err(train_error)?;
                Ok(to_js(
                    &serde_json::json!({ "finished": finished, "step": s.step() }),
                ))
            })
            .await
        })
    }

    /// Test loss, errors and confusion matrix of the first net (or `net`) on at most `limit`
    /// test images. The error feeds the learning-rate schedule (the plateau schedule lowers
    /// the rate when it stops improving).
    #[wasm_bindgen(unchecked_return_type = "Promise<EvalReport>")]
    pub fn evaluate(&self, limit: Option<usize>, net: Option<String>) -> Promise {
        let (session, info) = (self.session.clone(), self.info.clone());
        let test = self.data.test.clone();
        let index = self.net_index(net);
        future_to_promise(async move {
            let index = index?;
            with_session(&session, &info, async |s: &mut Session| {
                let report = s
                    .evaluate_with(index, &test, limit, &mut |_| {})
                    .await
                    .map_err(train_error)?;
                Ok(to_js(&report))
            })
            .await
        })
    }

    /// Top-3 predictions of the first net (or `net`) for test images `indices` (the page's
    /// stream of examples).
    #[wasm_bindgen(
        unchecked_return_type = "Promise<{ index: number; label: number; top: { index: number; probability: number }[] }[]>"
    )]
    pub fn predict(&self, indices: Vec<usize>, net: Option<String>) -> Promise {
        let session = self.session.clone();
        let test = self.data.test.clone();
        let index = self.net_index(net);
        future_to_promise(async move {
            let index = index?;
            if let Some(&bad) = indices.iter().find(|&&i| i >= test.len()) {
                return Err(js_error(
                    Kind::Input,
                    format!("test image {bad} of {}", test.len()),
                ));
            }
            let (model, card, device) = {
                let s = session.try_borrow().map_err(|_| busy())?;
                let t = &s.nets[index].trainer;
                (t.model(), t.card(None), t.device())
            };
            let top = crate::infer::top_classes(&model, &card, &test, &indices, 3, &device).await?;
            Ok(to_js(&top))
        })
    }

    /// Queues new optimizer values for every net; they take effect at the next step boundary
    /// (never mid-step), which an `applied` event (or `StepResult.applied`) reports. Values out
    /// of range are refused now, with nothing queued.
    #[wasm_bindgen(js_name = setHyperparameters)]
    pub fn set_hyperparameters(
        &self,
        #[wasm_bindgen(unchecked_param_type = "{ optimizer?: OptimizerOptions }")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields, default)]
        struct Options {
            optimizer: HyperparameterChange,
        }
        let o: Options = parse_options(options)?;
        for net in self.info.borrow().iter() {
            o.optimizer.check(&net.config).map_err(train_error)?;
        }
        // The queue is its own cell: writing it never waits for a step in flight.
        let earlier = self.pending.borrow_mut().take();
        *self.pending.borrow_mut() = Some(o.optimizer.merged_over(earlier));
        Ok(to_js(
            &serde_json::json!({ "queued": true, "atStep": self.first().step_count + 1 }),
        ))
    }

    /// The weights of the first net (or `net`) in eval mode as Burnpack bytes (what
    /// `Classifier.load` and the CLI take); the model card carries the run spec.
    #[wasm_bindgen(js_name = exportWeights, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export_weights(
        &self,
        #[wasm_bindgen(unchecked_param_type = "{ f16?: boolean; net?: string } | undefined")]
        options: JsValue,
    ) -> Promise {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Options {
            f16: bool,
            net: Option<String>,
        }
        let session = self.session.clone();
        let data_name = self.data.name.clone();
        let parsed =
            parse_options::<Options>(options).and_then(|o| Ok((self.net_index(o.net)?, o.f16)));
        future_to_promise(async move {
            let (index, f16) = parsed?;
            let (model, card) = {
                let s = session.try_borrow().map_err(|_| busy())?;
                let t = &s.nets[index].trainer;
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

    /// Model, optimizer state, data order, RNG, step and run spec of the first net (or
    /// `net`) as bytes: what `resnet train --resume` reads as `checkpoint.bpk`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Uint8Array>")]
    pub fn snapshot(&self, net: Option<String>) -> Promise {
        let session = self.session.clone();
        let index = self.net_index(net);
        future_to_promise(async move {
            let index = index?;
            let s = session.try_borrow().map_err(|_| busy())?;
            let bytes = s.nets[index]
                .trainer
                .snapshot()
                .await
                .map_err(train_error)?;
            Ok(Uint8Array::from(&bytes[..]).into())
        })
    }

    /// Every net's snapshot: `[{ name, bytes }]`, what `Trainer.restore` takes back.
    #[wasm_bindgen(unchecked_return_type = "Promise<{ name: string; bytes: Uint8Array }[]>")]
    pub fn snapshots(&self) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let s = session.try_borrow().map_err(|_| busy())?;
            let out = Array::new();
            for net in &s.nets {
                let bytes = net.trainer.snapshot().await.map_err(train_error)?;
                let item = js_sys::Object::new();
                js_sys::Reflect::set(&item, &"name".into(), &net.name.clone().into())?;
                js_sys::Reflect::set(&item, &"bytes".into(), &Uint8Array::from(&bytes[..]))?;
                out.push(&item);
            }
            Ok(out.into())
        })
    }

    /// Continues snapshots on `dataset` (the one they were trained on): the bytes of one
    /// [snapshot](Self::snapshot), or the `[{ name, bytes }]` of [snapshots](Self::snapshots).
    /// A corrupted or crafted snapshot is refused with an error.
    pub async fn restore(
        #[wasm_bindgen(
            unchecked_param_type = "Uint8Array | { name: string; bytes: Uint8Array }[]"
        )]
        snapshots: JsValue,
        dataset: &Dataset,
        #[wasm_bindgen(unchecked_optional_param_type = "\"auto\" | \"webgpu\" | \"cpu\"")]
        device: Option<String>,
    ) -> Result<Trainer, JsValue> {
        let parts: Vec<(String, Vec<u8>)> = if let Some(bytes) = snapshots.dyn_ref::<Uint8Array>() {
            vec![("single".into(), bytes.to_vec())]
        } else if let Some(items) = snapshots.dyn_ref::<Array>() {
            super::js::named_bytes(items, "snapshot")?
        } else {
            return Err(js_error(
                Kind::Input,
                "restore takes a snapshot's bytes or an array of { name, bytes }",
            ));
        };
        if parts.is_empty() {
            return Err(js_error(Kind::Input, "no snapshot given"));
        }
        let preference =
            Preference::parse(device.as_deref()).map_err(|e| js_error(Kind::Input, e))?;
        let (device, backend) = backend::device(preference)
            .await
            .map_err(|e| js_error(Kind::Device, e))?;
        let mut trainers = Vec::new();
        for (name, bytes) in parts {
            let trainer = train::Trainer::restore(bytes, &device).map_err(train_error)?;
            check_batch_memory(trainer.config(), &backend)?;
            if trainer.classes() != dataset.classes().as_slice() {
                return Err(js_error(
                    Kind::Data,
                    "this snapshot was trained on a dataset with other classes",
                ));
            }
            trainers.push((name, trainer));
        }
        let spec = trainers[0].1.spec().cloned().unwrap_or_default();
        let cadence = Cadence::from_spec(&spec, dataset.train_size());
        let nets = trainers
            .into_iter()
            .map(|(name, trainer)| Net::new(name, trainer, EpochMeans::default()))
            .collect();
        let session = Session::new(spec, nets, cadence, now_ms);
        Ok(Trainer::new(session, dataset, backend))
    }

    /// Steps done by the first net.
    #[wasm_bindgen(getter, js_name = stepCount)]
    pub fn step_count(&self) -> usize {
        self.first().step_count
    }

    /// Current epoch of the first net (0-based).
    #[wasm_bindgen(getter)]
    pub fn epoch(&self) -> usize {
        self.first().epoch
    }

    /// Steps per epoch.
    #[wasm_bindgen(getter, js_name = stepsPerEpoch)]
    pub fn steps_per_epoch(&self) -> usize {
        self.first().steps_per_epoch
    }

    /// Names of the layers of `gradNorms`, input to output (first net).
    #[wasm_bindgen(getter)]
    pub fn layers(&self) -> Vec<String> {
        self.first().layers
    }

    /// Architecture name of the first net (`resnet56`, `plain56`, …).
    #[wasm_bindgen(getter)]
    pub fn arch(&self) -> String {
        self.first().arch
    }

    /// The learning rate the first net's next step will use.
    #[wasm_bindgen(getter)]
    pub fn lr(&self) -> f64 {
        self.first().lr
    }

    /// Every net: name, arch, stepCount, epoch, stepsPerEpoch, lr, layers, diverged.
    #[wasm_bindgen(getter, unchecked_return_type = "NetInfo[]")]
    pub fn nets(&self) -> JsValue {
        to_js(&*self.info.borrow())
    }

    /// The first net's configuration as a plain object.
    #[wasm_bindgen(getter)]
    pub fn config(&self) -> JsValue {
        to_js(&self.first().config)
    }

    /// The run spec (what `resnet train --spec` reproduces natively).
    #[wasm_bindgen(getter, unchecked_return_type = "TrainerOptions")]
    pub fn spec(&self) -> JsValue {
        to_js(&self.spec)
    }

    /// Which backend trains, on which adapter.
    #[wasm_bindgen(getter, unchecked_return_type = "BackendInfo")]
    pub fn backend(&self) -> JsValue {
        to_js(&self.backend)
    }
}
