//! Training: one core for the browser and the native CLI.
//!
//! - [`schedule`]: the paper's learning-rate schedules and warm-up.
//! - [`sgd`]: SGD with momentum and weight decay, state keyed by parameter path.
//! - [`trainer`]: the step (one read-back), evaluation and snapshots.

pub mod finetune;
#[cfg(not(target_family = "wasm"))]
pub mod learner;
pub mod schedule;
pub mod sgd;
pub mod trainer;

pub use schedule::{ErrorWarmup, LrPolicy, Schedule};
pub use sgd::{Sgd, SgdConfig};
pub use trainer::{EvalReport, StepMetrics, TrainConfig, TrainError, Trainer, check_batch_memory};
