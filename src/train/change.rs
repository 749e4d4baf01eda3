//! Hyper-parameter changes asked for while a run goes on: checked when asked, queued, and
//! applied by the [Session](super::Session) at the next step boundary.

use serde::Deserialize;

use super::config::{TrainConfig, TrainError};
use super::trainer::Trainer;

/// A change of hyper-parameters, queued until the next step boundary.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HyperparameterChange {
    /// New base learning rate.
    pub lr: Option<f64>,
    /// New momentum.
    pub momentum: Option<f64>,
    /// New weight decay.
    pub weight_decay: Option<f64>,
    /// Nesterov on or off.
    pub nesterov: Option<bool>,
}

impl HyperparameterChange {
    /// `config` with the change, refused if a value is out of range.
    fn on(&self, config: &TrainConfig) -> Result<TrainConfig, TrainError> {
        let mut config = config.clone();
        if let Some(lr) = self.lr {
            config.lr.base_lr = lr;
        }
        config.sgd.momentum = self.momentum.unwrap_or(config.sgd.momentum);
        config.sgd.weight_decay = self.weight_decay.unwrap_or(config.sgd.weight_decay);
        config.sgd.nesterov = self.nesterov.unwrap_or(config.sgd.nesterov);
        config.validate().map_err(TrainError::Invalid)?;
        Ok(config)
    }

    /// Refuses the change if it would put `config` out of range.
    pub fn check(&self, config: &TrainConfig) -> Result<(), TrainError> {
        self.on(config).map(|_| ())
    }

    /// This change over an `earlier` one still queued: later values win field by field.
    pub fn merged_over(self, earlier: Option<HyperparameterChange>) -> HyperparameterChange {
        let Some(e) = earlier else { return self };
        HyperparameterChange {
            lr: self.lr.or(e.lr),
            momentum: self.momentum.or(e.momentum),
            weight_decay: self.weight_decay.or(e.weight_decay),
            nesterov: self.nesterov.or(e.nesterov),
        }
    }

    /// Applies the change to `trainer` (its momentum buffers are kept); nothing changes if
    /// a value is out of range.
    pub fn apply(&self, trainer: &mut Trainer) -> Result<(), TrainError> {
        let config = self.on(trainer.config())?;
        trainer.set_hyperparameters(config.sgd, config.lr);
        Ok(())
    }

    pub(super) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.lr {
            parts.push(format!("lr {v}"));
        }
        if let Some(v) = self.momentum {
            parts.push(format!("momentum {v}"));
        }
        if let Some(v) = self.weight_decay {
            parts.push(format!("weight decay {v}"));
        }
        if let Some(v) = self.nesterov {
            parts.push(format!("nesterov {v}"));
        }
        parts.join(", ")
    }
}
