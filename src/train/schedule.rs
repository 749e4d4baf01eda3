//! Learning-rate schedules: the paper's CIFAR milestones and ImageNet ÷10 on plateau,
//! torchvision's step every 30 epochs, cosine with linear warm-up, and the paper's
//! ResNet-110 warm-up (0.01 until the training error is below 80%).

use serde::{Deserialize, Serialize};

/// How the learning rate evolves with the iteration count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Section 4.2: ÷10 at 32k and 48k of 64k iterations (batch 128, 45k images), i.e. at
    /// 1/2 and 3/4 of the run, whatever its length.
    PaperCifar {
        /// Iterations of the whole run.
        total: usize,
    },
    /// ×`gamma` every `every` iterations (torchvision: 0.1 every 30 epochs).
    Step {
        /// Iterations between decays.
        every: usize,
        /// Factor applied at each decay.
        gamma: f64,
    },
    /// Section 3.4: ÷10 when the monitored error stops improving (ImageNet).
    Plateau {
        /// Evaluations without improvement before a decay.
        patience: usize,
        /// Smallest relative improvement that counts.
        threshold: f64,
    },
    /// Linear warm-up from 0 over `warmup` iterations, then half a cosine down to 0 at `total`.
    Cosine {
        /// Warm-up iterations.
        warmup: usize,
        /// Iterations of the whole run.
        total: usize,
    },
}

/// The ResNet-110 trick of section 4.2: a small rate until training is under way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorWarmup {
    /// The rate used while warming up (0.01 in the paper).
    pub lr: f64,
    /// Warm-up ends once the training error falls below this (0.8 in the paper).
    pub until_error_below: f64,
}

/// A schedule with its state: where a plateau schedule stands, whether warm-up is over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrPolicy {
    /// Rate before any decay (0.1 in the paper).
    pub base_lr: f64,
    /// The schedule.
    pub schedule: Schedule,
    /// Optional error-based warm-up.
    pub warmup: Option<ErrorWarmup>,
    /// Decays a plateau schedule has applied.
    pub plateau_decays: u32,
    /// Best monitored error so far (plateau).
    pub best_error: Option<f64>,
    /// Evaluations since the best (plateau).
    pub since_best: usize,
    /// Whether the error warm-up has ended.
    pub warmed_up: bool,
}

impl LrPolicy {
    /// A policy starting at `base_lr`.
    pub fn new(base_lr: f64, schedule: Schedule) -> Self {
        Self {
            base_lr,
            schedule,
            warmup: None,
            plateau_decays: 0,
            best_error: None,
            since_best: 0,
            warmed_up: false,
        }
    }

    /// With the paper's ResNet-110 warm-up.
    pub fn with_error_warmup(mut self, warmup: ErrorWarmup) -> Self {
        self.warmup = Some(warmup);
        self
    }

    /// The rate for iteration `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if let Some(w) = &self.warmup
            && !self.warmed_up
        {
            return w.lr;
        }
        let base = self.base_lr;
        match &self.schedule {
            Schedule::Constant => base,
            Schedule::PaperCifar { total } => {
                let decays = (step >= total / 2) as i32 + (step >= total * 3 / 4) as i32;
                base * 0.1f64.powi(decays)
            }
            Schedule::Step { every, gamma } => base * gamma.powi((step / (*every).max(1)) as i32),
            Schedule::Plateau { .. } => base * 0.1f64.powi(self.plateau_decays as i32),
            Schedule::Cosine { warmup, total } => {
                if step < *warmup {
                    base * (step + 1) as f64 / *warmup as f64
                } else {
                    let span = total.saturating_sub(*warmup).max(1) as f64;
                    let t = ((step - warmup) as f64 / span).min(1.0);
                    base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
                }
            }
        }
    }

    /// Reports the training error of the latest step (ends the error warm-up).
    pub fn observe_train_error(&mut self, error: f64) {
        if let Some(w) = &self.warmup
            && error < w.until_error_below
        {
            self.warmed_up = true;
        }
    }

    /// Reports an evaluation's error (drives the plateau schedule); returns whether it decayed.
    pub fn observe_eval_error(&mut self, error: f64) -> bool {
        let Schedule::Plateau {
            patience,
            threshold,
        } = self.schedule
        else {
            return false;
        };
        match self.best_error {
            Some(best) if error >= best * (1.0 - threshold) => {
                self.since_best += 1;
                if self.since_best > patience {
                    self.plateau_decays += 1;
                    self.since_best = 0;
                    self.best_error = Some(error);
                    return true;
                }
            }
            _ => {
                self.best_error = Some(error);
                self.since_best = 0;
            }
        }
        false
    }

    /// The iteration at which training stops, if the schedule has one.
    pub fn total(&self) -> Option<usize> {
        match &self.schedule {
            Schedule::PaperCifar { total } | Schedule::Cosine { total, .. } => Some(*total),
            _ => None,
        }
    }
}

