//! Evaluation of full-size images streamed from disk under the paper's test views (section
//! 3.4): the center crop (shorter side 256, center 224), the 10-crop, and the
//! fully-convolutional multi-scale test (shorter side in {224, 256, 384, 480, 640}, and flips,
//! scores averaged). The views are the ones `resnet classify` cuts from a single image
//! ([crate::data::views]); images are decoded and cut on the loader's threads.

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use super::config::{EvalReport, TrainError};
use super::evaluate::{Logits, Tally};
use crate::data::imagenet::FileSet;
use crate::data::views::{TestView, ViewBatch, views_at};
use crate::io::Normalization;
use crate::model::Stem;

/// Evaluates the first `total` images of `files` under `views`, averaging the softmax of an
/// image's views; unreadable images are left out and counted in [EvalReport::skipped].
pub(crate) async fn evaluate_files(
    net: &Logits<'_>,
    normalization: &Normalization,
    files: &FileSet,
    total: usize,
    batch_size: usize,
    views: TestView,
    device: &Device,
) -> Result<EvalReport, TrainError> {
    let classes = net.classes;
    if let Some(bad) = (0..total).map(|i| files.label(i)).find(|&l| l >= classes) {
        return Err(TrainError::Invalid(format!(
            "label {bad} is out of range for {classes} classes"
        )));
    }
    // Ten views per image: a tenth as many images per forward pass.
    let per_batch = match views {
        TestView::TenCrop => (batch_size / 10).max(1),
        _ => batch_size.max(1),
    };
    let mut tally = Tally::new(classes);
    let mut scored = 0;
    let indices: Vec<usize> = (0..total).collect();
    for chunk in indices.chunks(per_batch) {
        let decoded = files.decode_batch(chunk);
        if decoded.is_empty() {
            continue;
        }
        let labels: Vec<usize> = decoded.iter().map(|(_, label)| *label).collect();
        let per_image: Vec<Vec<ViewBatch>> = decoded
            .par_iter()
            .map(|(image, _)| views_at(image, normalization, Stem::ImageNet, files.size, views))
            .collect();
        let probabilities = match views {
            TestView::Center | TestView::TenCrop => {
                // Every image has the same number of equal views: one forward pass.
                let [v, c, h, w] = per_image[0][0].shape;
                let n = per_image.len();
                let data: Vec<f32> = per_image
                    .into_iter()
                    .flat_map(|mut batches| batches.remove(0).data)
                    .collect();
                let x = Tensor::<4>::from_data(TensorData::new(data, [n * v, c, h, w]), device);
                let p = softmax((net.forward)(x), 1);
                p.reshape([n, v, classes]).mean_dim(1).reshape([n, classes])
            }
            TestView::MultiScale => {
                // Sizes differ from image to image: one pass per image and scale.
                let rows = per_image
                    .into_iter()
                    .map(|batches| {
                        let count = batches.len();
                        let sum = batches
                            .into_iter()
                            .map(|b| {
                                let x = Tensor::<4>::from_data(
                                    TensorData::new(b.data, b.shape),
                                    device,
                                );
                                softmax((net.forward)(x), 1).mean_dim(0)
                            })
                            .reduce(|a, b| a + b)
                            .expect("at least one scale");
                        sum / count as f32
                    })
                    .collect();
                Tensor::cat(rows, 0)
            }
        };
        tally.add(probabilities, &labels, device).await?;
        scored += labels.len();
    }
    if scored == 0 {
        return Err(TrainError::Invalid(format!(
            "none of the {total} images could be decoded: {}",
            files.skipped().examples.join("; ")
        )));
    }
    let mut report = tally.report(scored);
    report.skipped = total - scored;
    Ok(report)
}
