//! Training: one core for the browser and the native CLI.
//!
//! - [`config`]: what defines a run and what a step or an evaluation measures.
//! - [`schedule`]: the paper's learning-rate schedules and warm-up.
//! - [`sgd`]: SGD with momentum and weight decay, state keyed by parameter path.
//! - [`trainer`]: the step (one read-back); [`evaluate`]: test views and errors (of
//!   full-size streamed images too, natively);
//!   [`snapshot`]: save and restore a trainer.
//! - [`recipe`]: the run spec, every default in one place; [`lineup`]: which nets train side
//!   by side; [`session`]: the run loop
//!   (cadence, plateau, divergence) that every face drives; [`events`]: what it reports;
//!   [`change`]: hyper-parameter changes queued to the next step boundary.
//! - [`finetune`]: a new head, optionally on a frozen backbone.
//! - [`analyse`]: the lesion study and [`correlation`]: shattered gradients (why residual
//!   learning works, on the user's net).
//! - [`learner`]: the native run directory (checkpoints, metrics, resume).

pub mod analyse;
pub mod change;
pub mod config;
pub mod correlation;
pub mod evaluate;
#[cfg(not(target_family = "wasm"))]
mod evaluate_files;
pub mod events;
pub mod finetune;
pub mod gradients;
#[cfg(not(target_family = "wasm"))]
pub mod learner;
pub mod lineup;
pub mod loss_scale;
pub mod recipe;
#[cfg(not(target_family = "wasm"))]
mod replicas;
pub mod schedule;
pub mod session;
pub mod sgd;
pub mod snapshot;
pub mod trainer;

pub use config::{EvalReport, StepMetrics, TrainConfig, TrainError, check_batch_memory};
pub use recipe::RunSpec;
pub use schedule::{ErrorWarmup, LrPolicy, Schedule};
pub use session::{Cadence, Event, Session};
pub use sgd::{Sgd, SgdConfig};
pub use trainer::Trainer;
