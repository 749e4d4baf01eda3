//! Classification: a loaded model, its card, and the averaging of test-time views.
//! The native CLI and the browser package both classify through here.

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use serde::Serialize;

use crate::Error;
use crate::data::views::{TestView, views};
use crate::io::{ModelCard, WeightsFile};
use crate::model::{FoldedResNet, NetConfig, Network};
use crate::readback::read_f32;

/// The 1000 ImageNet class names, in torchvision's order: the default names of a 1000-class
/// model natively. The browser package leaves them out (10 KB of its 3 MB budget): `resnet
/// import` writes them into the card of the files it makes, so those carry their names.
#[cfg(not(target_family = "wasm"))]
const IMAGENET_CLASSES: &str = include_str!("data/imagenet_classes.txt");

/// Refuses an input that is not all finite numbers, naming the first value that is not: a
/// NaN or an infinity gives no meaningful logits, and on a GPU the folded net's ReLU (a clamp,
/// which WGSL leaves undefined for NaN) could even hide it behind finite ones.
pub fn finite_input(values: &[f32]) -> Result<(), String> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(format!(
            "input value {i} is {}: the model takes finite numbers only",
            values[i]
        )),
    }
}

/// Whether `height` x `width` inputs fit the network of `card`: Inception-ResNet's unpadded
/// windows need at least 75x75 (a smaller map would reach a convolution smaller than its
/// kernel, which burn does not report as an error).
pub fn fits_input(card: &ModelCard, height: usize, width: usize) -> Result<(), String> {
    let min = card.config.min_input_size();
    if height < min || width < min {
        return Err(format!(
            "{} needs images of at least {min}x{min} (its windows are unpadded), got \
             {height}x{width}",
            card.config.name()
        ));
    }
    Ok(())
}

/// [IMAGENET_CLASSES], one name per class (none in the browser package).
pub fn imagenet_labels() -> Option<Vec<String>> {
    #[cfg(not(target_family = "wasm"))]
    return Some(IMAGENET_CLASSES.lines().map(str::to_string).collect());
    #[cfg(target_family = "wasm")]
    None
}

/// One class and its probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Class index.
    pub index: usize,
    /// Class name.
    pub label: String,
    /// Softmax probability averaged over the views.
    pub probability: f32,
}

/// The result of classifying one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// The `top_k` most probable classes, most probable first.
    pub predictions: Vec<Prediction>,
    /// How many views were averaged (1, 10, or 2 per scale).
    pub views: usize,
    /// Sum of the averaged probabilities of every class (1 up to rounding).
    pub total_probability: f32,
}

/// A model ready to classify, in eval mode (its BN layers use their running statistics).
pub struct Classifier {
    model: Network,
    /// What classifies a ResNet: `model` with its BNs folded into the convolutions (the same
    /// logits with fewer passes over the activations). `model` stays for export and
    /// fine-tuning, and classifies the other trees itself.
    folded: Option<FoldedResNet>,
    card: ModelCard,
    labels: Vec<String>,
    device: Device,
}

impl Classifier {
    /// Builds the model a weights file describes (or `config`, which must agree with the
    /// file's card if it has one) on `device` and loads the weights into it.
    pub fn load(
        file: WeightsFile,
        config: Option<NetConfig>,
        device: &Device,
    ) -> Result<Self, Error> {
        let card = match (&file.card, config) {
            (_, Some(config)) => match &file.card {
                Some(card) => ModelCard {
                    config,
                    ..card.clone()
                },
                None => ModelCard::for_config(config),
            },
            (Some(card), None) => card.clone(),
            (None, None) => return Err(Error::NoArchitecture { path: file.path }),
        };
        card.config.validate()?;
        let model = card.config.init(device);
        let model = file.apply_network(model, &card.config)?;
        Ok(Self::new(model, card, device))
    }

    /// Wraps a model already in memory (e.g. just trained).
    pub fn new(model: impl Into<Network>, card: ModelCard, device: &Device) -> Self {
        let model = model.into();
        let num_classes = card.config.num_classes();
        let labels = match &card.labels {
            Some(labels) if labels.len() == num_classes => labels.clone(),
            _ if let Some(names) = imagenet_labels().filter(|_| num_classes == 1000) => names,
            _ => (0..num_classes).map(|i| format!("class {i}")).collect(),
        };
        Self {
            folded: model.resnet().map(FoldedResNet::new),
            model,
            card,
            labels,
            device: device.clone(),
        }
    }

