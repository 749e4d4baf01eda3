//! Evaluation: the loss and top-1 / top-5 hits of a batch (shared with the training step)
//! and test-set evaluation under the paper's test views (center, 10-crop) in eval mode.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Tensor, TensorData};

use super::config::{EvalReport, TrainError};
use super::trainer::Trainer;
use crate::data::augment::{CropPlan, normalize, pad_crop_flip};
use crate::data::dataset::Dataset;
use crate::data::views::{TestView, crop_origins, ten_crop_padding};
use crate::io::Normalization;
use crate::model::{FoldedResNet, Network};
use crate::readback::read_f32;

impl Trainer {
    /// Loss, errors and confusion matrix on (up to `limit` images of) `data`, in eval mode,
    /// in batches of `batch_size`; one read-back per batch.
    pub async fn evaluate(
        &mut self,
        data: &Dataset,
        limit: Option<usize>,
        batch_size: usize,
    ) -> Result<EvalReport, TrainError> {
        let device = self.device.clone().inner();
        evaluate_views(
            &self.model(),
            &self.config.normalization,
            data,
            limit,
            batch_size,
            TestView::Center,
            &device,
        )
        .await
    }
}

/// Cross-entropy (with label smoothing ε) and the top-1 / top-5 hit counts of a batch.
///
/// Hits come from the rank of the target's logit (how many logits beat it), which needs
/// no sort: WebGPU cannot sort without a synchronous read.
///
/// # Shapes
/// - `logits`, `one_hot`: `[batch, classes]`
/// - outputs: `[1]` each
pub fn loss_and_hits(
    logits: Tensor<2>,
    one_hot: Tensor<2>,
    smoothing: f64,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let [_, classes] = logits.dims();
    let target = if smoothing > 0.0 {
        one_hot.clone() * (1.0 - smoothing) + smoothing / classes as f64
    } else {
        one_hot.clone()
    };
    let loss = (target * log_softmax(logits.clone(), 1))
        .sum_dim(1)
        .mean()
        .neg();
    let logits = logits.detach();
    let target_logit = (logits.clone() * one_hot.detach()).sum_dim(1); // [batch, 1]
    let rank = logits.greater(target_logit).float().sum_dim(1); // [batch, 1]
    let top1 = rank.clone().lower_elem(1.0).float().sum();
    let top5 = rank.lower_elem(5.0).float().sum();
    (loss, top1, top5)
}

/// Evaluates `model` (eval mode) on up to `limit` images of `data`, averaging the softmax
/// over the test views: the center (the whole 32x32 image) or the paper's 10-crop (corner and
/// center crops of the image padded by 4, and their mirrors).
pub async fn evaluate_views(
    model: &Network,
    normalization: &Normalization,
    data: &Dataset,
    limit: Option<usize>,
    batch_size: usize,
    views: TestView,
    device: &Device,
) -> Result<EvalReport, TrainError> {
    // A ResNet in eval mode with BN folded into the convolutions: the same logits, fewer
    // passes; the other trees as they are.
    let folded = model.resnet().map(FoldedResNet::new);
    let forward = |x| match &folded {
        Some(folded) => folded.forward(x),
        None => model.forward(x),
    };
    let classes = match &folded {
        Some(folded) => folded.num_classes(),
        None => model.num_classes(),
    };
    let net = Logits {
        forward: &forward,
        classes,
    };
    evaluate_logits(&net, normalization, data, limit, batch_size, views, device).await
}

/// What [evaluate_logits] evaluates: logits of a normalised batch, and their count.
pub(crate) struct Logits<'a> {
    /// Eval-mode logits of a `[batch, 3, h, w]` batch.
    pub forward: &'a dyn Fn(Tensor<4>) -> Tensor<2>,
    /// Number of classes.
    pub classes: usize,
}

