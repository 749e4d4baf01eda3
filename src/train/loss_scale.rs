//! Dynamic loss scaling for f16 convolutions ([crate::model::amp]), with PyTorch's GradScaler
//! rule: the loss is multiplied by a scale before the backward pass so that small gradients
//! stay above f16's smallest normal (6e-5) on the way back, and the update divides it out. A
//! step whose gradients overflowed (inf or NaN anywhere) is skipped and the scale halved;
//! after [GROWTH_INTERVAL] clean steps in a row the scale doubles.

use serde::{Deserialize, Serialize};

/// The first scale (PyTorch's default, 2^16).
pub const INITIAL: f32 = 65536.0;
/// Clean steps in a row after which the scale doubles (PyTorch's default).
pub const GROWTH_INTERVAL: usize = 2000;

/// The scale and its clean-step count: part of a trainer's state (snapshots keep it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LossScale {
    /// What the loss is multiplied by before the backward pass.
    pub scale: f32,
    /// Clean steps since the scale last changed.
    pub clean_steps: usize,
}

impl Default for LossScale {
    fn default() -> Self {
        Self {
            scale: INITIAL,
            clean_steps: 0,
        }
    }
}

/// What to do with a step's gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Finite: apply the update.
    Apply,
    /// Overflowed: skip the update (the scale was halved).
    Skip,
    /// Overflowed at scale 1, where the gradients are the true ones: they do not fit f16.
    OutOfRange,
}

impl LossScale {
    /// Records whether a step's (scaled) gradients were all finite.
    pub fn observe(&mut self, finite: bool) -> Verdict {
        if !finite {
            self.clean_steps = 0;
            if self.scale <= 1.0 {
                return Verdict::OutOfRange;
            }
            self.scale = (self.scale / 2.0).max(1.0);
            return Verdict::Skip;
        }
        self.clean_steps += 1;
        if self.clean_steps == GROWTH_INTERVAL {
            self.clean_steps = 0;
            // f32's range caps it long before any real net gets there.
            self.scale = (self.scale * 2.0).min(2f32.powi(100));
        }
        Verdict::Apply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_halves_and_skips_clean_steps_double_after_the_interval() {
        let mut s = LossScale::default();
        assert_eq!(s.observe(false), Verdict::Skip);
        assert_eq!(s.scale, 32768.0);
        for _ in 0..GROWTH_INTERVAL - 1 {
            assert_eq!(s.observe(true), Verdict::Apply);
        }
        assert_eq!(s.scale, 32768.0, "not yet");
        s.observe(true);
        assert_eq!((s.scale, s.clean_steps), (65536.0, 0));
        // An overflow restarts the count.
        for _ in 0..10 {
            s.observe(true);
        }
        s.observe(false);
        assert_eq!((s.scale, s.clean_steps), (32768.0, 0));
    }

    #[test]
    fn overflow_at_scale_one_is_out_of_range() {
        let mut s = LossScale {
            scale: 2.0,
            clean_steps: 5,
        };
        assert_eq!(s.observe(false), Verdict::Skip);
        assert_eq!(s.scale, 1.0);
        assert_eq!(s.observe(false), Verdict::OutOfRange);
    }
}

/// The trainer's side of loss scaling (natively: the tests block on the async step).
#[cfg(all(test, not(target_family = "wasm")))]
mod trainer_tests {
    use super::*;

    /// A ResNet-8 trainer on 16 Shapes images, plain gradient descent, convolutions in `amp`.
    fn trainer(
        amp: crate::model::amp::Amp,
    ) -> (crate::train::Trainer, crate::data::dataset::Dataset) {
        use crate::data::dataset::Dataset;
        use crate::data::synthetic::Shapes;
        use crate::train::recipe::{OptimizerSpec, ScheduleKind, ScheduleSpec};
        let data = Dataset::Shapes(Shapes {
            len: 16,
            ..Shapes::train(1)
        });
        let spec = crate::train::RunSpec {
            arch: "resnet8".into(),
            batch_size: 8,
            augment: false,
            amp,
            optimizer: OptimizerSpec {
                lr: Some(0.1),
                momentum: 0.0,
                weight_decay: 0.0,
                ..Default::default()
            },
            schedule: ScheduleSpec {
                kind: Some(ScheduleKind::Constant),
                ..Default::default()
            },
            ..Default::default()
        };
        let model = crate::model::network::parse("resnet8").unwrap();
        let config = spec
            .train_config(model, data.len(), data.channel_statistics(16))
            .unwrap();
        let trainer = crate::train::Trainer::new(config, &data, &burn::tensor::Device::flex());
        (trainer.unwrap(), data)
    }

