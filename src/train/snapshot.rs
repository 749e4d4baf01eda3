//! Snapshots: a trainer's model, momentum buffers, data order, RNG and step as one Burnpack
//! file, and the way back. A snapshot read from disk or IndexedDB is input like any other:
//! it is checked before it is trusted.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::store::burn_pack::{self, Reader, Tensor as PackTensor, Writer};
use burn::tensor::{DType, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::config::{TrainConfig, TrainError};
use super::trainer::Trainer;
use crate::data::dataset::Sampler;
use crate::data::rng::Rng;
use crate::io::Precision;

/// What a snapshot stores beside the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    config: TrainConfig,
    sampler: Sampler,
    rng: u64,
    step: usize,
    classes: Vec<String>,
    /// The run spec (absent in snapshots written before specs existed).
    #[serde(default)]
    spec: Option<super::recipe::RunSpec>,
    /// f16 loss scaling's state (absent without it, and in snapshots written before it).
    #[serde(default)]
    loss_scale: Option<super::loss_scale::LossScale>,
}

/// Metadata key of a snapshot's [TrainerState].
const STATE_KEY: &str = "resnet.trainer";
/// Prefix of momentum buffers in a snapshot.
const VELOCITY: &str = "sgd.velocity.";

impl Trainer {
    /// Model, momentum buffers and trainer state as one Burnpack (async reads only).
    pub async fn snapshot(&self) -> Result<Vec<u8>, TrainError> {
        // `model()` syncs the BN running statistics the last forward pass updated.
        let mut tensors = crate::io::read_tensors(&self.model(), Precision::F32)
            .await
            .map_err(|e| TrainError::Device(e.to_string()))?;
        for (path, velocity) in &self.sgd.velocity {
            let data = velocity
                .clone()
                .inner()
                .into_data_async()
                .await
                .map_err(|e| TrainError::Device(format!("{e:?}")))?;
            let shape = data.shape().clone();
            let (bytes, _, dtype) = data.into_parts();
            tensors.push(PackTensor::new(
                format!("{VELOCITY}{path}"),
                dtype,
                shape,
                None,
                bytes,
            ));
        }
        let state = TrainerState {
            config: self.config.clone(),
            sampler: self.sampler.clone(),
            rng: self.rng.state(),
            step: self.step,
            classes: self.classes.clone(),
            spec: self.spec.clone(),
            loss_scale: self.loss_scale.clone(),
        };
        let card =
            serde_json::to_string(&self.card(Some(format!("snapshot at step {}", self.step))))
                .expect("card serialises");
        let state = serde_json::to_string(&state).expect("state serialises");
        Writer::new(tensors)
            .with_metadata(crate::io::CARD_KEY, &card)
            .with_metadata(STATE_KEY, &state)
            .into_bytes()
            .map(|b| b.to_vec())
            .map_err(|e| TrainError::Snapshot(e.to_string()))
    }

    /// Rebuilds a trainer from [snapshot](Self::snapshot) bytes on `device`.
    pub fn restore(bytes: Vec<u8>, device: &Device) -> Result<Self, TrainError> {
        let bad = |e: &dyn std::fmt::Display| TrainError::Snapshot(e.to_string());
        let reader =
            Reader::from_bytes(burn_pack::Bytes::from_bytes_vec(bytes)).map_err(|e| bad(&e))?;
        let state: TrainerState = match reader.metadata().get(STATE_KEY) {
            Some(json) => serde_json::from_str(json).map_err(|e| bad(&e))?,
            None => {
                return Err(bad(
                    &"this is a weights file, not a training snapshot (no trainer state)",
                ));
            }
        };
        state.validate().map_err(|e| bad(&e))?;
        let (velocity, params): (Vec<PackTensor>, Vec<PackTensor>) = reader
            .into_tensors()
            .map_err(|e| bad(&e))?
            .into_iter()
            .partition(|t| t.name.starts_with(VELOCITY));
        let device = device.clone().autodiff();
        let model = state.config.model.init(&device);
        let model = crate::io::WeightsFile::from_tensors("snapshot", params)
            .apply_network(model, &state.config.model)
            .map_err(|e| bad(&e))?;
        let mut trainer = Self::with_model(
            state.config,
            model,
            state.classes,
            state.sampler.len,
            &device,
        )?;
        trainer.sampler = state.sampler;
        trainer.rng = Rng::from_state(state.rng);
        trainer.step = state.step;
        trainer.spec = state.spec;
        if trainer.loss_scale.is_some() {
            trainer.loss_scale = state.loss_scale.or(trainer.loss_scale);
        }
        let counts = parameter_counts(&trainer.model);
        for t in velocity {
            let name = t.name[VELOCITY.len()..].to_string();
            let (_, dtype, shape, _, bytes) = t.into_parts().map_err(|e| bad(&e))?;
            // A momentum buffer must belong to a parameter and hold exactly its f32 values:
            // anything else would fail (or panic) at the next update, far from its cause.
            let Some(&expected) = counts.get(&name) else {
                return Err(bad(&format!(
                    "momentum buffer '{name}' belongs to no parameter of {}",
                    trainer.config.model.name()
                )));
            };
            let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            if dtype != DType::F32 || count != Some(expected) || bytes.len() != expected * 4 {
                return Err(bad(&format!(
                    "momentum buffer '{name}' is {dtype:?} {shape:?} ({} bytes); the parameter has {expected} f32 values",
                    bytes.len()
                )));
            }
            let data = TensorData::from_bytes(bytes, shape, dtype);
            trainer.sgd.velocity.insert(
                name,
                Tensor::from_data(data, &trainer.device.clone().inner()),
            );
        }
        Ok(trainer)
    }
}

impl TrainerState {
    /// Refuses a state that no trainer could have written: a model, optimizer or schedule out
    /// of range, a data order that does not fit its batch size, classes that do not match.
    fn validate(&self) -> Result<(), String> {
        self.config.validate()?;
        let s = &self.sampler;
        if s.batch_size != self.config.batch_size {
            return Err(format!(
                "the data order has batches of {}, the run {}",
                s.batch_size, self.config.batch_size
            ));
        }
        if s.len < s.batch_size || s.position > s.batches_per_epoch() {
            return Err(format!(
                "the data order (position {} of {} batches of {} over {} images) is inconsistent",
                s.position,
                s.batches_per_epoch(),
                s.batch_size,
                s.len
            ));
        }
        if self.classes.len() != self.config.model.num_classes() {
            return Err(format!(
                "{} class names for a network with {} outputs",
                self.classes.len(),
                self.config.model.num_classes()
            ));
        }
        Ok(())
    }
}

/// Number of values of every parameter, by the path the optimizer keys its state with.
fn parameter_counts(model: &crate::model::Network) -> BTreeMap<String, usize> {
    #[derive(Default)]
    struct Counter {
        path: crate::model::network::ModulePath,
        counts: BTreeMap<String, usize>,
    }
    impl ModuleVisitor for Counter {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.path.enter(name, container_type);
        }
        fn exit_module(&mut self, _name: &str, container_type: &str) {
            self.path.exit(container_type);
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let count = param.shape().num_elements();
            self.counts.insert(self.path.joined(), count);
        }
    }
    let mut counter = Counter::default();
    model.visit(&mut counter);
    counter.counts
}
