//! The run loop, once for every face: the native run directory ([super::learner]) and the
//! browser's `Trainer` both drive a [Session] and only react to the [Event]s it emits.
//!
//! A session owns the step budget, the evaluation and snapshot cadence, the feeding of the
//! plateau schedule, divergence (a diverged net stops, its twin goes on) and queued
//! hyper-parameter changes (applied at the next step boundary, never mid-step). It has no
//! filesystem, no threads and no clock of its own: the face passes one in.

use std::cell::RefCell;
use std::rc::Rc;

pub use super::change::HyperparameterChange;
use super::config::{EvalReport, StepMetrics, TrainError};
pub use super::events::{EpochMeans, EpochSummary, Event};
use super::recipe::RunSpec;
use super::trainer::Trainer;
use crate::data::dataset::Dataset;

/// When to evaluate, snapshot and stop.
#[derive(Debug, Clone, PartialEq)]
pub struct Cadence {
    /// Every net stops at this many steps.
    pub iterations: usize,
    /// Steps between evaluations (and one at the last step).
    pub eval_every: usize,
    /// Test images per evaluation (all if `None`).
    pub eval_limit: Option<usize>,
    /// Images per evaluation batch.
    pub eval_batch: usize,
    /// Steps between snapshots (and one at every epoch end and at the last step).
    pub snapshot_every: usize,
    /// Milliseconds between snapshots, as well.
    pub snapshot_ms: Option<f64>,
    /// Steps each net takes per [Session::round].
    pub steps_per_round: usize,
}

impl Cadence {
    /// The cadence a spec asks for, on `train_len` training images.
    pub fn from_spec(spec: &RunSpec, train_len: usize) -> Self {
        Self {
            iterations: spec.iterations(train_len),
            eval_every: spec.eval_every(train_len),
            eval_limit: spec.eval_limit,
            eval_batch: 100,
            snapshot_every: spec.checkpoint_every.max(1),
            snapshot_ms: spec.snapshot_seconds.map(|s| s * 1e3),
            steps_per_round: spec.steps_per_round.max(1),
        }
    }
}

/// One net of a session.
pub struct Net {
    /// "residual", "plain" or "single".
    pub name: String,
    /// Its trainer.
    pub trainer: Trainer,
    /// Why it stopped early, if it diverged.
    pub diverged: Option<TrainError>,
    /// Its latest evaluation.
    pub last_eval: Option<EvalReport>,
    epoch: EpochMeans,
}

impl Net {
    /// A net whose current epoch already has `epoch` (a resumed run's logged steps).
    pub fn new(name: impl Into<String>, trainer: Trainer, epoch: EpochMeans) -> Self {
        Self {
            name: name.into(),
            trainer,
            diverged: None,
            last_eval: None,
            epoch,
        }
    }
}

/// Several nets (a residual net and its plain twin, or one) trained in turn on the same data
/// order, under one cadence.
pub struct Session {
    /// The nets, in the order they step.
    pub nets: Vec<Net>,
    /// When to evaluate, snapshot and stop.
    pub cadence: Cadence,
    /// The spec the run was made from.
    pub spec: RunSpec,
    pending: Rc<RefCell<Option<HyperparameterChange>>>,
    clock: fn() -> f64,
    last_snapshot_ms: Option<f64>,
    finished: bool,
}

impl Session {
    /// A session over `nets`; `clock` returns milliseconds from any origin.
    pub fn new(spec: RunSpec, nets: Vec<Net>, cadence: Cadence, clock: fn() -> f64) -> Self {
        Self {
            nets,
            cadence,
            spec,
            pending: Rc::new(RefCell::new(None)),
            clock,
            last_snapshot_ms: None,
            finished: false,
        }
    }

    /// Where hyper-parameter changes are queued: a handle that can be written while a round
    /// is in flight (the page's Apply button), read at the next step boundary.
    pub fn pending(&self) -> Rc<RefCell<Option<HyperparameterChange>>> {
        self.pending.clone()
    }

    /// Queues a change after checking it against every net (an invalid one is refused now).
    pub fn queue(&self, change: HyperparameterChange) -> Result<(), TrainError> {
        check_change(&self.nets, &change)?;
        let mut pending = self.pending.borrow_mut();
        *pending = Some(change.merged_over(pending.take()));
        Ok(())
    }

    /// The furthest step of any net.
    pub fn step(&self) -> usize {
        self.nets
            .iter()
            .map(|n| n.trainer.step_count())
            .max()
            .unwrap_or(0)
    }

