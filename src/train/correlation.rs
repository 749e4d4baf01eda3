//! The shattered-gradients measurement of Balduzzi et al. 2017 ("The shattered gradients
//! problem: if resnets are the answer, then what is the question?"): how alike the input
//! gradients of two nearby inputs are, block by block.
//!
//! For each image `x` and a nearby `x + δ`, and for a block's output `h` projected on a fixed
//! random direction `r`, it takes `g = ∂(h · r)/∂x` at both inputs and their Pearson
//! correlation, averaged over the images. In a deep plain net the gradients "shatter" (they
//! decorrelate like white noise as depth grows); in a ResNet they stay correlated, which is
//! the paper's explanation of why residual nets train. Eval mode (running BN statistics), so
//! every image is independent of the others in the batch.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use super::config::TrainError;
use crate::data::augment::normalize;
use crate::data::dataset::Dataset;
use crate::data::rng::Rng;
use crate::io::Normalization;
use crate::model::ResNet;
use crate::readback::read_f32;

/// The perturbation's standard deviation in normalised input units (the images have unit
/// variance per channel): large enough to flip some ReLUs, small enough to stay "nearby".
pub const DEFAULT_NOISE: f32 = 0.1;
/// Images averaged over by default.
pub const DEFAULT_IMAGES: usize = 32;
/// Depths measured at most: evenly spaced blocks (the last always), because each depth needs
/// its own forward and backward pass.
pub const MAX_DEPTHS: usize = 12;

/// The gradient correlation at each measured block.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GradientCorrelation {
    /// Images averaged over.
    pub images: usize,
    /// Standard deviation of the perturbation δ, in normalised input units.
    pub noise: f32,
    /// One entry per measured block, in forward order.
    pub blocks: Vec<BlockCorrelation>,
}

/// The correlation after one block.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockCorrelation {
    /// The block's name in the weights (`layer2.0`).
    pub block: String,
    /// Weighted layers from the input to this block's output (stem included).
    pub depth: usize,
    /// Mean Pearson correlation of the two input gradients, in [-1, 1].
    pub correlation: f32,
}

/// Pearson correlation of each row of `a` with the same row of `b`.
///
/// # Shapes
/// - `a`, `b`: `[n, d]`
/// - output: `[n]`
pub fn row_correlation(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    let [n, _] = a.dims();
    let a = a.clone() - a.mean_dim(1);
    let b = b.clone() - b.mean_dim(1);
    let cov = (a.clone() * b.clone()).sum_dim(1);
    let norms = (a.powi_scalar(2).sum_dim(1) * b.powi_scalar(2).sum_dim(1)).sqrt();
    (cov / norms.clamp_min(1e-30)).reshape([n])
}