/// The paper's CIFAR run length, 64k iterations of batch 128 over 45k images (182 epochs),
/// scaled to a dataset of `images` and a batch of `batch`.
pub fn paper_cifar_iterations(images: usize, batch: usize) -> usize {
    (64_000.0 * images as f64 / 45_000.0 * 128.0 / batch as f64).round() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn paper_cifar_divides_by_ten_at_32k_and_48k() {
        let total = paper_cifar_iterations(45_000, 128);
        assert_eq!(total, 64_000);
        let p = LrPolicy::new(0.1, Schedule::PaperCifar { total });
        assert!(close(p.lr(0), 0.1) && close(p.lr(31_999), 0.1));
        assert!(close(p.lr(32_000), 0.01) && close(p.lr(47_999), 0.01));
        assert!(close(p.lr(48_000), 0.001) && close(p.lr(63_999), 0.001));
        assert_eq!(p.total(), Some(64_000));
        // Scales with the data: 50k images at batch 64 is 142,222 iterations.
        assert_eq!(paper_cifar_iterations(50_000, 64), 142_222);
    }

    #[test]
    fn torchvision_steps_every_30_epochs() {
        let per_epoch = 5_005; // 1.28M images / 256
        let p = LrPolicy::new(
            0.1,
            Schedule::Step {
                every: 30 * per_epoch,
                gamma: 0.1,
            },
        );
        assert!(close(p.lr(30 * per_epoch - 1), 0.1));
        assert!(close(p.lr(30 * per_epoch), 0.01));
        assert!(close(p.lr(60 * per_epoch), 0.001));
    }

    #[test]
    fn plateau_divides_by_ten_when_the_error_stalls() {
        let mut p = LrPolicy::new(
            0.1,
            Schedule::Plateau {
                patience: 2,
                threshold: 0.01,
            },
        );
        for error in [0.5, 0.4, 0.35] {
            assert!(!p.observe_eval_error(error));
        }
        assert!(!p.observe_eval_error(0.349)); // < 1% better: stalled 1
        assert!(!p.observe_eval_error(0.36)); // stalled 2
        assert!(p.observe_eval_error(0.351)); // stalled 3 > patience: decay
        assert!(close(p.lr(0), 0.01));
    }

    #[test]
    fn cosine_warms_up_linearly_then_decays_to_zero() {
        let p = LrPolicy::new(
            0.4,
            Schedule::Cosine {
                warmup: 10,
                total: 110,
            },
        );
        assert!(close(p.lr(0), 0.04) && close(p.lr(9), 0.4));
        assert!(close(p.lr(60), 0.2));
        assert!(p.lr(109) < 1e-3 && close(p.lr(110), 0.0));
    }

    #[test]
    fn resnet110_warm_up_holds_0_01_until_the_error_is_below_80_percent() {
        let mut p = LrPolicy::new(0.1, Schedule::PaperCifar { total: 64_000 }).with_error_warmup(
            ErrorWarmup {
                lr: 0.01,
                until_error_below: 0.8,
            },
        );
        assert!(close(p.lr(0), 0.01));
        p.observe_train_error(0.85);
        assert!(close(p.lr(100), 0.01));
        p.observe_train_error(0.79);
        assert!(close(p.lr(101), 0.1));
        p.observe_train_error(0.95); // once over, it stays over
        assert!(close(p.lr(102), 0.1));
    }
}