    /// Every weight of the net, flattened.
    fn weights(trainer: &crate::train::Trainer) -> Vec<f32> {
        let crate::model::Network::ResNet(net) = trainer.model() else {
            unreachable!()
        };
        let mut all = net
            .conv1
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        all.extend(net.fc.weight.val().into_data().try_to_vec::<f32>().unwrap());
        all
    }

    /// f16 and bf16 steps move the weights as the f32 step does, within their rounding, and
    /// report the true (unscaled) gradient norms.
    #[test]
    fn mixed_precision_steps_update_like_f32() {
        use crate::model::amp::Amp;
        let step = |trainer: &mut crate::train::Trainer, data| {
            pollster::block_on(trainer.step(data)).unwrap()
        };
        let (mut full, data) = trainer(Amp::Off);
        let before = weights(&full);
        // The mixed trainers start from this one's weights (a seeded init would race with
        // the tests that draw from flex's generator meanwhile).
        let initial = full.model();
        let want = step(&mut full, &data);
        let moved: Vec<f32> = weights(&full)
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect();
        let largest = moved.iter().fold(0f32, |m, d| m.max(d.abs()));
        assert!(
            largest > 1e-3,
            "the f32 step moved the weights by {largest}"
        );
        // Relative bounds on the gradient norms and on the update (of the largest weight
        // change). Measured: f16 0.8 % and 2.1 %, bf16 2.5 % and 4.1 %. flex runs an f16
        // convolution's gemm in f16 (bf16 goes through f32), so f16's weight gradients lose
        // more than its 11 bits suggest.
        for (amp, norms, update) in [(Amp::F16, 0.02, 0.05), (Amp::Bf16, 0.05, 0.1)] {
            let config = trainer(amp).0.config().clone();
            let device = burn::tensor::Device::flex();
            let classes = data.classes();
            let mut mixed =
                crate::train::Trainer::with_model(config, initial.clone(), classes, 16, &device)
                    .unwrap();
            assert_eq!(weights(&mixed), before, "the same weights");
            mixed.loss_scale = mixed.loss_scale.map(|_| LossScale {
                scale: 1024.0,
                clean_steps: 0,
            });
            let got = step(&mut mixed, &data);
            assert!(!got.skipped);
            assert_eq!(got.loss_scale, (amp == Amp::F16).then_some(1024.0));
            assert!(
                (got.loss - want.loss).abs() < 1e-3 * want.loss,
                "{amp:?}: loss {} vs {}",
                got.loss,
                want.loss
            );
            for (g, w) in got.grad_norms.iter().zip(&want.grad_norms) {
                assert!(
                    (g - w).abs() <= norms * w,
                    "{amp:?}: gradient norm {g} vs {w}"
                );
            }
            let error = weights(&mixed)
                .iter()
                .zip(&before)
                .zip(&moved)
                .fold(0f32, |m, ((a, b), d)| m.max((a - b - d).abs()));
            assert!(
                error < update * largest,
                "{amp:?}: update off by {error} (of {largest})"
            );
        }
    }

    /// With the loss scaled by 2^40 the f16 gradients overflow: the update is skipped (the
    /// weights stay), the scale halves, and the snapshot keeps the scale.
    #[test]
    fn an_overflowing_f16_step_is_skipped_and_halves_the_scale() {
        use crate::model::amp::Amp;
        let (mut trainer, data) = trainer(Amp::F16);
        assert_eq!(trainer.loss_scale, Some(LossScale::default()));
        let huge = 2f32.powi(40);
        trainer.loss_scale = Some(LossScale {
            scale: huge,
            clean_steps: 7,
        });
        let before = weights(&trainer);
        let m = pollster::block_on(trainer.step(&data)).unwrap();
        assert!(m.skipped && m.loss.is_finite(), "{m:?}");
        assert_eq!(m.loss_scale, Some(huge));
        assert_eq!(trainer.step_count(), 1, "the batch counts as a step");
        assert_eq!(
            weights(&trainer),
            before,
            "a skipped step keeps the weights"
        );
        let halved = LossScale {
            scale: huge / 2.0,
            clean_steps: 0,
        };
        assert_eq!(trainer.loss_scale, Some(halved.clone()));

        let snapshot = pollster::block_on(trainer.snapshot()).unwrap();
        let restored =
            crate::train::Trainer::restore(snapshot, &burn::tensor::Device::flex()).unwrap();
        assert_eq!(restored.loss_scale, Some(halved));
        assert_eq!(restored.config().amp, Amp::F16);

        trainer.loss_scale = Some(LossScale::default());
        trainer.loss_scale.as_mut().unwrap().scale = 256.0;
        let m = pollster::block_on(trainer.step(&data)).unwrap();
        assert!(!m.skipped);
        assert_ne!(weights(&trainer), before);
        assert_eq!(trainer.loss_scale.as_ref().unwrap().clean_steps, 1);
    }
}