    /// Replaces the class names (their count must equal the number of classes).
    pub fn set_labels(&mut self, labels: Vec<String>) -> Result<(), Error> {
        if labels.len() != self.card.config.num_classes() {
            return Err(Error::Labels {
                given: labels.len(),
                classes: self.card.config.num_classes(),
            });
        }
        self.card.labels = Some(labels.clone());
        self.labels = labels;
        Ok(())
    }

    /// The model's card (architecture, normalisation, labels).
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The class names, index by index.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The network.
    pub fn model(&self) -> &Network {
        &self.model
    }

    /// The device the model lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Logits of a normalised batch.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]`
    /// - output: `[batch, num_classes]`
    pub fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        match &self.folded {
            Some(folded) => folded.forward(x),
            None => self.model.forward(x),
        }
    }

    /// Classifies an image, averaging the softmax over the views of `mode`; one read-back.
    pub async fn classify(
        &self,
        image: &RgbImage,
        mode: TestView,
        top_k: usize,
    ) -> Result<Classification, Error> {
        let batches = views(image, &self.card, mode);
        let mut total: Option<Tensor<1>> = None;
        let mut count = 0;
        for batch in batches {
            count += batch.shape[0];
            let x = Tensor::<4>::from_data(TensorData::new(batch.data, batch.shape), &self.device);
            let probabilities = softmax(self.logits(x), 1).sum_dim(0);
            let [_, classes] = probabilities.dims();
            let probabilities = probabilities.reshape([classes]);
            total = Some(match total {
                Some(total) => total + probabilities,
                None => probabilities,
            });
        }
        let total = total.expect("every test view yields at least one batch") / count as f32;
        let probabilities = read_f32(total).await?;
        Ok(self.top_k(&probabilities, top_k, count))
    }

    /// The `top_k` classes of averaged probabilities (sorted on the CPU: WebGPU has no sort
    /// without a synchronous read).
    fn top_k(&self, probabilities: &[f32], top_k: usize, views: usize) -> Classification {
        let mut order: Vec<usize> = (0..probabilities.len()).collect();
        order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
        let predictions = order
            .into_iter()
            .take(top_k.max(1))
            .map(|index| Prediction {
                index,
                label: self.labels[index].clone(),
                probability: probabilities[index],
            })
            .collect();
        Classification {
            predictions,
            views,
            total_probability: probabilities.iter().sum(),
        }
    }
}

/// One class and its probability, without a name (the page names classes itself).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassProbability {
    /// Class index.
    pub index: usize,
    /// Softmax probability.
    pub probability: f32,
}

/// The most probable classes of one test image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExamplePrediction {
    /// Index of the image in the dataset.
    pub index: usize,
    /// Its true label.
    pub label: usize,
    /// The `k` most probable classes, most probable first.
    pub top: Vec<ClassProbability>,
}

/// The `k` most probable classes of `model` (eval mode) for images `indices` of a 32x32
/// dataset, normalised as `card` says; one read-back, sorted on the CPU.
pub async fn top_classes(
    model: &Network,
    card: &ModelCard,
    data: &crate::data::dataset::Dataset,
    indices: &[usize],
    k: usize,
    device: &Device,
) -> Result<Vec<ExamplePrediction>, Error> {
    if indices.is_empty() {
        return Ok(Vec::new());
    }
    let (pixels, labels) = data.batch(indices);
    let n = &card.normalization;
    let x =
        crate::data::augment::normalize(pixels, [indices.len(), 3, 32, 32], n.mean, n.std, device);
    let p = read_f32(softmax(model.forward(x), 1)).await?;
    let classes = card.config.num_classes();
    Ok(indices
        .iter()
        .zip(labels)
        .zip(p.chunks(classes))
        .map(|((&index, label), probs)| {
            let mut order: Vec<usize> = (0..classes).collect();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
            let top = order
                .into_iter()
                .take(k)
                .map(|c| ClassProbability {
                    index: c,
                    probability: probs[c],
                })
                .collect();
            ExamplePrediction { index, label, top }
        })
        .collect())
}
