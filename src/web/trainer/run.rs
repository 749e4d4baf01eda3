//! Driving a `Trainer`: steps, rounds of the run loop, evaluation, predictions, queued
//! hyper-parameter changes, exports and snapshots.

use js_sys::{Array, Function, Promise, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::{Trainer, busy, train_error, with_session};
use crate::io::Precision;
use crate::train::session::HyperparameterChange;
use crate::train::{self, Event, Session};
use crate::web::error::{Kind, js_error};
use crate::web::js::{now_ms, options as parse_options, to_js};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StepResult {
    steps: Vec<train::StepMetrics>,
    ms_per_step: f64,
    images_per_second: f64,
    /// Queued hyper-parameter changes that took effect during these steps.
    applied: Vec<Event>,
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

#[wasm_bindgen]
impl Trainer {
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

    /// The lesion study of Veit et al. 2016 on the first net (or `net`): its test error on at
    /// most `limit` test images (by default as many as the run's own evaluations use) with each
    /// block deleted in turn, keeping the block's shortcut. A ResNet should shrug off most
    /// single deletions; its plain twin should not.
    #[wasm_bindgen(unchecked_return_type = "Promise<LesionReport>")]
    pub fn lesion(&self, limit: Option<usize>, net: Option<String>) -> Promise {
        let session = self.session.clone();
        let test = self.data.test.clone();
        let index = self.net_index(net);
        future_to_promise(async move {
            let index = index?;
            let (model, normalization, limit, batch, device) = {
                let s = session.try_borrow().map_err(|_| busy())?;
                let t = &s.nets[index].trainer;
                let normalization = t.config().normalization.clone();
                let limit = limit.or(s.cadence.eval_limit);
                (
                    t.resnet().map_err(train_error)?,
                    normalization,
                    limit,
                    s.cadence.eval_batch,
                    t.device(),
                )
            };
            let report =
                crate::train::analyse::lesion(&model, &normalization, &test, limit, batch, &device)
                    .await
                    .map_err(train_error)?;
            Ok(to_js(&report))
        })
    }

    /// The shattered-gradients measurement of Balduzzi et al. 2017 on the first net (or
    /// `net`): the correlation of the input gradients of `images` test images and of nearby
    /// copies (perturbation `noise`, in normalised units), block by block. A plain net's
    /// gradients decorrelate with depth; a ResNet's stay correlated.
    #[wasm_bindgen(js_name = gradientCorrelation, unchecked_return_type = "Promise<GradientCorrelation>")]
    pub fn gradient_correlation(
        &self,
        images: Option<usize>,
        noise: Option<f32>,
        net: Option<String>,
    ) -> Promise {
        use crate::train::correlation::{DEFAULT_IMAGES, DEFAULT_NOISE, gradient_correlation};
        let session = self.session.clone();
        let test = self.data.test.clone();
        let index = self.net_index(net);
        future_to_promise(async move {
            let index = index?;
            let (model, normalization, device) = {
                let s = session.try_borrow().map_err(|_| busy())?;
                let t = &s.nets[index].trainer;
                (
                    t.resnet().map_err(train_error)?,
                    t.config().normalization.clone(),
                    t.device(),
                )
            };
            let report = gradient_correlation(
                &model,
                &normalization,
                &test,
                images.unwrap_or(DEFAULT_IMAGES),
                noise.unwrap_or(DEFAULT_NOISE),
                &device,
            )
            .await
            .map_err(train_error)?;
            Ok(to_js(&report))
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
}
