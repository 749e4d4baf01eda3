//! `Trainer` for JavaScript: the shared run loop ([crate::train::Session]) over one net, or a
//! residual net and its plain twin, on WebGPU or the CPU, driven from a Web Worker.
//!
//! Every method is safe to call at any time: getters read a summary refreshed after each
//! operation (never the trainer a pending promise holds), hyper-parameter changes are queued
//! for the next step boundary, and an operation that needs the nets while another runs is
//! refused with a `ResNetError` of kind `input`.

use std::cell::RefCell;
use std::rc::Rc;

use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::backend::BackendInfo;
use super::dataset::Dataset;
use super::error::{Kind, js_error};
use super::js::{now_ms, to_js};
use crate::train::session::{Cadence, EpochMeans, HyperparameterChange, Net};
use crate::train::{self, RunSpec, Session, TrainConfig, TrainError};

mod create;
mod run;

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
    fn session(
        spec: RunSpec,
        trainers: Vec<(String, train::Trainer)>,
        train_len: usize,
    ) -> Session {
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