/// [evaluate_views] of any logits.
pub(crate) async fn evaluate_logits(
    net: &Logits<'_>,
    normalization: &Normalization,
    data: &Dataset,
    limit: Option<usize>,
    batch_size: usize,
    views: TestView,
    device: &Device,
) -> Result<EvalReport, TrainError> {
    let total = limit.unwrap_or(data.len()).min(data.len());
    if total == 0 {
        return Err(TrainError::Invalid(
            "nothing to evaluate: the dataset is empty".into(),
        ));
    }
    #[cfg(not(target_family = "wasm"))]
    if let Some(files) = data.files() {
        return super::evaluate_files::evaluate_files(
            net,
            normalization,
            files,
            total,
            batch_size,
            views,
            device,
        )
        .await;
    }
    if views == TestView::MultiScale {
        return Err(TrainError::Invalid(
            "multi-scale testing needs full-size images: use `resnet classify --views multi-scale`"
                .into(),
        ));
    }
    // The views come from data/views.rs, the same as a single image's: for the 10-crop the
    // 32x32 image is padded, its corners and center cut, and each mirrored.
    let size = 32;
    let pad = match views {
        TestView::TenCrop => ten_crop_padding(size),
        _ => 0,
    };
    let crops = crop_origins(views, size + 2 * pad, size + 2 * pad, size);
    let classes = net.classes;
    let mut tally = Tally::new(classes);
    let indices: Vec<usize> = (0..total).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let n = chunk.len();
        let (pixels, labels) = data.batch(chunk);
        if let Some(&bad) = labels.iter().find(|&&l| l >= classes) {
            return Err(TrainError::Invalid(format!(
                "label {bad} is out of range for {classes} classes"
            )));
        }
        let x = normalize(
            pixels,
            [n, 3, 32, 32],
            normalization.mean,
            normalization.std,
            device,
        );
        let mut probabilities: Option<Tensor<2>> = None;
        for &(left, top, flip) in &crops {
            let view = if pad == 0 && !flip {
                x.clone()
            } else {
                let plan = CropPlan {
                    pad,
                    offsets: vec![(left, top); n],
                    flips: vec![flip; n],
                };
                pad_crop_flip(x.clone(), &plan)
            };
            let p = softmax((net.forward)(view), 1);
            probabilities = Some(match probabilities {
                Some(sum) => sum + p,
                None => p,
            });
        }
        let probabilities = probabilities.expect("at least one view") / crops.len() as f32;
        tally.add(probabilities, &labels, device).await?;
    }
    Ok(tally.report(total))
}

/// Loss, hits and confusion summed over the batches of an evaluation.
pub(crate) struct Tally {
    classes: usize,
    confusion: Vec<Vec<u32>>,
    loss_sum: f64,
    top1: usize,
    top5: usize,
}

impl Tally {
    /// Nothing counted yet, for `classes` classes.
    pub(crate) fn new(classes: usize) -> Self {
        Self {
            classes,
            confusion: vec![vec![0u32; classes]; classes],
            loss_sum: 0.0,
            top1: 0,
            top5: 0,
        }
    }

    /// Counts a batch of averaged class probabilities (`[n, classes]`) against `labels`;
    /// one read-back.
    pub(crate) async fn add(
        &mut self,
        probabilities: Tensor<2>,
        labels: &[usize],
        device: &Device,
    ) -> Result<(), TrainError> {
        let (n, classes) = (labels.len(), self.classes);
        let mut one_hot = vec![0.0f32; n * classes];
        for (i, &label) in labels.iter().enumerate() {
            one_hot[i * classes + label] = 1.0;
        }
        let one_hot = Tensor::<2>::from_data(TensorData::new(one_hot, [n, classes]), device);
        let target = (probabilities.clone() * one_hot).sum_dim(1); // [n, 1]
        let loss = target.clone().clamp_min(1e-12).log().mean().neg();
        let rank = probabilities.clone().greater(target).float().sum_dim(1);
        let hits1 = rank.clone().lower_elem(1.0).float().sum();
        let hits5 = rank.lower_elem(5.0).float().sum();
        let predictions = probabilities.argmax(1).float().reshape([n]);
        let values = read_f32(Tensor::cat(vec![loss, hits1, hits5, predictions], 0)).await?;
        self.loss_sum += values[0] as f64 * n as f64;
        self.top1 += values[1] as usize;
        self.top5 += values[2] as usize;
        for (label, predicted) in labels.iter().zip(&values[3..]) {
            self.confusion[*label][*predicted as usize] += 1;
        }
        Ok(())
    }

    /// The report over `total` images.
    pub(crate) fn report(self, total: usize) -> EvalReport {
        let total_f = total.max(1) as f32;
        EvalReport {
            images: total,
            loss: (self.loss_sum / total.max(1) as f64) as f32,
            top1_error: 1.0 - self.top1 as f32 / total_f,
            top5_error: 1.0 - self.top5 as f32 / total_f,
            confusion: self.confusion,
            skipped: 0,
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// Two rows of 4 classes: the first right (rank 0), the second wrong with its target
    /// ranked third (two logits beat it). Expected losses computed by hand in float64:
    /// `-((1 - ε) log p_target + ε mean_k log p_k)`, PyTorch's `label_smoothing` formula.
    #[test]
    fn loss_with_and_without_label_smoothing_matches_hand_computed_values() {
        let device = Device::flex();
        let logits = || {
            Tensor::<2>::from_data(
                TensorData::new(vec![2.0f32, 1.0, 0.0, -1.0, 0.0, 0.5, 3.0, 1.0], [2, 4]),
                &device,
            )
        };
        let one_hot = || {
            Tensor::<2>::from_data(
                TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0], [2, 4]),
                &device,
            )
        };
        for (smoothing, expected) in [(0.0, 1.588_502_6), (0.1, 1.632_252_6)] {
            let (loss, top1, top5) = loss_and_hits(logits(), one_hot(), smoothing);
            let loss = loss.into_scalar::<f32>();
            assert!(
                (loss - expected).abs() < 1e-5,
                "ε = {smoothing}: {loss}, expected {expected}"
            );
            assert_eq!(top1.into_scalar::<f32>(), 1.0);
            assert_eq!(top5.into_scalar::<f32>(), 2.0);
        }
    }
}