/// Deterministic standard normal values (the same on every device and platform).
fn normal(rng: &mut Rng, shape: [usize; 4], device: &Device) -> Tensor<4> {
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Measures the gradient correlation of `model` (eval mode) on the first `images` test
/// images of `data` with perturbation `noise`, at up to [MAX_DEPTHS] blocks.
pub async fn gradient_correlation(
    model: &ResNet,
    normalization: &Normalization,
    data: &Dataset,
    images: usize,
    noise: f32,
    device: &Device,
) -> Result<GradientCorrelation, TrainError> {
    let n = images.min(data.len());
    if n == 0 {
        return Err(TrainError::Invalid(
            "nothing to measure: no test images".into(),
        ));
    }
    if !(noise.is_finite() && noise >= 0.0) {
        return Err(TrainError::Invalid(format!(
            "the perturbation must be a finite standard deviation ≥ 0, got {noise}"
        )));
    }
    let autodiff = device.clone().autodiff();
    let indices: Vec<usize> = (0..n).collect();
    let (pixels, _) = data.batch(&indices);
    let x = normalize(
        pixels,
        [n, 3, 32, 32],
        normalization.mean,
        normalization.std,
        &autodiff,
    );
    let mut rng = Rng::new(0xBA1D, 2017);
    let delta = normal(&mut rng, [n, 3, 32, 32], &autodiff) * noise;
    let pair = Tensor::cat(vec![x.clone(), x + delta], 0).detach();
    let net = model.clone().fork(&autodiff);
    let blocks: Vec<String> = model
        .named_blocks()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let count = blocks.len();
    let measured: Vec<usize> = if count <= MAX_DEPTHS {
        (0..count).collect()
    } else {
        (1..=MAX_DEPTHS)
            .map(|k| k * count / MAX_DEPTHS - 1)
            .collect()
    };
    let layers_per_block = model.layer1[0].conv3.as_ref().map_or(2, |_| 3);
    let mut correlations = Vec::with_capacity(measured.len());
    for &last in &measured {
        let input = pair.clone().require_grad();
        let mut h = net.forward_stem(input.clone());
        for block in net.stages().flatten().take(last + 1) {
            h = block.forward(h);
        }
        let [_, c, hh, ww] = h.dims();
        let direction = normal(&mut rng, [1, c, hh, ww], &autodiff);
        let grads = (h * direction).sum().backward();
        let g = input
            .grad(&grads)
            .expect("the input requires a gradient")
            .reshape([2 * n, 3 * 32 * 32]);
        let a = g.clone().narrow(0, 0, n);
        let b = g.narrow(0, n, n);
        correlations.push(row_correlation(a, b).mean().detach());
    }
    let values = read_f32(Tensor::cat(correlations, 0)).await?;
    Ok(GradientCorrelation {
        images: n,
        noise,
        blocks: measured
            .iter()
            .zip(values)
            .map(|(&i, correlation)| BlockCorrelation {
                block: blocks[i].clone(),
                depth: 1 + (i + 1) * layers_per_block,
                correlation,
            })
            .collect(),
    })
}

// Native only: the tests block on the async API with pollster.
#[cfg(all(test, not(target_family = "wasm")))]
mod tests {
    use super::*;
    use crate::data::synthetic::Shapes;
    use crate::model::arch::parse;

    /// Hand-computed: (1, 2, 3) with (2, 4, 7): centred (−1, 0, 1) and (−2.33, −0.33, 2.67),
    /// cov 5, norms √2 · √12.67 → 0.99340; and a row with its negation: −1.
    #[test]
    fn row_correlation_matches_hand_computed_values() {
        let device = Device::flex();
        let a = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 1.0, 0.0, -2.0], [2, 3]),
            &device,
        );
        let b = Tensor::<2>::from_data(
            TensorData::new(vec![2.0f32, 4.0, 7.0, -1.0, 0.0, 2.0], [2, 3]),
            &device,
        );
        let r = row_correlation(a, b)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let expected = 5.0 / (2.0f32.sqrt() * (38.0f32 / 3.0).sqrt());
        assert!((r[0] - expected).abs() < 1e-5, "{r:?} vs {expected}");
        assert!((r[1] + 1.0).abs() < 1e-5, "{r:?}");
    }

    fn data() -> Dataset {
        Dataset::Shapes(Shapes {
            len: 16,
            ..Shapes::test(3)
        })
    }

    /// With no perturbation both gradients are the same: correlation 1 at every block.
    #[test]
    fn identical_inputs_have_identical_gradients() {
        let device = Device::flex();
        let model = parse("resnet20").unwrap().init(&device);
        let report = pollster::block_on(gradient_correlation(
            &model,
            &Normalization::CIFAR10,
            &data(),
            8,
            0.0,
            &device,
        ))
        .unwrap();
        assert_eq!(report.blocks.len(), 9);
        assert_eq!(report.blocks[8].depth, 19);
        for b in &report.blocks {
            assert!((b.correlation - 1.0).abs() < 1e-5, "{b:?}");
        }
    }

    /// The paper's finding at initialisation (its Figure 1): a plain net's gradients shatter
    /// with depth while a ResNet's stay correlated. Seen over three inits each, 8 images:
    /// ResNet-20 0.36–0.38 at its last block, plain-20 0.006–0.03 (from 0.81–0.83 at the
    /// first).
    #[test]
    fn plain_gradients_shatter_and_residual_ones_do_not() {
        let device = Device::flex();
        let last = |arch: &str| {
            let model = parse(arch).unwrap().init(&device);
            let report = pollster::block_on(gradient_correlation(
                &model,
                &Normalization::CIFAR10,
                &data(),
                8,
                DEFAULT_NOISE,
                &device,
            ))
            .unwrap();
            let first = report.blocks[0].correlation;
            (first, report.blocks.last().unwrap().correlation)
        };
        let (residual_first, residual) = last("resnet20");
        let (plain_first, plain) = last("plain20");
        assert!(
            residual_first > 0.6 && plain_first > 0.6,
            "{residual_first} {plain_first}"
        );
        assert!(residual > 0.25, "ResNet-20: {residual}");
        assert!(plain < 0.1, "plain-20: {plain}");
    }
}
