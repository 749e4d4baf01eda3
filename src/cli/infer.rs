//! `resnet import`, `resnet logits`, `resnet classify`: weights from elsewhere brought in,
//! and a model applied to arrays or image files (every tree: the ResNet family, DenseNet, Inception-ResNet-v2).

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};

use super::{DeviceArgs, ModelArgs, thousands};
use crate::Error;
use crate::data::views::TestView;
use crate::infer::Classifier;
use crate::io::npy::NpyF32;
use crate::io::{ModelCard, Precision, WeightsFile};
use crate::readback::read_f32;

pub(super) fn import(
    file: &Path,
    model: &ModelArgs,
    labels: Option<&Path>,
    out: &Path,
    f16: bool,
) -> Result<(), Error> {
    let config = model.required_net_config()?;
    let weights = WeightsFile::open(file)?;
    let tensors = weights.keys().len();
    let mut classifier = Classifier::load(weights, Some(config), &burn::tensor::Device::flex())?;
    match labels {
        Some(labels) => classifier.set_labels(read_labels(labels)?)?,
        // The file carries ImageNet's names, which the browser package does not have.
        None if classifier.card().config.num_classes() == 1000 => {
            classifier.set_labels(crate::infer::imagenet_labels().unwrap_or_default())?
        }
        None => {}
    }
    let card = ModelCard {
        description: Some(format!("imported from {}", file.display())),
        ..classifier.card().clone()
    };
    let precision = if f16 { Precision::F16 } else { Precision::F32 };
    crate::io::save(classifier.model(), &card, out, precision)?;
    println!(
        "{}: {tensors} tensors ({} parameters) of {} written to {}",
        file.display(),
        thousands(card.config.stats(card.input_size).params as u64),
        card.config.name(),
        out.display()
    );
    Ok(())
}

/// Largest batch sent to the device at once by `resnet logits`.
const LOGITS_CHUNK: usize = 32;

pub(super) fn logits(
    model: &ModelArgs,
    weights: &Path,
    input: &Path,
    output: &Path,
    device: DeviceArgs,
) -> Result<(), Error> {
    let array = NpyF32::read(input)?;
    let [n, c, h, w] = array.shape[..] else {
        return Err(Error::Shape(format!(
            "{}: expected a 4-D [N, 3, H, W] array, got shape {:?}",
            input.display(),
            array.shape
        )));
    };
    if c != 3 || n == 0 || h == 0 || w == 0 {
        return Err(Error::Shape(format!(
            "{}: expected [N, 3, H, W] with N, H, W >= 1, got {:?}",
            input.display(),
            array.shape
        )));
    }
    crate::infer::finite_input(&array.data)
        .map_err(|e| Error::Shape(format!("{}: {e}", input.display())))?;
    let classifier = model.classifier(weights, device)?;
    crate::infer::fits_input(classifier.card(), h, w)
        .map_err(|e| Error::Shape(format!("{}: {e}", input.display())))?;
    let classes = classifier.card().config.num_classes();
    let device = classifier.device().clone();
    let forward = |x| classifier.logits(x);
    let mut out = Vec::with_capacity(n * classes);
    for (i, chunk) in array.data.chunks(LOGITS_CHUNK * c * h * w).enumerate() {
        let batch = chunk.len() / (c * h * w);
        let x = Tensor::<4>::from_data(TensorData::new(chunk.to_vec(), [batch, c, h, w]), &device);
        let y = pollster::block_on(read_f32(forward(x)))?;
        debug_assert_eq!(y.len(), batch * classes, "chunk {i}");
        out.extend(y);
    }
    NpyF32 {
        shape: vec![n, classes],
        data: out,
    }
    .write(output)?;
    eprintln!(
        "{}: logits [{n}, {classes}] written to {}",
        weights.display(),
        output.display()
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn classify(
    model: &ModelArgs,
    weights: &Path,
    labels: Option<&Path>,
    top: usize,
    views: TestView,
    json: bool,
    device: DeviceArgs,
    images: &[PathBuf],
) -> Result<(), Error> {
    let mut classifier = model.classifier(weights, device)?;
    if let Some(labels) = labels {
        classifier.set_labels(read_labels(labels)?)?;
    }
    for path in images {
        let bytes =
            std::fs::read(path).map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
        let image = crate::data::image::decode(&bytes)
            .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
        let started = std::time::Instant::now();
        let result = pollster::block_on(classifier.classify(&image, views, top))?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        if json {
            let mut value = serde_json::to_value(&result).expect("results serialise");
            value["image"] = path.display().to_string().into();
            value["ms"] = ms.into();
            println!("{value}");
        } else {
            println!("{} ({} views, {ms:.0} ms):", path.display(), result.views);
            for p in &result.predictions {
                println!(
                    "  {:6.2}%  {:4}  {}",
                    p.probability * 100.0,
                    p.index,
                    p.label
                );
            }
        }
    }
    Ok(())
}

/// Class names, one per line; blank lines are refused rather than silently shifting classes.
fn read_labels(path: &Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    let labels: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    if let Some(i) = labels.iter().position(String::is_empty) {
        return Err(Error::Other(format!(
            "{}: line {} is empty",
            path.display(),
            i + 1
        )));
    }
    Ok(labels)
}
