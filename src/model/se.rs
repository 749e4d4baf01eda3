//! Squeeze-and-excitation (Hu et al. 2018, "Squeeze-and-Excitation Networks"): a per-channel
//! gate computed from the globally pooled block output, in timm's layout (`se.fc1`, `se.fc2`,
//! 1x1 convolutions with bias) so that timm's `seresnet*` / `seresnext*` weights load by name.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};

use super::block::he_normal_fan_out;
use super::pool::global_average;

/// Channels of the squeeze: `channels / 16` rounded to the nearest multiple of 8, at least 8
/// (timm's `make_divisible(channels / 16, 8)`), so 256 → 16 and 64 → 8.
pub fn reduced_channels(channels: usize) -> usize {
    ((channels as f64 / 16.0 + 4.0) as usize / 8 * 8).max(8)
}

/// The squeeze-excitation gate of one block.
#[derive(Module, Debug)]
pub struct SqueezeExcitation {
    /// 1x1 reduction (with bias) of the pooled channels.
    pub fc1: Conv2d,
    /// 1x1 expansion (with bias) back to the block's channels.
    pub fc2: Conv2d,
}

impl SqueezeExcitation {
    /// A gate for `channels` channels, with He (fan-out) init as the rest of the net.
    pub fn new(channels: usize, device: &Device) -> Self {
        let reduced = reduced_channels(channels);
        let conv = |from, to| {
            Conv2dConfig::new([from, to], [1, 1])
                .with_initializer(he_normal_fan_out())
                .init(device)
        };
        Self {
            fc1: conv(channels, reduced),
            fc2: conv(reduced, channels),
        }
    }

    /// Parameters: two 1x1 convolutions with bias.
    pub fn params(channels: usize) -> usize {
        let reduced = reduced_channels(channels);
        2 * channels * reduced + reduced + channels
    }

    /// Scales each channel of `x` by a gate in (0, 1) computed from its global average.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]`
    /// - output: `[batch, channels, height, width]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let squeezed = global_average(x.clone());
        let gate = sigmoid(self.fc2.forward(relu(self.fc1.forward(squeezed))));
        x * gate
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::tensor::{Device, Tensor, TensorData, Tolerance};

    use super::*;

    #[test]
    fn reduction_rounds_like_timm() {
        // make_divisible(v, 8) = max(8, int(v + 4) // 8 * 8)
        for (channels, reduced) in [
            (64, 8),
            (256, 16),
            (512, 32),
            (2048, 128),
            (100, 8),
            (200, 16),
        ] {
            assert_eq!(reduced_channels(channels), reduced, "{channels}");
        }
    }

    /// One hand-computed gate: channel means 1 and 3; fc1 = identity on 8 channels' first two
    /// (bias 0), fc2 maps hidden unit 0 to channel 0 and unit 1 to channel 1 with bias −1.
    #[test]
    fn gates_each_channel_by_its_pooled_value() {
        let device = Device::flex();
        let mut se = SqueezeExcitation::new(2, &device);
        let mut w1 = vec![0.0f32; 8 * 2];
        w1[0] = 1.0; // hidden 0 ← channel 0
        w1[3] = -1.0; // hidden 1 ← −channel 1 (ReLU makes it 0)
        se.fc1.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(w1, [8, 2, 1, 1]),
            &device,
        ));
        se.fc1.bias = Some(Param::from_tensor(Tensor::zeros([8], &device)));
        let mut w2 = vec![0.0f32; 2 * 8];
        w2[0] = 2.0; // channel 0 ← 2 · hidden 0
        w2[8 + 1] = 5.0; // channel 1 ← 5 · hidden 1
        se.fc2.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(w2, [2, 8, 1, 1]),
            &device,
        ));
        se.fc2.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![-1.0f32, -1.0], [2]),
            &device,
        )));
        // Channel 0: [0, 2] (mean 1); channel 1: [3, 3] (mean 3).
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0.0f32, 2.0, 3.0, 3.0], [1, 2, 1, 2]),
            &device,
        );
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        let (g0, g1) = (sig(2.0 * 1.0 - 1.0), sig(5.0 * 0.0 - 1.0));
        let expected = TensorData::new(vec![0.0, 2.0 * g0, 3.0 * g1, 3.0 * g1], [1, 2, 1, 2]);
        se.forward(x)
            .into_data()
            .assert_approx_eq::<f32>(&expected, Tolerance::default());
    }
}
