//! The paper's CIFAR augmentation on device tensors: 4-pixel zero padding, a random 32x32
//! crop and a random horizontal flip, per image, as one gather; and the choice of
//! augmentation for full-size images (cut on the CPU by the ImageNet loader).

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::rng::Rng;

/// How full-size training images are augmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(not(target_family = "wasm"), derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Augmentation {
    /// torchvision's RandomResizedCrop (8–100% of the area, aspect 3/4–4/3) + flip.
    #[default]
    RandomResizedCrop,
    /// Section 3.4 of the paper: shorter side uniform in [256, 480] (for a 224 crop; scaled
    /// with the crop), a random crop, flip, and AlexNet's PCA colour lighting.
    Scale,
}

/// Where each image of a batch is cropped and whether it is mirrored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CropPlan {
    /// Zero padding on every side before cropping.
    pub pad: usize,
    /// Top-left corner `(x, y)` of each crop in the padded image, in `0..=2 * pad`.
    pub offsets: Vec<(usize, usize)>,
    /// Whether each image is mirrored left to right.
    pub flips: Vec<bool>,
}

impl CropPlan {
    /// Uniform offsets in `0..=2 * pad` and fair coin flips, drawn from `rng`.
    pub fn random(batch: usize, pad: usize, rng: &mut Rng) -> Self {
        let mut offsets = Vec::with_capacity(batch);
        let mut flips = Vec::with_capacity(batch);
        for _ in 0..batch {
            offsets.push((rng.below(2 * pad + 1), rng.below(2 * pad + 1)));
            flips.push(rng.next_u64() & 1 == 1);
        }
        Self {
            pad,
            offsets,
            flips,
        }
    }

    /// The plan that returns every image unchanged.
    pub fn identity(batch: usize, pad: usize) -> Self {
        Self {
            pad,
            offsets: vec![(pad, pad); batch],
            flips: vec![false; batch],
        }
    }

    /// For each output pixel, its index in the flattened padded image, `[batch, channels,
    /// height * width]`.
    fn indices(&self, channels: usize, height: usize, width: usize) -> Vec<i32> {
        let padded_width = width + 2 * self.pad;
        let mut out = Vec::with_capacity(self.offsets.len() * channels * height * width);
        for (&(dx, dy), &flip) in self.offsets.iter().zip(&self.flips) {
            for _ in 0..channels {
                for y in 0..height {
                    for x in 0..width {
                        let sx = if flip { width - 1 - x } else { x };
                        out.push(((y + dy) * padded_width + sx + dx) as i32);
                    }
                }
            }
        }
        out
    }
}

/// Pads `x` with `plan.pad` zeros, crops each image at its offset and mirrors it if asked.
///
/// Zero is the mean once images are normalised, so padding after normalisation is the
/// paper's padding of mean-subtracted images.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`
/// - output: the same
pub fn pad_crop_flip(x: Tensor<4>, plan: &CropPlan) -> Tensor<4> {
    let [batch, channels, height, width] = x.dims();
    assert_eq!(batch, plan.offsets.len(), "one crop per image");
    let p = plan.pad;
    let device: Device = x.device();
    let padded = x.pad(
        [(0, 0), (0, 0), (p, p), (p, p)],
        burn::tensor::ops::PadMode::Constant(0.0),
    );
    let flat = padded.reshape([batch, channels, (height + 2 * p) * (width + 2 * p)]);
    let indices = Tensor::<3, Int>::from_data(
        TensorData::new(
            plan.indices(channels, height, width),
            [batch, channels, height * width],
        ),
        &device,
    );
    flat.gather(2, indices)
        .reshape([batch, channels, height, width])
}

/// Converts planar bytes to normalised floats on the device: `(x / 255 - mean) / std`.
///
/// # Shapes
/// - `pixels`: `batch * 3 * height * width` bytes, NCHW
/// - output: `[batch, 3, height, width]`
pub fn normalize(
    pixels: Vec<u8>,
    shape: [usize; 4],
    mean: [f32; 3],
    std: [f32; 3],
    device: &Device,
) -> Tensor<4> {
    let x = Tensor::<4>::from_data(TensorData::new(pixels, shape), device);
    let mean = Tensor::<4>::from_data(TensorData::new(mean.to_vec(), [1, 3, 1, 1]), device);
    let std = Tensor::<4>::from_data(TensorData::new(std.to_vec(), [1, 3, 1, 1]), device);
    (x / 255.0 - mean) / std
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    fn ramp(shape: [usize; 4]) -> Tensor<4> {
        let n: usize = shape.iter().product();
        Tensor::from_data(
            TensorData::new((1..=n).map(|v| v as f32).collect::<Vec<_>>(), shape),
            &device(),
        )
    }

    #[test]
    fn identity_plan_changes_nothing_and_flipping_twice_is_the_identity() {
        let x = ramp([2, 3, 6, 5]);
        let same = pad_crop_flip(x.clone(), &CropPlan::identity(2, 2));
        assert_eq!(same.into_data(), x.clone().into_data());
        let flip = CropPlan {
            pad: 2,
            offsets: vec![(2, 2); 2],
            flips: vec![true, true],
        };
        let once = pad_crop_flip(x.clone(), &flip);
        assert_eq!(once.clone().into_data(), x.clone().flip([3]).into_data());
        assert_eq!(pad_crop_flip(once, &flip).into_data(), x.into_data());
    }

    #[test]
    fn crops_stay_inside_the_padded_image() {
        // Every value of a crop comes from the image or from the zero padding, and a corner
        // crop shows exactly `pad` rows and columns of zeros.
        let x = ramp([1, 1, 4, 4]);
        let corner = CropPlan {
            pad: 1,
            offsets: vec![(0, 0)],
            flips: vec![false],
        };
        let crop = pad_crop_flip(x, &corner)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(
            crop,
            vec![
                0., 0., 0., 0., 0., 1., 2., 3., 0., 5., 6., 7., 0., 9., 10., 11.
            ]
        );

        let mut rng = Rng::new(1, 2);
        let plan = CropPlan::random(64, 4, &mut rng);
        assert!(plan.offsets.iter().all(|&(x, y)| x <= 8 && y <= 8));
        assert!(
            plan.offsets.iter().any(|&(x, _)| x == 0) && plan.offsets.iter().any(|&(x, _)| x == 8)
        );
        let flips = plan.flips.iter().filter(|&&f| f).count();
        assert!((16..=48).contains(&flips), "{flips}");
        let x = ramp([64, 3, 32, 32]);
        let out = pad_crop_flip(x, &plan)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let max = (64 * 3 * 32 * 32) as f32;
        assert!(out.iter().all(|&v| v == 0.0 || (1.0..=max).contains(&v)));
    }

    #[test]
    fn normalisation_uses_the_given_constants() {
        let x = normalize(
            vec![0, 255, 51, 102, 0, 255],
            [1, 3, 1, 2],
            [0.5, 0.2, 0.0],
            [0.5, 0.1, 1.0],
            &device(),
        );
        let v = x.into_data().try_into_vec::<f32>().unwrap();
        let expected = [-1.0, 1.0, 0.0, 2.0, 0.0, 1.0];
        for (a, b) in v.iter().zip(expected) {
            assert!((a - b).abs() < 1e-5, "{v:?}");
        }
    }
}