    /// Whether every net is done.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn active(&self) -> Vec<usize> {
        (0..self.nets.len())
            .filter(|&i| {
                let net = &self.nets[i];
                net.diverged.is_none() && net.trainer.step_count() < self.cadence.iterations
            })
            .collect()
    }

    /// Steps each active net `steps_per_round` times, evaluating and asking for snapshots as
    /// the cadence says; returns whether the run is finished. A diverged net is reported and
    /// skipped from then on; any other error (a lost device) ends the round with it.
    pub async fn round(
        &mut self,
        train: &Dataset,
        test: &Dataset,
        emit: &mut dyn FnMut(Event),
    ) -> Result<bool, TrainError> {
        if self.finished {
            return Ok(true);
        }
        let mut snapshot_due = false;
        for i in self.active() {
            for _ in 0..self.cadence.steps_per_round {
                if self.nets[i].trainer.step_count() >= self.cadence.iterations {
                    break;
                }
                let Some(metrics) = self.advance(i, train, emit).await? else {
                    break;
                };
                let step = metrics.step;
                if step % self.cadence.eval_every == 0 || step >= self.cadence.iterations {
                    self.evaluate(i, test, emit).await?;
                }
                snapshot_due |= step % self.cadence.snapshot_every == 0
                    || self.nets[i].trainer.at_epoch_end()
                    || step >= self.cadence.iterations;
            }
        }
        let now = (self.clock)();
        let last = *self.last_snapshot_ms.get_or_insert(now);
        if self
            .cadence
            .snapshot_ms
            .is_some_and(|every| now - last >= every)
        {
            snapshot_due = true;
        }
        if snapshot_due {
            self.last_snapshot_ms = Some(now);
            emit(Event::Snapshot { step: self.step() });
        }
        if self.active().is_empty() {
            self.finished = true;
            emit(Event::Finished { step: self.step() });
        }
        Ok(self.finished)
    }

    /// `n` steps of net `i` with no evaluation or snapshot (the npm `trainer.step(n)`):
    /// queued changes apply first, epochs are reported; a divergence ends it with the error.
    pub async fn train_steps(
        &mut self,
        i: usize,
        n: usize,
        train: &Dataset,
        emit: &mut dyn FnMut(Event),
    ) -> Result<Vec<StepMetrics>, TrainError> {
        let mut steps = Vec::with_capacity(n);
        for _ in 0..n {
            match self.advance(i, train, emit).await? {
                Some(metrics) => steps.push(metrics),
                None => {
                    let err = self.nets[i].diverged.clone();
                    return Err(err.expect("a net that did not advance diverged"));
                }
            }
        }
        Ok(steps)
    }

    /// One step of net `i` after applying queued changes, with its step and epoch events;
    /// `None` if it diverged (reported, and the net stops).
    async fn advance(
        &mut self,
        i: usize,
        train: &Dataset,
        emit: &mut dyn FnMut(Event),
    ) -> Result<Option<StepMetrics>, TrainError> {
        self.apply_pending(emit)?;
        let iterations = self.cadence.iterations;
        let started = (self.clock)();
        let net = &mut self.nets[i];
        let metrics = match net.trainer.step(train).await {
            Ok(m) => m,
            Err(err @ TrainError::Diverged { .. }) => {
                emit(Event::Diverged {
                    net: net.name.clone(),
                    message: err.to_string(),
                });
                net.diverged = Some(err);
                return Ok(None);
            }
            Err(err) => return Err(err),
        };
        let ms = ((self.clock)() - started).max(1e-3);
        let images_per_second = net.trainer.config().batch_size as f64 * 1e3 / ms;
        net.epoch.add(&metrics, images_per_second);
        emit(Event::Step {
            net: net.name.clone(),
            metrics: metrics.clone(),
            images_per_second,
        });
        let epoch_ended = net.trainer.at_epoch_end();
        if epoch_ended || metrics.step >= iterations {
            let summary = net.epoch.summary(&metrics, epoch_ended);
            net.epoch = EpochMeans::default();
            emit(Event::Epoch {
                net: net.name.clone(),
                summary,
            });
        }
        Ok(Some(metrics))
    }

    /// Evaluates net `i` on `test` and feeds the error to its learning-rate policy (the
    /// plateau schedule's only input).
    pub async fn evaluate(
        &mut self,
        i: usize,
        test: &Dataset,
        emit: &mut dyn FnMut(Event),
    ) -> Result<EvalReport, TrainError> {
        self.evaluate_with(i, test, self.cadence.eval_limit, emit)
            .await
    }

    /// [evaluate](Self::evaluate) on at most `limit` test images.
    pub async fn evaluate_with(
        &mut self,
        i: usize,
        test: &Dataset,
        limit: Option<usize>,
        emit: &mut dyn FnMut(Event),
    ) -> Result<EvalReport, TrainError> {
        let batch = self.cadence.eval_batch;
        let net = &mut self.nets[i];
        let report = net.trainer.evaluate(test, limit, batch).await?;
        net.trainer.observe_eval_error(report.top1_error as f64);
        net.last_eval = Some(report.clone());
        emit(Event::Eval {
            net: net.name.clone(),
            step: net.trainer.step_count(),
            report: report.clone(),
        });
        Ok(report)
    }

    fn apply_pending(&mut self, emit: &mut dyn FnMut(Event)) -> Result<(), TrainError> {
        let Some(change) = self.pending.borrow_mut().take() else {
            return Ok(());
        };
        check_change(&self.nets, &change)?;
        for net in &mut self.nets {
            change.apply(&mut net.trainer)?;
        }
        emit(Event::Applied {
            step: self.step() + 1,
            description: change.describe(),
        });
        Ok(())
    }
}

/// Refuses a change that any net would refuse.
fn check_change(nets: &[Net], change: &HyperparameterChange) -> Result<(), TrainError> {
    for net in nets {
        change.check(net.trainer.config())?;
    }
    Ok(())
}
