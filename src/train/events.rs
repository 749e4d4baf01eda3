//! What a [Session](super::Session) reports as it runs: steps, epoch means, evaluations,
//! snapshots, divergence and applied changes. The faces log, chart and save in response.

use serde::{Deserialize, Serialize};

use super::config::{EvalReport, StepMetrics};

/// The means of one epoch's steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpochSummary {
    /// The epoch (0-based).
    pub epoch: usize,
    /// The step that ended it.
    pub step: usize,
    /// Steps it had.
    pub steps: usize,
    /// False for the last, unfinished epoch of a run.
    pub complete: bool,
    /// Mean training loss.
    pub loss: f64,
    /// Mean training top-1 error.
    pub top1_error: f64,
    /// Mean training top-5 error.
    pub top5_error: f64,
    /// Mean images per second.
    pub images_per_second: f64,
    /// The rate of its last step.
    pub lr: f64,
}

/// Sums of the current epoch's step metrics.
#[derive(Debug, Clone, Default)]
pub struct EpochMeans {
    steps: usize,
    loss: f64,
    top1_error: f64,
    top5_error: f64,
    images_per_second: f64,
}

impl EpochMeans {
    /// Adds one step.
    pub fn add(&mut self, m: &StepMetrics, images_per_second: f64) {
        self.steps += 1;
        self.loss += m.loss as f64;
        self.top1_error += m.top1_error as f64;
        self.top5_error += m.top5_error as f64;
        self.images_per_second += images_per_second;
    }

    pub(super) fn summary(&self, last: &StepMetrics, complete: bool) -> EpochSummary {
        let n = self.steps.max(1) as f64;
        EpochSummary {
            epoch: last.epoch,
            step: last.step,
            steps: self.steps,
            complete,
            loss: self.loss / n,
            top1_error: self.top1_error / n,
            top5_error: self.top5_error / n,
            images_per_second: self.images_per_second / n,
            lr: last.lr,
        }
    }
}

/// What happened, in order; the faces log, chart and save in response.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A step was taken.
    #[serde(rename_all = "camelCase")]
    Step {
        /// Which net.
        net: String,
        /// What it measured.
        metrics: StepMetrics,
        /// Images per second of this step.
        images_per_second: f64,
    },
    /// An epoch ended (or the run did, mid-epoch).
    Epoch {
        /// Which net.
        net: String,
        /// Its means.
        summary: EpochSummary,
    },
    /// A test-set evaluation (a plateau schedule has already seen it).
    Eval {
        /// Which net.
        net: String,
        /// At which step.
        step: usize,
        /// What it measured.
        report: EvalReport,
    },
    /// Time to save a snapshot of every net (a checkpoint file, an IndexedDB record).
    Snapshot {
        /// The furthest step of any net.
        step: usize,
    },
    /// A net's loss became NaN or infinite: it stops with its last good weights.
    Diverged {
        /// Which net.
        net: String,
        /// Why, for people.
        message: String,
    },
    /// Queued hyper-parameters took effect before this step.
    #[serde(rename_all = "camelCase")]
    Applied {
        /// The first step that uses them.
        step: usize,
        /// What changed, for people.
        description: String,
    },
    /// Every net reached the step budget (or diverged).
    Finished {
        /// The furthest step of any net.
        step: usize,
    },
}
